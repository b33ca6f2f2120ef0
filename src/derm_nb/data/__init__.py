"""Data layer: synthetic generator, real-format loaders, manifest, quality report, splits, image cache."""
