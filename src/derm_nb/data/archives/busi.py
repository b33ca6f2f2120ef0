"""BUSI (breast ultrasound): the loader, its synthetic preset and its record.

Dataset_BUSI_with_GT/{benign,malignant,normal}/ (or the class folders at the root): the class is the
folder; `X_mask.png` and `X_mask_1.png`... are merged into one mask. No ids: grouped by image.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from derm_nb.data.archive import Manual, Scale, Source, TargetClasses
from derm_nb.data.errors import DataError
from derm_nb.data.quality import QualityReport
from derm_nb.data.reading import drop_repeated_ids, glob_escape
from derm_nb.data.synth_kit import SynthConfig, SynthPreset, case_sizes, shares

CLASSES = ("benign", "malignant", "normal")
_NAME = re.compile(r"^(?P<cls>benign|malignant|normal) \((?P<num>\d+)\)$")


def load_busi(root: Path, report: QualityReport) -> pd.DataFrame:
    """BUSI: class folders of PNGs; `X_mask.png` and `X_mask_1.png`... are merged into one mask."""
    base = root / "Dataset_BUSI_with_GT" if (root / "Dataset_BUSI_with_GT").is_dir() else root
    rows = []
    for cls in CLASSES:
        folder = base / cls
        if not folder.is_dir():
            raise DataError(f"{base}: class folder '{cls}/' is missing (expected {', '.join(CLASSES)})")
        for path in sorted(folder.glob("*.png")):
            if "_mask" in path.stem:
                continue
            match = _NAME.match(path.stem)
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
                         "label": CLASSES.index(cls), "target": int(cls == "malignant"), "sex": "female",
                         "age": np.nan, "site": "breast", "diagnosis": cls,
                         "mask_path": ";".join(str(m) for m in masks)})
    if not rows:
        raise DataError(f"{base}: no images found in {', '.join(CLASSES)}/")
    frame = pd.DataFrame(rows)
    frame["age_imputed"] = True
    frame["group_kind"] = "image"
    frame["source"] = "busi"
    frame["official_split"] = ""
    return drop_repeated_ids(frame, base, report)


# ---------------------------------------------------------------------------------------------
# Synthetic preset: Dataset_BUSI_with_GT/{benign,malignant,normal}/ with *_mask.png; cases

COUNTS = (437, 210, 133)  # BUSI, 780 images
MALIGNANT_W = {"irregularity": 1.4, "margin": 1.6, "orientation": 1.0, "shadowing": 1.0, "echo": 0.5,
               "size": 0.4}


def _ultrasound_attributes(rng: np.random.Generator, df: pd.DataFrame, cfg: SynthConfig,
                           mix: np.ndarray) -> pd.DataFrame:
    """Ultrasound latents: whether there is a mass (exactly the normal share has none), its shape and echo."""
    n = len(df)
    mass = np.ones(n, bool)
    mass[rng.permutation(n)[: int(round(mix[CLASSES.index("normal")] * n))]] = False
    multi = np.zeros(n, bool)
    tumours = np.flatnonzero(mass)
    if len(tumours) >= 2 and cfg.multi_mass_fraction > 0:
        multi[rng.choice(tumours, max(1, int(round(cfg.multi_mass_fraction * len(tumours)))), replace=False)] = True
    return pd.DataFrame({
        "irregularity": rng.beta(2, 4, n), "margin": rng.beta(2, 4, n), "orientation": rng.beta(2, 5, n),
        "shadowing": rng.beta(2, 4, n), "echo": rng.beta(2, 4, n), "size": rng.beta(2.5, 3, n),
        "mass": mass, "multi": multi,
    }, index=df.index)


def _layout_busi(meta: pd.DataFrame, out: Path, cfg: SynthConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Dataset_BUSI_with_GT/<class>/<class> (k).png with `_mask.png` (and `_mask_1.png` for a second mass)."""
    base = out / "Dataset_BUSI_with_GT"
    cls = pd.Series([CLASSES[k] for k in meta["label"]], index=meta.index)
    num = cls.groupby(cls).cumcount() + 1
    meta["image"] = [f"{c} ({k})" for c, k in zip(cls, num)]
    meta["image_id"] = [f"{c}_{k:04d}" for c, k in zip(cls, num)]  # the loader's id for `benign (1).png`
    meta["path"] = [str(base / c / f"{name}.png") for c, name in zip(cls, meta["image"])]
    meta["masks"] = [tuple(str(base / c / f"{name}_mask{suffix}.png") for suffix in ("", "_1")[: 1 + int(multi)])
                     for c, name, multi in zip(cls, meta["image"], meta["multi"])]
    meta["superpixels"] = ""
    for c in CLASSES:  # the loader needs every class folder, even an empty one
        (base / c).mkdir(parents=True, exist_ok=True)
    return meta


def _write_nothing(meta: pd.DataFrame, out: Path, cfg: SynthConfig, rng: np.random.Generator) -> None:
    """BUSI has no metadata file: the class is the folder."""


def _busi_allowed(df: pd.DataFrame) -> np.ndarray:
    """A case with a mass is benign or malignant; one without is normal."""
    mass = df["mass"].to_numpy(bool)
    return np.stack([mass, mass, ~mass], axis=1)


MANUAL = Manual(
    "Kaggle, with your own Kaggle credentials (~/.kaggle/kaggle.json):\n"
    "  kaggle datasets download aryashah2k/breast-ultrasound-images-dataset",
    "DIR/Dataset_BUSI_with_GT/benign/     'benign (1).png', 'benign (1)_mask.png', 'benign (1)_mask_1.png', ...\n"
    "DIR/Dataset_BUSI_with_GT/malignant/  'malignant (1).png', 'malignant (1)_mask.png', ...\n"
    "DIR/Dataset_BUSI_with_GT/normal/     'normal (1).png', 'normal (1)_mask.png', ...\n"
    "(unzip the Kaggle archive into DIR; the class folders directly in DIR are read too)")

SOURCE = Source(
    name="busi", title="BUSI", loader=load_busi, classes=CLASSES,
    targets={"malignant": TargetClasses(("malignant",))},
    layout=tuple((f"Dataset_BUSI_with_GT/{c}/", f"{c}/") for c in CLASSES),
    files="`Dataset_BUSI_with_GT/{benign,malignant,normal}/`, `X_mask.png` (+ `X_mask_1.png`, merged)",
    grouping="image", masks="yes",
    synthetic=SynthPreset(CLASSES, shares(COUNTS), ("malignant",), ({}, MALIGNANT_W, {}), "case", case_sizes,
                          _ultrasound_attributes, _layout_busi, _write_nothing, look="ultrasound", allowed=_busi_allowed),
    published={"malignant": Scale(780, 780, 210, {"benign": 437, "malignant": 210, "normal": 133})},
    manual=MANUAL,
)
