"""The studies' own published figures, quoted as theirs, with the data they were measured on."""

from __future__ import annotations

import pandas as pd

STUDY000_TABLE1 = pd.DataFrame(
    {"Threshold": [0.02, 0.28, 0.10, 0.11], "F1-Score": [0.056, 0.041, 0.033, 0.027],
     "ROC-AUC": [0.900, 0.868, 0.856, 0.834], "Recall": [0.806, 0.806, 0.806, 0.806]},
    index=["Base All", "Base Small", "Base Small 3aug", "Base Small 5aug"])
STUDY000_DATA = ("SIIM-ISIC 2020 training data (33,126 images, 1.76 % melanoma), 85:15 patient-grouped "
                 "validation split, ResNet-18 (ImageNet) at 256 px; the 'small' set had 3,987 images. "
                 "Kaggle private test ROC-AUC of Base Small: 0.845.")
STUDY000_EXPERTS = ("The sex- and brightness-based experts 'failed to train' except on all images, with "
                    "ROC-AUC no better than chance on the smaller sets (study 000, §6); no table was published.")


def quote(table: pd.DataFrame, data: str) -> pd.DataFrame:
    """A published table, with a caption naming the data it came from (for display)."""
    return table.style.set_caption(f"Published (not computed here): {data}")

STUDY003_TABLE1 = pd.DataFrame(
    {"Simple CNN": [0.74, 0.62, 0.53, 0.67, 0.82, 0.58, 0.40, 0.68, 0.78, 0.60, 0.46, 0.68],
     "MobileNet": [0.66, 0.59, 1.00, 0.70, 0.91, 0.42, 0.20, 0.66, 0.76, 0.49, 0.33, 0.62],
     "ResNet101": [0.89, 0.87, 0.80, 0.87, 0.89, 0.87, 0.80, 0.87, 0.89, 0.87, 0.80, 0.87]},
    index=pd.MultiIndex.from_product([["Precision", "Recall", "F1-score"],
                                      ["Benign", "Malignant", "Normal", "Weighted Avg."]]))
STUDY003_DATA = ("BUSI breast ultrasound (780 images: 437 benign, 210 malignant, 133 normal), test set of 117 "
                 "images, 224 px; ResNet-101 ImageNet-pretrained, the other two from scratch.")

STUDY001_RESULTS = pd.DataFrame(
    {"AUROC": [0.909, 0.906, 0.884, 0.874], "balanced accuracy": [0.755, 0.727, 0.674, 0.697],
     "F1": [0.778, 0.753, 0.701, 0.725], "recall": [0.56, 0.502, 0.397, 0.443]},
    index=["Recipe (20 epochs)", "300 px (15 epochs)", "Mixup 0.2 (15 epochs)", "Shades of Grey (15 epochs)"])
STUDY001_DATA = ("ISIC 2018 Task 3 dermoscopy (18.63 % malignant), patient-wise 70/15/15 split, test set, "
                 "EfficientNet-B0 ImageNet at 224 px, Youden threshold; F1 is macro-F1 for the recipe row.")

HEADLINES = pd.DataFrame([
    {"study": "000", "model": "ResNet-18 + metadata, small set", "metric": "ROC-AUC (validation)", "value": 0.868,
     "data": "SIIM-ISIC 2020, 85:15 patient split"},
    {"study": "000", "model": "ResNet-18 + metadata, all images", "metric": "ROC-AUC (validation)", "value": 0.900,
     "data": "SIIM-ISIC 2020, 85:15 patient split"},
    {"study": "001", "model": "EfficientNet-B0 recipe", "metric": "AUROC (test)", "value": 0.909,
     "data": "ISIC 2018 Task 3, 70/15/15 patient split"},
    {"study": "003", "model": "ResNet-101 pretrained", "metric": "weighted F1 (test)", "value": 0.87,
     "data": "BUSI ultrasound, 3 classes, 117 test images"},
    {"study": "003", "model": "Simple CNN", "metric": "weighted F1 (test)", "value": 0.68,
     "data": "BUSI ultrasound, 3 classes, 117 test images"},
])
