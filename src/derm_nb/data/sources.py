"""Loaders for the public datasets, each yielding the canonical manifest plus a quality report.

| source   | ground truth / metadata and images                                  | group key                |
|----------|---------------------------------------------------------------------|--------------------------|
| isic2020 | train.csv or ISIC_2020_Training_GroundTruth(_v2).csv; images in      | patient_id               |
|          | jpeg/train/, train/ or ISIC_2020_Training_JPEG/train/; duplicates list |                        |
| isic2019 | ISIC_2019_Training_GroundTruth.csv + _Metadata.csv                   | lesion_id                |
| isic2018 | ISIC2018_Task3_{Training,Validation,Test}_GroundTruth/ and _Input/;  | lesion_id (training),    |
|          | LesionGroupings.csv; optional HAM10000_segmentations_lesion_tschandl/ | image id (val / test)   |
| ham10000 | HAM10000_metadata.csv; HAM10000_images_part_1/_2                     | lesion_id                |
| isic2017 | ISIC-2017_{Training,Validation,Test_v2}_Part3_GroundTruth.csv, _Data/, | image id (no ids)      |
|          | _Part1_GroundTruth/ masks                                            |                          |
| busi     | Dataset_BUSI_with_GT/{benign,malignant,normal}/                      | image id (no ids)        |

`official_split` is train / val / test for the partitions the archive itself ships (ISIC 2017, ISIC 2018),
'' for archives without them. A root that is not laid out as its source raises DataError (`check_layout`).

Stated rules for bad input (each listed in the quality report): missing sex -> 'unknown';
missing site -> 'unknown'; missing age -> the dataset's median age (age_imputed=True);
missing group id -> the image id; unknown or invalid label -> row excluded; repeated image id
-> later rows excluded; an image listed second in ISIC_2020_Training_Duplicates.csv -> excluded
(both if their labels disagree); missing, unreadable or truncated image -> excluded; byte-identical
or near-duplicate images -> all but the first excluded (all excluded if their labels disagree), except that
copies in an archive's official held-out partitions are kept as published and their training copies go
(near_duplicates.kept_rows); missing mask -> kept without a mask.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from derm_nb.data.errors import DataError
from derm_nb.data.manifest import require_columns, to_manifest
from derm_nb.data.near_duplicates import exclude_duplicates, image_hash
from derm_nb.data.quality import QualityReport
from derm_nb.data.splits import partition_counts
from derm_nb.parallel import parallel_map

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
ISIC2019_CLASSES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
ISIC2018_CLASSES = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
ISIC2018_MALIGNANT = ("MEL", "BCC", "AKIEC")
HAM_CLASSES = ["nv", "mel", "bkl", "bcc", "akiec", "vasc", "df"]
ISIC2017_CLASSES = ["nevus", "melanoma", "seborrheic_keratosis"]
BUSI_CLASSES = ["benign", "malignant", "normal"]
ISIC2020_CLASSES = ["benign", "malignant"]

CLASSES: dict[str, list[str]] = {
    "isic2020": ISIC2020_CLASSES, "isic2019": ISIC2019_CLASSES, "isic2018": ISIC2018_CLASSES,
    "ham10000": HAM_CLASSES, "isic2017": ISIC2017_CLASSES, "busi": BUSI_CLASSES,
}

NAMES: dict[str, str] = {"isic2020": "ISIC 2020", "isic2019": "ISIC 2019", "isic2018": "ISIC 2018 Task 3",
                         "ham10000": "HAM10000", "isic2017": "ISIC 2017", "busi": "BUSI"}

# ISIC 2020 ground truth in order of preference (the archive's v2, its v1, Kaggle's train.csv), and image folders.
ISIC2020_TRUTH = ("ISIC_2020_Training_GroundTruth_v2.csv", "ISIC_2020_Training_GroundTruth.csv", "train.csv")
ISIC2020_IMAGES = ("jpeg/train/", "train/", "ISIC_2020_Training_JPEG/train/")
ISIC2020_DUPLICATES = "ISIC_2020_Training_Duplicates.csv"
# ISIC 2017 partitions: split -> (part 3 ground truth, data folder, part 1 masks folder).
ISIC2017_PARTS = {
    "train": ("ISIC-2017_Training_Part3_GroundTruth.csv", "ISIC-2017_Training_Data", "ISIC-2017_Training_Part1_GroundTruth"),
    "val": ("ISIC-2017_Validation_Part3_GroundTruth.csv", "ISIC-2017_Validation_Data",
            "ISIC-2017_Validation_Part1_GroundTruth"),
    "test": ("ISIC-2017_Test_v2_Part3_GroundTruth.csv", "ISIC-2017_Test_v2_Data", "ISIC-2017_Test_v2_Part1_GroundTruth"),
}
T3 = "ISIC2018_Task3"
ISIC2018_PARTS = {"train": f"{T3}_Training", "val": f"{T3}_Validation", "test": f"{T3}_Test"}
HAM_MASKS = "HAM10000_segmentations_lesion_tschandl"

# What a root must hold, per source: each entry is a tuple of alternatives; names ending in '/' are folders.
LAYOUTS: dict[str, list[tuple[str, ...]]] = {
    "isic2020": [ISIC2020_TRUTH[::-1], ISIC2020_IMAGES],
    "isic2019": [("ISIC_2019_Training_GroundTruth.csv",), ("ISIC_2019_Training_Metadata.csv",)],
    "isic2018": [(f"{T3}_Training_GroundTruth/{T3}_Training_GroundTruth.csv",), (f"{T3}_Training_Input/",)],
    "ham10000": [("HAM10000_metadata.csv",), ("HAM10000_images_part_1/", "HAM10000_images_part_2/")],
    "isic2017": [(ISIC2017_PARTS["train"][0],), (f"{ISIC2017_PARTS['train'][1]}/",)],
    "busi": [(f"Dataset_BUSI_with_GT/{c}/", f"{c}/") for c in BUSI_CLASSES],
}


def read_csv(path: Path) -> pd.DataFrame:
    """A metadata CSV, or DataError naming the file when it is missing or unparsable."""
    if not path.is_file():
        raise DataError(f"{path}: metadata file not found")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot be parsed as CSV: {err}") from err


def _present(root: Path, entry: str) -> bool:
    path = root / entry.rstrip("/")
    return path.is_dir() if entry.endswith("/") else path.is_file()


def _listing(root: Path, limit: int = 20) -> str:
    names = sorted(f"{p.name}/" if p.is_dir() else p.name for p in root.iterdir())
    if not names:
        return "nothing (the folder is empty)"
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def check_layout(source: str, root: Path) -> None:
    """Raise DataError, naming the expected entries and what the root holds, if `root` is not laid out as `source`."""
    required = LAYOUTS[source]
    missing = [alts for alts in required if not any(_present(root, a) for a in alts)]
    if not missing:
        return
    describe = lambda entries: " and ".join(f"({' or '.join(alts)})" if len(alts) > 1 else alts[0] for alts in entries)
    expected = describe(required)
    lacking = f"; missing {describe(missing)}" if len(missing) < len(required) else ""
    article = "an" if source[0] in "aeiou" else "a"
    raise DataError(f"{root} is not {article} {source} root: expected {expected}{lacking}; found: {_listing(root)}")


def _find_image(folders: list[Path], stem: str) -> str:
    for folder in folders:
        for suffix in IMAGE_SUFFIXES:
            candidate = folder / f"{stem}{suffix}"
            if candidate.is_file():
                return str(candidate)
    return str(folders[0] / f"{stem}.jpg")  # reported as missing by check_images


def _csv_row(index: int) -> int:
    return int(index) + 2  # 1-based line number in the CSV, after the header


def _locate(frame: pd.DataFrame, file: Path) -> pd.DataFrame:
    """`frame` (indexed as its CSV) with each row's file and line, for reports after several files are concatenated."""
    return frame.assign(_file=str(file), _line=[_csv_row(i) for i in frame.index])


