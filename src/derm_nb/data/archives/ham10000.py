"""HAM10000: the loader and its record (no synthetic preset: ISIC 2018 Task 3's preset writes its images).

HAM10000_metadata.csv (dx is the label, lesion_id the group); images in HAM10000_images_part_1/ and
_part_2/; the lesion segmentations (HAM10000_segmentations_lesion_tschandl/) when present.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from derm_nb.data.archive import Manual, Source, TargetClasses
from derm_nb.data.manifest import require_columns
from derm_nb.data.quality import QualityReport
from derm_nb.data.reading import drop_rows, find_image, finish, read_csv

CLASSES = ("nv", "mel", "bkl", "bcc", "akiec", "vasc", "df")
MASKS = "HAM10000_segmentations_lesion_tschandl"  # also ISIC 2018 Task 3's training masks


def load_ham10000(root: Path, report: QualityReport) -> pd.DataFrame:
    """HAM10000: metadata CSV (dx is the label, lesion_id the group), images in two part folders."""
    file = root / "HAM10000_metadata.csv"
    raw = read_csv(file)
    require_columns(raw, file, ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"])
    frame = pd.DataFrame({"image_id": raw["image_id"].astype(str), "group_id": raw["lesion_id"], "sex": raw["sex"],
                          "age": raw["age"], "site": raw["localization"], "diagnosis": raw["dx"]})
    bad = ~raw["dx"].isin(CLASSES)
    frame = drop_rows(frame, bad, file, report, "unknown label",
                      lambda r: f"dx = {r['diagnosis']!r}, expected one of {', '.join(CLASSES)}")
    frame["label_name"] = frame["diagnosis"]
    frame["label"] = frame["label_name"].map({c: k for k, c in enumerate(CLASSES)}).astype(int)
    frame["target"] = (frame["label_name"] == "mel").astype(int)
    folders = [root / "HAM10000_images_part_1", root / "HAM10000_images_part_2"]
    frame["path"] = [find_image(folders, i) for i in frame["image_id"]]
    masks = root / MASKS
    frame["mask_path"] = [str(masks / f"{i}_segmentation.png") if masks.is_dir() else "" for i in frame["image_id"]]
    frame["official_split"] = ""
    return finish(frame, file, report, "ham10000", "lesion")


MANUAL = Manual(
    "Harvard Dataverse, the HAM10000 dataset page (Tschandl et al. 2018): https://doi.org/10.7910/DVN/DBW86T\n"
    "  (download its files there; the page states the terms of use)",
    "DIR/HAM10000_metadata.csv             lesion_id, image_id, dx, dx_type, age, sex, localization (comma-separated)\n"
    "DIR/HAM10000_images_part_1/           the JPEGs of HAM10000_images_part_1.zip\n"
    "DIR/HAM10000_images_part_2/           the JPEGs of HAM10000_images_part_2.zip\n"
    f"DIR/{MASKS}/   optional: the lesion masks, *_segmentation.png")

SOURCE = Source(
    name="ham10000", title="HAM10000", loader=load_ham10000, classes=CLASSES,
    targets={"melanoma": TargetClasses(("mel",)), "malignant": TargetClasses(("mel", "bcc", "akiec")),
             "melanoma_vs_nevus": TargetClasses(("mel",), ("mel", "nv"))},
    layout=(("HAM10000_metadata.csv",), ("HAM10000_images_part_1/", "HAM10000_images_part_2/")),
    files="`HAM10000_metadata.csv`, `HAM10000_images_part_1/`, `_part_2/`",
    grouping="lesion", masks=f"`{MASKS}/` when present",
    manual=MANUAL,
)
