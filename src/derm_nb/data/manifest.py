"""The canonical manifest every loader yields: one typed row per usable image."""

from __future__ import annotations

import pandas as pd

from derm_nb.data.errors import DataError, MissingColumnError

# name -> pandas dtype; order is the column order on disk.
MANIFEST_SCHEMA: dict[str, str] = {
    "image_id": "string",
    "path": "string",
    "group_id": "string",      # patient id, else lesion id, else image id (see group_kind)
    "group_kind": "string",
    "label": "int64",          # class index into the source's class list
    "label_name": "string",
    "target": "int64",         # 1 = melanoma / malignant, for the binary studies
    "sex": "string",           # male / female / unknown
    "age": "float64",          # imputed where missing (age_imputed)
    "age_imputed": "bool",
    "site": "string",
    "diagnosis": "string",
    "mask_path": "string",     # ';'-separated when several masks are to be merged; '' when none
    "source": "string",
    "official_split": "string",  # train / val / test where the archive ships partitions (ISIC 2017, 2018); '' otherwise
}


def require_columns(frame: pd.DataFrame, path: object, columns: list[str]) -> None:
    """Fail with the file and column name when a required column is missing."""
    for column in columns:
        if column not in frame.columns:
            raise MissingColumnError(path, column, list(frame.columns))


def to_manifest(frame: pd.DataFrame) -> pd.DataFrame:
    """Order, type and check a loader's output against `MANIFEST_SCHEMA`."""
    missing = [c for c in MANIFEST_SCHEMA if c not in frame.columns]
    if missing:
        raise DataError(f"manifest is missing columns: {', '.join(missing)}")
    out = frame[list(MANIFEST_SCHEMA)].astype(MANIFEST_SCHEMA).reset_index(drop=True)
    if out["image_id"].duplicated().any():
        dup = out.loc[out["image_id"].duplicated(), "image_id"].iloc[0]
        raise DataError(f"manifest has duplicate image_id '{dup}'")
    return out


def validate_manifest(frame: pd.DataFrame) -> None:
    """Check a manifest read back from disk has every column, typed as the schema says."""
    for column, dtype in MANIFEST_SCHEMA.items():
        if column not in frame.columns:
            raise DataError(f"manifest is missing column '{column}'")
        if str(frame[column].dtype) != dtype:
            raise DataError(f"manifest column '{column}' has dtype {frame[column].dtype}, expected {dtype}")