def _where(frame: pd.DataFrame, idx: object, file: Path) -> tuple[object, int]:
    if "_file" in frame.columns:
        return frame.at[idx, "_file"], int(frame.at[idx, "_line"])
    return file, _csv_row(idx)


def _impute_demographics(frame: pd.DataFrame, file: Path, report: QualityReport) -> pd.DataFrame:
    """Apply the stated NaN rules to sex, age, site and group id; report every imputed row."""
    frame = frame.copy()
    for column, fill in (("sex", "unknown"), ("site", "unknown")):
        missing = frame[column].isna() | frame[column].astype(str).str.strip().eq("")
        for idx in frame.index[missing]:
            report.add(*_where(frame, idx, file), frame.at[idx, "image_id"], f"missing {column}", "imputed",
                       f"set to '{fill}'")
        frame[column] = frame[column].astype(object).where(~missing, fill).astype(str).str.lower()
    age = pd.to_numeric(frame["age"], errors="coerce")
    median = float(age.median()) if age.notna().any() else float("nan")
    for idx in frame.index[age.isna()]:
        report.add(*_where(frame, idx, file), frame.at[idx, "image_id"], "missing age", "imputed", f"set to median {median:g}")
    frame["age_imputed"] = age.isna()
    frame["age"] = age.fillna(median)
    missing_group = frame["group_id"].isna() | frame["group_id"].astype(str).str.strip().eq("")
    for idx in frame.index[missing_group]:
        report.add(*_where(frame, idx, file), frame.at[idx, "image_id"], "missing group id", "imputed", "set to the image id")
    frame["group_id"] = frame["group_id"].astype(object).where(~missing_group, frame["image_id"]).astype(str)
    return frame


