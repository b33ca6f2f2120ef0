"""Study 001: EfficientNet-B0 on ISIC 2018, malignant vs benign (seed 001).

Its split (70/15/15, patient/lesion-wise stratified), Shades-of-Grey colour constancy, greyscale and
per-image standardisation, the train-only augmentation, the recipe, its milestone-1 baseline and its
named ablations, the Grad-CAM mass analysis of where the recipe model looks, its paper card and its
verdict for the summary.

The face every study has: `CARD`, `DATASETS`, `params(stem, parameters)` (`RecipeParams`),
`variants(params)` ({key: `Ablation`}), `train_variant(variant, inputs)` and `findings(results)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import kornia
import kornia.augmentation as K
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure
from PIL import Image
from torch import nn

from derm_nb.cards import Deviation, PaperCard
from derm_nb.cluster import run_variants
from derm_nb.data.catalog import Use
from derm_nb.datasets import CachedImages
from derm_nb.explain import heatmap_mass
from derm_nb.losses import BCE, FocalBCE
from derm_nb.models.heads import build_classifier
from derm_nb.params import BackboneParams, typed_parameters
from derm_nb.results import Variant, run_binary_variant
from derm_nb.train import TrainConfig
from derm_nb.transforms import BatchView
from derm_nb.workload import Pass, epochs_of, pretrained

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


JITTER = 0.1  # brightness, contrast and saturation (Sec. 3.1); the paper jitters no hue


class Greyscale(nn.Module):
    """The luminance (ITU-R BT.601 weights) of a float image (..., 3, H, W), copied to all three channels."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return kornia.color.rgb_to_grayscale(image.float()).expand_as(image).contiguous()


COLOURS: dict[str, type[nn.Module] | None] = {"rgb": None, "shades_of_grey": ShadesOfGrey, "greyscale": Greyscale}


def transform(size: int, train: bool, colour: str = "rgb") -> BatchView:
    """Train-only augmentation (random resized crop 0.9-1.0, h/v flips, rotation ±15°, colour jitter
    0.1 of brightness, contrast and saturation, zoom), then the colour step (`rgb`: none;
    `shades_of_grey`: colour constancy; `greyscale`: luminance), then per-image standardisation.

    Centre-crop to square already happened in the cache.
    """
    if colour not in COLOURS:
        raise KeyError(f"unknown colour step '{colour}' (known: {', '.join(COLOURS)})")
    steps: list[nn.Module] = []
    if train:
        steps += [K.RandomResizedCrop((size, size), scale=(0.9, 1.0)), K.RandomHorizontalFlip(),
                  K.RandomVerticalFlip(), K.RandomRotation(15, p=1.0),
                  K.ColorJitter(brightness=JITTER, contrast=JITTER, saturation=JITTER, p=1.0),
                  K.RandomAffine(degrees=0, scale=(1.0, 1.1), p=1.0)]
    step = COLOURS[colour]
    return BatchView(size, steps, ([step()] if step else []) + [PerImageStandardize()])


@dataclass(frozen=True)
class Ablation:
    """One named variant's settings against the recipe: its size, epochs, colour step and training switches."""

    key: str
    title: str
    size: int
    epochs: int
    colour: str = "rgb"
    focal: bool = True
    focal_alpha: float | None = None          # None: the recipe's α
    sampler_pos_share: float | None = None    # None: the recipe's share
    mixup_alpha: float = 0.0
    warmup: bool = True
    amp: bool = True
    grad_accum: bool = True


VARIANTS = ("recipe", "milestone1", "ablation_size", "mixup", "shades_of_grey", "greyscale", "no_focal", "no_sampler")


