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
