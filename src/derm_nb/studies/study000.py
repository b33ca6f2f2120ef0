"""Study 000: resource-efficient ResNet-18 + metadata on ISIC 2020 (seed 000).

Its split (85:15, patient-grouped), the patient-diverse "small" set, its augmentation, the base
model (an image branch fused with a one-hot tabular branch), the sex and brightness mixtures of
experts with their gates, the brightness split point, its paper card and its verdict for the summary.

The face every study has: `CARD`, `DATASETS`, `params(stem, parameters)` (`BaselineParams` for
02_baseline, `ExpertParams` for 03_experts), `variants(params)` ({name: `TrainingSet`}),
`train_variant(variant, inputs)` (one trained `results.Variant`) and `findings(results)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder
from torch import nn

from derm_nb.artifacts import write_csv
from derm_nb.cards import ISIC2020_BENCHMARKS, Deviation, PaperCard
from derm_nb.data.catalog import Use
from derm_nb.datasets import CachedImages
from derm_nb.losses import BCE
from derm_nb.metrics import EPOCH_SCORES
from derm_nb.models.backbones import create_backbone
from derm_nb.params import BackboneParams, typed_parameters
from derm_nb.results import Variant, run_binary_variant, skipped_variant, weights_label
from derm_nb.train import TrainConfig, seeded
from derm_nb.transforms import augment_transform, eval_transform
from derm_nb.workload import Pass, epochs_of, pretrained

SPLIT = {"train": 0.85, "val": 0.15}
DATASETS = {"study000": Use("isic2020", "melanoma", "ISIC 2020 training set (33,126 images, 2,056 patients)")}

TABULAR_COLUMNS = ["sex", "site", "age"]
EPOCH_THRESHOLD = 0.5  # §5.2: F1, precision, recall, ROC-AUC and the confusion matrix after each epoch at 0.5
MISSING_METADATA = ("impute", "drop")


def metadata_gaps(quality: pd.DataFrame) -> pd.DataFrame:
    """image_id and what was missing (e.g. 'sex, age') of each row whose metadata the data preparation imputed."""
    gaps = quality[(quality["action"] == "imputed") & quality["check"].str.startswith("missing ")]
    return (gaps.assign(missing=gaps["check"].str.removeprefix("missing ")).groupby("image_id", sort=True)["missing"]
            .agg(", ".join).reset_index())


def missing_metadata(splits: dict[str, pd.DataFrame], quality: pd.DataFrame, rule: str
                     ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The splits under `rule` ('impute': as prepared; 'drop': without the rows with imputed metadata, as
    the study removed NA rows, §5.1), and every dropped row (split, image_id, target, missing)."""
    if rule not in MISSING_METADATA:
        raise ValueError(f"missing_metadata is one of {', '.join(MISSING_METADATA)}, not '{rule}'")
    gaps = metadata_gaps(quality).set_index("image_id")["missing"]
    if rule == "impute":
        gaps = gaps.iloc[:0]
    dropped = pd.concat([f.loc[f["image_id"].isin(gaps.index), ["image_id", "target"]].assign(split=name)
                         for name, f in splits.items()], ignore_index=True)
    dropped = dropped.assign(missing=dropped["image_id"].map(gaps))[["split", "image_id", "target", "missing"]]
    kept = {name: f[~f["image_id"].isin(gaps.index)].reset_index(drop=True) for name, f in splits.items()}
    return kept, dropped


def report_dropped(dropped: pd.DataFrame, rule: str, out: Path) -> str:
    """Write `out`/missing_metadata.csv (the dropped rows) and say in one markdown line what was done."""
    write_csv(out / "missing_metadata.csv", dropped)
    if rule == "impute":
        return ("Missing metadata: **imputed** (unknown sex or site, median age), as 00_data prepared it; "
                "the study removed such rows (set `missing_metadata` to `drop`).")
    counts = ", ".join(f"{n} {split}" for split, n in dropped["split"].value_counts().sort_index().items())
    return (f"Missing metadata: **dropped**, as the study did: {len(dropped)} rows ({counts or 'none'}; "
            f"{int(dropped['target'].sum())} melanomas), listed in `missing_metadata.csv`"
            + (f": {', '.join(dropped['image_id'])}." if 0 < len(dropped) <= 20 else "."))


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
    """(dark, light) gate at the brightness split point from the EDA chapter (`brightness_band`)."""
    dark = (brightness_band(brightness, split) == "dark").astype(np.float32)
    return np.stack([dark, 1 - dark], axis=1)


