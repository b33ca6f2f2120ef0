"""Classification losses on logits: BCE (optionally weighting positives) and focal BCE."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FocalBCE(nn.Module):
    """Binary focal loss on logits: -alpha_t (1 - p_t)^gamma log p_t (Lin et al.); study 001 uses alpha 0.6, gamma 2."""

    def __init__(self, alpha: float = 0.6, gamma: float = 2.0):
        super().__init__()
        self.alpha, self.gamma = alpha, gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.float()
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p_t = torch.exp(-bce)
        alpha_t = self.alpha * target + (1 - self.alpha) * (1 - target)
        return (alpha_t * (1 - p_t) ** self.gamma * bce).mean()


class BCE(nn.Module):
    """BCE on logits with float targets, optionally weighting positives (loss weighting baselines)."""

    def __init__(self, pos_weight: float | None = None):
        super().__init__()
        self.pos_weight = None if pos_weight is None else torch.tensor(float(pos_weight))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weight = None if self.pos_weight is None else self.pos_weight.to(logits.device)
        return F.binary_cross_entropy_with_logits(logits, target.float(), pos_weight=weight)