def variant(key: str, image_size: int, ablation_size: int, mixup_alpha: float, epochs: int, ablation_epochs: int,
            baseline_focal_alpha: float) -> Ablation:
    """The settings of the variant `key` (one of VARIANTS) at this run's sizes and epochs.

    The recipe and the milestone-1 baseline run `epochs`; the ablations run `ablation_epochs`, as the paper's.
    """
    n = ablation_epochs
    specs = {
        "recipe": Ablation(key, "Recipe", image_size, epochs),
        "milestone1": Ablation(key, "Milestone 1 baseline", image_size, epochs, focal_alpha=baseline_focal_alpha,
                               sampler_pos_share=0.0, warmup=False, amp=False, grad_accum=False),
        "ablation_size": Ablation(key, f"{ablation_size} px", ablation_size, n),
        "mixup": Ablation(key, f"Mixup {mixup_alpha}", image_size, n, mixup_alpha=mixup_alpha),
        "shades_of_grey": Ablation(key, "Shades of Grey (colour constancy)", image_size, n, colour="shades_of_grey"),
        "greyscale": Ablation(key, "Greyscale (the paper's text)", image_size, n, colour="greyscale"),
        "no_focal": Ablation(key, "BCE instead of focal", image_size, n, focal=False),
        "no_sampler": Ablation(key, "No balanced sampler", image_size, n, sampler_pos_share=0.0),
    }
    if key not in specs:
        raise KeyError(f"unknown study-001 variant '{key}' (known: {', '.join(VARIANTS)})")
    return specs[key]


def train_config(ablation: Ablation, recipe: TrainConfig) -> TrainConfig:
    """The recipe's training configuration with the variant's epochs, sampler, mixup, warm-up, AMP and accumulation."""
    return replace(recipe, epochs=ablation.epochs, mixup_alpha=ablation.mixup_alpha,
                   sampler_pos_share=recipe.sampler_pos_share if ablation.sampler_pos_share is None
                   else ablation.sampler_pos_share,
                   freeze_backbone_epochs=recipe.freeze_backbone_epochs if ablation.warmup else 0,
                   amp=recipe.amp and ablation.amp, grad_accum=recipe.grad_accum if ablation.grad_accum else 1)


def within_cache(ablations: Sequence[Ablation], cache_px: int) -> tuple[list[Ablation], list[str]]:
    """The variants whose size the image cache holds, and a note for each one left out: resizing a
    `cache_px` cache up adds pixels, not resolution. The recipe itself must be asked for and fit (a ValueError)."""
    recipe = next((a for a in ablations if a.key == "recipe"), None)
    if recipe is None:
        raise ValueError("`variants` must include 'recipe': the other variants are read against it, and the "
                         f"Grad-CAM analysis and the summary are of it (asked for: {[a.key for a in ablations]})")
    if recipe.size > cache_px:
        raise ValueError(f"the recipe asks for {recipe.size} px, more than the {cache_px} px image cache: run 00_data "
                         f"with a cache_size of at least {recipe.size}")
    kept = [a for a in ablations if a.size <= cache_px]
    notes = [f"**{a.title}: not run.** It asks for {a.size} px, but 00_data cached the images at {cache_px} px: "
             f"resizing them up would add pixels, not resolution. Run 00_data with a `cache_size` of at least "
             f"{a.size} to run it." for a in ablations if a.size > cache_px]
    return kept, notes


