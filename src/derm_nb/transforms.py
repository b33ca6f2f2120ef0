"""Study 001's image transforms beyond torchvision: Shades-of-Grey colour constancy, per-image standardisation, mixup."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class ShadesOfGrey(nn.Module):
    """Shades-of-Grey colour constancy (Finlayson & Trezzi) on a float image (C, H, W) in [0, 1].

    The illuminant of channel c is the Minkowski p-norm mean of its values; each channel is scaled
    so that the illuminant becomes neutral grey (p = 1: grey world; p -> inf: max-RGB).
    """

    def __init__(self, power: float = 6.0, eps: float = 1e-6):
        super().__init__()
        self.power, self.eps = power, eps

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.float()
        illuminant = x.clamp_min(0).pow(self.power).mean(dim=(-2, -1)).pow(1 / self.power)
        illuminant = illuminant / (illuminant.norm(dim=-1, keepdim=True) + self.eps)
        gain = 1 / (illuminant * (x.shape[-3] ** 0.5) + self.eps)
        return (x * gain[..., None, None]).clamp(0, 1)


class PerImageStandardize(nn.Module):
    """Subtract each image's own mean and divide by its own standard deviation (study 001)."""

    def __init__(self, eps: float = 1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.float()
        return (x - x.mean()) / (x.std() + self.eps)


def mixup(images: torch.Tensor, targets: torch.Tensor, alpha: float,
          rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each example with a shuffled partner: lam ~ Beta(alpha, alpha); targets become soft."""
    if alpha <= 0:
        return images, targets.float()
    lam = float(rng.beta(alpha, alpha))
    order = torch.as_tensor(rng.permutation(len(images)))
    return lam * images + (1 - lam) * images[order], lam * targets.float() + (1 - lam) * targets.float()[order]
