"""ISIC 2019: the loader, its synthetic preset and its record.

One-hot ground truth (ISIC_2019_Training_GroundTruth.csv) and metadata (_Metadata.csv); images in
ISIC_2019_Training_Input/. Grouped by lesion_id (the image where it has none); no masks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from derm_nb.artifacts import write_csv
from derm_nb.data.archive import ArchiveFile, Remote, Scale, Source, TargetClasses
from derm_nb.data.manifest import require_columns
from derm_nb.data.quality import QualityReport
from derm_nb.data.reading import find_image, finish, onehot_labels, read_csv
from derm_nb.data.synth_kit import (
    SKIN_WEIGHTS,
    SynthConfig,
    SynthPreset,
    image_files,
    lesion_sizes,
    one_hot,
    random_ids,
    shares,
    skin_attributes,
    with_nans,
)

CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")


def load_isic2019(root: Path, report: QualityReport) -> pd.DataFrame:
    """ISIC 2019: one-hot ground truth + metadata (lesion_id is the group key)."""
    truth_file = root / "ISIC_2019_Training_GroundTruth.csv"
    meta_file = root / "ISIC_2019_Training_Metadata.csv"
    truth, meta = read_csv(truth_file), read_csv(meta_file)
    require_columns(truth, truth_file, ["image", *CLASSES])
    require_columns(meta, meta_file, ["image", "age_approx", "anatom_site_general", "lesion_id", "sex"])
    merged = truth.merge(meta, on="image", how="left", indicator=True)
    frame = pd.DataFrame({"image_id": merged["image"].astype(str), "group_id": merged["lesion_id"],
                          "sex": merged["sex"], "age": merged["age_approx"], "site": merged["anatom_site_general"]})
    no_meta = merged["_merge"].eq("left_only")
    for idx in frame.index[no_meta]:
        report.add(meta_file, None, frame.at[idx, "image_id"], "no metadata row", "imputed",
                   "demographics treated as missing")
    frame = onehot_labels(frame, merged, list(CLASSES), truth_file, report)
    frame["target"] = (frame["label_name"] == "MEL").astype(int)
    frame["diagnosis"] = frame["label_name"]
    folders = [f for f in (root / "ISIC_2019_Training_Input", root) if f.is_dir()]
    frame["path"] = [find_image(folders, i) for i in frame["image_id"]]
    frame["official_split"] = ""
    return finish(frame, truth_file, report, "isic2019", "lesion")


# ---------------------------------------------------------------------------------------------
# Synthetic preset: the ground truth, metadata and input folder; lesions

COUNTS = (4522, 12875, 3323, 867, 2624, 239, 253, 628, 0)  # ISIC 2019 training, 25331 images
TORSO = ["anterior torso", "posterior torso", "lateral torso"]


def _layout_isic2019(meta: pd.DataFrame, out: Path, cfg: SynthConfig, rng: np.random.Generator) -> pd.DataFrame:
    """ISIC_2019_Training_Input/<id>.jpg; HAM and BCN lesions carry lesion ids, the MSK part none."""
    groups = int(meta["patient"].max()) + 1
    part = rng.choice(3, groups, p=[0.40, 0.49, 0.11])  # HAM10000, BCN_20000, MSK (2084 of 25331 rows lack ids)
    names = [random_ids(rng, groups, "HAM_", 7), random_ids(rng, groups, "BCN_", 7)]
    meta["lesion_id"] = [names[part[g]][g] if part[g] < 2 else "" for g in meta["patient"]]
    source = part[meta["patient"]]
    numbers = np.zeros(len(meta), int)
    for k, start in enumerate((24306, 53000, 0)):  # the archive's id ranges of the three parts
        numbers[source == k] = start + np.arange(int((source == k).sum()))
    meta["image"] = [f"ISIC_{k:07d}" for k in numbers]
    return image_files(meta, {"train": out / "ISIC_2019_Training_Input"}, {})


def _write_isic2019(meta: pd.DataFrame, out: Path, cfg: SynthConfig, rng: np.random.Generator) -> None:
    """ISIC_2019_Training_GroundTruth.csv (one-hot, UNK always 0) and _Metadata.csv (some blanks)."""
    rows = meta.sort_values("image")
    write_csv(out / "ISIC_2019_Training_GroundTruth.csv", one_hot(rows, CLASSES))
    torso = np.asarray(TORSO)[rng.choice(3, int(meta["patient"].max()) + 1, p=[0.45, 0.45, 0.10])]
    site = np.where(rows["site"].eq("torso"), torso[rows["patient"]], rows["site"])
    write_csv(out / "ISIC_2019_Training_Metadata.csv", pd.DataFrame({
        "image": rows["image"],
        "age_approx": with_nans(rng, rows["age"].astype(float), cfg.nan_fraction),
        "anatom_site_general": with_nans(rng, pd.Series(site, index=rows.index), 3 * cfg.nan_fraction),
        "lesion_id": rows["lesion_id"],
        "sex": with_nans(rng, rows["sex"], cfg.nan_fraction),
    }))


REMOTE = Remote((ArchiveFile("2019/ISIC_2019_Training_Input.zip", "training", images=25331),
                 ArchiveFile("2019/ISIC_2019_Training_GroundTruth.csv", "training"),
                 ArchiveFile("2019/ISIC_2019_Training_Metadata.csv", "training")))

SOURCE = Source(
    name="isic2019", title="ISIC 2019", loader=load_isic2019, classes=CLASSES,
    targets={"melanoma": TargetClasses(("MEL",)), "malignant": TargetClasses(("MEL", "BCC", "AK", "SCC")),
             "melanoma_vs_nevus": TargetClasses(("MEL",), ("MEL", "NV"))},
    layout=(("ISIC_2019_Training_GroundTruth.csv",), ("ISIC_2019_Training_Metadata.csv",)),
    files="`ISIC_2019_Training_GroundTruth.csv`, `ISIC_2019_Training_Metadata.csv`, `ISIC_2019_Training_Input/`",
    grouping="lesion (image where missing)", masks="none",
    synthetic=SynthPreset(CLASSES, shares(COUNTS), ("MEL",), tuple(SKIN_WEIGHTS[c] for c in CLASSES),
                          "lesion", lesion_sizes, skin_attributes, _layout_isic2019, _write_isic2019),
    published={"melanoma_vs_nevus": Scale(17397, 17397, 4522, {"MEL": 4522, "NV": 12875})},
    remote=REMOTE,
)
