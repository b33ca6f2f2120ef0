"""ISIC 2017 (part 3: melanoma / seborrheic keratosis / nevus): the loader, its synthetic preset and its record.

ISIC-2017_{Training,Validation,Test_v2}_Part3_GroundTruth.csv with their _Data/ folders (the official
partitions) and _Part1_GroundTruth/ lesion masks. The archive has no patient or lesion ids: grouped by image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from derm_nb.artifacts import write_csv
from derm_nb.data.archive import ArchiveFile, Remote, Scale, Source, TargetClasses
from derm_nb.data.manifest import require_columns
from derm_nb.data.quality import QualityReport
from derm_nb.data.reading import drop_rows, find_image, finish, locate, read_csv
from derm_nb.data.synth_kit import (
    MEL_W,
    SK_W,
    SynthConfig,
    SynthPreset,
    image_files,
    patient_sizes,
    sequential_ids,
    shares,
    skin_attributes,
)

CLASSES = ("nevus", "melanoma", "seborrheic_keratosis")
# ISIC 2017 partitions: split -> (part 3 ground truth, data folder, part 1 masks folder).
PARTS = {
    "train": ("ISIC-2017_Training_Part3_GroundTruth.csv", "ISIC-2017_Training_Data", "ISIC-2017_Training_Part1_GroundTruth"),
    "val": ("ISIC-2017_Validation_Part3_GroundTruth.csv", "ISIC-2017_Validation_Data",
            "ISIC-2017_Validation_Part1_GroundTruth"),
    "test": ("ISIC-2017_Test_v2_Part3_GroundTruth.csv", "ISIC-2017_Test_v2_Data", "ISIC-2017_Test_v2_Part1_GroundTruth"),
}


def _read_isic2017_part(root: Path, split: str, report: QualityReport) -> pd.DataFrame | None:
    """One ISIC 2017 partition: part 3 labels, data-folder metadata, part 1 masks (None if absent)."""
    truth, data, masks = PARTS[split]
    file = root / truth
    if split != "train" and not file.is_file():
        if (root / data).is_dir():
            report.add(root / data, None, None, "missing ground truth", "excluded", f"{truth} not found: folder not read")
        return None
    raw = read_csv(file)
    require_columns(raw, file, ["image_id", "melanoma", "seborrheic_keratosis"])
    meta_file = root / data / f"{data}_metadata.csv"
    meta = read_csv(meta_file) if meta_file.is_file() else pd.DataFrame(columns=["image_id", "age_approximate", "sex"])
    require_columns(meta, meta_file, ["image_id", "age_approximate", "sex"])
    merged = raw.merge(meta, on="image_id", how="left")
    mel = pd.to_numeric(merged["melanoma"], errors="coerce")
    sk = pd.to_numeric(merged["seborrheic_keratosis"], errors="coerce")
    frame = locate(pd.DataFrame({
        "image_id": merged["image_id"].astype(str), "group_id": merged["image_id"].astype(str),
        "sex": merged["sex"].replace("unknown", np.nan),
        "age": pd.to_numeric(merged["age_approximate"], errors="coerce"), "site": "unknown", "official_split": split,
    }), file)
    valid = mel.isin([0, 1]) & sk.isin([0, 1]) & (mel + sk <= 1)
    frame = drop_rows(frame, ~valid, file, report, "unknown label",
                      lambda r: f"melanoma={mel[r.name]!r}, seborrheic_keratosis={sk[r.name]!r}")
    frame["label"] = np.where(mel[frame.index] == 1, 1, np.where(sk[frame.index] == 1, 2, 0))
    frame["path"] = [find_image([root / data], i) for i in frame["image_id"]]
    frame["mask_path"] = [str(root / masks / f"{i}_segmentation.png") for i in frame["image_id"]]
    return frame


def load_isic2017(root: Path, report: QualityReport) -> pd.DataFrame:
    """ISIC 2017 part 3 (melanoma / seborrheic keratosis / nevus), each partition present, with part 1 masks."""
    parts = [p for p in (_read_isic2017_part(root, s, report) for s in PARTS) if p is not None]
    frame = pd.concat(parts, ignore_index=True)
    frame["label"] = frame["label"].astype(int)
    frame["label_name"] = [CLASSES[k] for k in frame["label"]]
    frame["target"] = (frame["label"] == 1).astype(int)
    frame["diagnosis"] = frame["label_name"]
    return finish(frame, root / PARTS["train"][0], report, "isic2017", "image")


# ---------------------------------------------------------------------------------------------
# Synthetic preset: Training / Validation / Test_v2: Part3 ground truth, Data/, Part1 masks; patients

MIX = (0.686, 0.187, 0.127)  # ISIC 2017 training set: 1372 / 374 / 254 of 2000
NAMES = {"train": "Training", "val": "Validation", "test": "Test_v2"}


def _layout_isic2017(meta: pd.DataFrame, out: Path, cfg: SynthConfig, rng: np.random.Generator) -> pd.DataFrame:
    """ISIC-2017_<Part>_Data/<id>.jpg and _Part1_GroundTruth/<id>_segmentation.png; a few superpixel maps."""
    meta["image"] = sequential_ids(meta, 0)
    meta = image_files(meta, {p: out / f"ISIC-2017_{n}_Data" for p, n in NAMES.items()},
                       {p: out / f"ISIC-2017_{n}_Part1_GroundTruth" for p, n in NAMES.items()})
    for part, name in NAMES.items():
        rows = np.flatnonzero(meta["partition"].eq(part).to_numpy() & meta["dup_of"].lt(0).to_numpy())
        if cfg.superpixel_fraction > 0 and len(rows):
            pick = rng.choice(rows, max(1, int(round(cfg.superpixel_fraction * len(rows)))), replace=False)
            meta.loc[pick, "superpixels"] = [str(out / f"ISIC-2017_{name}_Data" / f"{i}_superpixels.png")
                                             for i in meta.loc[pick, "image"]]
    return meta


def _write_isic2017(meta: pd.DataFrame, out: Path, cfg: SynthConfig, rng: np.random.Generator) -> None:
    """Per partition: Part 3 ground truth (nevus = both columns 0) and the Data folder's metadata CSV."""
    for part, name in NAMES.items():
        rows = meta[meta["partition"] == part].sort_values("image")
        truth = pd.DataFrame({"image_id": rows["image"], "melanoma": (rows["label"] == 1).astype(float),
                              "seborrheic_keratosis": (rows["label"] == 2).astype(float)})
        write_csv(out / f"ISIC-2017_{name}_Part3_GroundTruth.csv", truth)
        age = rows["age"].astype(int).astype(str).where(rng.random(len(rows)) >= cfg.nan_fraction, "unknown")
        sex = rows["sex"].where(rng.random(len(rows)) >= cfg.nan_fraction, "unknown")
        write_csv(out / f"ISIC-2017_{name}_Data" / f"ISIC-2017_{name}_Data_metadata.csv",
                  pd.DataFrame({"image_id": rows["image"], "age_approximate": age, "sex": sex}))


