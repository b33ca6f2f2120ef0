"""Study 000's models: an image branch fused with a one-hot tabular branch, and its mixtures of experts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder
from torch import nn

TABULAR_COLUMNS = ["sex", "site", "age"]


def tabular_encoder() -> ColumnTransformer:
    """One-hot sex and site (unseen values -> all zeros), age scaled to years / 100."""
    return ColumnTransformer([
        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["sex", "site"]),
        ("age", FunctionTransformer(lambda a: np.asarray(a, dtype=float) / 100.0), ["age"]),
    ])


def encode_tabular(train: pd.DataFrame, *others: pd.DataFrame) -> list[np.ndarray]:
    """Fit the encoder on the training rows only, then transform every frame given."""
    encoder = tabular_encoder().fit(train[TABULAR_COLUMNS].astype({"sex": str, "site": str}))
    return [encoder.transform(f[TABULAR_COLUMNS].astype({"sex": str, "site": str})).astype(np.float32)
            for f in (train, *others)]


class TabularBranch(nn.Sequential):
    """Metadata MLP, as in the SIIM-ISIC 2020 winning solution's meta branch (smaller)."""

    def __init__(self, n_features: int, hidden: int = 64, out: int = 32, dropout: float = 0.3):
        super().__init__(nn.Linear(n_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, out), nn.BatchNorm1d(out), nn.ReLU())
        self.out_features = out


class FusionNet(nn.Module):
    """Image features (+ tabular features) -> one logit (sigmoid + BCE outside)."""

    def __init__(self, backbone: nn.Module, width: int, n_tabular: int = 0, dropout: float = 0.3):
        super().__init__()
        self.backbone = backbone
        self.tabular = TabularBranch(n_tabular) if n_tabular else None
        extra = self.tabular.out_features if self.tabular is not None else 0
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width + extra, 1))

    def forward(self, image: torch.Tensor, tabular: torch.Tensor | None = None, **_: torch.Tensor) -> torch.Tensor:
        features = self.backbone(image)
        if self.tabular is not None:
            features = torch.cat([features, self.tabular(tabular)], dim=1)
        return self.head(features)


class GatedExperts(nn.Module):
    """Two image experts sharing one tabular branch; a fixed gate (N, 2) mixes their features.

    Study 000's sex experts gate by sex, its brightness experts by the brightness split. A row
    whose gate is (0.5, 0.5) (e.g. unknown sex) gets the average of both experts' features.
    """

    def __init__(self, backbones: list[nn.Module], width: int, n_tabular: int, dropout: float = 0.3):
        super().__init__()
        self.backbones = nn.ModuleList(backbones)
        self.tabular = TabularBranch(n_tabular)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width + self.tabular.out_features, 1))

    def forward(self, image: torch.Tensor, tabular: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        features = sum(gate[:, k : k + 1] * expert(image) for k, expert in enumerate(self.backbones))
        return self.head(torch.cat([features, self.tabular(tabular)], dim=1))


def sex_gate(sex: pd.Series) -> np.ndarray:
    """(male, female) gate: one-hot by sex; unknown sex -> (0.5, 0.5)."""
    sex = sex.astype(str)
    return np.stack([np.where(sex == "male", 1.0, np.where(sex == "female", 0.0, 0.5)),
                     np.where(sex == "female", 1.0, np.where(sex == "male", 0.0, 0.5))], axis=1).astype(np.float32)


def brightness_gate(brightness: pd.Series, split: float) -> np.ndarray:
    """(dark, light) gate at the brightness split point from the EDA chapter."""
    dark = (np.asarray(brightness, dtype=float) <= split).astype(np.float32)
    return np.stack([dark, 1 - dark], axis=1)


def build_fusion(backbone: str, weights: str, fallback: str, n_tabular: int, experts: int = 0):
    """A FusionNet (or GatedExperts with `experts` image branches) and the weights each branch started from."""
    from derm_nb.models.backbones import create_backbone

    if not experts:
        net, width, provenance = create_backbone(backbone, weights, fallback)
        return FusionNet(net, width, n_tabular), provenance
    branches = [create_backbone(backbone, weights, fallback) for _ in range(experts)]
    return GatedExperts([b[0] for b in branches], branches[0][1], n_tabular), branches[0][2]