def build_fusion(backbone: str, weights: str, fallback: str, n_tabular: int, experts: int = 0, seed: int = 0):
    """A FusionNet (or GatedExperts with `experts` image branches) and the weights each branch started from.
    Its random weights are drawn from `seed` (`train.seeded`): they do not depend on what ran before, and
    no global generator is left reseeded."""
    with seeded(seed):
        if not experts:
            net, width, provenance = create_backbone(backbone, weights, fallback)
            return FusionNet(net, width, n_tabular), provenance
        branches = [create_backbone(backbone, weights, fallback) for _ in range(experts)]
        return GatedExperts([b[0] for b in branches], branches[0][1], n_tabular), branches[0][2]


def small_dataset(frame: pd.DataFrame, per_group: int = 2, seed: int = 0) -> pd.DataFrame:
    """The patient-diverse set: every melanoma, plus `per_group` other images of each patient."""
    positives = frame[frame["target"] == 1]
    rest = frame[frame["target"] == 0]
    rng = np.random.default_rng(seed)
    keys = rng.random(len(rest))
    sampled = rest.assign(_key=keys).sort_values("_key").groupby("group_id", sort=False).head(per_group)
    return pd.concat([positives, sampled.drop(columns="_key")]).sort_index()


def augment(size: int):
    """The study's albumentations recipe in torchvision v2: flip, shift-scale-rotate, brightness."""
    return augment_transform(size, hflip=0.5, degrees=45, translate=0.0625, scale=(0.9, 1.1), jitter=(0.2, 0, 0))




def epoch_table(history: pd.DataFrame) -> pd.DataFrame:
    """Each model's validation loss and its metrics at `EPOCH_THRESHOLD`, epoch by epoch (from the history)."""
    columns = ["model", "epoch", "val_loss", *(f"val_{k}" for k in EPOCH_SCORES)]
    return history[[c for c in columns if c in history]].reset_index(drop=True)


def expert_set_spec(name: str) -> tuple[str, int]:
    """An experts' training-set name as (base set, augmented copies): 'all', 'small', 'small+3aug' (§5.2)."""
    base, _, aug = name.partition("+")
    copies = aug.removesuffix("aug")
    if base not in ("all", "small") or (aug and (base != "small" or not aug.endswith("aug") or not copies.isdigit())):
        raise ValueError(f"unknown training set '{name}' (known: all, small, small+Kaug, e.g. small+3aug)")
    return base, int(copies or 0)




def training_sets(train: pd.DataFrame, sets: Mapping[str, TrainingSet], per_group: int, seed: int) -> dict:
    """Each variant's training rows and augmented copies per image, {name: (rows, copies)}: all of `train`, or
    its small set (`small_dataset`)."""
    small = small_dataset(train, per_group=per_group, seed=seed)
    return {name: (train if v.base == "all" else small, v.copies) for name, v in sets.items()}


def common_validation(val: pd.DataFrame, sets: dict) -> pd.DataFrame:
    """The validation rows that no training set in `sets` ({name: (rows, copies)}) uses."""
    used = set().union(*(set(frame["image_id"]) for frame, _ in sets.values()))
    return val[~val["image_id"].isin(used)]


def set_summary(sets: dict) -> pd.DataFrame:
    """Images (with augmented copies), distinct images, melanomas and patients of each training set."""
    return pd.DataFrame({name: {"images": len(f) * (k + 1), "distinct images": len(f),
                                "melanomas": int(f["target"].sum()), "patients": f["group_id"].nunique()}
                         for name, (f, k) in sets.items()}).T


