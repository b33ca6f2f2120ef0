"""A prepared dataset on disk: manifest with study splits, quality report, summary and image cache.

`prepare` is what `derm-nb data` and the `00_data` notebook run; `load_prepared` is how every
later notebook reads the result, so no chapter repeats the loading logic.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

from derm_nb.artifacts import read_json, write_csv, write_json, write_parquet
from derm_nb.data.cache import build_cache, cache_paths
from derm_nb.data.errors import DataError
from derm_nb.data.manifest import MANIFEST_SCHEMA
from derm_nb.data.quality import REPORT_COLUMNS
from derm_nb.data.sources import CLASSES, load_source
from derm_nb.data.splits import add_study_splits, assert_no_leakage, split_column, split_schemes


@dataclass
class Prepared:
    """A dataset ready for the model notebooks."""

    folder: Path
    manifest: pd.DataFrame
    quality: pd.DataFrame
    summary: dict

    @property
    def classes(self) -> list[str]:
        return list(self.summary["classes"])

    @property
    def cache_dir(self) -> Path:
        return self.folder / "cache" / str(self.summary["cache_size"])

    def image_paths(self, frame: pd.DataFrame | None = None) -> list[Path]:
        frame = self.manifest if frame is None else frame
        return [cache_paths(self.cache_dir, i)[0] for i in frame["image_id"]]

    def split(self, scheme: str, name: str) -> pd.DataFrame:
        """Rows of one split (`train`, `val`, `test`) of one study's scheme."""
        column = split_column(scheme)
        return self.manifest[self.manifest[column] == name]

    def oracle(self) -> pd.DataFrame | None:
        """The synthetic generator's true probabilities (image_id, p_true, latent attributes), if any."""
        path = self.summary.get("oracle_file")
        return pd.read_csv(path) if path and Path(path).is_file() else None


def oracle_auc(prepared: Prepared, frame: pd.DataFrame) -> float | None:
    """The best AUC any model could reach on `frame`: the true probability's AUC; None for real data."""
    oracle = prepared.oracle()
    if oracle is None or frame["target"].nunique() < 2:
        return None
    merged = frame[["image_id", "target"]].merge(oracle[["image_id", "p_true"]], on="image_id", how="left")
    return float(roc_auc_score(merged["target"], merged["p_true"]))


def prepare(source: str, root: str | os.PathLike[str], out: str | os.PathLike[str],
            schemes: Mapping[str, Mapping[str, float]], seed: int = 0, cache_size: int = 256, workers: int = 0,
            oracle_file: str | None = None) -> Prepared:
    """Load a source into the manifest, add each split scheme ({name: {split: ratio}}, e.g. every
    study's, asserting no leakage), and build the cache."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest, report = load_source(source, root, workers)
    if manifest.empty:
        raise DataError(f"{root}: no usable images left after the quality checks\n{report}")
    stratify = "label"
    manifest = add_study_splits(manifest, schemes, seed, stratify=stratify)
    for scheme in schemes:
        assert_no_leakage(manifest, split_column(scheme))
    quality = report.frame()
    write_parquet(out / "manifest.parquet", manifest)
    write_csv(out / "quality_report.csv", quality)
    cache = build_cache(manifest, out / "cache" / str(cache_size), cache_size, workers)
    summary = {
        "source": source, "root": str(Path(root).resolve()), "seed": seed, "cache_size": cache_size,
        "classes": CLASSES[source], "n_images": len(manifest), "n_groups": int(manifest["group_id"].nunique()),
        "group_kind": str(manifest["group_kind"].iloc[0]), "n_excluded": int((quality["action"] == "excluded").sum()),
        "class_counts": manifest["label_name"].value_counts().to_dict(),
        "cache_written": int((cache["status"] == "written").sum()),
        "oracle_file": oracle_file,
    }
    write_json(out / "summary.json", summary)
    return Prepared(out, manifest, quality, summary)


def load_prepared(folder: str | os.PathLike[str]) -> Prepared:
    """Read what `prepare` wrote; a clear error if `00_data` has not run."""
    folder = Path(folder)
    if not (folder / "summary.json").is_file():
        raise DataError(f"{folder}: no prepared dataset here; run the 00_data notebook (or `derm-nb data`) first")
    manifest = pd.read_parquet(folder / "manifest.parquet")
    manifest = manifest.astype({k: v for k, v in MANIFEST_SCHEMA.items()})
    quality = pd.read_csv(folder / "quality_report.csv") if (folder / "quality_report.csv").stat().st_size else \
        pd.DataFrame(columns=REPORT_COLUMNS)
    return Prepared(folder, manifest, quality, read_json(folder / "summary.json"))


def resolve_source(source: str, root: str, preset: str, raw_dir: str | os.PathLike[str],
                   **synth: object) -> tuple[str, Path, str | None]:
    """(loader name, dataset folder, oracle file) for a notebook's data parameters.

    `source="synthetic"` writes the generator's `preset` layout under `raw_dir` and then reads it back
    through the real loader, so the synthetic path exercises the same code as real data.
    """
    if source != "synthetic":
        if not root:
            raise DataError(f"data source '{source}' needs a data root (the dataset folder)")
        return source, Path(root), None
    from derm_nb.data.synthetic import SynthConfig, generate, oracle_path

    folder = generate(SynthConfig(preset=preset, **synth), Path(raw_dir) / preset)
    return preset, folder, str(oracle_path(folder))


def split_summary(manifest: pd.DataFrame) -> pd.DataFrame:
    """Images per class in every split of every study scheme (rows: scheme x split)."""
    rows = []
    for scheme in split_schemes(manifest):
        counts = manifest.groupby([split_column(scheme), "label_name"]).size().unstack(fill_value=0)
        for split, row in counts.iterrows():
            rows.append({"scheme": scheme, "split": split, "images": int(row.sum()), **row.to_dict(),
                         "groups": int(manifest.loc[manifest[split_column(scheme)] == split, "group_id"].nunique())})
    return pd.DataFrame(rows).set_index(["scheme", "split"]).fillna(0)
