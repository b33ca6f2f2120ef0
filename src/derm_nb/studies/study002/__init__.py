"""Study 002: deep clustering with the COM-Triplet loss, supervised (SDC) and unsupervised (UDC) (seed 002).

- `losses`: the equations (§III): distances, losses, prototypes, feature selection, Eq. 14's score;
- `training`: Algorithm 1 and its GMM variant on the package's training engine;
- `inputs`: the embedder and what it trains on (images, or frozen-backbone features);
- `baselines`: the unsupervised baselines and the convolutional autoencoder;
- `experiments`: each variant end to end in the study's table form, and the imbalance sweep's subsets;
- `rows`: every trained row of the chapter as a plain job, the inputs they share, and the sweep's cells.

This face adds the split, the paper card, the summary's verdict, and what every study has:
`params(stem, parameters)` (`ClusteringParams`), `variants(params)` (every trained row of the chapter's
tables, {folder: `rows.Row`}), `chapter_inputs(params, images, frames, checkpoints)` (what they train on),
`train_variant(variant, inputs)` (any one row) and `findings(results, ...)`. The imbalance sweep (its own
dataset) has the same shape: `rows.sweep_cells`, `rows.sweep_inputs` and `experiments.sweep_cell`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from derm_nb.cards import ISIC2020_BENCHMARKS, Deviation, PaperCard
from derm_nb.data.catalog import Use
from derm_nb.params import typed_parameters
from derm_nb.workload import Pass, epochs_of, pretrained

if TYPE_CHECKING:
    from pathlib import Path

    from derm_nb.results import Variant
    from derm_nb.studies.study002.rows import ChapterInputs, Row

SPLIT = {"train": 0.75, "val": 0.125, "test": 0.125}
DATASETS = {
    "study002": Use("isic2020", "melanoma", "ISIC 2020 training set"),
    "study002_sweep": Use("isic2019", "melanoma_vs_nevus", "ISIC 2019 melanoma vs nevus (imbalance sweep)"),
}

_COLUMNS = ["Recall", "Precision", "Specificity", "Accuracy", "F1-score", "AUC"]
_DATA = "ISIC 2020, 75/12.5/12.5 split"

CARD = PaperCard(
    study="002",
    title="Deep clustering with the COM-Triplet loss for imbalanced melanoma detection",
    benchmarks=ISIC2020_BENCHMARKS,
    data=("ISIC 2020 training data (33,126 images, 1.76 % melanoma) split 75/12.5/12.5, split test set, "
          "256 px, ImageNet transfer learning (Tables III and VI); direct classifiers by backbone, then "
          "ResNet50 for the strategies; SDC/UDC with VGG16. In percent."),
    tables={
        "Supervised": pd.DataFrame(
            [[98.09, 99.88, 98.11, 98.09, 98.94, 81.11], [98.06, 99.83, 98.11, 98.06, 98.91, 83.90],
             [97.17, 98.25, 98.02, 97.17, 97.77, 82.78], [97.39, 97.95, 98.33, 97.39, 97.66, 82.29],
             [96.81, 97.52, 98.02, 96.81, 97.16, 79.82], [98.02, 99.95, 98.04, 98.02, 98.97, 83.76],
             [96.35, 94.47, 98.67, 96.35, 95.41, 84.23], [94.44, 97.01, 95.35, 94.44, 95.73, 84.42],
             [96.95, 97.03, 98.40, 96.96, 96.99, 88.81]],
            columns=_COLUMNS,
            index=["Classifier VGG16", "Classifier ResNet50 (= TL)", "Classifier DenseNet169",
                   "Classifier EfficientNetB3", "Classifier NP", "Classifier TL+DA", "Classifier TL+LW",
                   "SDC Triplet", "SDC COM-Triplet"]),
        "Unsupervised": pd.DataFrame(
            [[96.16, 95.24, 98.90, 96.16, 95.70, 62.90], [95.22, 95.01, 99.98, 95.22, 95.11, 61.87],
             [95.71, 96.29, 99.99, 95.71, 96.00, 63.59], [94.34, 96.07, 99.99, 94.34, 95.21, 62.47],
             [96.89, 96.15, 99.90, 96.89, 96.52, 64.66], [97.59, 96.02, 99.98, 97.59, 96.81, 65.13],
             [97.81, 96.29, 99.99, 97.81, 97.05, 68.96], [96.77, 94.92, 99.39, 96.77, 95.84, 58.53],
             [98.04, 96.12, 99.99, 98.04, 97.07, 70.85]],
            columns=_COLUMNS,
            index=["GMM", "K-Means", "PCA", "Fast ICA", "LLE", "ODL", "CAE", "UDC Triplet", "UDC COM-Triplet"]),
        "Sweep": pd.DataFrame({"SDC minus classifier (AUC points)": [0.35, 9.16]}, index=["4500:4500", "4500:75"]),
    },
    notes={"sweep": ("ISIC 2019 melanoma vs nevus, VGG16, 4,500 nevi; read off the study's text "
                     "(Fig. 4 itself is a plot)")},
    headlines=(("SDC COM-Triplet (VGG16)", "AUC (split test set)", 0.8881, _DATA),
               ("Direct classifier ResNet50 TL+LW", "AUC (split test set)", 0.8423, _DATA),
               ("UDC COM-Triplet (VGG16)", "AUC (split test set)", 0.7085, _DATA)),
    splits="75 % training, 12.5 % validation, 12.5 % test, not overlapping (§IV; not said to be grouped by patient)",
    settings={"05_deep_clustering": {
        "backbone": "vgg16",                     # §V.A: the best backbone, used "in all experiments thereafter"
        "backbones": ["vgg16", "resnet50", "densenet169", "efficientnet_b3"],   # §IV, Tables I-II
        "classifier_backbone": "resnet50",       # §V.A: the strategies' classifier, best in validation
        "weights": "imagenet",                   # §IV: transfer learning from ImageNet
        "feature_stages": 0,                     # §IV: the backbone's output feeds the embedding layer
        "finetune": "all",                       # §IV: the whole CNN trains
        "image_size": 256,                       # §IV: 256 x 256
        "epochs": 15,                            # §IV: Adam, 15 epochs (clustering and classifiers)
        "batch_size": 15,                        # §IV: batch size 15
        "lr": 1e-5,                              # §IV: learning rate 1e-5
        "classifier_lr": 1e-5,                   # §IV, direct classifiers: 1e-5
        "margins": [0.2, 0.6],                   # §IV: the constant margins of Tables I-II and IV-V
        "feature_selection": True,               # §IV: prototype feature selection
        "gmm_covariance": "full",                # §III Eq. 9: a full covariance matrix per component
        "sweep_majority": 4500,                  # §V.C: 4,500 nevi
        "sweep_minorities": [4500, 2250, 1125, 300, 125, 75],   # §V.C
        "sweep_scale": 1.0,                      # §V.C: the counts as stated
        "sweep_repeats": 1,                      # §V.C: one model per ratio
    }},
    reasons={"05_deep_clustering": {
        "sweep_scale": ("ISIC 2019's 4,522 melanomas leave about 3,390 in a 75 % training split, fewer than the "
                        "4,500 of the balanced ratio: full scales every count by 0.75 (3,375:{3,375 ... 56}), "
                        "keeping the ratios"),
    }},
    methods={"05_deep_clustering": (
        Deviation("framework", "Keras on TensorFlow, Keras' ImageNet weights", "PyTorch, torchvision's ImageNet "
                  "weights", "the package's one training engine; the architectures are the same"),
        Deviation("backbone weights offline", "each backbone's ImageNet weights",
                  "where a backbone's ImageNet weights cannot be had, the `weights_fallback` stand-in (each row's "
                  "weights column says so); a backbone whose stand-in repeats an earlier one is left out",
                  "no network at run time: rows of identical networks would repeat one another"),
        Deviation("augmentation with a frozen backbone", "TL+DA: shifts, flips, rotation and zoom drawn as the "
                  "model trains", "with `finetune: all` the same, drawn afresh at every draw; with `finetune: head` "
                  "{aug_views} augmented copies (`aug_views`) of each training image drawn once, and each draw "
                  "takes the original or one copy",
                  "a frozen backbone's features are computed once, so its views must be fixed in advance"),
        Deviation("embedding width S", "not stated", "the `embedding_dim` parameter", "the study gives no value"),
        Deviation("convolution map to embedding layer", "the dense layers are replaced by the embedding "
                  "layer (how the last map is reduced is not stated)", "global average pooling, as the other "
                  "backbones' own heads (VGG16: 512 features, no fc6/fc7)", "not stated; Keras' "
                  "include_top=False leaves the map to the user"),
        Deviation("direct classifier output", "softmax over two outputs, binary cross-entropy",
                  "one logit, sigmoid binary cross-entropy", "the same model with one redundant output removed"),
        Deviation("epoch kept", "not stated (\"the validation set was used to select hyperparameters\")",
                  "every model (SDC, UDC, direct classifiers) keeps its epoch of best validation AUC",
                  "one stated rule for every model, the study's own selection metric"),
        Deviation("which UDC cluster is melanoma", "not stated", "the smaller GMM component of each batch (the "
                  "smaller cluster for the shallow baselines and the CAE)", "no labels: melanoma is the rare class"),
        Deviation("feature-selection threshold", "\"the difference between maximum and minimum feature weight "
                  "averaged across prototypes\"", "the midpoint between the smallest and largest |Cl_min - Cl_maj|",
                  "our reading of an ambiguous sentence"),
        Deviation("1-D baselines", "kernel PCA with \"a third-order linear kernel\"; a threshold learned on "
                  "the projection", "a cubic polynomial kernel; the threshold from 2-means on the training "
                  "projections", "a linear kernel has no order; how the threshold is learned is not stated"),
        Deviation("CAE", "the autoencoder of [62], not described", "3 strided convolutions down and 3 up, "
                  "`cae_epochs`, Adam 1e-3", "the study gives no architecture or training settings"),
        Deviation("official ISIC 2020 test set", "AUC from the challenge's server (Tables III, VI)",
                  "the split test set only", "its labels are not public and the book runs offline"),
        Deviation("ISIC 2019 / HAM10000 comparisons", "Tables VII-VIII", "not run; ISIC 2019 serves only the "
                  "imbalance sweep", "the chapter's budget; every model would run twice more"),
    )},
)


def verdict(rows: pd.DataFrame) -> str:
    """One line for the summary: the main SDC (picked on validation, as the study did; the best SDC on test
    where no main model is flagged), the best direct classifier and the best UDC against the paper's ("n/a"
    where every such variant was skipped)."""
    from derm_nb.metrics import format_metric

    auc = pd.to_numeric(rows["roc_auc"], errors="coerce")
    main = list(rows.index[rows["main"].eq(True)]) if "main" in rows else []
    if main:
        sdc = f"{format_metric(auc[main[0]])} ({main[0]}, picked on validation)"
    else:
        sdc = f"{format_metric(auc[auc.index.str.startswith('SDC')].max())} (the best on test)"
    clf, udc = (format_metric(auc[auc.index.str.startswith(p)].max()) for p in ("Classifier", "UDC"))
    sup, uns = CARD.tables["Supervised"]["AUC"], CARD.tables["Unsupervised"]["AUC"]
    return (f"* **Study 002**: SDC {sdc} vs best direct classifier {clf} (study: "
            f"{sup['SDC COM-Triplet'] / 100:.3f} vs {sup['Classifier TL+LW'] / 100:.3f} on ISIC 2020); best UDC {udc} "
            f"(study: {uns['UDC COM-Triplet'] / 100:.3f}). The imbalance sweep is in the chapter.")


@dataclass(frozen=True)
class ClusteringParams:
    """05_deep_clustering: the backbones, SDC / UDC and the direct classifiers' training, and the sweep."""

    seed: int
    device: str
    backbone: str
    backbones: tuple[str, ...]
    classifier_backbone: str
    weights: str
    weights_fallback: str
    finetune: str
    feature_stages: int
    image_size: int
    embedding_dim: int
    epochs: int
    batch_size: int
    lr: float
    classifier_lr: float
    aug_views: int
    margins: tuple[float, ...]
    gmm_covariance: str
    feature_selection: bool
    cae_epochs: int
    cae_batch_size: int
    sweep_majority: int
    sweep_minorities: tuple[int, ...]
    sweep_scale: float
    sweep_repeats: int

    def cluster_settings(self) -> dict[str, Any]:
        """The SDC / UDC training fields of `training.ClusterConfig` (§IV: Adam, batch M triplets)."""
        return dict(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, gmm_covariance=self.gmm_covariance,
                    device=self.device, seed=self.seed)