def training_dataset(train: pd.DataFrame, images: torch.Tensor, tabular: np.ndarray, frame: pd.DataFrame,
                     size: int, copies: int = 0, seed: int = 0, extra: np.ndarray | None = None) -> CachedImages:
    """`frame`'s rows picked out of the training split's images and tabular features (rows of `train`),
    with `copies` fixed augmented copies of each image and an optional expert gate."""
    position = {image_id: k for k, image_id in enumerate(train["image_id"])}
    rows = [position[i] for i in frame["image_id"]]
    return CachedImages(images[rows], frame["target"], eval_transform(size), tabular[rows], copies=copies,
                        augment=augment(size) if copies else None, seed=seed, extra=extra)


def base_rows(metrics: dict, columns: dict[str, str], names: tuple[str, ...] = ("Base All", "Base Small")
              ) -> pd.DataFrame:
    """The base chapter's rows (from its metrics.json `variants`) in the form of a results table."""
    return pd.DataFrame({name: {**{title: m.get(key) for key, title in columns.items()},
                                "weights": weights_label(m["weights"])}
                         for name, m in metrics.items() if name in names}).T


def brightness_split(stats: pd.DataFrame, train_ids: Any) -> dict[str, Any]:
    """The brightness experts' split point (§4): the median brightness of the training split's melanomas
    (`stats`: image_id, target, brightness; `train_ids`: the study-000 training image ids), as 01_eda writes it."""
    melanomas = stats[(stats["target"] == 1) & stats["image_id"].isin(set(train_ids))]
    return {"brightness_split": float(melanomas["brightness"].median()), "computed_on": "study000 train melanomas",
            "n_melanomas": len(melanomas), "definition": "median BT.601 luma of the mean RGB colour, 0-255"}


def brightness_band(brightness: Any, split_point: float) -> np.ndarray:
    """'dark' at or below the split point, 'light' above it: the one dark/light rule of 01, 03 and 08."""
    return np.where(np.asarray(brightness, dtype=float) <= split_point, "dark", "light")


def subgroup_attributes(frame: pd.DataFrame, brightness: pd.Series, split_point: float) -> pd.DataFrame:
    """image_id, sex and brightness band (dark / light at the split point) of `frame`'s rows."""
    band = brightness_band(brightness.loc[frame["image_id"]], split_point)
    return frame.assign(brightness_band=band)[["image_id", "sex", "brightness_band"]]


_BASE_SETTINGS = {
    "backbone": "resnet18", "weights": "imagenet",  # §4: ResNet-18 with ImageNet1k V1 weights
    "image_size": 256,                               # §5.1: every image resized to 256 x 256
    "small_per_patient": 2,                          # §5.1: every melanoma, then 2 images per patient
    "missing_metadata": "drop",                      # §5.1: duplicates and NA rows removed
    "epochs": 10, "batch_size": 64, "lr": 1e-5,      # §5.2: at most 10 epochs, batch 64, Adam at 1e-5, cosine
    "patience": 3,                                   # §5.2: early stop after 3 epochs without val-loss gain
}
_NO_TEST = Deviation(
    "test set", "Base Small scored on the Kaggle private test set (ROC-AUC in the card's data line)",
    "not scored on a test set; every score is on the common validation set",
    "the competition's test labels are not public, and the synthetic stand-in has no Kaggle test set")
