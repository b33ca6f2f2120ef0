"""Image views every study shares: what a model sees of a uint8 batch, augmented per sample on the
batch's own device (kornia), and mixup.

Images stay uint8 in memory; a `BatchView` turns a whole batch into the model's input in one
vectorised call after the batch reached the device, so a GPU is never fed by per-image work on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import kornia.augmentation as K
import numpy as np
import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF

from derm_nb.models.backbones import IMAGENET_MEAN, IMAGENET_STD


class Normalise(nn.Module):
    """ImageNet normalisation of a float batch in [0, 1]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return TF.normalize(x, IMAGENET_MEAN, IMAGENET_STD)


class BatchView(nn.Module):
    """A uint8 batch (N, 3, H, W), or one image (3, H, W), as a model sees it: scaled to [0, 1],
    resized to `size` (shorter side), augmented per sample by `augment` (kornia modules, each image
    its own parameters from torch's seeded RNG), then `finish`ed (ImageNet normalisation by default)."""

    def __init__(self, size: int, augment: Sequence[nn.Module] = (), finish: Sequence[nn.Module] | None = None):
        super().__init__()
        self.size = size
        self.augment = K.AugmentationSequential(*augment) if augment else None
        self.finish = nn.Sequential(*(finish if finish is not None else [Normalise()]))

    def extra_repr(self) -> str:
        return f"size={self.size}"

    def pixels(self, images: torch.Tensor, resize: bool = True) -> torch.Tensor:
        """The resized (optionally) and augmented batch, float in [0, 1], not yet finished."""
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        if resize and min(x.shape[-2:]) != self.size:
            x = TF.resize(x, [self.size], antialias=True)
        return self.augment(x).clamp(0, 1) if self.augment is not None else x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        single = images.ndim == 3
        x = self.finish(self.pixels(images[None] if single else images))
        return x[0] if single else x


def eval_transform(size: int) -> BatchView:
    """Resize to `size`, scale to [0, 1], ImageNet normalisation."""
    return BatchView(size)


def augment_transform(size: int, *, hflip: float = 0.5, vflip: float = 0.0, degrees: float = 0.0,
                      translate: float = 0.0, scale: tuple[float, float] | None = None,
                      jitter: tuple[float, float, float] | None = None) -> BatchView:
    """Resize, then the random steps a study names (flips, shift-scale-rotate, colour jitter), then
    normalise. `jitter` is (brightness, contrast, saturation); each step is drawn per image."""
    steps: list[nn.Module] = []
    if hflip:
        steps.append(K.RandomHorizontalFlip(p=hflip))
    if vflip:
        steps.append(K.RandomVerticalFlip(p=vflip))
    if translate or scale:
        steps.append(K.RandomAffine(degrees=degrees, translate=(translate, translate) if translate else None,
                                    scale=scale, p=1.0))
    elif degrees:
        steps.append(K.RandomRotation(degrees, p=1.0))
    if jitter:
        steps.append(K.ColorJitter(*jitter, p=1.0))
    return BatchView(size, steps)


def mixup(images: torch.Tensor, targets: torch.Tensor, alpha: float,
          rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each example with a shuffled partner: lam ~ Beta(alpha, alpha); targets become soft."""
    if alpha <= 0:
        return images, targets.float()
    lam = float(rng.beta(alpha, alpha))
    order = torch.as_tensor(rng.permutation(len(images)), device=images.device)
    return lam * images + (1 - lam) * images[order], lam * targets.float() + (1 - lam) * targets.float()[order]