def _drop_rows(frame: pd.DataFrame, bad: pd.Series, file: Path, report: QualityReport, check: str,
               detail: Callable[[pd.Series], str]) -> pd.DataFrame:
    for idx in frame.index[bad]:
        report.add(*_where(frame, idx, file), frame.at[idx, "image_id"], check, "excluded", detail(frame.loc[idx]))
    return frame.loc[~bad]


def _drop_repeated_ids(frame: pd.DataFrame, file: Path, report: QualityReport) -> pd.DataFrame:
    repeated = frame["image_id"].duplicated(keep="first")
    return _drop_rows(frame, repeated, file, report, "repeated image id", lambda r: "an earlier row has this id")


def _finish(frame: pd.DataFrame, file: Path, report: QualityReport, source: str, group_kind: str) -> pd.DataFrame:
    frame = _drop_repeated_ids(frame, file, report)
    frame = _impute_demographics(frame, file, report)
    if "group_kind" not in frame:
        frame["group_kind"] = group_kind
    frame["source"] = source
    for column in ("diagnosis", "mask_path"):
        if column not in frame:
            frame[column] = ""
        frame[column] = frame[column].fillna("").astype(str)
    return frame.drop(columns=["_file", "_line"], errors="ignore")


def _onehot_labels(frame: pd.DataFrame, onehot: pd.DataFrame, classes: list[str], file: Path,
                   report: QualityReport) -> pd.DataFrame:
    """Exclude rows without exactly one 1.0; set label (column index) and label_name (column name)."""
    onehot = onehot[classes].apply(pd.to_numeric, errors="coerce")
    valid = onehot.isin([0.0, 1.0]).all(axis=1) & onehot.sum(axis=1).eq(1)
    frame = _drop_rows(frame, ~valid, file, report, "unknown label", lambda r: "one-hot row does not have exactly one 1.0")
    frame["label"] = onehot.loc[frame.index].to_numpy().argmax(axis=1)
    frame["label_name"] = [classes[k] for k in frame["label"]]
    return frame


