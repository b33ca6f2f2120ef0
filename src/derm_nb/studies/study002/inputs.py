"""Study 002's models and what they train on: the embedder, and images (the whole backbone trains)
or features of a frozen backbone.

Study 002 fine-tunes the whole backbone (`finetune="all"`). On a CPU that costs too much for the
dozens of variants the study compares, so the CPU profiles can instead freeze the pretrained
backbone and train only the new layers on its pooled features (`finetune="head"`), computed once
per image (and once per augmented copy). The chapter states which one ran.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torchvision
from torch import nn
from torch.utils.data import Dataset

from derm_nb.datasets import CachedImages
from derm_nb.models.backbones import Provenance, create_backbone, with_stage_features
from derm_nb.models.heads import BackboneClassifier
from derm_nb.train import predict, seeded
from derm_nb.transforms import augment_transform, eval_transform

FINETUNE = ("all", "head")


def augment(size: int):
    """Shifts of ±25 px at 256 px (scaled to `size`), flips, rotation ±10°, zoom 90-110 %."""
    return augment_transform(size, hflip=0.5, vflip=0.5, degrees=10, translate=25 / 256, scale=(0.9, 1.1))


_augment = augment  # the methods below take an `augment` flag that shadows the function


def dense_free(backbone: nn.Module, width: int) -> tuple[nn.Module, int]:
    """The backbone without any dense or dropout layer of its ImageNet head (§IV: "the dense layers of backbone
    CNNs were replaced with an embedding layer"), and its output width.

    VGG16 loses fc6 and fc7 (about 120M parameters) and pools its last convolution map globally, as the
    other backbones do; EfficientNet-B3 loses its head's own dropout, so only the study's 0.3 remains.
    """
    if isinstance(backbone, torchvision.models.VGG):
        backbone.avgpool, backbone.classifier = nn.AdaptiveAvgPool2d(1), nn.Identity()
        return backbone, [m for m in backbone.features if isinstance(m, nn.Conv2d)][-1].out_channels
    head = getattr(backbone, "classifier", None)
    if isinstance(head, nn.Sequential) and all(isinstance(m, (nn.Dropout, nn.Identity)) for m in head):
        backbone.classifier = nn.Identity()
    return backbone, width


def embedding_backbone(name: str, weights: str, fallback: str = "") -> tuple[nn.Module, int, Provenance]:
    """`create_backbone` with the ImageNet head's dense and dropout layers removed (`dense_free`)."""
    module, width, provenance = create_backbone(name, weights, fallback)
    return (*dense_free(module, width), provenance)


class Embedder(nn.Module):
    """Backbone (or none, on precomputed features) -> dropout 0.3 -> embedding layer of width `dim`."""

    def __init__(self, backbone: nn.Module | None, width: int, dim: int = 128, dropout: float = 0.3):
        super().__init__()
        self.backbone = backbone if backbone is not None else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.embedding = nn.Linear(width, dim)

    def forward(self, image: torch.Tensor, **_: torch.Tensor) -> torch.Tensor:
        return self.embedding(self.dropout(self.backbone(image)))


class FeatureSet(Dataset):
    """Precomputed backbone features as a dataset of {"image": features, "target"}.

    `features` is (N, D), or (V, N, D) for V views of each image (the original plus augmented
    copies): an item then draws one view at random (torch's seeded RNG), like on-the-fly augmentation.
    """

    def __init__(self, features: np.ndarray | torch.Tensor, targets: np.ndarray):
        feats = torch.as_tensor(np.asarray(features), dtype=torch.float32)
        self.features = feats if feats.ndim == 3 else feats.unsqueeze(0)
        self.targets = torch.as_tensor(np.array(targets)).long()
        if self.features.shape[1] != len(self.targets):
            raise ValueError(f"{self.features.shape[1]} feature rows for {len(self.targets)} targets")

    def __len__(self) -> int:
        return self.features.shape[1]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        view = int(torch.randint(self.features.shape[0], ())) if self.features.shape[0] > 1 else 0
        return {"image": self.features[view, index], "target": self.targets[index]}

    @property
    def all_targets(self) -> np.ndarray:
        return self.targets.numpy()


@torch.no_grad()
def backbone_features(backbone: nn.Module, dataset: Dataset, batch_size: int = 128, device: str = "auto") -> np.ndarray:
    """Pooled features of every item of `dataset`, in order (eval mode)."""
    return predict(backbone, dataset, batch_size=batch_size, device=device, activation=None)


class ModelInputs:
    """One backbone's inputs for every split, and fresh models that train on them.

    `images` and `targets` are per split (`train`, `val`, `test`); `aug_views` augmented copies of
    each training image (study 002's shifts, flips, rotations and zoom) are fixed by `seed`; with
    `feature_stages` above 0 the backbone's last stages are pooled beside its output (`with_stage_features`).
    """

    def __init__(self, finetune: str, backbone: str, weights: str, fallback: str, images: dict[str, torch.Tensor],
                 targets: dict[str, np.ndarray], size: int, aug_views: int = 2, seed: int = 0,
                 device: str = "auto", batch_size: int = 128, feature_stages: int = 0):
        if finetune not in FINETUNE:
            raise KeyError(f"unknown finetune '{finetune}' (known: {', '.join(FINETUNE)})")
        self.finetune, self.name, self.weights, self.fallback = finetune, backbone, weights, fallback
        self.images, self.targets, self.size = images, {k: np.asarray(v) for k, v in targets.items()}, size
        self.aug_views, self.seed, self.device, self.batch_size = aug_views, seed, device, batch_size
        with torch.random.fork_rng(devices=[]):  # a randomly initialised backbone (NP) starts from the run's seed
            torch.manual_seed(seed)
            self._module, self.width, self.provenance = embedding_backbone(backbone, weights, fallback)
        self._module, self.width = with_stage_features(self._module, self.width, feature_stages)
        self.feature_stages = feature_stages
        self._features: dict[tuple[str, bool], np.ndarray] = {}

    def _images(self, split: str, augment: bool, rows: np.ndarray | None = None) -> CachedImages:
        rows = np.arange(len(self.targets[split])) if rows is None else np.asarray(rows)
        copies = self.aug_views if augment else 0
        return CachedImages(self.images[split][rows], self.targets[split][rows], eval_transform(self.size),
                            copies=copies, augment=_augment(self.size) if augment else None, seed=self.seed)

    def features(self, split: str, augment: bool = False) -> np.ndarray:
        """Frozen-backbone features: (N, D), or (1 + aug_views, N, D) with augmented copies (head mode)."""
        if (split, augment) not in self._features:
            flat = backbone_features(self._module, self._images(split, augment), self.batch_size, self.device)
            n = len(self.targets[split])
            self._features[(split, augment)] = (flat.reshape(n, self.aug_views + 1, -1).transpose(1, 0, 2)
                                                if augment else flat)
        return self._features[(split, augment)]

    def dataset(self, split: str, augment: bool = False, rows: np.ndarray | None = None) -> Dataset:
        """The split (optionally only `rows`, optionally with augmentation) as a training/eval dataset."""
        if self.finetune == "all":
            if augment:
                rows_ = np.arange(len(self.targets[split])) if rows is None else np.asarray(rows)
                return CachedImages(self.images[split][rows_], self.targets[split][rows_], _augment(self.size),
                                    seed=self.seed)
            return self._images(split, False, rows)
        feats = self.features(split, augment)
        rows_ = slice(None) if rows is None else np.asarray(rows)
        return FeatureSet(feats[..., rows_, :] if feats.ndim == 3 else feats[rows_], self.targets[split][rows_])

    def _trainable_backbone(self) -> nn.Module | None:
        if self.finetune == "head":
            return None
        return copy.deepcopy(self._module)

    def embedder(self, dim: int, seed: int | None = None) -> Embedder:
        """A fresh embedding model (backbone -> dropout 0.3 -> embedding layer), its weights drawn from `seed`
        (the inputs' seed by default) without reseeding the global generators."""
        with seeded(self.seed if seed is None else seed):
            return Embedder(self._trainable_backbone(), self.width, dim)

    def classifier(self, seed: int | None = None) -> nn.Module:
        """A fresh direct classifier: the same backbone -> one logit (sigmoid BCE = the study's two-way softmax).

        §IV: 256 px inputs (so not the ImageNet dense layers, which need 224 px) and a new output layer. Its
        weights are drawn from `seed` (the inputs' seed by default) without reseeding the global generators."""
        with seeded(self.seed if seed is None else seed):
            backbone = self._trainable_backbone()
            return nn.Linear(self.width, 1) if backbone is None else BackboneClassifier(backbone, self.width, 1)

    def describe(self) -> str:
        what = self.provenance.label()
        how = ("the whole backbone is trained" if self.finetune == "all" else
               "the backbone is frozen and only the new layers train, on its pooled features")
        stages = f", its last {self.feature_stages} stages pooled beside its output" if self.feature_stages else ""
        return f"{what}{stages}; {how}"

