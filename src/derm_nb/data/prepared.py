"""A prepared dataset on disk: manifest with study splits, quality report, summary and image cache.

`prepare` is what `derm-nb data` and the `00_data` notebook run; `load_prepared` is how every
later notebook reads the result, so no chapter repeats the loading logic.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from derm_nb.artifacts import read_json, write_csv, write_json, write_parquet
from derm_nb.data.cache import build_cache, cache_folder, cache_paths, cache_side, short_side
from derm_nb.data.catalog import SYNTHETIC, TARGETS, Dataset, Plan, apply_target, oracle_probability
from derm_nb.data.errors import DataError
from derm_nb.data.manifest import MANIFEST_SCHEMA
from derm_nb.data.near_duplicates import assert_no_cross_split_pairs
from derm_nb.data.quality import NEAR_DUPLICATE_COLUMNS, REPORT_COLUMNS, QualityReport
from derm_nb.data.sample import cap_sample
from derm_nb.data.sources import NAMES, load_source
from derm_nb.data.splits import (
    OFFICIAL_SPLITS,
    add_study_splits,
    assert_no_leakage,
    partition_counts,
    split_column,
    split_schemes,
)


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
        return (self.folder / self.summary["cache_dir"]).resolve()

    @property
    def has_masks(self) -> bool:
        """Whether any image of this dataset has a lesion mask (ISIC 2020, 2019 and 2018 Task 3 have none)."""
        return bool(self.summary.get("has_masks"))

    def describe(self) -> str:
        """'synthetic, in the ISIC 2020 layout' or 'ISIC 2020 from the folder siim' (its name, not the machine's
        path), with the sample drawn (`max_images`) and the target."""
        source = self.summary["source"]
        where = (f"synthetic, in the {NAMES.get(source, source)} layout" if self.summary.get("synthetic")
                 else f"{NAMES.get(source, source)} from the folder {self._folder_name()}")
        sample = self.summary.get("sample")
        if sample:
            where += f", a sample of {sample['n_images']:,} of its {sample['of']:,} images"
        return f"{where}; target: {self.summary['target_description']}"

    def cache_note(self) -> str:
        """What the cache did not do as asked: a smaller size than `cache_size` (the images are smaller), or
        images enlarged to fit it; '' when neither."""
        size, asked = self.summary["cache_size"], self.summary.get("cache_size_asked", self.summary["cache_size"])
        notes = []
        if size < asked:
            notes.append(f"cached at {size} px, not the {asked} px asked for: the images' median shorter side is "
                         f"{self.summary['median_short_side']} px, and enlarging them adds pixels, not resolution")
        if self.summary.get("cache_enlarged"):
            notes.append(f"{self.summary['cache_enlarged']:,} of its {self.summary['n_images']:,} images are smaller "
                         f"than {size} px, and the cache enlarges them")
        return "; ".join(notes)

    def _folder_name(self) -> str:
        return self.summary.get("folder_name") or Path(self.summary["root"]).name

    def image_paths(self, frame: pd.DataFrame | None = None) -> list[Path]:
        frame = self.manifest if frame is None else frame
        return [cache_paths(self.cache_dir, i)[0] for i in frame["image_id"]]

    def mask_paths(self, frame: pd.DataFrame | None = None) -> list[Path | None]:
        """The cached mask of each row, None for a row without a mask (all None on a maskless dataset)."""
        frame = self.manifest if frame is None else frame
        return [cache_paths(self.cache_dir, i)[1] if m else None for i, m in zip(frame["image_id"], frame["mask_path"])]

    def duplicate_pairs(self) -> pd.DataFrame:
        """Every byte-identical or near-duplicate pair 00_data found, with partitions and which copies stay."""
        path = self.folder / "near_duplicates.csv"
        if not path.is_file() or not path.read_text(encoding="utf-8").strip():
            return pd.DataFrame(columns=NEAR_DUPLICATE_COLUMNS)
        return pd.read_csv(path, keep_default_na=False, dtype={"partition_a": str, "partition_b": str})

    def split(self, scheme: str, name: str) -> pd.DataFrame:
        """Rows of one split (`train`, `val`, `test`) of one study's scheme."""
        column = split_column(scheme)
        return self.manifest[self.manifest[column] == name]

    def oracle(self) -> pd.DataFrame | None:
        """The synthetic generator's true probability of this dataset's target (image_id, p_true, ...), if any."""
        path = self.summary.get("oracle_file")
        if not path or not Path(path).is_file():
            return None
        oracle = pd.read_csv(path)
        return oracle.assign(p_true=oracle_probability(oracle, self.summary["source"], TARGETS[self.summary["target"]]))