def params(stem: str, parameters: Mapping[str, Any]) -> ClusteringParams:
    """The typed parameters of 05_deep_clustering from its notebook's parameters."""
    if stem != "05_deep_clustering":
        raise KeyError(f"study 002 has no model chapter '{stem}' (known: 05_deep_clustering)")
    return typed_parameters(ClusteringParams, stem, parameters)


def variants(p: ClusteringParams) -> dict[str, Row]:
    """Every trained row of the chapter's tables in their order, as `train_variant` jobs ({folder: `rows.Row`}):
    SDC by backbone, margin and strategy, the direct classifiers, UDC, the shallow baselines and the CAE."""
    from derm_nb.studies.study002.rows import rows

    return rows(p.backbone, p.backbones, p.margins)


def train_variant(variant: Row, inputs: ChapterInputs) -> Variant:
    """One row (a `variants` job) trained on `inputs` (`chapter_inputs`' `rows.ChapterInputs`), scored on test."""
    from derm_nb.studies.study002.rows import train_row

    return train_row(variant, inputs)


def chapter_inputs(p: ClusteringParams, images: Mapping[str, Any], frames: Mapping[str, pd.DataFrame],
                   checkpoints: Path) -> ChapterInputs:
    """What every row trains on (`rows.ChapterInputs`): each distinct backbone's inputs on `frames` (their
    images `images`), the splits, both configurations and the checkpoint folder `checkpoints`."""
    from derm_nb.studies.study002.rows import chapter_inputs as build

    return build(p, dict(images), dict(frames), checkpoints)


