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


def quote(table: pd.DataFrame, data: str, precision: int = 3):
    """A published table, with a caption naming the data it came from (for display); '–' where not reported."""
    return table.style.set_caption(f"Published (not computed here): {data}").format(precision=precision, na_rep="–")

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
    {"study": "002", "model": "SDC COM-Triplet (VGG16)", "metric": "AUC (split test set)", "value": 0.8881,
     "data": "ISIC 2020, 75/12.5/12.5 split"},
    {"study": "002", "model": "Direct classifier ResNet50 TL+LW", "metric": "AUC (split test set)", "value": 0.8423,
     "data": "ISIC 2020, 75/12.5/12.5 split"},
    {"study": "002", "model": "UDC COM-Triplet (VGG16)", "metric": "AUC (split test set)", "value": 0.7085,
     "data": "ISIC 2020, 75/12.5/12.5 split"},
    {"study": "003", "model": "ResNet-101 pretrained", "metric": "weighted F1 (test)", "value": 0.87,
     "data": "BUSI ultrasound, 3 classes, 117 test images"},
    {"study": "003", "model": "Simple CNN", "metric": "weighted F1 (test)", "value": 0.68,
     "data": "BUSI ultrasound, 3 classes, 117 test images"},
    {"study": "004", "model": "GCN-based MIL (ResNet-18 blocks)", "metric": "melanoma AUC (test)", "value": 0.930,
     "data": "ISIC 2017 test set, 600 images"},
    {"study": "004", "model": "GCN-based MIL attention masks", "metric": "Jaccard index (test)", "value": 0.699,
     "data": "ISIC 2017 test set, 600 images"},
])

_STUDY002_COLS = ["Recall", "Precision", "Specificity", "Accuracy", "F1-score", "AUC"]
STUDY002_SUPERVISED = pd.DataFrame(
    [[98.09, 99.88, 98.11, 98.09, 98.94, 81.11], [98.06, 99.83, 98.11, 98.06, 98.91, 83.90],
     [97.17, 98.25, 98.02, 97.17, 97.77, 82.78], [97.39, 97.95, 98.33, 97.39, 97.66, 82.29],
     [96.81, 97.52, 98.02, 96.81, 97.16, 79.82], [98.02, 99.95, 98.04, 98.02, 98.97, 83.76],
     [96.35, 94.47, 98.67, 96.35, 95.41, 84.23], [94.44, 97.01, 95.35, 94.44, 95.73, 84.42],
     [96.95, 97.03, 98.40, 96.96, 96.99, 88.81]],
    columns=_STUDY002_COLS,
    index=["Classifier VGG16", "Classifier ResNet50 (= TL)", "Classifier DenseNet169", "Classifier EfficientNetB3",
           "Classifier NP", "Classifier TL+DA", "Classifier TL+LW", "SDC Triplet", "SDC COM-Triplet"])
STUDY002_UNSUPERVISED = pd.DataFrame(
    [[96.16, 95.24, 98.90, 96.16, 95.70, 62.90], [95.22, 95.01, 99.98, 95.22, 95.11, 61.87],
     [95.71, 96.29, 99.99, 95.71, 96.00, 63.59], [94.34, 96.07, 99.99, 94.34, 95.21, 62.47],
     [96.89, 96.15, 99.90, 96.89, 96.52, 64.66], [97.59, 96.02, 99.98, 97.59, 96.81, 65.13],
     [97.81, 96.29, 99.99, 97.81, 97.05, 68.96], [96.77, 94.92, 99.39, 96.77, 95.84, 58.53],
     [98.04, 96.12, 99.99, 98.04, 97.07, 70.85]],
    columns=_STUDY002_COLS,
    index=["GMM", "K-Means", "PCA", "Fast ICA", "LLE", "ODL", "CAE", "UDC Triplet", "UDC COM-Triplet"])
STUDY002_SWEEP = pd.DataFrame({"SDC minus classifier (AUC points)": [0.35, 9.16]}, index=["4500:4500", "4500:75"])
STUDY002_DATA = ("ISIC 2020 training data (33,126 images, 1.76 % melanoma) split 75/12.5/12.5, split test set, "
                 "256 px, ImageNet transfer learning (Tables III and VI); direct classifiers by backbone, then "
                 "ResNet50 for the strategies; SDC/UDC with VGG16. In percent.")

STUDY004_TABLE5 = pd.DataFrame(
    {"Seborrheic Keratosis-AUC": [0.959, None, None, None, None, None, None, None, None, None, 0.988],
     "AUC": [0.8743, 0.892, 0.859, 0.869, 0.920, 0.923, None, None, None, 0.912, 0.930],
     "Accuracy": [None, 0.847, 0.823, 0.840, 0.901, 0.882, None, None, None, 0.857, 0.892],
     "Recall": [None, 0.586, 0.343, 0.336, None, None, None, None, None, 0.490, 0.761],
     "JA": [None, None, None, None, None, None, 0.696, 0.607, 0.651, 0.753, 0.699]},
    index=["Multi-Channel-ResNet", "VGG16", "AlexNet", "ResNet101", "CNMP", "Gessert", "FCN", "FCRN", "U-Net",
           "LIN", "GCN-based MIL"])
STUDY004_DATA = ("ISIC 2017 challenge test set (600 images: 117 melanoma, 90 seborrheic keratosis, 393 nevus), "
                 "original resolution, 224 px blocks, ResNet-18 ImageNet features; each value the mean of five runs. "
                 "'–' in the study: not reported.")