def oracle_auc(prepared: Prepared, frame: pd.DataFrame) -> float | None:
    """The best AUC any model could reach on `frame`: the true probability's AUC; None for real data."""
    oracle = prepared.oracle()
    if oracle is None or frame["target"].nunique() < 2:
        return None
    merged = frame[["image_id", "target"]].merge(oracle[["image_id", "p_true"]], on="image_id", how="left")
    return float(roc_auc_score(merged["target"], merged["p_true"]))


def prepare(dataset: Dataset, root: str | os.PathLike[str], out: str | os.PathLike[str],
            schemes: Mapping[str, Mapping[str, float]], seed: int = 0, official: Collection[str] = (),
            cache_root: str | os.PathLike[str] | None = None, cache_size: int = 256, workers: int = 0,
            oracle_file: str | None = None, synthetic: bool = False, fit: str = "crop", max_images: int = 0,
            loaded: tuple[pd.DataFrame, QualityReport] | None = None) -> Prepared:
    """Load a source under a target, keep a capped sample if `max_images` (see sample.cap_sample), add each
    split scheme ({name: {split: ratio}}; `official` ones take the archive's own partitions where it ships
    them), check leakage, and build the cache under `cache_root` (`fit`: the centred square of each image, or
    the whole image resized; see `cache.FITS`) at `cache_size` px, or at the images' median shorter side where
    that is smaller (`cache.cache_side`). `loaded` is load_source's result for `root` when the caller has it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    target = TARGETS[dataset.target]
    manifest, report = load_source(dataset.source, root, workers) if loaded is None else \
        (loaded[0], copy.deepcopy(loaded[1]))
    manifest = apply_target(manifest, target, report)
    if manifest.empty:
        raise DataError(f"{root}: no usable images left after the quality checks\n{report}")
    checked = manifest
    manifest = cap_sample(checked, report.near_duplicates, max_images, seed)
    manifest, split_notes = add_study_splits(manifest, schemes, seed, stratify="label", official=official)
    for scheme in schemes:
        assert_no_leakage(manifest, split_column(scheme))
        assert_no_cross_split_pairs(manifest, report.near_duplicates, split_column(scheme))
    quality = report.frame()
    write_parquet(out / "manifest.parquet", manifest)
    write_csv(out / "quality_report.csv", quality)
    write_csv(out / "near_duplicates.csv", report.near_duplicates)
    sides = np.array([short_side(path) for path in manifest["path"]])
    size = cache_side(cache_size, sides)
    cache_dir = Path(cache_root or out / "cache") / cache_folder(size, fit)
    cache = build_cache(manifest, cache_dir, size, workers, fit)
    summary = {
        "source": dataset.source, "target": dataset.target, "target_description": target.describe(dataset.source),
        "positive_classes": list(target.positive[dataset.source]), "root": str(Path(root).resolve()),
        "folder_name": Path(root).resolve().name, "synthetic": synthetic, "seed": seed, "cache_size": size,
        "cache_size_asked": cache_size, "cache_enlarged": int((sides < size).sum()),
        "median_short_side": int(np.median(sides)),
        "cache_fit": fit, "cache_dir": os.path.relpath(cache_dir.resolve(), out.resolve()),
        "classes": target.classes(dataset.source), "n_images": len(manifest),
        "n_groups": int(manifest["group_id"].nunique()), "group_kind": str(manifest["group_kind"].iloc[0]),
        "n_excluded": int((quality["action"] == "excluded").sum()),
        "class_counts": manifest["label_name"].value_counts().to_dict(),
        "positive_share": float(manifest["target"].mean()), "has_masks": bool(manifest["mask_path"].ne("").any()),
        "splits": split_notes, "cache_written": int((cache["status"] == "written").sum()), "oracle_file": oracle_file,
        **data_facts(report, checked, manifest, max_images),
    }
    write_json(out / "summary.json", summary)
    return Prepared(out, manifest, quality, summary)


def data_facts(report: QualityReport, checked: pd.DataFrame, manifest: pd.DataFrame, max_images: int) -> dict:
    """What the summary records of the folder as read: each official partition's images as read and as kept
    after the checks, the partitions not found, the duplicate pairs (and those across partitions), the sample."""
    pairs = report.near_duplicates
    read = report.partitions_read
    crossing = pairs["partition_a"].ne("") & pairs["partition_b"].ne("") & pairs["partition_a"].ne(pairs["partition_b"])
    return {"partitions": {"read": read, "kept": partition_counts(checked),
                           "not_found": [s for s in OFFICIAL_SPLITS if read and s not in read]},
            "duplicate_pairs": len(pairs), "identical_pairs": int(pairs["same_bytes"].astype(bool).sum()),
            "cross_partition_pairs": int(crossing.sum()),
            "sample": None if len(manifest) == len(checked) else
            {"max_images": max_images, "n_images": len(manifest), "of": len(checked)}}


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


def synthetic_source(source: str, raw_dir: str | os.PathLike[str], **synth: object) -> tuple[Path, str]:
    """(dataset folder, oracle file) of the built-in generator's output in `source`'s real layout,
    written under `raw_dir`; the real loader then reads it, so the synthetic path runs the same code."""
    from derm_nb.data.synthetic import SynthConfig, generate, oracle_path

    folder = generate(SynthConfig(preset=source, **synth), Path(raw_dir) / source)
    return folder, str(oracle_path(folder))


def prepare_catalog(plan: Plan, out: str | os.PathLike[str], schemes: Mapping[str, Mapping[str, float]],
                    official: Collection[str] = (), seed: int = 0, cache_size: int = 256, workers: int = 0,
                    synth: Mapping[str, Any] | None = None, fit: Mapping[str, str] | None = None,
                    max_images: int = 0) -> dict[str, Prepared]:
    """Prepare every distinct dataset of `plan` once under `out/<source>-<target>/` (synthetic ones first
    generated under `out/raw/`; each source's folder is read and checked once, whatever its targets), then
    write `out/catalog.json`, which the chapters read. `fit` gives a source's cache fit ({source: crop |
    resize}; crop where not given); `max_images` caps each dataset (0: all)."""
    out = Path(out)
    synth = dict(synth or {})
    patients = dict(synth.pop("n_patients", {}) or {})
    prepared, read = {}, {}
    for dataset in plan.datasets():  # no outer bar: nested bars print a line per refresh in a notebook
        if dataset.source not in read:
            root, oracle = plan.roots[dataset.source], None
            if root == SYNTHETIC:
                extra = {"n_patients": int(patients[dataset.source])} if dataset.source in patients else {}
                root, oracle = synthetic_source(dataset.source, out / "raw", seed=seed, workers=workers, **extra,
                                                **synth)
            read[dataset.source] = root, oracle, load_source(dataset.source, root, workers)
        root, oracle, loaded = read[dataset.source]
        kept = (fit or {}).get(dataset.source, "crop")
        prepared[dataset.key] = prepare(dataset, root, out / dataset.key, schemes, seed=seed, official=official,
                                        cache_root=out / "cache" / dataset.source,
                                        cache_size=cache_size, workers=workers, oracle_file=oracle,
                                        synthetic=oracle is not None, fit=kept, max_images=max_images, loaded=loaded)
    write_json(out / "catalog.json", plan.record())
    return prepared


def split_summary(manifest: pd.DataFrame, schemes: Collection[str] | None = None) -> pd.DataFrame:
    """Images per class in every split of the study schemes (all the manifest carries by default)."""
    rows = []
    for scheme in schemes or split_schemes(manifest):
        counts = manifest.groupby([split_column(scheme), "label_name"]).size().unstack(fill_value=0)
        for split, row in counts.iterrows():
            rows.append({"scheme": scheme, "split": split, "images": int(row.sum()), **row.to_dict(),
                         "groups": int(manifest.loc[manifest[split_column(scheme)] == split, "group_id"].nunique())})
    return pd.DataFrame(rows).set_index(["scheme", "split"]).fillna(0)