def _pick_file(root: Path, names: tuple[str, ...], report: QualityReport) -> Path:
    """The first of `names` present under `root`; the others present are reported as ignored."""
    present = [root / n for n in names if (root / n).is_file()]
    if not present:
        return root / names[-1]  # read_csv names it as not found
    for other in present[1:]:
        report.add(other, None, None, "several ground truth files", "ignored", f"{present[0].name} is read instead")
    return present[0]


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
            report.add(file, _csv_row(idx), image_id, "listed duplicate", "excluded", detail)
            dropped.add(image_id)
    return frame.loc[~frame["image_id"].isin(dropped)]


def load_isic2020(root: Path, report: QualityReport) -> pd.DataFrame:
    """SIIM-ISIC 2020: Kaggle's train.csv or the archive's ground truth (v1 / v2), and its duplicates list."""
    file = _pick_file(root, ISIC2020_TRUTH, report)
    raw = read_csv(file)
    require_columns(raw, file, ["image_name", "patient_id", "sex", "age_approx", "anatom_site_general_challenge",
                                "diagnosis", "benign_malignant", "target"])
    folders = [root / f for f in ISIC2020_IMAGES if (root / f).is_dir()]
    if not folders:
        raise DataError(f"{root}: no image folder (looked for {', '.join(ISIC2020_IMAGES)})")
    frame = pd.DataFrame({
        "image_id": raw["image_name"].astype(str), "group_id": raw["patient_id"], "sex": raw["sex"],
        "age": raw["age_approx"], "site": raw["anatom_site_general_challenge"], "diagnosis": raw["diagnosis"],
    })
    target = pd.to_numeric(raw["target"], errors="coerce")
    frame = _drop_rows(frame, ~target.isin([0, 1]), file, report, "unknown label",
                       lambda r: f"target = {raw.at[r.name, 'target']!r}, expected 0 or 1")
    frame["target"] = target.loc[frame.index].astype(int)
    frame["label"] = frame["target"]
    frame["label_name"] = frame["label"].map(dict(enumerate(ISIC2020_CLASSES)))
    frame = _drop_listed_duplicates(frame, root / ISIC2020_DUPLICATES, report)
    frame["path"] = [_find_image(folders, i) for i in frame["image_id"]]
    frame["mask_path"] = ""  # ISIC 2020 ships no segmentations
    frame["official_split"] = ""
    return _finish(frame, file, report, "isic2020", "patient")


def load_isic2019(root: Path, report: QualityReport) -> pd.DataFrame:
    """ISIC 2019: one-hot ground truth + metadata (lesion_id is the group key)."""
    truth_file = root / "ISIC_2019_Training_GroundTruth.csv"
    meta_file = root / "ISIC_2019_Training_Metadata.csv"
    truth, meta = read_csv(truth_file), read_csv(meta_file)
    require_columns(truth, truth_file, ["image", *ISIC2019_CLASSES])
    require_columns(meta, meta_file, ["image", "age_approx", "anatom_site_general", "lesion_id", "sex"])
    merged = truth.merge(meta, on="image", how="left", indicator=True)
    frame = pd.DataFrame({"image_id": merged["image"].astype(str), "group_id": merged["lesion_id"],
                          "sex": merged["sex"], "age": merged["age_approx"], "site": merged["anatom_site_general"]})
    no_meta = merged["_merge"].eq("left_only")
    for idx in frame.index[no_meta]:
        report.add(meta_file, None, frame.at[idx, "image_id"], "no metadata row", "imputed",
                   "demographics treated as missing")
    frame = _onehot_labels(frame, merged, ISIC2019_CLASSES, truth_file, report)
    frame["target"] = (frame["label_name"] == "MEL").astype(int)
    frame["diagnosis"] = frame["label_name"]
    folders = [f for f in (root / "ISIC_2019_Training_Input", root) if f.is_dir()]
    frame["path"] = [_find_image(folders, i) for i in frame["image_id"]]
    frame["official_split"] = ""
    return _finish(frame, truth_file, report, "isic2019", "lesion")