_BASE_METHODS = (
    Deviation("tabular branch", "sex, site and age one-hot encoded (§5.1) into the base architecture of Fig. 7, "
              "adapted from the competition winner's (layer sizes not given in the text)",
              "sex and site one-hot, age as years / 100, into an MLP 64 -> 32 (BatchNorm, ReLU, dropout 0.3)",
              "Fig. 7 is not in the text; §5.1 does not say how age was binned, and a number keeps its order"),
    Deviation("augmentation", "albumentations: flip, shift, scale, rotate and brightness (limits not stated)",
              "torchvision v2 with albumentations' default limits: h-flip p 0.5, shift 0.0625, scale 0.9-1.1, "
              "rotation 45 degrees, brightness 0.2; each copy drawn once and kept",
              "one transform library for the whole book; the paper gives no limits, so albumentations' defaults "
              "stand in"),
    Deviation("small set", "drawn from all training data, then split 85:15 again; the validation rows a training "
              "set used were removed from the common validation set (§5.2)",
              "drawn from the 85 % training split only; any validation row a set uses is still counted and removed",
              "the same leak-free comparison without losing validation rows"),
    _NO_TEST,
)
_EXPERT_METHODS = (
    Deviation("experts", "separate ResNet image classifiers per sex or brightness band, with the tabular data "
              "(§4; the figure is not in the text)",
              "two ResNet-18 image branches mixed by a fixed gate, one shared tabular branch and head",
              "the smallest model that routes each image to its subgroup's branch; the paper gives no layer sizes"),
    Deviation("brightness split", "the brightness of the middle melanoma image, melanomas sorted by brightness (§4)",
              "the median brightness of the training split's melanomas (01_eda)",
              "computed on training rows only, so no validation image sets the split"),
    Deviation("unknown sex", "NA rows removed (§5.1), so every image has a sex",
              "under missing_metadata 'impute', an image of unknown sex goes through both experts (gate 0.5, 0.5)",
              "the paper does not say; with 'drop' (the paper's) there are no such images"),
)

CARD = PaperCard(
    study="000",
    title="Resource-efficient melanoma classification with ResNet-18 and metadata",
    benchmarks=ISIC2020_BENCHMARKS,
    data=("SIIM-ISIC 2020 training data (33,126 images, 1.76 % melanoma), 85:15 patient-grouped "
          "validation split, ResNet-18 (ImageNet) at 256 px; the 'small' set had 3,987 images. "
          "Kaggle private test ROC-AUC of Base Small: 0.845."),
    tables={"Table 1": pd.DataFrame(
        {"Threshold": [0.02, 0.28, 0.10, 0.11], "F1-Score": [0.056, 0.041, 0.033, 0.027],
         "ROC-AUC": [0.900, 0.868, 0.856, 0.834], "Recall": [0.806, 0.806, 0.806, 0.806]},
        index=["Base All", "Base Small", "Base Small 3aug", "Base Small 5aug"])},
    notes={"experts": ("The sex- and brightness-based experts 'failed to train' except on all images, with "
                       "ROC-AUC no better than chance on the smaller sets (study 000, §6); no table was published."),
           "training_time": ("the base model trained in less than 30 minutes on the small set against over five hours "
                             "on all images (study 000, §5.2 and §6), under a tenth of the time")},
    splits=("ISIC 2020 training data split 85:15 into train and validation, grouped by patient (§5.1); no test "
            "split of its own (the Kaggle test set's labels are hidden)"),
    settings={
        "01_eda": {"brightness_sample": 2500},                         # §3: a random sample of 2,500 images
        "02_baseline": {**_BASE_SETTINGS, "aug_copies": [3, 5]},       # §5.1: 3 and 5 augmentations per image
        "03_experts": {**_BASE_SETTINGS,                               # §5.2: every model on every training set
                       "training_sets": ["all", "small", "small+3aug", "small+5aug"]},
    },
    methods={"02_baseline": _BASE_METHODS, "03_experts": _EXPERT_METHODS},
    headlines=(
        ("ResNet-18 + metadata, small set", "ROC-AUC (validation)", 0.868, "SIIM-ISIC 2020, 85:15 patient split"),
        ("ResNet-18 + metadata, all images", "ROC-AUC (validation)", 0.900, "SIIM-ISIC 2020, 85:15 patient split"),
    ),
)


