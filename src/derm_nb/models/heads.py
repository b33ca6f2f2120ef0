"""A generic classifier: any registry backbone with a new linear head."""

from __future__ import annotations

import torch
from torch import nn

from derm_nb.models.backbones import Provenance, create_backbone


class BackboneClassifier(nn.Module):
    """A feature extractor with a new linear head (the pretrained model, 'final layer modified')."""

    def __init__(self, backbone: nn.Module, width: int, n_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(width, n_classes)

    def forward(self, image: torch.Tensor, **_: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(image))


def build_classifier(name: str, n_classes: int, weights: str = "none",
                     fallback: str = "") -> tuple[BackboneClassifier, Provenance]:
    """A registry backbone (weights resolved with provenance) with a `n_classes`-wide linear head."""
    backbone, width, provenance = create_backbone(name, weights, fallback)
    return BackboneClassifier(backbone, width, n_classes), provenance