def _remote() -> Remote:
    """The nine published files (three per partition) with their MD5s and image counts."""
    md5 = {"Training": ("a14a7e622c67a358797ae59abb8a0b0c", "77fdbeb6fbec4139937224416b250f4c"),
           "Validation": ("8d6419d942112f709894c0d82f6c9038", "64d3e68fa2deeb8a5e89aa8dec2efd44"),
           "Test_v2": ("5f6a0b5e1f2972bd1f5ea02680489f09", "b1742de6bd257faca3b2b21a4aa3b781")}
    images = {"Training": 2000, "Validation": 150, "Test_v2": 600}
    files = []
    for (name, (data_md5, masks_md5)), part in zip(md5.items(), ("training", "validation", "test")):
        stem = f"2017/ISIC-2017_{name}"
        files += [ArchiveFile(f"{stem}_Data.zip", part, data_md5, images[name]),
                  ArchiveFile(f"{stem}_Part1_GroundTruth.zip", part, masks_md5, images[name], "_segmentation.png"),
                  ArchiveFile(f"{stem}_Part3_GroundTruth.csv", part)]
    return Remote(tuple(files))


SOURCE = Source(
    name="isic2017", title="ISIC 2017", loader=load_isic2017, classes=CLASSES,
    targets={"melanoma": TargetClasses(("melanoma",)), "malignant": TargetClasses(("melanoma",)),
             "melanoma_vs_nevus": TargetClasses(("melanoma",), ("melanoma", "nevus"))},
    layout=((PARTS["train"][0],), (f"{PARTS['train'][1]}/",)),
    files="Part 3 ground truth, `ISIC-2017_Training_Data/`, Part 1 masks; the Validation and `Test_v2` files when "
          "present",
    grouping="image", masks="yes",
    synthetic=SynthPreset(CLASSES, MIX, ("melanoma",), ({}, MEL_W, SK_W), "patient", patient_sizes, skin_attributes,
                          _layout_isic2017, _write_isic2017, partitions=shares((2000, 150, 600)), duplicates=True),
    published={"melanoma": Scale(2750, 2750, 521, {"melanoma": 374, "seborrheic_keratosis": 254, "nevus": 1372},
                                 {"train": 2000, "val": 150, "test": 600})},
    remote=_remote(),
)