def findings(results: Mapping[str, Any], main: str, summary: pd.DataFrame, ceiling: float | None) -> dict[str, Any]:
    """The closing numbers the prose glues (`experiments.findings`): the main SDC (`main`, its name) against the
    best direct classifier, UDC and the shallow baselines, and the sweep's most imbalanced ratio (`summary`);
    skipped variants and None AUCs are left out."""
    from derm_nb.studies.study002.baselines import UNSUPERVISED_BASELINES
    from derm_nb.studies.study002.experiments import findings as closing

    rows = list(results.values())
    udc = [v for v in rows if v.name.startswith("UDC")]
    return closing(results[main], [v for v in rows if v.name.startswith("Classifier")], udc,
                   [v for v in rows if v.name in UNSUPERVISED_BASELINES or v.name == "CAE"], summary, ceiling,
                   CARD.tables["Sweep"].iloc[:, 0])


def workload(stem: str, p: Mapping[str, Any], n: Mapping[str, Any]) -> list[Pass]:
    """Chapter 05's passes at archive scale (`bench --estimate`). With `finetune: all` an SDC/UDC epoch
    embeds 3 x the training images (M triplets, or 3M images, per len/M iterations) and a classifier
    epoch 1 x; with `finetune: head` each backbone's features are computed once (with `aug_views`)
    and the heads on them cost next to nothing."""
    size, main, clf = p["image_size"], p["backbone"], p["classifier_backbone"]
    if p["finetune"] == "head":
        views = n["train"] * (1 + p["aug_views"]) + n["val"] + n["test"]
        names = dict.fromkeys([main, *p["backbones"], clf])
        return [Pass(f"features {b}", size=size, images=views, train=False, **pretrained(p, b)) for b in names]
    margins = [*(f"COM-Triplet α={m}" for m in p["margins"]), "triplet α=0.2"]
    runs = [(f"SDC {b}", b, 3) for b in dict.fromkeys([main, *p["backbones"]])]
    runs += [(f"{kind} {m}", main, 3) for kind in ("SDC", "UDC") for m in margins]
    runs += [("SDC NP", main, 3), ("SDC TL+DA", main, 3), ("UDC COM-Triplet", main, 3)]
    runs += [(f"Classifier {b}", b, 1) for b in dict.fromkeys([main, *p["backbones"]])]
    runs += [("Classifier NP", clf, 1), ("Classifier TL+DA", clf, 1), ("Classifier TL+LW", clf, 1)]
    out = [w for what, b, factor in runs
           for w in epochs_of(p, n["train"], n["val"], what, size=size, factor=factor, **pretrained(p, b))]
    for minority in p["sweep_minorities"]:
        subset = (p["sweep_majority"] + minority) * p["sweep_scale"]
        for what, factor in ((f"sweep SDC 1:{minority}", 3), (f"sweep classifier 1:{minority}", 1)):
            out += epochs_of(p, subset * p["sweep_repeats"], n["val"] * p["sweep_repeats"], what, size=size,
                             factor=factor, **pretrained(p, main))
    return out
