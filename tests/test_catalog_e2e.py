"""The smoke run end to end, every study on its own source, read from archive-format fixtures our generator
did not make (ISIC 2018, BUSI, ISIC 2017) or the built-in synthetic data (ISIC 2020, 2019), all given with
`--data` as a user would (the run: tests/archive_run.py)."""

from __future__ import annotations

import archive_run
import nbformat
import pandas as pd

from derm_nb.artifacts import read_json
from derm_nb.chapters import MODEL_CHAPTERS, spec

OWN = {"study000": "isic2020", "study001": "isic2018", "study002": "isic2020", "study002_sweep": "isic2019",
       "study003": "busi", "study004": "isic2017"}


def test_every_study_read_its_own_source(smoke_run):
    run_dir = smoke_run[0]
    catalog = read_json(run_dir / "00_data" / "catalog.json")["slots"]
    assert {slot: entry["source"] for slot, entry in catalog.items()} == OWN
    assert all(entry["status"] == "ready" for entry in catalog.values())
    assert all(entry["synthetic"] == (entry["source"] in archive_run.SYNTHETIC) for entry in catalog.values())
    for stem in MODEL_CHAPTERS:
        metrics = read_json(run_dir / stem / "metrics.json")["variants"]
        assert metrics and all(m["n_eval"] > 0 for m in metrics.values()), stem
        assert read_json(run_dir / "00_data" / "summary.json")["datasets"][catalog[spec(stem).dataset]["folder"]]


def test_study004_uses_the_official_partitions(smoke_run):
    run_dir = smoke_run[0]
    manifest = pd.read_parquet(run_dir / "00_data" / "isic2017-melanoma" / "manifest.parquet")
    assert (manifest["split_study004"].fillna("") == manifest["official_split"]).all()
    assert set(manifest["official_split"]) == {"train", "val", "test"}


def test_sweep_is_melanoma_vs_nevus(smoke_run):
    run_dir = smoke_run[0]
    folder = run_dir / "00_data" / "isic2019-melanoma_vs_nevus"
    manifest = pd.read_parquet(folder / "manifest.parquet")
    assert set(manifest["label_name"]) == {"MEL", "NV"}
    quality = pd.read_csv(folder / "quality_report.csv")
    assert (quality["check"] == "outside the study's classes").sum() > 0


def _text(run_dir, stem: str) -> str:
    nb = nbformat.read(run_dir / "notebooks" / f"{stem}.ipynb", as_version=4)
    return "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/markdown", ""))
                     for cell in nb.cells for o in cell.get("outputs", []))


def test_mask_analyses_are_skipped_not_zero_on_maskless_data(smoke_run):
    run_dir = smoke_run[0]
    assert "has no lesion masks" in _text(run_dir, "04_efficientnet")      # ISIC 2018 Task 3
    assert "has no lesion masks" in _text(run_dir, "08_error_analysis")    # ISIC 2020
    mass = pd.read_parquet(run_dir / "04_efficientnet" / "gradcam_mass.parquet")
    assert mass["lesion_mass"].isna().all() and mass["corner_mass"].notna().any()
    assert not list((run_dir / "00_data" / "cache" / "isic2020").rglob("*_mask.png"))
