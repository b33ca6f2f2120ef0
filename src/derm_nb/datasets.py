"""In-memory datasets over the image cache: uint8 images, targets, tabular features and a transform."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from derm_nb.data.cache import load_images


def to_tensor_images(array: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).contiguous()


class CachedImages(Dataset):
    """Images held in memory as uint8, with targets, optional tabular features and a transform.

    `copies > 0` adds that many augmented copies of every image (study 000's "small + N aug"):
    copy k of image i is drawn with a seed fixed by (seed, i, k), so the copies are the same
    every epoch and every run, like augmentations written to disk once. `augment_classes` instead
    applies `augment` on the fly, only to items of those classes (study 003's minority-class
    augmentation).

    Because a fixed copy is the same in every epoch, it is computed once and kept in memory (up to
    `copy_cache_bytes`), so later epochs do not wait for the augmentation again.
    """

    copy_cache_bytes = 2 * 1024**3

    def __init__(self, images: torch.Tensor, targets: np.ndarray, transform: Callable,
                 tabular: np.ndarray | None = None, copies: int = 0, augment: Callable | None = None,
                 seed: int = 0, extra: np.ndarray | None = None, augment_classes: tuple[int, ...] = ()):
        self.images = images
        # np.array copies: pandas' Arrow-backed columns give read-only arrays that torch warns about.
        self.targets = torch.as_tensor(np.array(targets))
        self.tabular = None if tabular is None else torch.as_tensor(np.array(tabular), dtype=torch.float32)
        self.extra = None if extra is None else torch.as_tensor(np.array(extra), dtype=torch.float32)
        self.transform, self.augment = transform, augment
        self.copies, self.seed = copies, seed
        self.augment_classes = set(augment_classes)
        self._copies: dict[int, torch.Tensor] = {}
        self._copy_budget = self.copy_cache_bytes

    def __len__(self) -> int:
        return len(self.images) * (self.copies + 1)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        i, k = divmod(index, self.copies + 1)
        if self.augment is not None and int(self.targets[i]) in self.augment_classes:
            image = self.augment(self.images[i])
        elif k == 0 or self.augment is None:
            image = self.transform(self.images[i])
        elif index in self._copies:
            image = self._copies[index]
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(hash((self.seed, i, k)) % (2**31))
                image = self.augment(self.images[i])
            size = image.element_size() * image.nelement()
            if size <= self._copy_budget:
                self._copies[index], self._copy_budget = image, self._copy_budget - size
        item = {"image": image, "target": self.targets[i], "index": torch.tensor(i)}
        if self.tabular is not None:
            item["tabular"] = self.tabular[i]
        if self.extra is not None:
            item["gate"] = self.extra[i]
        return item

    @property
    def all_targets(self) -> np.ndarray:
        return np.repeat(self.targets.numpy(), self.copies + 1)


def load_split_images(cache_dir, frame: pd.DataFrame) -> torch.Tensor:
    """The cached images of `frame`'s rows as one uint8 tensor (N, 3, S, S)."""
    return to_tensor_images(load_images(frame, cache_dir))
