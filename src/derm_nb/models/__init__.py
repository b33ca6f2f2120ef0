"""Models: backbones and weights resolution, study-specific heads, the simple CNN, MIL, clustering."""
