"""Image transforms every study shares (torchvision v2): evaluation, an augmentation recipe, mixup."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import v2

from derm_nb.models.backbones import IMAGENET_MEAN, IMAGENET_STD


def normalise() -> list:
    """[0, 255] uint8 -> float in [0, 1] -> ImageNet normalisation."""
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def eval_transform(size: int) -> v2.Compose:
    """Resize to `size`, scale to [0, 1], ImageNet normalisation."""
    return v2.Compose([v2.Resize(size, antialias=True), *normalise()])


def augment_transform(size: int, *, hflip: float = 0.5, vflip: float = 0.0, degrees: float = 0.0,
                      translate: float = 0.0, scale: tuple[float, float] | None = None,
                      jitter: tuple[float, float, float] | None = None) -> v2.Compose:
    """Resize, then the random steps a study names (flips, shift-scale-rotate, colour jitter), then
    normalise. `jitter` is (brightness, contrast, saturation)."""
    steps: list = [v2.Resize(size, antialias=True)]
    if hflip:
        steps.append(v2.RandomHorizontalFlip(p=hflip))
    if vflip:
        steps.append(v2.RandomVerticalFlip(p=vflip))
    if translate or scale:
        steps.append(v2.RandomAffine(degrees=degrees, translate=(translate, translate) if translate else None,
                                     scale=scale))
    elif degrees:
        steps.append(v2.RandomRotation(degrees))
    if jitter:
        steps.append(v2.ColorJitter(*jitter))
    return v2.Compose([*steps, *normalise()])


def mixup(images: torch.Tensor, targets: torch.Tensor, alpha: float,
          rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each example with a shuffled partner: lam ~ Beta(alpha, alpha); targets become soft."""
    if alpha <= 0:
        return images, targets.float()
    lam = float(rng.beta(alpha, alpha))
    order = torch.as_tensor(rng.permutation(len(images)))
    return lam * images + (1 - lam) * images[order], lam * targets.float() + (1 - lam) * targets.float()[order]