def verdict(rows: pd.DataFrame) -> str:
    """One line for the summary: small vs all images, and the experts against the base model."""
    published = CARD.tables["Table 1"]["ROC-AUC"]
    auc = rows["roc_auc"]
    small, every = auc.get("Base Small"), auc.get("Base All")
    if small is None or every is None or pd.isna(small) or pd.isna(every):
        why = rows["skipped"].dropna().get("Base Small") if "skipped" in rows else None
        return ("* **Study 000**: the base chapter did not score both the small and the all-images model"
                + (f" (Base Small: {why})." if why else "."))
    text = (f"* **Study 000**: small set {small:.3f} vs all images {every:.3f} (study: "
            f"{published['Base Small']:.3f} vs {published['Base All']:.3f}); the small set "
            + ("held up" if small >= every - 0.05 else "fell behind") + " here.")
    experts = auc[auc.index.str.contains("experts")]
    if len(experts):
        text += f" Best expert model {experts.max():.3f} vs best base {auc[~auc.index.str.contains('experts')].max():.3f}."
    return text


# The face: parameters, variants, training one variant, findings.

@dataclass(frozen=True)
class BaseModelParams(BackboneParams):
    """What 02_baseline and 03_experts share: the base model, its training and the small set."""

    image_size: int
    epochs: int
    batch_size: int
    lr: float
    patience: int
    small_per_patient: int
    missing_metadata: str
    num_workers: int

    def train_config(self) -> TrainConfig:
        """The study's training (§5.2): Adam, cosine annealing, early stopping, the metrics at
        `EPOCH_THRESHOLD` after each epoch."""
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, optimizer="adam",
                           scheduler="cosine", patience=self.patience, device=self.device, seed=self.seed,
                           num_workers=self.num_workers, epoch_threshold=EPOCH_THRESHOLD)


@dataclass(frozen=True)
class BaselineParams(BaseModelParams):
    """02_baseline: the base model on all images, the small set, and the small set with augmented copies."""

    aug_copies: tuple[int, ...]


@dataclass(frozen=True)
class ExpertParams(BaseModelParams):
    """03_experts: the sex and brightness mixtures of experts on the named training sets."""

    training_sets: tuple[str, ...]


PARAMS = {"02_baseline": BaselineParams, "03_experts": ExpertParams}


def params(stem: str, parameters: Mapping[str, Any]) -> BaseModelParams:
    """The typed parameters of chapter `stem` (02_baseline or 03_experts) from its notebook's parameters."""
    if stem not in PARAMS:
        raise KeyError(f"study 000 has no model chapter '{stem}' (known: {', '.join(PARAMS)})")
    return typed_parameters(PARAMS[stem], stem, parameters)


@dataclass(frozen=True)
class TrainingSet:
    """One variant: all images or the small set, with `copies` augmented copies per image; for the
    experts, the gate that mixes their two image branches (`sex` or `brightness`; empty: the base model)."""

    name: str
    base: str
    copies: int = 0
    gate: str = ""


GATES = {"sex": "Sex experts", "brightness": "Brightness experts"}
SMALL_IS_ALL = ("its small set is all {n} training images (every melanoma plus {k} other images per patient, and "
                "no patient has more than {k} here), so it would train Base All again")


def variants(p: BaseModelParams) -> dict[str, TrainingSet]:
    """The chapter's variants by name: the base model's training sets (02), or each mixture of experts on
    each named training set (03)."""
    if isinstance(p, ExpertParams):
        specs = {name: expert_set_spec(name) for name in p.training_sets}
        named = {f"{title} ({name})": (base, copies, gate) for gate, title in GATES.items()
                 for name, (base, copies) in specs.items()}
    else:
        named = {"Base All": ("all", 0, ""), "Base Small": ("small", 0, ""),
                 **{f"Base Small {k}aug": ("small", k, "") for k in p.aug_copies}}
    return {name: TrainingSet(name, *spec) for name, spec in named.items()}