def _isic2018_lesions(root: Path, image_ids: pd.Series, report: QualityReport) -> pd.Series:
    """Lesion id per training image from the LesionGroupings file (NaN where it has none)."""
    file = root / f"{T3}_Training_LesionGroupings.csv"
    if not file.is_file():
        report.add(file, None, None, "missing groupings file", "imputed",
                   "file not found: every training image is its own group")
        return pd.Series(np.nan, index=image_ids.index, dtype=object)
    groups = read_csv(file)
    require_columns(groups, file, ["image", "lesion_id"])
    return image_ids.map(groups.drop_duplicates("image").set_index("image")["lesion_id"])


def _read_isic2018_part(root: Path, split: str, report: QualityReport) -> pd.DataFrame | None:
    """One Task 3 partition (None for an absent validation / test partition)."""
    name = ISIC2018_PARTS[split]
    file, images = root / f"{name}_GroundTruth" / f"{name}_GroundTruth.csv", root / f"{name}_Input"
    if split != "train" and not file.is_file():
        if images.is_dir():
            report.add(images, None, None, "missing ground truth", "excluded", f"{file.name} not found: folder not read")
        return None
    raw = read_csv(file)
    require_columns(raw, file, ["image", *ISIC2018_CLASSES])
    frame = _locate(pd.DataFrame({"image_id": raw["image"].astype(str), "sex": np.nan, "age": np.nan, "site": np.nan,
                                  "official_split": split}), file)
    frame = _onehot_labels(frame, raw, ISIC2018_CLASSES, file, report)
    if split == "train":
        frame["group_id"], frame["group_kind"] = _isic2018_lesions(root, frame["image_id"], report), "lesion"
    else:
        frame["group_id"], frame["group_kind"] = frame["image_id"], "image"  # no groupings for val / test
    masks = root / HAM_MASKS  # HAM10000's segmentations cover the training images only
    use_masks = split == "train" and masks.is_dir()
    frame["mask_path"] = [str(masks / f"{i}_segmentation.png") if use_masks else "" for i in frame["image_id"]]
    frame["path"] = [_find_image([images], i) for i in frame["image_id"]]
    return frame


def load_isic2018(root: Path, report: QualityReport) -> pd.DataFrame:
    """ISIC 2018 Task 3: training (lesion groups), validation and test partitions as the archive ships them."""
    parts = [p for p in (_read_isic2018_part(root, s, report) for s in ISIC2018_PARTS) if p is not None]
    frame = pd.concat(parts, ignore_index=True)
    frame["diagnosis"] = frame["label_name"]
    frame["target"] = frame["label_name"].isin(ISIC2018_MALIGNANT).astype(int)
    truth = ISIC2018_PARTS["train"]
    return _finish(frame, root / f"{truth}_GroundTruth" / f"{truth}_GroundTruth.csv", report, "isic2018", "lesion")


