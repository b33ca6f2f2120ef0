"""In-memory datasets over the image cache: uint8 images, targets, tabular features, and the view a
model sees of them, applied to whole batches on their device (see `transforms.BatchView`)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, default_collate

from derm_nb.data.cache import load_images
from derm_nb.transforms import BatchView


def to_tensor_images(array: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).contiguous()


def to_device(batch: Any, device: torch.device) -> Any:
    """A batch (dict of tensors, tensor, or a torch-geometric batch) on `device`, copied asynchronously."""
    if isinstance(batch, dict):
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    return batch.to(device, non_blocking=True) if hasattr(batch, "to") else batch


COPIES_IN_MEMORY = 1 << 30  # bytes of fixed augmented copies kept in RAM; more go to a memory-mapped file


def _copies_store(shape: tuple[int, ...]) -> torch.Tensor:
    """An empty uint8 tensor for the fixed copies: in RAM up to COPIES_IN_MEMORY bytes, else backed by a
    memory-mapped temporary file (removed at once, alive while mapped), so memory stays bounded at any size."""
    if int(np.prod(shape)) <= COPIES_IN_MEMORY:
        return torch.empty(shape, dtype=torch.uint8)
    with tempfile.NamedTemporaryFile(prefix="derm_nb_copies_", suffix=".npy") as handle:
        array = np.lib.format.open_memmap(handle.name, mode="w+", dtype=np.uint8, shape=shape)
    return torch.from_numpy(array)


def resized_images(images: torch.Tensor, size: int, chunk: int = 256) -> torch.Tensor:
    """`images` (N, 3, H, W) with the shorter side at `size` px, antialiased, `chunk` images at a time."""
    from torchvision.transforms.v2 import functional as TF

    return torch.cat([TF.resize(images[k:k + chunk], [size], antialias=True) for k in range(0, len(images), chunk)])


def _fixed_copies(images: torch.Tensor, augment: BatchView, copies: int, seed: int,
                  chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(originals, copies) as uint8 at the augmentation's size: every image resized once, and `copies`
    augmented versions of it (N, copies, 3, H, W), drawn once with seeds fixed by (seed, chunk) and kept,
    like augmentations written to disk once (and on disk when they exceed COPIES_IN_MEMORY)."""
    resized = resized_images(images, augment.size, chunk)
    out = _copies_store((len(resized), copies, *resized.shape[1:]))
    for start in range(0, len(resized), chunk):
        part = resized[start:start + chunk]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(hash((seed, start)) % (2**31))
            for k in range(copies):
                out[start:start + chunk, k] = (augment.pixels(part, resize=False) * 255).round().to(torch.uint8)
    return resized, out


class CachedImages(Dataset):
    """Images held in memory as uint8, with targets, optional tabular features and gate, and the
    `transform` (a `BatchView`, or any callable on a batch) that `present` applies to a batch.

    `copies > 0` adds that many augmented copies of every image (study 000's "small + N aug"):
    drawn once with `augment` at its size, seeded by `seed`, the same every epoch and every run,
    like augmentations written to disk once. `augment_classes` instead applies `augment` afresh in every
    batch, to the items of those classes only (study 003's minority-class augmentation).
    Items are uint8; `__getitems__` gathers a whole batch with one index operation.
    """

    def __init__(self, images: torch.Tensor, targets: np.ndarray, transform: Callable,
                 tabular: np.ndarray | None = None, copies: int = 0, augment: BatchView | None = None,
                 seed: int = 0, extra: np.ndarray | None = None, augment_classes: tuple[int, ...] = ()):
        self.images = images
        # np.array copies: pandas' Arrow-backed columns give read-only arrays that torch warns about.
        self.targets = torch.as_tensor(np.array(targets))
        self.tabular = None if tabular is None else torch.as_tensor(np.array(tabular), dtype=torch.float32)
        self.extra = None if extra is None else torch.as_tensor(np.array(extra), dtype=torch.float32)
        self.transform, self.augment = transform, augment
        self.copies, self.seed = copies if augment is not None else 0, seed
        self.augment_classes = torch.as_tensor(sorted(augment_classes), dtype=torch.long)
        self._originals: torch.Tensor | None = None   # with copies: the images and their copies at the
        self._copies: torch.Tensor | None = None      # augmentation's size, drawn on first use

    def __len__(self) -> int:
        return len(self.images) * (self.copies + 1)

    def _pixels(self, index: torch.Tensor) -> torch.Tensor:
        i, k = index // (self.copies + 1), index % (self.copies + 1)
        if self.copies == 0:
            return self.images[i]
        if self._copies is None:
            self._originals, self._copies = _fixed_copies(self.images, self.augment, self.copies, self.seed)
        originals = self._originals[i]
        fixed = k > 0
        originals[fixed] = self._copies[i[fixed], k[fixed] - 1]
        return originals

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(list(indices), dtype=torch.long)
        i = index // (self.copies + 1)
        batch = {"image": self._pixels(index), "target": self.targets[i], "index": i}
        if self.tabular is not None:
            batch["tabular"] = self.tabular[i]
        if self.extra is not None:
            batch["gate"] = self.extra[i]
        return batch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([index]).items()}

    @staticmethod
    def collate(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The DataLoader's collate: `__getitems__` already gave the batch."""
        return batch

    def present(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The batch (on any device) as the model sees it: the view applied to all its images at once."""
        images = batch["image"]
        shown = self.transform(images)
        if len(self.augment_classes) and self.augment is not None:
            chosen = torch.isin(batch["target"].long(), self.augment_classes.to(images.device))
            if chosen.any():
                shown[chosen] = self.augment(images[chosen]).to(shown.dtype)
        return {**batch, "image": shown}

    @property
    def all_targets(self) -> np.ndarray:
        return np.repeat(self.targets.numpy(), self.copies + 1)


def present(dataset: Dataset, batch: Any) -> Any:
    """`batch` as the model sees it: the dataset's own `present` where it has one (images), else as is."""
    show = getattr(dataset, "present", None)
    return show(batch) if show is not None else batch


def gather(dataset: Dataset, index: Sequence[int], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Items `index` of `dataset` as one batch on `device`, presented as the model sees them."""
    getitems = getattr(dataset, "__getitems__", None)
    batch = getitems([int(i) for i in index]) if getitems else default_collate([dataset[int(i)] for i in index])
    return present(dataset, to_device(batch, torch.device(device)))


def load_split_images(cache_dir, frame: pd.DataFrame, size: int = 0) -> torch.Tensor:
    """The cached images of `frame`'s rows as one uint8 tensor (N, 3, S, S); at `size` px where given (0: the
    cache's own size), resized with antialiasing a batch at a time."""
    images = to_tensor_images(load_images(frame, cache_dir))
    if not size or size == images.shape[-1] or not len(images):
        return images
    return resized_images(images, size)