@dataclass(frozen=True)
class Inputs:
    """What every variant of a chapter shares: the training split (rows of `images` and `tabular`), its small
    set, the validation rows every variant is scored on, and for the brightness experts each image's
    brightness and the split point."""

    params: BaseModelParams
    train: pd.DataFrame
    small: pd.DataFrame
    images: torch.Tensor
    tabular: np.ndarray
    val: pd.DataFrame
    val_images: torch.Tensor
    val_tabular: np.ndarray
    checkpoints: Path
    brightness: pd.Series | None = None
    split_point: float | None = None


def inputs(p: BaseModelParams, train: pd.DataFrame, val: pd.DataFrame, images: torch.Tensor, val_images: torch.Tensor,
           checkpoints: Path, brightness: pd.Series | None = None, split_point: float | None = None) -> Inputs:
    """The shared inputs: the tabular encoder fitted on `train` only, the small set drawn from it."""
    tab_train, tab_val = encode_tabular(train, val)
    return Inputs(p, train, small_dataset(train, per_group=p.small_per_patient, seed=p.seed), images, tab_train,
                  val, val_images, tab_val, checkpoints, brightness, split_point)


def gate_of(variant: TrainingSet, inputs: Inputs, frame: pd.DataFrame) -> np.ndarray | None:
    """The (N, 2) gate of `frame`'s rows for an experts variant; None for the base model."""
    if variant.gate == "sex":
        return sex_gate(frame["sex"])
    if variant.gate == "brightness":
        return brightness_gate(inputs.brightness.loc[frame["image_id"]], inputs.split_point)
    return None


def train_variant(variant: TrainingSet, inputs: Inputs) -> Variant:
    """Train one variant from the chapter's seed and score it on the validation rows (threshold: max F1,
    TPR bounded, as the study)."""
    p = inputs.params
    frame = inputs.train if variant.base == "all" else inputs.small
    if not variant.gate and variant.base == "small" and not variant.copies and len(frame) == len(inputs.train):
        _, provenance = build_fusion(p.backbone, p.weights, p.weights_fallback, inputs.tabular.shape[1], seed=p.seed)
        return skipped_variant(variant.name, SMALL_IS_ALL.format(n=len(frame), k=p.small_per_patient), provenance.as_dict())
    gate = gate_of(variant, inputs, frame)
    val_set = CachedImages(inputs.val_images, inputs.val["target"], eval_transform(p.image_size), inputs.val_tabular,
                           extra=gate_of(variant, inputs, inputs.val))
    train_set = training_dataset(inputs.train, inputs.images, inputs.tabular, frame, p.image_size, variant.copies,
                                 p.seed, extra=gate)
    model, provenance = build_fusion(p.backbone, p.weights, p.weights_fallback, inputs.tabular.shape[1],
                                     experts=2 if variant.gate else 0, seed=p.seed)
    result = run_binary_variant(variant.name, model, provenance, BCE(), train_set, val_set, inputs.val,
                                p.train_config(), inputs.checkpoints / variant.name)
    if gate is not None:
        result.extra["gate_share_first_expert"] = float(gate[:, 0].mean())
    return result


def _auc(result: Variant | None, key: str = "roc_auc") -> float | None:
    """A scored variant's metric, or None (not run, skipped, or not finite)."""
    if result is None or result.skipped:
        return None
    value = result.metrics.get(key)
    return float(value) if value is not None and np.isfinite(value) else None


