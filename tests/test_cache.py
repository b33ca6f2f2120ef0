"""The image cache: square crop and size, masks aligned, finished files skipped, interruption safe."""

from __future__ import annotations

import formats
import numpy as np
import torch
from PIL import Image

from derm_nb.data.cache import build_cache, center_crop_square, load_images, naive_cache
from derm_nb.data.sources import load_source


def test_center_crop_square_takes_the_middle():
    im = Image.fromarray(np.arange(4 * 6, dtype=np.uint8).reshape(4, 6))
    out = np.asarray(center_crop_square(im))
    assert out.shape == (4, 4) and out[0, 0] == 1


def test_cache_size_alignment_and_skip(tmp_path):
    formats.isic2017(tmp_path, partitions=False)
    manifest, _ = load_source("isic2017", tmp_path, workers=1)
    cache = build_cache(manifest, tmp_path / "cache", size=24, workers=1)
    assert set(cache["status"]) == {"written"}
    images = load_images(manifest, tmp_path / "cache")
    masks = load_images(manifest, tmp_path / "cache", masks=True)
    assert images.shape == (5, 24, 24, 3) and masks.shape == (5, 24, 24)
    # The 48x36 mask box (12..36, 9..27) crops to (6..30, 9..27) of the central 36x36, scaled by 24/36.
    ys, xs = np.nonzero(masks[0])
    assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (4, 20, 6, 18)
    again = build_cache(manifest, tmp_path / "cache", size=24, workers=1)
    assert set(again["status"]) == {"skipped"}


def test_cache_writes_what_the_naive_loop_writes(tmp_path):
    """The benchmark's baseline and the fast cache must produce the same masks and near-identical images."""
    formats.isic2017(tmp_path)
    manifest, _ = load_source("isic2017", tmp_path, workers=1)
    build_cache(manifest, tmp_path / "ours", size=24, workers=1)
    naive_cache(manifest, tmp_path / "naive", size=24)
    assert (load_images(manifest, tmp_path / "ours", masks=True) == load_images(manifest, tmp_path / "naive", masks=True)).all()
    ours, naive = (load_images(manifest, tmp_path / d).astype(int) for d in ("ours", "naive"))
    assert np.abs(ours - naive).mean() < 8  # JPEG draft decoding resamples differently, not differently placed


def test_interrupted_cache_leaves_no_partial_file(tmp_path, monkeypatch):
    formats.isic2020(tmp_path)
    manifest, _ = load_source("isic2020", tmp_path, workers=1)
    calls = {"n": 0}
    real_save = Image.Image.save

    def failing_save(self, fp, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", failing_save)
    try:
        build_cache(manifest, tmp_path / "cache", size=16, workers=1)
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(Image.Image, "save", real_save)
    leftovers = [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]
    assert not leftovers
    for path in (tmp_path / "cache").glob("*.jpg"):
        Image.open(path).load()  # every file present is complete
    done = build_cache(manifest, tmp_path / "cache", size=16, workers=1)
    # ISIC 2020 has no masks: one save per image, so four finished before the fifth was interrupted
    assert (done["status"] == "skipped").sum() == 4 and (done["status"] == "written").sum() == 6


def test_split_images_are_read_at_another_size_when_asked(tmp_path):
    from derm_nb.datasets import load_split_images

    formats.isic2017(tmp_path, partitions=False)
    manifest, _ = load_source("isic2017", tmp_path, workers=1)
    build_cache(manifest, tmp_path / "cache", size=24, workers=1)
    full = load_split_images(tmp_path / "cache", manifest)
    half = load_split_images(tmp_path / "cache", manifest, size=12)
    assert full.shape == (5, 3, 24, 24) and half.shape == (5, 3, 12, 12) and half.dtype == torch.uint8
    assert torch.equal(load_split_images(tmp_path / "cache", manifest, size=24), full)
    assert abs(half.float().mean() - full.float().mean()) < 2   # the same pictures, smaller
