"""SIIM-ISIC 2020: the loader, its synthetic preset and its record.

Kaggle's train.csv or the archive's ground truth (v1 / v2); images in jpeg/train/, train/ or
ISIC_2020_Training_JPEG/train/; its duplicates list (the second image of a listed pair is excluded,
both when their labels disagree). Grouped by patient_id; no masks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from derm_nb.artifacts import write_csv
from derm_nb.data.archive import ArchiveFile, Remote, Scale, Source, TargetClasses
from derm_nb.data.errors import DataError
from derm_nb.data.manifest import require_columns
from derm_nb.data.quality import QualityReport
from derm_nb.data.reading import csv_row, drop_rows, find_image, finish, pick_file, read_csv
from derm_nb.data.synth_kit import (
    MEL_W,
    SynthConfig,
    SynthPreset,
    image_files,
    patient_sizes,
    random_ids,
    skin_attributes,
    with_nans,
)

CLASSES = ("benign", "malignant")
# Ground truth in order of preference (the archive's v2, its v1, Kaggle's train.csv), and image folders.
TRUTH = ("ISIC_2020_Training_GroundTruth_v2.csv", "ISIC_2020_Training_GroundTruth.csv", "train.csv")
IMAGES = ("jpeg/train/", "train/", "ISIC_2020_Training_JPEG/train/")
DUPLICATES = "ISIC_2020_Training_Duplicates.csv"


def _drop_listed_duplicates(frame: pd.DataFrame, file: Path, report: QualityReport) -> pd.DataFrame:
    """Exclude the second image of every pair in ISIC 2020's duplicates list (both when their labels differ)."""
    if not file.is_file():
        return frame
    pairs = read_csv(file)
    require_columns(pairs, file, ["image_name_1", "image_name_2"])
    labels = frame.drop_duplicates("image_id").set_index("image_id")["label"]
    dropped: set[str] = set()
    for idx, (first, second) in pairs[["image_name_1", "image_name_2"]].astype(str).iterrows():
        if second not in labels.index or second in dropped:
            continue
        if first in labels.index and labels[first] != labels[second]:
            victims = [first, second]
            detail = f"{file.name} lists {first} and {second} as duplicates with different labels: both excluded"
        else:
            victims = [second]
            detail = f"{file.name} lists it as a duplicate of {first}" + ("" if first in dropped else f"; {first} is kept")
        for image_id in [v for v in victims if v not in dropped]:
            report.add(file, csv_row(idx), image_id, "listed duplicate", "excluded", detail)
            dropped.add(image_id)
    return frame.loc[~frame["image_id"].isin(dropped)]


def load_isic2020(root: Path, report: QualityReport) -> pd.DataFrame:
    """SIIM-ISIC 2020: Kaggle's train.csv or the archive's ground truth (v1 / v2), and its duplicates list."""
    file = pick_file(root, TRUTH, report)
    raw = read_csv(file)
    require_columns(raw, file, ["image_name", "patient_id", "sex", "age_approx", "anatom_site_general_challenge",
                                "diagnosis", "benign_malignant", "target"])
    folders = [root / f for f in IMAGES if (root / f).is_dir()]
    if not folders:
        raise DataError(f"{root}: no image folder (looked for {', '.join(IMAGES)})")
    frame = pd.DataFrame({
        "image_id": raw["image_name"].astype(str), "group_id": raw["patient_id"], "sex": raw["sex"],
        "age": raw["age_approx"], "site": raw["anatom_site_general_challenge"], "diagnosis": raw["diagnosis"],
    })
    target = pd.to_numeric(raw["target"], errors="coerce")
    frame = drop_rows(frame, ~target.isin([0, 1]), file, report, "unknown label",
                      lambda r: f"target = {raw.at[r.name, 'target']!r}, expected 0 or 1")
    frame["target"] = target.loc[frame.index].astype(int)
    frame["label"] = frame["target"]
    frame["label_name"] = frame["label"].map(dict(enumerate(CLASSES)))
    frame = _drop_listed_duplicates(frame, root / DUPLICATES, report)
    frame["path"] = [find_image(folders, i) for i in frame["image_id"]]
    frame["mask_path"] = ""  # ISIC 2020 ships no segmentations
    frame["official_split"] = ""
    return finish(frame, file, report, "isic2020", "patient")


