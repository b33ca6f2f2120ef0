"""What every archive loader shares: reading a metadata CSV, finding an image, and the stated rules
for bad rows (each change listed in the quality report with its file and line).

Stated rules: missing sex -> 'unknown'; missing site -> 'unknown'; missing age -> the dataset's median
age (age_imputed=True); missing group id -> the image id; unknown or invalid label -> row excluded;
repeated image id -> later rows excluded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from derm_nb.data.errors import DataError
from derm_nb.data.quality import QualityReport

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def read_csv(path: Path) -> pd.DataFrame:
    """A metadata CSV, or DataError naming the file when it is missing or unparsable."""
    if not path.is_file():
        raise DataError(f"{path}: metadata file not found")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot be parsed as CSV: {err}") from err


def find_image(folders: list[Path], stem: str) -> str:
    """The first `stem` image (any of IMAGE_SUFFIXES) in `folders`; else a path check_images reports missing."""
    for folder in folders:
        for suffix in IMAGE_SUFFIXES:
            candidate = folder / f"{stem}{suffix}"
            if candidate.is_file():
                return str(candidate)
    return str(folders[0] / f"{stem}.jpg")  # reported as missing by check_images


def csv_row(index: int) -> int:
    """The 1-based line in the CSV of a frame's row `index` (after the header)."""
    return int(index) + 2  # 1-based line number in the CSV, after the header


def locate(frame: pd.DataFrame, file: Path) -> pd.DataFrame:
    """`frame` (indexed as its CSV) with each row's file and line, for reports after several files are concatenated."""
    return frame.assign(_file=str(file), _line=[csv_row(i) for i in frame.index])


def _where(frame: pd.DataFrame, idx: object, file: Path) -> tuple[object, int]:
    if "_file" in frame.columns:
        return frame.at[idx, "_file"], int(frame.at[idx, "_line"])
    return file, csv_row(idx)


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


def drop_rows(frame: pd.DataFrame, bad: pd.Series, file: Path, report: QualityReport, check: str,
              detail: Callable[[pd.Series], str]) -> pd.DataFrame:
    """`frame` without the `bad` rows, each reported as excluded under `check` with its `detail`."""
    for idx in frame.index[bad]:
        report.add(*_where(frame, idx, file), frame.at[idx, "image_id"], check, "excluded", detail(frame.loc[idx]))
    return frame.loc[~bad]


def drop_repeated_ids(frame: pd.DataFrame, file: Path, report: QualityReport) -> pd.DataFrame:
    """`frame` without the later rows of a repeated image id (each reported)."""
    repeated = frame["image_id"].duplicated(keep="first")
    return drop_rows(frame, repeated, file, report, "repeated image id", lambda r: "an earlier row has this id")


def finish(frame: pd.DataFrame, file: Path, report: QualityReport, source: str, group_kind: str) -> pd.DataFrame:
    """A loader's last step: repeated ids dropped, demographics imputed, source, group kind and text columns set."""
    frame = drop_repeated_ids(frame, file, report)
    frame = _impute_demographics(frame, file, report)
    if "group_kind" not in frame:
        frame["group_kind"] = group_kind
    frame["source"] = source
    for column in ("diagnosis", "mask_path"):
        if column not in frame:
            frame[column] = ""
        frame[column] = frame[column].fillna("").astype(str)
    return frame.drop(columns=["_file", "_line"], errors="ignore")


def onehot_labels(frame: pd.DataFrame, onehot: pd.DataFrame, classes: list[str], file: Path,
                  report: QualityReport) -> pd.DataFrame:
    """Exclude rows without exactly one 1.0; set label (column index) and label_name (column name)."""
    onehot = onehot[classes].apply(pd.to_numeric, errors="coerce")
    valid = onehot.isin([0.0, 1.0]).all(axis=1) & onehot.sum(axis=1).eq(1)
    frame = drop_rows(frame, ~valid, file, report, "unknown label", lambda r: "one-hot row does not have exactly one 1.0")
    frame["label"] = onehot.loc[frame.index].to_numpy().argmax(axis=1)
    frame["label_name"] = [classes[k] for k in frame["label"]]
    return frame


def pick_file(root: Path, names: tuple[str, ...], report: QualityReport) -> Path:
    """The first of `names` present under `root`; the others present are reported as ignored."""
    present = [root / n for n in names if (root / n).is_file()]
    if not present:
        return root / names[-1]  # read_csv names it as not found
    for other in present[1:]:
        report.add(other, None, None, "several ground truth files", "ignored", f"{present[0].name} is read instead")
    return present[0]


def glob_escape(text: str) -> str:
    """`text` with glob's special characters bracketed, to match a file name literally."""
    return re.sub(r"([\[\]?*])", r"[\1]", text)
