"""Study 002: deep clustering with the COM-Triplet loss, supervised (SDC) and unsupervised (UDC) (seed 002).

- `losses`: the equations (§III): distances, losses, prototypes, feature selection, Eq. 14's score;
- `training`: Algorithm 1 and its GMM variant on the package's training engine;
- `inputs`: the embedder and what it trains on (images, or frozen-backbone features);
- `baselines`: the unsupervised baselines and the convolutional autoencoder;
- `experiments`: each variant end to end in the study's table form, and the imbalance sweep's subsets.

This face adds the split, the paper card and the summary's verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from derm_nb.cards import PaperCard
from derm_nb.data.catalog import Use
from derm_nb.workload import Pass, epochs_of

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
)


def verdict(rows: pd.DataFrame) -> str:
    """One line for the summary: best SDC, best direct classifier and best UDC against the paper's
    ("n/a" where every such variant was skipped)."""
    from derm_nb.metrics import format_metric

    auc = pd.to_numeric(rows["roc_auc"], errors="coerce")
    sdc, clf, udc = (format_metric(auc[auc.index.str.startswith(p)].max()) for p in ("SDC", "Classifier", "UDC"))
    sup, uns = CARD.tables["Supervised"]["AUC"], CARD.tables["Unsupervised"]["AUC"]
    return (f"* **Study 002**: best SDC {sdc} vs best direct classifier {clf} (study: "
            f"{sup['SDC COM-Triplet']:.2f} vs {sup['Classifier TL+LW']:.2f} on ISIC 2020); best UDC {udc} "
            f"(study: {uns['UDC COM-Triplet']:.2f}). The imbalance sweep is in the chapter.")


def workload(stem: str, p: Mapping[str, Any], n: Mapping[str, Any]) -> list[Pass]:
    """Chapter 05's passes at archive scale (`bench --estimate`). With `finetune: all` an SDC/UDC epoch
    embeds 3 x the training images (M triplets, or 3M images, per len/M iterations) and a classifier
    epoch 1 x; with `finetune: head` each backbone's features are computed once (with `aug_views`)
    and the heads on them cost next to nothing."""
    size, main = p["image_size"], p["backbone"]
    if p["finetune"] == "head":
        views = n["train"] * (1 + p["aug_views"]) + n["val"] + n["test"]
        return [Pass(f"features {b}", b, size, views, train=False) for b in p["backbones"]]
    runs = [(f"SDC {b}", b, 3) for b in p["backbones"]] + [(f"SDC triplet α={m}", main, 3) for m in p["margins"]]
    runs += [("SDC NP", main, 3), ("SDC TL+DA", main, 3), ("UDC COM-Triplet", main, 3), ("UDC triplet α=0.2", main, 3)]
    runs += [(f"Classifier {b}", b, 1) for b in p["backbones"]]
    runs += [("Classifier NP", main, 1), ("Classifier TL+DA", main, 1), ("Classifier TL+LW", main, 1)]
    out = [w for what, b, factor in runs for w in epochs_of(p, n["train"], n["val"], what, b, size, factor)]
    for minority in p["sweep_minorities"]:
        subset = (p["sweep_majority"] + minority) * p["sweep_scale"]
        for what, factor in ((f"sweep SDC 1:{minority}", 3), (f"sweep classifier 1:{minority}", 1)):
            out += epochs_of(p, subset * p["sweep_repeats"], n["val"] * p["sweep_repeats"], what, main, size, factor)
    return out