# ---------------------------------------------------------------------------------------------
# Synthetic preset: train.csv, jpeg/train/, ISIC_2020_Training_Duplicates.csv; patients
BENIGN_DX = ["unknown", "nevus", "seborrheic keratosis", "lentigo NOS", "lichenoid keratosis", "solar lentigo"]
BENIGN_DX_P = [0.88, 0.095, 0.006, 0.008, 0.006, 0.005]


def _layout_isic2020(meta: pd.DataFrame, out: Path, cfg: SynthConfig, rng: np.random.Generator) -> pd.DataFrame:
    """jpeg/train/<ISIC_xxxxxxx>.jpg with random ids; no masks (ISIC 2020 has none)."""
    meta["image"] = random_ids(rng, len(meta), "ISIC_", 7)
    return image_files(meta, {"train": out / "jpeg" / "train"}, {})


def _write_isic2020(meta: pd.DataFrame, out: Path, cfg: SynthConfig, rng: np.random.Generator) -> None:
    """train.csv (ISIC 2020 columns, some NaNs) and ISIC_2020_Training_Duplicates.csv listing every copy."""
    dx = rng.choice(BENIGN_DX, len(meta), p=np.array(BENIGN_DX_P) / sum(BENIGN_DX_P))
    dup_of = meta["dup_of"].to_numpy()
    dx = np.where(dup_of >= 0, dx[np.maximum(dup_of, 0)], dx)  # a copy keeps its source's diagnosis
    frame = pd.DataFrame({
        "image_name": meta["image"],
        "patient_id": [f"IP_{1000000 + 7919 * p % 8999999:07d}" for p in meta["patient"]],
        "sex": with_nans(rng, meta["sex"], cfg.nan_fraction),
        "age_approx": with_nans(rng, meta["age"].astype(float), cfg.nan_fraction),
        "anatom_site_general_challenge": with_nans(rng, meta["site"], 3 * cfg.nan_fraction),
        "diagnosis": np.where(meta["label"] == 1, "melanoma", dx),
        "benign_malignant": np.where(meta["label"] == 1, "malignant", "benign"),
        "target": meta["label"].astype(int),
    })
    write_csv(out / "train.csv", frame)
    copies = dup_of >= 0
    pairs = pd.DataFrame({"image_name_1": meta["image"].to_numpy()[dup_of[copies]],
                          "image_name_2": meta["image"].to_numpy()[copies]})
    write_csv(out / DUPLICATES, pairs)


REMOTE = Remote((ArchiveFile("2020/ISIC_2020_Training_JPEG.zip", "training", images=33126),
                 ArchiveFile("2020/ISIC_2020_Training_GroundTruth_v2.csv", "training"),
                 ArchiveFile("2020/ISIC_2020_Training_Duplicates.csv", "training")))

SOURCE = Source(
    name="isic2020", title="ISIC 2020", loader=load_isic2020, classes=CLASSES,
    targets={"melanoma": TargetClasses(("malignant",)), "malignant": TargetClasses(("malignant",))},
    layout=(TRUTH[::-1], IMAGES),
    files="`train.csv` or `ISIC_2020_Training_GroundTruth[_v2].csv`; `jpeg/train/`, `train/` or "
          "`ISIC_2020_Training_JPEG/train/`; `ISIC_2020_Training_Duplicates.csv` when present",
    grouping="patient", masks="none",
    synthetic=SynthPreset(CLASSES, (0.9824, 0.0176), ("malignant",), ({}, MEL_W), "patient", patient_sizes,
                          skin_attributes, _layout_isic2020, _write_isic2020, duplicates=True,
                          reencoded_duplicates=True, mix_from_prevalence=True),
    published={"melanoma": Scale(33126, 2056, 584)},
    remote=REMOTE,
)
