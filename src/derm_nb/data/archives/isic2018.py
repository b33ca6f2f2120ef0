"""ISIC 2018 Task 3: the loader, its synthetic preset and its record.

ISIC2018_Task3_{Training,Validation,Test}_GroundTruth/ and _Input/ as the archive ships them (the
official partitions), LesionGroupings.csv (training images grouped by lesion; validation and test by
image), and HAM10000's segmentations for the training images when present.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from derm_nb.artifacts import write_atomic, write_csv
from derm_nb.data.archive import ArchiveFile, Remote, Scale, Source, TargetClasses
from derm_nb.data.archives.ham10000 import MASKS
from derm_nb.data.manifest import require_columns
from derm_nb.data.quality import QualityReport
from derm_nb.data.reading import find_image, finish, locate, onehot_labels, read_csv
from derm_nb.data.synth_kit import (
    SKIN_WEIGHTS,
    SynthConfig,
    SynthPreset,
    image_files,
    lesion_sizes,
    one_hot,
    random_ids,
    sequential_ids,
    shares,
    skin_attributes,
)

CLASSES = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
MALIGNANT = ("MEL", "BCC", "AKIEC")
T3 = "ISIC2018_Task3"
PARTS = {"train": f"{T3}_Training", "val": f"{T3}_Validation", "test": f"{T3}_Test"}


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
    name = PARTS[split]
    file, images = root / f"{name}_GroundTruth" / f"{name}_GroundTruth.csv", root / f"{name}_Input"
    if split != "train" and not file.is_file():
        if images.is_dir():
            report.add(images, None, None, "missing ground truth", "excluded", f"{file.name} not found: folder not read")
        return None
    raw = read_csv(file)
    require_columns(raw, file, ["image", *CLASSES])
    frame = locate(pd.DataFrame({"image_id": raw["image"].astype(str), "sex": np.nan, "age": np.nan, "site": np.nan,
                                 "official_split": split}), file)
    frame = onehot_labels(frame, raw, list(CLASSES), file, report)
    if split == "train":
        frame["group_id"], frame["group_kind"] = _isic2018_lesions(root, frame["image_id"], report), "lesion"
    else:
        frame["group_id"], frame["group_kind"] = frame["image_id"], "image"  # no groupings for val / test
    masks = root / MASKS  # HAM10000's segmentations cover the training images only
    use_masks = split == "train" and masks.is_dir()
    frame["mask_path"] = [str(masks / f"{i}_segmentation.png") if use_masks else "" for i in frame["image_id"]]
    frame["path"] = [find_image([images], i) for i in frame["image_id"]]
    return frame


def load_isic2018(root: Path, report: QualityReport) -> pd.DataFrame:
    """ISIC 2018 Task 3: training (lesion groups), validation and test partitions as the archive ships them."""
    parts = [p for p in (_read_isic2018_part(root, s, report) for s in PARTS) if p is not None]
    frame = pd.concat(parts, ignore_index=True)
    frame["diagnosis"] = frame["label_name"]
    frame["target"] = frame["label_name"].isin(MALIGNANT).astype(int)
    truth = PARTS["train"]
    return finish(frame, root / f"{truth}_GroundTruth" / f"{truth}_GroundTruth.csv", report, "isic2018", "lesion")


# ---------------------------------------------------------------------------------------------
# Synthetic preset: Training / Validation / Test Input + GroundTruth, LesionGroupings, masks; lesions

COUNTS = (1113, 6705, 514, 327, 1099, 115, 142)  # HAM10000, 10015 images
CONFIRM_TYPES = ("histopathology", "serial imaging showing no change", "single image expert consensus",
                 "confocal microscopy with consensus dermoscopy")
NAMES = {"train": "Training", "val": "Validation", "test": "Test"}


def _layout_isic2018(meta: pd.DataFrame, out: Path, cfg: SynthConfig, rng: np.random.Generator) -> pd.DataFrame:
    """ISIC2018_Task3_<Part>_Input/<id>.jpg numbered from ISIC_0024306; HAM10000 masks for training images."""
    meta["image"] = sequential_ids(meta, 24306)
    lesions = random_ids(rng, int(meta["patient"].max()) + 1, "HAM_", 7)
    meta["lesion_id"] = [lesions[g] for g in meta["patient"]]
    return image_files(meta, {p: out / f"ISIC2018_Task3_{n}_Input" for p, n in NAMES.items()},
                       {"train": out / MASKS})


LICENSE = ("Synthetic images written by derm_nb.data.synthetic in the layout of the ISIC 2018 Task 3 archive.\n"
           "The real archive's images are licensed CC BY-NC 4.0; these are generated and carry no patient data.\n")
ATTRIBUTION = ("Layout after: Tschandl P., Rosendahl C., Kittler H. The HAM10000 dataset. Sci. Data 5, 180161 (2018);\n"
               "Codella N. et al. Skin Lesion Analysis Toward Melanoma Detection 2018, arXiv:1902.03368.\n"
               "No image here comes from those datasets.\n")


def _write_isic2018(meta: pd.DataFrame, out: Path, cfg: SynthConfig, rng: np.random.Generator) -> None:
    """Task 3 ground truth per partition, LICENSE/ATTRIBUTION files, and the training lesion groupings."""
    for part, name in NAMES.items():
        rows = meta[meta["partition"] == part].sort_values("image")
        truth = out / f"ISIC2018_Task3_{name}_GroundTruth"
        write_csv(truth / f"ISIC2018_Task3_{name}_GroundTruth.csv", one_hot(rows, CLASSES))
        for folder in (truth, out / f"ISIC2018_Task3_{name}_Input"):
            for file, text in (("LICENSE.txt", LICENSE), ("ATTRIBUTION.txt", ATTRIBUTION)):
                write_atomic(folder / file, lambda p, t=text: p.write_text(t, encoding="utf-8"))
    train = meta[meta["partition"] == "train"].sort_values("image")
    # Malignant lesions are all histopathology-confirmed; nevi mostly by follow-up, as in HAM10000.
    confirm_p = {"MEL": [1, 0, 0, 0], "BCC": [1, 0, 0, 0], "AKIEC": [1, 0, 0, 0], "NV": [0.35, 0.55, 0.09, 0.01]}
    u = rng.random(int(meta["patient"].max()) + 1)
    confirm = [CONFIRM_TYPES[int(np.searchsorted(np.cumsum(confirm_p.get(CLASSES[y], [0.55, 0.05, 0.35, 0.05])),
                                                 u[g] * 0.999999))] for g, y in zip(train["patient"], train["label"])]
    write_csv(out / "ISIC2018_Task3_Training_LesionGroupings.csv",
              pd.DataFrame({"image": train["image"], "lesion_id": train["lesion_id"], "diagnosis_confirm_type": confirm}))


def _remote() -> Remote:
    """Task 3's input and ground-truth zips per partition, and the training lesion groupings."""
    images = {"Training": 10015, "Validation": 193, "Test": 1512}
    files = []
    for (name, count), part in zip(images.items(), ("training", "validation", "test")):
        files += [ArchiveFile(f"2018/{T3}_{name}_Input.zip", part, images=count),
                  ArchiveFile(f"2018/{T3}_{name}_GroundTruth.zip", part)]
    return Remote((*files[:2], ArchiveFile(f"2018/{T3}_Training_LesionGroupings.csv", "training"), *files[2:]))


SOURCE = Source(
    name="isic2018", title="ISIC 2018 Task 3", loader=load_isic2018, classes=CLASSES,
    targets={"melanoma": TargetClasses(("MEL",)), "malignant": TargetClasses(MALIGNANT),
             "melanoma_vs_nevus": TargetClasses(("MEL",), ("MEL", "NV"))},
    layout=((f"{T3}_Training_GroundTruth/{T3}_Training_GroundTruth.csv",), (f"{T3}_Training_Input/",)),
    files="`ISIC2018_Task3_Training_GroundTruth/…GroundTruth.csv`, `ISIC2018_Task3_Training_Input/`, "
          "`ISIC2018_Task3_Training_LesionGroupings.csv`; the Validation and Test folders when present",
    grouping="lesion", masks=f"HAM10000's `{MASKS}/` when present",
    synthetic=SynthPreset(CLASSES, shares(COUNTS), MALIGNANT, tuple(SKIN_WEIGHTS[c] for c in CLASSES), "lesion",
                          lesion_sizes, skin_attributes, _layout_isic2018, _write_isic2018,
                          partitions=shares((10015, 193, 1512))),
    published={"malignant": Scale(10015, 7470, 1954)},
    remote=_remote(),
)
