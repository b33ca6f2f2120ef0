"""Where study 004's bags are cut from: the 00_data square cache, or the original images at their own
resolution (the study's premise: no cropping, no resizing), and the map from an original image's
coordinates to the cache's (where the lesion masks are scored)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageOps

BAG_SOURCES = ("cache", "original")


class OriginalImages(Sequence):
    """The images at `paths` at their original resolution, as uint8 (3, H, W) tensors read on access
    (upright by their EXIF orientation, as the cache and the masks are)."""

    def __init__(self, paths: Sequence[str]):
        self.paths = [str(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.paths[i]) as im:
            array = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
        return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def bag_images(source: str, frame: pd.DataFrame, cached: torch.Tensor) -> Sequence[torch.Tensor]:
    """The images bags are cut from: `cached` (the square cache of `frame`'s rows) or, for `original`,
    the files the manifest's `path` column names."""
    if source == "cache":
        return cached
    if source == "original":
        return OriginalImages(frame["path"])
    raise ValueError(f"bag_source must be one of {', '.join(BAG_SOURCES)}, not '{source}'")


def to_cache_frame(corners: np.ndarray, block: int, shape: tuple[int, int], size: int,
                   fit: str = "crop") -> tuple[np.ndarray, tuple[int, int]]:
    """Blocks of an image of `shape` (height, width) in the `size` px cache's frame: corners and the
    (height, width) of a block. `fit` is how 00_data made the cache: its centred square scaled
    (`crop`; corners may fall outside it) or the whole image squeezed (`resize`). The identity for a
    `size` x `size` image."""
    height, width = shape
    if fit == "resize":
        offset, scale = np.zeros(2), np.array([size / height, size / width])
    else:
        side = min(height, width)
        offset, scale = np.array([(height - side) // 2, (width - side) // 2]), np.full(2, size / side)
    corners = np.round((np.asarray(corners) - offset) * scale).astype(int)
    return corners, (max(1, round(block * scale[0])), max(1, round(block * scale[1])))