def load_ham10000(root: Path, report: QualityReport) -> pd.DataFrame:
    """HAM10000: metadata CSV (dx is the label, lesion_id the group), images in two part folders."""
    file = root / "HAM10000_metadata.csv"
    raw = read_csv(file)
    require_columns(raw, file, ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"])
    frame = pd.DataFrame({"image_id": raw["image_id"].astype(str), "group_id": raw["lesion_id"], "sex": raw["sex"],
                          "age": raw["age"], "site": raw["localization"], "diagnosis": raw["dx"]})
    bad = ~raw["dx"].isin(HAM_CLASSES)
    frame = _drop_rows(frame, bad, file, report, "unknown label",
                       lambda r: f"dx = {r['diagnosis']!r}, expected one of {', '.join(HAM_CLASSES)}")
    frame["label_name"] = frame["diagnosis"]
    frame["label"] = frame["label_name"].map({c: k for k, c in enumerate(HAM_CLASSES)}).astype(int)
    frame["target"] = (frame["label_name"] == "mel").astype(int)
    folders = [root / "HAM10000_images_part_1", root / "HAM10000_images_part_2"]
    frame["path"] = [_find_image(folders, i) for i in frame["image_id"]]
    masks = root / HAM_MASKS
    frame["mask_path"] = [str(masks / f"{i}_segmentation.png") if masks.is_dir() else "" for i in frame["image_id"]]
    frame["official_split"] = ""
    return _finish(frame, file, report, "ham10000", "lesion")


def _read_isic2017_part(root: Path, split: str, report: QualityReport) -> pd.DataFrame | None:
    """One ISIC 2017 partition: part 3 labels, data-folder metadata, part 1 masks (None if absent)."""
    truth, data, masks = ISIC2017_PARTS[split]
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
    frame = _locate(pd.DataFrame({
        "image_id": merged["image_id"].astype(str), "group_id": merged["image_id"].astype(str),
        "sex": merged["sex"].replace("unknown", np.nan),
        "age": pd.to_numeric(merged["age_approximate"], errors="coerce"), "site": "unknown", "official_split": split,
    }), file)
    valid = mel.isin([0, 1]) & sk.isin([0, 1]) & (mel + sk <= 1)
    frame = _drop_rows(frame, ~valid, file, report, "unknown label",
                       lambda r: f"melanoma={mel[r.name]!r}, seborrheic_keratosis={sk[r.name]!r}")
    frame["label"] = np.where(mel[frame.index] == 1, 1, np.where(sk[frame.index] == 1, 2, 0))
    frame["path"] = [_find_image([root / data], i) for i in frame["image_id"]]
    frame["mask_path"] = [str(root / masks / f"{i}_segmentation.png") for i in frame["image_id"]]
    return frame


def load_isic2017(root: Path, report: QualityReport) -> pd.DataFrame:
    """ISIC 2017 part 3 (melanoma / seborrheic keratosis / nevus), each partition present, with part 1 masks."""
    parts = [p for p in (_read_isic2017_part(root, s, report) for s in ISIC2017_PARTS) if p is not None]
    frame = pd.concat(parts, ignore_index=True)
    frame["label"] = frame["label"].astype(int)
    frame["label_name"] = [ISIC2017_CLASSES[k] for k in frame["label"]]
    frame["target"] = (frame["label"] == 1).astype(int)
    frame["diagnosis"] = frame["label_name"]
    return _finish(frame, root / ISIC2017_PARTS["train"][0], report, "isic2017", "image")


_BUSI_NAME = re.compile(r"^(?P<cls>benign|malignant|normal) \((?P<num>\d+)\)$")


def load_busi(root: Path, report: QualityReport) -> pd.DataFrame:
    """BUSI: class folders of PNGs; `X_mask.png` and `X_mask_1.png`... are merged into one mask."""
    base = root / "Dataset_BUSI_with_GT" if (root / "Dataset_BUSI_with_GT").is_dir() else root
    rows = []
    for cls in BUSI_CLASSES:
        folder = base / cls
        if not folder.is_dir():
            raise DataError(f"{base}: class folder '{cls}/' is missing (expected {', '.join(BUSI_CLASSES)})")
        for path in sorted(folder.glob("*.png")):
            if "_mask" in path.stem:
                continue
            match = _BUSI_NAME.match(path.stem)
            image_id = f"{match['cls']}_{int(match['num']):04d}" if match else path.stem.replace(" ", "_")
            if match and match["cls"] != cls:
                report.add(path, None, image_id, "unknown label", "excluded", f"file named {match['cls']} in {cls}/")
                continue
            masks = sorted(folder.glob(f"{glob_escape(path.stem)}_mask*.png"))
            if not masks:
                report.add(path, None, image_id, "missing mask", "kept", "no *_mask.png beside the image")
            elif len(masks) > 1:
                report.add(path, None, image_id, "several masks", "merged", f"{len(masks)} masks merged (union)")
            rows.append({"image_id": image_id, "path": str(path), "group_id": image_id, "label_name": cls,
                         "label": BUSI_CLASSES.index(cls), "target": int(cls == "malignant"), "sex": "female",
                         "age": np.nan, "site": "breast", "diagnosis": cls,
                         "mask_path": ";".join(str(m) for m in masks)})
    if not rows:
        raise DataError(f"{base}: no images found in {', '.join(BUSI_CLASSES)}/")
    frame = pd.DataFrame(rows)
    frame["age_imputed"] = True
    frame["group_kind"] = "image"
    frame["source"] = "busi"
    frame["official_split"] = ""
    return _drop_repeated_ids(frame, base, report)


def glob_escape(text: str) -> str:
    return re.sub(r"([\[\]?*])", r"[\1]", text)


LOADERS: dict[str, Callable[[Path, QualityReport], pd.DataFrame]] = {
    "isic2020": load_isic2020, "isic2019": load_isic2019, "isic2018": load_isic2018, "ham10000": load_ham10000,
    "isic2017": load_isic2017, "busi": load_busi,
}


def inspect_image(path: str) -> tuple[str | None, str | None, tuple[int, int] | None, str | None]:
    """(md5 of the bytes, error message, displayed (width, height), perceptual hash) for one image file,
    decoding all of it (at a reduced JPEG scale) and applying its EXIF orientation."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None, "file not found", None, None
    except OSError as err:
        return None, f"cannot read: {err}", None, None
    digest = hashlib.md5(data).hexdigest()
    try:
        with Image.open(path) as im:
            width, height = im.size
            im.draft("RGB", (256, 256))
            im.load()
            shown = ImageOps.exif_transpose(im)
            if shown.size != im.size:  # turned by 90 degrees
                width, height = height, width
            return digest, None, (width, height), image_hash(shown)
    except Exception as err:  # PIL raises many types for corrupt or truncated files
        return digest, f"unreadable image: {err}", None, None


def check_images(frame: pd.DataFrame, report: QualityReport, workers: int = 0) -> pd.DataFrame:
    """Exclude missing, unreadable, byte-duplicate and near-duplicate images (see near_duplicates.kept_rows; the
    pairs found go to report.near_duplicates); drop mask paths whose files are missing."""
    results = parallel_map(inspect_image, frame["path"].tolist(), workers, "checking images", chunksize=32,
                           min_items=64)
    frame = frame.copy()
    frame["_md5"] = [r[0] for r in results]
    frame["_hash"] = [r[3] for r in results]
    errors = pd.Series([r[1] for r in results], index=frame.index)
    for idx in frame.index[errors.notna()]:
        check = "missing image" if errors[idx] == "file not found" else "corrupt image"
        report.add(frame.at[idx, "path"], None, frame.at[idx, "image_id"], check, "excluded", errors[idx])
    frame = frame.loc[errors.isna()]

    frame = exclude_duplicates(frame.drop(columns=["_md5", "_hash"]), frame["_hash"].tolist(), frame["_md5"].tolist(),
                               report)

    for idx in frame.index:
        paths = [p for p in str(frame.at[idx, "mask_path"]).split(";") if p]
        if paths and not all(Path(p).is_file() for p in paths):
            report.add(frame.at[idx, "path"], None, frame.at[idx, "image_id"], "missing mask", "kept",
                       "image kept without a mask")
            frame.at[idx, "mask_path"] = ""
    return frame


def load_source(source: str, root: str | os.PathLike[str], workers: int = 0) -> tuple[pd.DataFrame, QualityReport]:
    """Read one dataset folder into the canonical manifest, with the quality report of what changed."""
    if source not in LOADERS:
        raise DataError(f"unknown data source '{source}' (known: {', '.join(LOADERS)})")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist")
    check_layout(source, root)
    report = QualityReport()
    frame = LOADERS[source](root, report)
    report.partitions_read = partition_counts(frame)
    frame = check_images(frame, report, workers)
    return to_manifest(frame), report