def split_overview(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Images, melanomas and patients in each split (rows: splits)."""
    return pd.DataFrame({s: {"images": len(f), "melanomas": int(f["target"].sum()), "patients": f["group_id"].nunique()}
                         for s, f in frames.items()}).T


def datasets(ablation: Ablation, images: Mapping[str, torch.Tensor],
             frames: Mapping[str, pd.DataFrame]) -> dict[str, CachedImages]:
    """Each split's dataset at the variant's size and colour step; augmentation on `train` only."""
    return {s: CachedImages(images[s], frames[s]["target"], transform(ablation.size, s == "train", ablation.colour))
            for s in frames}


def loss(ablation: Ablation, focal_alpha: float, focal_gamma: float) -> nn.Module:
    """The recipe's focal BCE (α, γ; the variant's own α where it has one), or plain BCE for `no_focal`."""
    alpha = focal_alpha if ablation.focal_alpha is None else ablation.focal_alpha
    return FocalBCE(alpha, focal_gamma) if ablation.focal else BCE()


@dataclass(frozen=True)
class AblationGrid:
    """What every variant of the chapter shares: the images and splits, the backbone, the recipe's
    training configuration and focal loss, and where checkpoints go."""

    images: Mapping[str, torch.Tensor]
    frames: Mapping[str, pd.DataFrame]
    backbone: str
    weights: str
    weights_fallback: str
    recipe: TrainConfig
    focal_alpha: float
    focal_gamma: float
    checkpoints: Path


def train_variant(variant: Ablation, inputs: AblationGrid) -> tuple[Variant, nn.Module]:
    """Train one variant from the recipe and score it on the test split at Youden's validation threshold;
    the trained model comes back beside its results (the recipe's feeds Grad-CAM)."""
    sets = datasets(variant, inputs.images, inputs.frames)
    model, provenance = build_classifier(inputs.backbone, 1, inputs.weights, inputs.weights_fallback)
    result = run_binary_variant(variant.title, model, provenance, loss(variant, inputs.focal_alpha, inputs.focal_gamma),
                                sets["train"], sets["val"], inputs.frames["val"], train_config(variant, inputs.recipe),
                                inputs.checkpoints / variant.key, threshold_rule="youden",
                                test=(sets["test"], inputs.frames["test"]))
    return result, model


def rebuild_classifier(ablation: Ablation, grid: AblationGrid) -> nn.Module:
    """An untrained model of the variant's architecture, for `run_variants` to load a trained state into."""
    return build_classifier(grid.backbone, 1, grid.weights, grid.weights_fallback)[0]


def train_ablations(ablations: Sequence[Ablation], grid: AblationGrid, client: Any | None = None
                    ) -> dict[str, tuple[Variant, nn.Module]]:
    """`train_variant` for each variant, each from the same seed: Dask tasks on `client` (the chapter's),
    serially without one."""
    return run_variants(train_variant, {a.key: a for a in ablations}, grid, grid.checkpoints / "results",
                        grid.recipe.seed, client, rebuild=rebuild_classifier)


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


CHAPTER = "04_efficientnet"
CARD = PaperCard(
    study="001",
    title="EfficientNet-B0 for malignant vs benign lesions on ISIC 2018",
    data=("ISIC 2018 Task 3 dermoscopy, 11,720 images (18.63 % malignant), test set, EfficientNet-B0 ImageNet at "
          "224 px, Youden threshold; F1 is macro-F1 for the recipe row."),
    splits="patient-wise stratified 70/15/15 train/validation/test, one partition (Sec. 2, 3.1)",
    tables={
        "Results": pd.DataFrame(
            {"AUROC": [0.909, 0.88, 0.906, 0.884, 0.874], "balanced accuracy": [0.755, 0.71, 0.727, 0.674, 0.697],
             "F1": [0.778, 0.72, 0.753, 0.701, 0.725], "recall": [0.56, np.nan, 0.502, 0.397, 0.443]},
            index=["Recipe (20 epochs)", "Milestone 1 baseline", "300 px (15 epochs)", "Mixup 0.2 (15 epochs)",
                   "Shades of Grey (15 epochs)"]),
        # Abstract: "the AUROC rose by 2-3 points over the previous baseline" (milestone 1).
        "Claim": pd.DataFrame({"from": [0.02], "to": [0.03]}, index=["Recipe AUROC - milestone 1 AUROC"]),
    },
    notes={"Results": "Sec. 4.1 (recipe; milestone 1 as 'baseline', its recall not computed) and 4.3.1-4.3.3.",
           "Claim": "Abstract: the AUROC rose by 2-3 points over the milestone-1 baseline."},
    headlines=(("EfficientNet-B0 recipe", "AUROC (test)", 0.909, "ISIC 2018 Task 3, 70/15/15 patient split"),),
    settings={CHAPTER: {
        "backbone": "efficientnet_b0",      # Sec. 3.2, timm
        "weights": "imagenet",              # Sec. 3.2
        "image_size": 224,                  # Sec. 3.1
        "ablation_size": 300,               # Sec. 4.3.1
        "epochs": 20,                       # Sec. 4.1, Figure 2
        "ablation_epochs": 15,              # Sec. 4.3.1-4.3.3
        "keep_epoch": "last",               # Sec. 4.1: the run was too short to find a stopping point
        "cosine_epochs": 30,                # Sec. 3.2: cosine annealing over 30 total epochs
        "batch_size": 32,                   # Sec. 3.2
        "grad_accum": 2,                    # Sec. 3.2: doubles the effective batch
        "lr": 3e-4,                         # Sec. 3.2
        "weight_decay": 1e-4,               # Sec. 3.2
        "sampler_pos_share": 0.4,           # Sec. 3.2: 60 % benign, 40 % malignant
        "focal_alpha": 0.6,                 # Sec. 3.2
        "focal_gamma": 2.0,                 # Sec. 3.2
        "baseline_focal_alpha": 0.75,       # Sec. 3.2: milestone 1's α
        "mixup_alpha": 0.2,                 # Sec. 4.3.2
        "variants": ["recipe", "milestone1", "ablation_size", "mixup", "shades_of_grey"],   # Sec. 4.1, 4.3
    }},
    reasons={CHAPTER: {
        "variants": ("we add the greyscale reading of 'Shades of Grey' (the paper's text) beside colour constancy "
                     "(its name), and two ablations of our own: focal loss off and the sampler off"),
    }},
    methods={CHAPTER: (
        Deviation("images", "11,720: all of ISIC 2018 Task 3 (training, validation and test sets)",
                  "the 10,015 training images", "only the training set ships lesion groupings "
                  "(LesionGroupings.csv); the validation and test images have none to split by"),
        Deviation("split unit", "patient-wise", "lesion-wise (one lesion's images stay in one split)",
                  "ISIC 2018 Task 3 ships no patient ids; the lesion is the closest unit it has"),
        Deviation("'Shades of Grey' ablation", "named Shades of Grey, described as a greyscale transform (Sec. 4.3.3)",
                  "both: `shades_of_grey` is Shades-of-Grey colour constancy (Finlayson & Trezzi, p 6), "
                  "`greyscale` is the luminance copied to three channels",
                  "the name and the text disagree, and the paper does not say which it ran"),
        Deviation("milestone-1 baseline", "alpha 0.75, no sampler, no warm-up, no mixed precision, no gradient "
                  "accumulation; its other settings are not restated",
                  "the recipe with those five changes (`milestone1`)",
                  "the paper says only that all other settings remain as in milestone 1"),
        Deviation("warm-up freeze", "the new head trains alone at first (length not stated)",
                  "`warmup_epochs` epochs with the backbone frozen", "the paper gives no length"),
        Deviation("random zoom", "random zoom (range not stated)", "zoom 1.0-1.1 (an affine scale)",
                  "the paper gives no range"),
        Deviation("mixed precision", "mixed precision on an NVIDIA T4 (fp16 presumably)",
                  "bf16 autocast on CUDA; float32 on CPU", "bf16 needs no loss scaling; CPU autocast gains nothing"),
        Deviation("Youden threshold", "Youden's point (the split it was chosen on is not stated)",
                  "chosen on the validation split, applied to the test split", "choosing it on the test split would "
                  "flatter the threshold-dependent metrics"),
    )},
)


# The face: parameters, variants, findings (`train_variant` trains one variant).

@dataclass(frozen=True)
class RecipeParams(BackboneParams):
    """04_efficientnet: the recipe, its milestone-1 baseline, the ablations and the Grad-CAM analysis."""

    image_size: int
    ablation_size: int
    epochs: int
    ablation_epochs: int
    keep_epoch: str
    cosine_epochs: int
    warmup_epochs: int
    batch_size: int
    grad_accum: int
    lr: float
    weight_decay: float
    sampler_pos_share: float
    focal_alpha: float
    focal_gamma: float
    baseline_focal_alpha: float
    mixup_alpha: float
    patience: int
    variants: tuple[str, ...]
    gradcam_images: int
    gradcam_min_size: int
    num_workers: int

    def train_config(self) -> TrainConfig:
        """The recipe's training (Sec. 3.2): AdamW, cosine, frozen-backbone warm-up, gradient accumulation and
        the balanced sampler; each variant changes its part of it (`train_config`)."""
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                           optimizer="adamw", scheduler="cosine", cosine_epochs=self.cosine_epochs,
                           patience=self.patience, keep=self.keep_epoch, freeze_backbone_epochs=self.warmup_epochs,
                           grad_accum=self.grad_accum, sampler_pos_share=self.sampler_pos_share, device=self.device,
                           seed=self.seed, num_workers=self.num_workers)


