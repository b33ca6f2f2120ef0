"""Study 004: GCN-based multi-instance learning with attention segmentation on ISIC 2017 (seed 004).

- `mil`: bags of blocks, rotation balancing, the GCN-MIL model and its training;
- `segmentation`: recognition scores, masks from attention, Jaccard and the η sweep, the variant record.

This face adds the split, the paper card and the summary's verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from derm_nb.cards import PaperCard
from derm_nb.data.catalog import Use
from derm_nb.workload import Pass

SPLIT = {"train": 2000 / 2750, "val": 150 / 2750, "test": 600 / 2750}   # where the archive ships no partitions
OFFICIAL_SPLIT = True   # ISIC 2017's own 2000 / 150 / 600 partitions when present
DATASETS = {"study004": Use("isic2017", "melanoma", "ISIC 2017 (2,000 / 150 / 600 official partitions)",
                            only=("isic2017",), why_only="its chapter reads the melanoma / seborrheic keratosis / "
                            "nevus classes and segments against the lesion masks")}

CARD = PaperCard(
    study="004",
    title="GCN-based multi-instance learning for melanoma recognition and segmentation",
    data=("ISIC 2017 challenge test set (600 images: 117 melanoma, 90 seborrheic keratosis, 393 nevus), "
          "original resolution, 224 px blocks, ResNet-18 ImageNet features; each value the mean of five runs. "
          "'–' in the study: not reported."),
    tables={"Table 5": pd.DataFrame(
        {"Seborrheic Keratosis-AUC": [0.959, None, None, None, None, None, None, None, None, None, 0.988],
         "AUC": [0.8743, 0.892, 0.859, 0.869, 0.920, 0.923, None, None, None, 0.912, 0.930],
         "Accuracy": [None, 0.847, 0.823, 0.840, 0.901, 0.882, None, None, None, 0.857, 0.892],
         "Recall": [None, 0.586, 0.343, 0.336, None, None, None, None, None, 0.490, 0.761],
         "JA": [None, None, None, None, None, None, 0.696, 0.607, 0.651, 0.753, 0.699]},
        index=["Multi-Channel-ResNet", "VGG16", "AlexNet", "ResNet101", "CNMP", "Gessert", "FCN", "FCRN", "U-Net",
               "LIN", "GCN-based MIL"])},
    headlines=(("GCN-based MIL (ResNet-18 blocks)", "melanoma AUC (test)", 0.930, "ISIC 2017 test set, 600 images"),
               ("GCN-based MIL attention masks", "Jaccard index (test)", 0.699, "ISIC 2017 test set, 600 images")),
)


def verdict(rows: pd.DataFrame) -> str:
    """One line for the summary: melanoma and SK AUC and the attention masks' Jaccard against Table 5."""
    if "GCN-MIL" not in rows.index:
        return "* **Study 004**: GCN-based MIL was not run."
    ours, paper = rows.loc["GCN-MIL"], CARD.tables["Table 5"].loc["GCN-based MIL"]
    return (f"* **Study 004**: GCN-based MIL melanoma AUC {ours['roc_auc']:.3f}, seborrheic keratosis AUC "
            f"{ours['sk_roc_auc']:.3f}, Jaccard {ours['jaccard']:.3f} from attention alone (study: {paper['AUC']:.3f}, "
            f"{paper['Seborrheic Keratosis-AUC']:.3f}, {paper['JA']:.3f} on ISIC 2017).")


def workload(stem: str, p: Mapping[str, Any], n: Mapping[str, Any]) -> list[Pass]:
    """Chapter 07's passes at archive scale (`bench --estimate`): the frozen backbone over every block of
    every bag (training images once per rotation angle of their class), then the GCN's steps, one bag
    each at batch 1 for every epoch (timed on a bag of that many blocks)."""
    from derm_nb.studies.study004 import mil

    size, block = n["cache_size"], p["block_size"]
    blocks = len(mil.block_grid(size, size, block, mil.stride_for_height(size, p["stride_scale"])))
    angles = mil.rotations(p["rotation_steps"], list(n["classes_train"]))
    train_bags = sum(count * len(angles[k]) for k, count in enumerate(n["classes_train"].values()))
    bags = train_bags + n["val"] + n["test"]
    steps = p["epochs"] * train_bags / p["batch_size"]
    return [Pass("block features", p["backbone"], block, bags * blocks, train=False),
            Pass("GCN-MIL training steps", "gcn_mil", blocks, steps,
                 probe=lambda device: mil.train_step(device, blocks, p["gcn_hidden"], p["attention_dim"],
                                                     p["batch_size"]))]