def findings(results: Mapping[str, Variant], base: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The numbers and sentences the chapter's prose glues: 02's best model and small vs all images; with `base`
    (02's metrics.json `variants`), 03's best expert and the small sets' experts. A skipped variant or a None
    AUC is left out, and a sentence says so where nothing is left."""
    scored = {name: v for name, v in results.items() if _auc(v) is not None}
    best = max(scored.values(), key=_auc, default=None)
    out: dict[str, Any] = {
        "best_model": best.name if best else "none (no variant could be scored)",
        "best_auc": _auc(best) if best else float("nan"),
        "best_ci_low": _auc(best, "roc_auc_ci_low") if best else float("nan"),
        "best_ci_high": _auc(best, "roc_auc_ci_high") if best else float("nan"),
    }
    if base is None:
        return out | _small_vs_all(results.get("Base Small"), results.get("Base All"))
    base_aucs = [m["roc_auc"] for k, m in base.items() if k in ("Base All", "Base Small") and m.get("roc_auc") is not None]
    small = [v for v in results.values() if "(small" in v.name]
    above = [v for v in small if (_auc(v, "roc_auc_ci_low") or 0) > 0.5]
    base_params = (base.get("Base All") or {}).get("n_params")
    return out | {
        "best_base_auc": max(base_aucs) if base_aucs else float("nan"),
        "param_ratio": best.n_params / base_params if best and base_params else float("nan"),
        "small_experts": "no expert model was trained on a small set in this run" if not small else
        f"{len(above)} of the {len(small)} expert models trained on a small set (with or without augmented "
        "copies) beat chance with their whole 95 % interval above 0.5"}


def _small_vs_all(small: Variant | None, every: Variant | None) -> dict[str, Any]:
    """02's small set against all images: AUCs, training seconds, whether their intervals overlap, and the
    sentence the chapter glues (which says why, when the two cannot be compared)."""
    published = CARD.tables["Table 1"]["ROC-AUC"]
    out: dict[str, Any] = {"published_time": CARD.notes["training_time"],
                           "published_small_auc": float(published["Base Small"]),
                           "published_all_auc": float(published["Base All"])}
    if _auc(small) is None or _auc(every) is None:
        why = next((f"{v.name} was skipped: {v.skipped}" for v in (small, every) if v is not None and v.skipped),
                   "the small-set or the all-images model was not scored")
        return out | {"small_auc": float("nan"), "all_auc": float("nan"), "small_seconds": float("nan"),
                      "all_seconds": float("nan"), "time_share": float("nan"), "ci_overlap": f"cannot be compared: {why}",
                      "small_vs_all": f"The small set and all images cannot be compared in this run: {why}."}
    overlap = (_auc(small, "roc_auc_ci_low") <= _auc(every, "roc_auc_ci_high")
               and _auc(every, "roc_auc_ci_low") <= _auc(small, "roc_auc_ci_high"))
    numbers = {"small_auc": _auc(small), "all_auc": _auc(every), "small_seconds": small.seconds,
               "all_seconds": every.seconds, "time_share": small.seconds / every.seconds if every.seconds else float("nan"),
               "ci_overlap": "overlap, so a difference between them is not established on this validation set"
               if overlap else "do not overlap, so the difference between them is unlikely to be chance alone"}
    sentence = (f"The small set reached a ROC-AUC of {numbers['small_auc']:.3f} against {numbers['all_auc']:.3f} for all "
                f"images, trained in {small.seconds:.0f} s against {every.seconds:.0f} s ({numbers['time_share']:.2f} of "
                f"the time). The two models' confidence intervals {numbers['ci_overlap']}.")
    return out | numbers | {"small_vs_all": sentence}


def workload(stem: str, p: Mapping[str, Any], n: Mapping[str, Any]) -> list[Pass]:
    """The model passes of chapters 02 (the training sets) and 03 (two gated experts, each two
    backbones, per training set) at archive scale, for `bench --estimate`."""
    small = min(n["train"], n["positives_train"] + p["small_per_patient"] * n["groups_train"])
    if stem == "02_baseline":
        sets = {"Base All": (n["train"], 1), "Base Small": (small, 1),
                **{f"Base Small {k}aug": (small, k + 1) for k in p["aug_copies"]}}
    else:
        named = {"all": n["train"], "small": small}
        specs = {name: expert_set_spec(name) for name in p["training_sets"]}
        sets = {f"{gate} experts on {name}": (named[base], 2 * (copies + 1)) for name, (base, copies) in specs.items()
                for gate in ("Sex", "Brightness")}
    return [work for what, (images, factor) in sets.items()
            for work in epochs_of(p, images, n["val"], what, size=p["image_size"], factor=factor,
                                  **pretrained(p, p["backbone"]))]
