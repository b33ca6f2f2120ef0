"""Study 004 end to end, as the paper trains it: ResNet-18 and the graph layers learn together, so a
bag carries its blocks' pixels and the backbone runs inside every step (meant for a GPU)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Data

from derm_nb.studies.study004.mil import (
    GCNMIL,
    bag_jobs,
    bag_layout,
    extract_blocks,
    make_bag,
    normalise_pixels,
    rotate,
)


def flip_and_turn(image: torch.Tensor) -> torch.Tensor:
    """The study's training augmentation: a random flip along x or y (or none), then a random multiple of 90 degrees."""
    choice = int(torch.randint(3, ()))
    image = image if choice == 0 else torch.flip(image, dims=(choice,))
    return torch.rot90(image, int(torch.randint(4, ())), dims=(1, 2))


class PixelBags(Sequence):
    """Bags whose nodes are the uint8 pixels of their k x k blocks, cut on access from `images` (one bag
    per image and rotation angle of its class, as `build_bags`); `augment` flips and turns each image
    at random first."""

    def __init__(self, images: Sequence[torch.Tensor], labels: np.ndarray, block: int, stride_scale: float,
                 angles: dict[int, list[int]] | None = None, augment: bool = False):
        self.images, self.labels, self.block, self.stride_scale = images, labels, block, stride_scale
        self.jobs, self.augment = bag_jobs(labels, angles), augment

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, j: int) -> Data:
        i, angle = self.jobs[j]
        image = rotate(self.images[i], angle)
        image = flip_and_turn(image) if self.augment else image
        shape = tuple(image.shape[1:])
        corners, edges = bag_layout(*shape, self.block, self.stride_scale)
        return make_bag(extract_blocks(image, corners, self.block), edges, int(self.labels[i]), corners, i, angle,
                        shape)


class EndToEndMIL(GCNMIL):
    """Table 2 whole: a trainable backbone turns each bag's block pixels into features (scaled by fixed
    statistics of the initial backbone's features, as the frozen path's), then the GCN-MIL head."""

    eval_batch = 1  # one bag of full-size blocks at a time through the backbone

    def __init__(self, backbone: nn.Module, width: int, hidden: int = 512, attention: int = 128, n_classes: int = 3,
                 feature_mean: torch.Tensor | None = None, feature_sd: torch.Tensor | None = None):
        super().__init__(width, hidden, attention, n_classes)
        self.backbone = backbone
        self.register_buffer("feature_mean", torch.zeros(width) if feature_mean is None else feature_mean.clone())
        self.register_buffer("feature_sd", torch.ones(width) if feature_sd is None else feature_sd.clone())

    def block_features(self, data: Data) -> torch.Tensor:
        return (self.backbone(normalise_pixels(data.x)) - self.feature_mean) / self.feature_sd


@torch.no_grad()
def feature_scale(backbone: nn.Module, bags: Sequence[Data], n_bags: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and SD (at least 1e-6) of the backbone's features over the blocks of up to `n_bags` bags,
    spread evenly over `bags`."""
    backbone.eval()
    picks = np.linspace(0, len(bags) - 1, min(n_bags, len(bags))).round().astype(int)
    device = next(backbone.parameters()).device
    x = torch.cat([backbone(normalise_pixels(bags[int(j)].x.to(device))).float().cpu() for j in picks])
    sd = x.std(0) if len(x) > 1 else torch.zeros(x.shape[1])
    return x.mean(0), sd.clamp_min(1e-6)


def end_to_end_model(backbone: nn.Module, width: int, hidden: int, attention: int, n_classes: int,
                     train: Sequence[Data]) -> EndToEndMIL:
    """A fresh end-to-end model: a copy of `backbone` (so each seed starts from the same weights) and
    feature scaling measured on `train`'s bags."""
    backbone = copy.deepcopy(backbone)
    mean, sd = feature_scale(backbone, train)
    return EndToEndMIL(backbone, width, hidden, attention, n_classes, mean, sd)
