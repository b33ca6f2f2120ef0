"""Study 001: EfficientNet-B0 on ISIC 2018, malignant vs benign (seed 001).

Its split (70/15/15, patient/lesion-wise stratified), Shades-of-Grey colour constancy and per-image
standardisation, the train-only augmentation, the recipe and its named ablations, the Grad-CAM
mass analysis of where the recipe model looks, its paper card and its verdict for the summary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kornia.augmentation as K
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure
from PIL import Image
from torch import nn

from derm_nb.cards import PaperCard
from derm_nb.data.catalog import Use
from derm_nb.datasets import CachedImages
from derm_nb.explain import heatmap_mass
from derm_nb.losses import BCE, FocalBCE
from derm_nb.transforms import BatchView
from derm_nb.workload import Pass, epochs_of

SPLIT = {"train": 0.70, "val": 0.15, "test": 0.15}
DATASETS = {"study001": Use("isic2018", "malignant", "ISIC 2018 Task 3 training set (10,015 images; MEL+BCC+AKIEC malignant)")}


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
    """Subtract each image's own mean and divide by its own standard deviation."""

    def __init__(self, eps: float = 1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.float()
        dims = (-3, -2, -1)  # one image (C, H, W) or each image of a batch (N, C, H, W)
        return (x - x.mean(dim=dims, keepdim=True)) / (x.std(dim=dims, keepdim=True) + self.eps)


def transform(size: int, train: bool, shades_of_grey: bool = False) -> BatchView:
    """Train-only augmentation (random resized crop 0.9-1.0, h/v flips, rotation ±15°, colour jitter
    0.1, zoom), optional Shades-of-Grey colour constancy, then per-image standardisation.

    Centre-crop to square already happened in the cache.
    """
    steps: list[nn.Module] = []
    if train:
        steps += [K.RandomResizedCrop((size, size), scale=(0.9, 1.0)), K.RandomHorizontalFlip(),
                  K.RandomVerticalFlip(), K.RandomRotation(15, p=1.0), K.ColorJitter(0.1, 0.1, 0.1, 0.1, p=1.0),
                  K.RandomAffine(degrees=0, scale=(1.0, 1.1), p=1.0)]
    finish = ([ShadesOfGrey()] if shades_of_grey else []) + [PerImageStandardize()]
    return BatchView(size, steps, finish)


@dataclass(frozen=True)
class Ablation:
    """One named variant's settings: each ablation changes one thing against the recipe."""

    key: str
    title: str
    size: int
    shades_of_grey: bool = False
    focal: bool = True
    sampler_pos_share: float | None = None   # None: the recipe's share
    mixup_alpha: float = 0.0


VARIANTS = ("recipe", "300px", "mixup", "shades_of_grey", "no_focal", "no_sampler")


def variant(key: str, image_size: int, ablation_size: int, mixup_alpha: float) -> Ablation:
    """The settings of the variant `key` (one of VARIANTS) at this run's sizes."""
    specs = {
        "recipe": Ablation(key, "Recipe", image_size),
        "300px": Ablation(key, f"{ablation_size} px", ablation_size),
        "mixup": Ablation(key, f"Mixup {mixup_alpha}", image_size, mixup_alpha=mixup_alpha),
        "shades_of_grey": Ablation(key, "Shades of Grey", image_size, shades_of_grey=True),
        "no_focal": Ablation(key, "BCE instead of focal", image_size, focal=False),
        "no_sampler": Ablation(key, "No balanced sampler", image_size, sampler_pos_share=0.0),
    }
    if key not in specs:
        raise KeyError(f"unknown study-001 variant '{key}' (known: {', '.join(VARIANTS)})")
    return specs[key]


def split_overview(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Images, melanomas and patients in each split (rows: splits)."""
    return pd.DataFrame({s: {"images": len(f), "melanomas": int(f["target"].sum()), "patients": f["group_id"].nunique()}
                         for s, f in frames.items()}).T


def datasets(ablation: Ablation, images: Mapping[str, torch.Tensor],
             frames: Mapping[str, pd.DataFrame]) -> dict[str, CachedImages]:
    """Each split's dataset at the variant's size and colour constancy; augmentation on `train` only."""
    return {s: CachedImages(images[s], frames[s]["target"], transform(ablation.size, s == "train",
                                                                      ablation.shades_of_grey))
            for s in frames}


def loss(ablation: Ablation, focal_alpha: float, focal_gamma: float) -> nn.Module:
    """The recipe's focal BCE (α, γ), or plain BCE for the variant that turns focal loss off."""
    return FocalBCE(focal_alpha, focal_gamma) if ablation.focal else BCE()


MASS_COLUMNS = ["lesion_mass", "lesion_area", "corner_mass", "corner_area", "lesion_enrichment"]


def gradcam_mass(cams: np.ndarray, masks: Sequence[np.ndarray] | None, predictions: pd.DataFrame) -> pd.DataFrame:
    """Each heat map's mass and area shares in the lesion (NaN without masks) and the corners, and
    whether its prediction (rows of `predictions`: label, pred) was correct."""
    masks = masks if masks is not None else [None] * len(cams)
    mass = pd.DataFrame([heatmap_mass(c, m) for c, m in zip(cams, masks)])
    mass["correct"] = np.where(predictions["pred"] == predictions["label"], "correct", "incorrect")
    return mass


def gradcam_summary(mass: pd.DataFrame) -> pd.DataFrame:
    """Median shares by correctness, with the number of images in each group."""
    summary = mass.groupby("correct")[MASS_COLUMNS].median()
    summary["images"] = mass.groupby("correct").size()
    return summary


def plot_gradcam_mass(mass: pd.DataFrame) -> Figure:
    """Box plots of the lesion and corner mass shares, and the histogram of lesion enrichment."""
    defined = mass.dropna(subset=["corner_mass"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    long = defined.melt(id_vars="correct", value_vars=["lesion_mass", "corner_mass"], var_name="region",
                        value_name="share")
    sns.boxplot(data=long, x="region", y="share", hue="correct", ax=axes[0])
    axes[0].set(title="Share of Grad-CAM mass by region", ylabel="share of heat-map mass", xlabel="")
    sns.histplot(data=defined, x="lesion_enrichment", hue="correct", element="step", bins=20, ax=axes[1])
    axes[1].axvline(1, color="grey", linestyle=":")
    axes[1].set(title="Lesion enrichment (mass share / area share)", xlabel="enrichment (1 = like a uniform map)")
    fig.tight_layout()
    return fig


def gallery_rows(mass: pd.DataFrame, group: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to `n` rows of the `group` (correct / incorrect) predictions, drawn without replacement."""
    idx = np.flatnonzero(mass["correct"] == group)
    return rng.choice(idx, min(n, len(idx)), replace=False) if len(idx) else idx


def gradcam_gallery(rows: Sequence[int], paths: Sequence[Path], size: int, masks: Sequence[np.ndarray] | None,
                    cams: np.ndarray, predictions: pd.DataFrame, mass: pd.DataFrame, title: str) -> Figure | None:
    """Top: each image with its lesion outline; bottom: its heat map and lesion share (None if no rows)."""
    n = len(rows)
    if n == 0:
        return None
    fig, axes = plt.subplots(2, n, figsize=(2.2 * n, 4.6), squeeze=False)
    for k, i in enumerate(rows):
        image = np.asarray(Image.open(paths[i]).resize((size, size)))
        axes[0, k].imshow(image)
        if masks is not None and masks[i] is not None:
            axes[0, k].contour(masks[i], levels=[0.5], colors="yellow", linewidths=0.8)
        axes[0, k].set_title(f"y={predictions['label'][i]} p={predictions['prob'][i]:.2f}", fontsize=8)
        axes[1, k].imshow(image)
        axes[1, k].imshow(cams[i], cmap="jet", alpha=0.45)
        share, corner = mass["lesion_mass"][i], mass["corner_mass"][i]
        axes[1, k].set_title("empty map" if np.isnan(corner) else f"corners {corner:.0%}" if np.isnan(share)
                             else f"lesion {share:.0%}", fontsize=8)
        for ax in axes[:, k]:
            ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def gradcam_finding(summary: pd.DataFrame, group: str) -> str:
    """One sentence on where the median heat map of the `group` predictions puts its mass."""
    if group not in summary.index:
        return f"Grad-CAM, {group} predictions: there were none on the test split."
    r = summary.loc[group]
    if pd.isna(r["corner_mass"]):
        return f"Grad-CAM, {group} predictions: every heat map was empty, so no share can be measured."
    if pd.isna(r["lesion_area"]):
        return (f"Grad-CAM, {group} predictions: median {r['corner_mass']:.0%} of the mass in the corners "
                f"({r['corner_area']:.0%} of the area); this dataset has no lesion masks, so the lesion share "
                "was not measured.")
    return (f"Grad-CAM, {group} predictions: median {r['lesion_mass']:.0%} of the mass on the lesion "
            f"({r['lesion_area']:.0%} of the area) and {r['corner_mass']:.0%} in the corners "
            f"({r['corner_area']:.0%} of the area).")


CARD = PaperCard(
    study="001",
    title="EfficientNet-B0 for malignant vs benign lesions on ISIC 2018",
    data=("ISIC 2018 Task 3 dermoscopy (18.63 % malignant), patient-wise 70/15/15 split, test set, "
          "EfficientNet-B0 ImageNet at 224 px, Youden threshold; F1 is macro-F1 for the recipe row."),
    tables={"Results": pd.DataFrame(
        {"AUROC": [0.909, 0.906, 0.884, 0.874], "balanced accuracy": [0.755, 0.727, 0.674, 0.697],
         "F1": [0.778, 0.753, 0.701, 0.725], "recall": [0.56, 0.502, 0.397, 0.443]},
        index=["Recipe (20 epochs)", "300 px (15 epochs)", "Mixup 0.2 (15 epochs)", "Shades of Grey (15 epochs)"])},
    headlines=(("EfficientNet-B0 recipe", "AUROC (test)", 0.909, "ISIC 2018 Task 3, 70/15/15 patient split"),),
)


def verdict(rows: pd.DataFrame) -> str:
    """One line for the summary: the recipe's AUROC and which variants beat its interval."""
    if "Recipe" not in rows.index:
        return "* **Study 001**: the recipe was not run."
    recipe, ci_high = rows.loc["Recipe", "roc_auc"], rows.loc["Recipe", "roc_auc_ci_high"]
    better = [m for m, v in rows.drop(index="Recipe")["roc_auc"].items() if v > ci_high]
    published = CARD.tables["Results"].loc["Recipe (20 epochs)", "AUROC"]
    return (f"* **Study 001**: recipe AUROC {recipe:.3f} (study: {published:.3f} on ISIC 2018). Variants beyond the "
            f"recipe's interval: {', '.join(better) if better else 'none'}; the study also found no ablation "
            "better than its recipe.")


def workload(stem: str, p: Mapping[str, Any], n: Mapping[str, Any]) -> list[Pass]:
    """Chapter 04's passes at archive scale: every variant for all its epochs, a validation pass per
    epoch and the test split once, at the variant's size (`bench --estimate`)."""
    out = []
    for key in p["variants"]:
        size = p["ablation_size"] if key == "300px" else p["image_size"]
        out += epochs_of(p, n["train"], n["val"], key, p["backbone"], size)
        out.append(Pass(f"{key}: test", p["backbone"], size, n["test"], train=False))
    return out