def params(stem: str, parameters: Mapping[str, Any]) -> RecipeParams:
    """The typed parameters of 04_efficientnet from its notebook's parameters."""
    if stem != CHAPTER:
        raise KeyError(f"study 001 has no model chapter '{stem}' (known: {CHAPTER})")
    return typed_parameters(RecipeParams, stem, parameters)


def variants(p: RecipeParams) -> dict[str, Ablation]:
    """The variants asked for (`p.variants`), by key, at this run's sizes and epochs."""
    return {key: variant(key, p.image_size, p.ablation_size, p.mixup_alpha, p.epochs, p.ablation_epochs,
                         p.baseline_focal_alpha) for key in p.variants}


def findings(results: Mapping[str, Variant], gradcam: pd.DataFrame | None = None) -> dict[str, Any]:
    """The numbers and sentences the prose glues: the recipe's AUROC and interval (NaN when it was skipped), its
    gain over the milestone-1 baseline, and with `gradcam` (`gradcam_summary`) where its heat maps fall."""
    recipe = results.get("recipe")
    scores = recipe.metrics if recipe is not None and not recipe.skipped else {}
    number = lambda key: float(scores[key]) if scores.get(key) is not None else float("nan")  # noqa: E731
    out = {"recipe_auc": number("roc_auc"), "recipe_ci_low": number("roc_auc_ci_low"),
           "recipe_ci_high": number("roc_auc_ci_high"),
           "milestone_gain": milestone_gain({v.name: v.metrics.get("roc_auc") for v in results.values()})}
    if gradcam is not None:
        out |= {f"gradcam_{group}": gradcam_finding(gradcam, group) for group in ("correct", "incorrect")}
    return out


