"""Study 003's models: the simple CNN as described, MobileNet from scratch, a pretrained backbone + head."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from derm_nb.models.backbones import Provenance, create_backbone


class SimpleCNN(nn.Module):
    """conv 3->16 -> ReLU -> max-pool -> conv 16->32 -> ReLU -> max-pool -> FC 512 -> 128 -> classes.

    3x3 kernels with padding 1, so at 224 px the flattened maps are 56 x 56 x 32 = 100,352 wide.
    """

    def __init__(self, n_classes: int = 3, image_size: int = 224):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        flat = 32 * (image_size // 4) ** 2
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(flat, 512), nn.ReLU(), nn.Linear(512, 128),
                                        nn.ReLU(), nn.Linear(128, n_classes))

    def forward(self, image: torch.Tensor, **_: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(image))


class BackboneClassifier(nn.Module):
    """A feature extractor with a new linear head (the pretrained model, 'final layer modified')."""

    def __init__(self, backbone: nn.Module, width: int, n_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(width, n_classes)

    def forward(self, image: torch.Tensor, **_: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(image))


def build_architecture(name: str, n_classes: int, image_size: int, weights: str = "none",
                       fallback: str = "") -> tuple[nn.Module, Provenance]:
    """`simple_cnn`, `mobilenet` (MobileNetV2 from scratch) or any backbone of the registry + head."""
    if name == "simple_cnn":
        return SimpleCNN(n_classes, image_size), Provenance("simple_cnn", "none", "random init")
    if name == "mobilenet":
        model = torchvision.models.mobilenet_v2(weights=None, num_classes=n_classes)
        return model, Provenance("mobilenet_v2", "none", "random init")
    backbone, width, provenance = create_backbone(name, weights, fallback)
    return BackboneClassifier(backbone, width, n_classes), provenance
