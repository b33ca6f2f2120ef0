"""Every notebook under the smoke profile through the real runner, its artifacts, and the built book."""

from __future__ import annotations

import archive_run
import numpy as np
import pandas as pd
import pytest

from derm_nb.artifacts import read_json
from derm_nb.chapters import CHAPTERS, MODEL_CHAPTERS
from derm_nb.data.manifest import validate_manifest
from derm_nb.data.splits import assert_no_leakage, split_column, split_schemes
from derm_nb.runner import NotebookFailed, run_notebooks


def test_every_notebook_ran(smoke_run):
    run_dir, timings = smoke_run
    assert list(timings) == [nb.stem for nb in CHAPTERS]
    log = read_json(run_dir / "run_log.json")
    for nb in CHAPTERS:
        assert (run_dir / "notebooks" / f"{nb.stem}.ipynb").is_file()
        assert log[nb.stem]["parameters"]["profile"] == "smoke"


def test_data_artifacts(smoke_run):
    run_dir, _ = smoke_run
    catalog = read_json(run_dir / "00_data" / "catalog.json")
    slots = catalog["slots"]
    folders = {entry["folder"] for entry in slots.values()}
    assert len(folders) == 5 and all(e["status"] == "ready" for e in slots.values())
    assert {e["source"] for e in slots.values() if e["synthetic"]} == set(archive_run.SYNTHETIC)
    for name in folders:
        folder = run_dir / "00_data" / name
        manifest = pd.read_parquet(folder / "manifest.parquet")
        validate_manifest(manifest.drop(columns=[c for c in manifest if c.startswith("split_")]))
        for scheme in split_schemes(manifest):
            assert_no_leakage(manifest, split_column(scheme))
        summary = read_json(folder / "summary.json")
        assert summary["n_images"] == len(manifest) > 50
        assert (folder / "quality_report.csv").is_file()
        assert len(list((folder / summary["cache_dir"]).glob("*.jpg"))) >= len(manifest)
    overall = read_json(run_dir / "00_data" / "summary.json")
    oracle = {slot: auc for slot, auc in overall["oracle_auc_val"].items() if auc is not None}
    assert set(oracle) == {slot for slot, e in slots.items() if e["synthetic"]}  # an archive has no oracle
    assert all(0.5 < auc <= 1 for auc in oracle.values())


def test_book_builds_from_executed_notebooks(smoke_book):
    html = smoke_book.parent
    for nb in CHAPTERS:
        page = html / "notebooks" / f"{nb.stem}.html"
        assert page.is_file(), page
        assert "<img" in page.read_text()


def test_failure_names_notebook_cell_and_error(root, tmp_path):
    user = tmp_path / "bad.yaml"
    user.write_text("notebooks:\n  00_data: {data: {isic2020: /nonexistent/folder}}\n")
    with pytest.raises(NotebookFailed) as err:
        run_notebooks(root, "smoke", only=["00_data"], user_params=user, run_dir=tmp_path / "run")
    message = str(err.value)
    assert "notebook 00_data failed at cell" in message and "CatalogError" in message
    assert "data.isic2020 = /nonexistent/folder: no such folder" in message


@pytest.mark.parametrize("stem", MODEL_CHAPTERS)
def test_model_artifacts_follow_the_contract(smoke_run, stem):
    run_dir, _ = smoke_run
    metrics = read_json(run_dir / stem / "metrics.json")["variants"]
    predictions = pd.read_parquet(run_dir / stem / "predictions.parquet")
    assert {"image_id", "split", "model", "label", "prob", "pred"} <= set(predictions.columns)
    assert set(predictions["model"]) == set(metrics)
    for name, m in metrics.items():
        assert 0 <= m["roc_auc"] <= 1, name
        assert {"backbone", "weights", "source", "sha256", "substituted_for"} <= set(m["weights"])
        assert m["train_seconds"] >= 0 and m["n_params"] >= 0  # 0 for study 002's scikit-learn baselines
        rows = predictions[predictions["model"] == name]
        per_split = rows.groupby("split")["image_id"]
        assert per_split.apply(lambda ids: ids.is_unique).all(), name  # one row per image, split and variant
        assert m["n_eval"] in set(per_split.size()), name               # the scored split is all there
    substituted = [m["weights"] for m in metrics.values() if m["weights"]["substituted_for"]]
    for record in substituted:  # offline: the packaged Lite0 weights, with their file hash
        assert record["backbone"] == "efficientnet_lite0" and len(record["sha256"]) == 64


def test_progress_bars_are_output_not_error_boxes(smoke_run):
    """tqdm on stderr renders as a pink error box in an executed notebook and the book."""
    import nbformat

    run_dir, _ = smoke_run
    for nb in CHAPTERS:
        cells = nbformat.read(run_dir / "notebooks" / f"{nb.stem}.ipynb", as_version=4).cells
        errors = [o["text"] for c in cells for o in c.get("outputs", [])
                  if o.get("output_type") == "stream" and o.get("name") == "stderr"]
        assert not [e for e in errors if "%|" in e or "it/s]" in e], nb.stem


def test_summary_reports_the_oracle_lift_of_every_model(smoke_run):
    run_dir, _ = smoke_run
    table = pd.read_csv(run_dir / "09_summary" / "benchmark.csv")
    assert "oracle_lift" in table.columns
    scored = table.dropna(subset=["ROC-AUC"])
    synthetic = scored["data"].str.startswith("synthetic")
    assert scored.loc[synthetic, "oracle_lift"].notna().all() and scored.loc[~synthetic, "oracle_lift"].isna().all()
    expected = (scored["ROC-AUC"] - 0.5) / (scored["oracle AUC"] - 0.5)
    assert np.allclose(scored.loc[synthetic, "oracle_lift"], expected[synthetic])