def milestone_gain(auroc: Mapping[str, float]) -> str:
    """One sentence: the recipe's AUROC gain over the milestone-1 baseline (`auroc`: variant title -> AUROC),
    against the paper's claim."""
    if not {"Recipe", "Milestone 1 baseline"} <= set(auroc.keys()):
        return "The milestone-1 baseline was not run, so the paper's claimed gain over it is not tested here."
    recipe, baseline = pd.to_numeric(pd.Series([auroc["Recipe"], auroc["Milestone 1 baseline"]]), errors="coerce")
    gain = recipe - baseline
    if pd.isna(gain):
        return "The recipe or the milestone-1 baseline could not be scored, so the paper's claimed gain is not tested."
    claim = CARD.tables["Claim"].iloc[0]
    inside = "within" if claim["from"] <= gain <= claim["to"] else "outside"
    return (f"The recipe's AUROC is {100 * gain:+.1f} points against the milestone-1 baseline's, {inside} the "
            f"paper's claimed gain of {100 * claim['from']:.0f} to {100 * claim['to']:.0f} points.")


def verdict(rows: pd.DataFrame) -> str:
    """One line for the summary: the recipe's AUROC and which variants beat its interval."""
    if "Recipe" not in rows.index:
        return "* **Study 001**: the recipe was not run."
    recipe, ci_high = rows.loc["Recipe", "roc_auc"], rows.loc["Recipe", "roc_auc_ci_high"]
    better = [m for m, v in rows.drop(index="Recipe")["roc_auc"].items() if v > ci_high]
    published = CARD.tables["Results"].loc["Recipe (20 epochs)", "AUROC"]
    return (f"* **Study 001**: recipe AUROC {recipe:.3f} (study: {published:.3f} on ISIC 2018). Variants beyond the "
            f"recipe's interval: {', '.join(better) if better else 'none'}; the study also found no ablation "
            f"better than its recipe. {milestone_gain(rows['roc_auc'])}")


def workload(stem: str, p: Mapping[str, Any], n: Mapping[str, Any]) -> list[Pass]:
    """Chapter 04's passes at archive scale: every variant for all its epochs, a validation pass per
    epoch and the test split once, at the variant's size (`bench --estimate`)."""
    out, net = [], pretrained(p, p["backbone"])
    for key in p["variants"]:
        a = variant(key, p["image_size"], p["ablation_size"], p["mixup_alpha"], p["epochs"], p["ablation_epochs"],
                    p["baseline_focal_alpha"])
        out += epochs_of(p, n["train"], n["val"], key, size=a.size, epochs=a.epochs, **net)
        out.append(Pass(f"{key}: test", size=a.size, images=n["test"], train=False, **net))
    return out
