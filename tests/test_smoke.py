"""Every notebook under the smoke profile through the real runner, its artifacts, and the built book."""

from __future__ import annotations

import archive_run
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

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


def _positive(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The rows and their binary target: `label` itself, or, for a multi-class chapter, whether `label` is the
    class whose probability column `prob` repeats."""
    columns = [c for c in rows.columns if c.startswith("prob_")]
    if not columns:
        return rows, rows["label"]
    positive = next(i for i, c in enumerate(columns) if np.allclose(rows[c], rows["prob"]))
    return rows, (rows["label"] == positive).astype(int)


@pytest.mark.parametrize("stem", MODEL_CHAPTERS)
def test_model_artifacts_follow_the_contract(smoke_run, stem):
    run_dir, _ = smoke_run
    metrics = read_json(run_dir / stem / "metrics.json")["variants"]
    predictions = pd.read_parquet(run_dir / stem / "predictions.parquet")
    assert {"image_id", "split", "model", "label", "prob", "pred"} <= set(predictions.columns)
    assert set(predictions["model"]) == set(metrics)
    for name, m in metrics.items():
        assert {"backbone", "weights", "source", "sha256", "substituted_for"} <= set(m["weights"])
        assert m["train_seconds"] > 0 and m["n_params"] > 0, name  # measured and counted, never a placeholder
        rows = predictions[predictions["model"] == name]
        per_split = rows.groupby("split")["image_id"]
        assert per_split.apply(lambda ids: ids.is_unique).all(), name  # one row per image, split and variant
        assert m["n_eval"] in set(per_split.size()), name               # the scored split is all there
        scored = [_positive(g) for _, g in rows.groupby("split") if len(g) == m["n_eval"]]
        aucs = [roc_auc_score(y, g["prob"]) if y.nunique() == 2 else float("nan") for g, y in scored]
        if m["roc_auc"] is None:  # NaN is written as null: only with one class scored, and a reason given
            assert m.get("auc_skipped") and all(np.isnan(a) for a in aucs), (name, aucs)
            continue
        seeds = m.get("roc_auc_seeds", [m["roc_auc"]])   # several seeds: the mean, the first seed's predictions
        assert m["roc_auc"] == pytest.approx(float(np.mean(seeds)), abs=1e-9), name
        if "sk_roc_auc_seeds" in m:   # 07's second class: its mean too, as 09 and the prose quote it
            assert m["sk_roc_auc"] == pytest.approx(float(np.nanmean(m["sk_roc_auc_seeds"])), abs=1e-9), name
        assert any(a == pytest.approx(seeds[0], abs=1e-9) for a in aucs), (name, m["roc_auc"], aucs)
    substituted = [m["weights"] for m in metrics.values() if m["weights"]["substituted_for"]]
    for record in substituted:  # offline: the packaged Lite0 weights, with their file hash
        assert record["backbone"] == "efficientnet_lite0" and len(record["sha256"]) == 64


@pytest.mark.parametrize("stem", MODEL_CHAPTERS)
def test_each_model_chapter_has_one_floor_that_is_not_its_main_model(smoke_run, stem):
    run_dir, _ = smoke_run
    record = read_json(run_dir / stem / "metrics.json")
    floors = [name for name, m in record["variants"].items() if m.get("floor") is True]
    assert len(floors) == 1, (stem, floors)
    floor = record["variants"][floors[0]]
    assert floors[0] != record.get("main_model") and floors[0].startswith("Linear probe")
    assert floor["probe"]["C"] in floor["probe"]["grid"] and floor["weights"]["weights"] in ("imagenet", "file")
    assert ("cross-validation on train" in floor["probe"]["selected_on"]) == (stem in ("02_baseline", "03_experts"))
    floors_csv = pd.read_csv(run_dir / "09_summary" / "floors.csv")
    assert stem in set(floors_csv["chapter"])


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
    mains = table[table["main"]].set_index("study")["model"]   # one main model per study, held against the goal
    assert sorted(mains.index) == [0, 1, 2, 3, 4] and mains[0] == "Base All" and mains[1] == "Recipe"
    assert mains[3].startswith("Pretrained") and mains[4] == "GCN-MIL"


@pytest.mark.parametrize("stem", MODEL_CHAPTERS)
def test_each_chapter_says_what_differs_from_the_paper(smoke_run, stem):
    """The generated table: the data row, every setting the smoke profile changed (paper != this run), and the
    section on the executed page."""
    import nbformat

    from derm_nb.chapters import spec
    from derm_nb.studies import study

    run_dir, _ = smoke_run
    table = pd.read_csv(run_dir / stem / "differences.csv", keep_default_na=False)
    assert list(table.columns) == ["aspect", "paper", "this run", "why"]
    assert table["aspect"].iloc[0] == "data" and (table["why"].str.len() > 10).all()
    budget = table[table["why"].str.startswith("the smoke profile")]
    assert len(budget) and (budget["paper"] != budget["this run"]).all()
    card = study(spec(stem).study).CARD
    methods = {d.aspect for d in card.methods.get(stem, ())}
    assert methods <= set(table["aspect"])
    variants = read_json(run_dir / stem / "metrics.json")["variants"].values()
    stand_ins = {f"weights of {m['weights']['substituted_for']}" for m in variants if m["weights"]["substituted_for"]}
    assert stand_ins <= set(table["aspect"])  # an offline stand-in backbone is a stated deviation too
    cells = nbformat.read(run_dir / "notebooks" / f"{stem}.ipynb", as_version=4).cells
    assert any(c.cell_type == "markdown" and "## What differs from the paper" in c.source for c in cells)


@pytest.fixture(scope="module")
def parallel_run(smoke_run, tmp_path_factory):
    """The same smoke command on a local Dask cluster of two worker processes (`--workers 2`)."""
    from derm_nb.cli import main

    base = tmp_path_factory.mktemp("parallel")
    run_dir = base / "smoke"
    assert main([*archive_run.argv(run_dir, base / "archives"), "--workers", "2"]) == 0
    return run_dir


def _without_times(value):
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if not k.endswith("_seconds")}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def test_a_parallel_run_gives_the_serial_numbers(smoke_run, parallel_run):
    for stem in MODEL_CHAPTERS:
        serial = read_json(smoke_run[0] / stem / "metrics.json")
        assert _without_times(read_json(parallel_run / stem / "metrics.json")) == _without_times(serial), stem
    for stem in ("04_efficientnet", "05_deep_clustering", "07_gcn_mil"):   # their variants ran as Dask tasks
        assert list((parallel_run / stem / "checkpoints").rglob("results*/*.pt")), stem


def test_a_parallel_run_runs_chapters_side_by_side(parallel_run):
    log = read_json(parallel_run / "run_log.json")
    assert set(log) == {c.stem for c in CHAPTERS}
    spans = {stem: (entry["started"], entry["ended"]) for stem, entry in log.items()}
    overlapping = [(a, b) for a in spans for b in spans
                   if a < b and spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]]
    assert overlapping, spans
    for stem, entry in log.items():                          # and never before what it reads
        for need in [c for c in CHAPTERS if c.stem == stem][0].needs:
            assert spans[need][1] <= entry["started"], (need, stem)


def test_a_variant_gives_its_numbers_whichever_variants_run_before_it(smoke_run, tmp_path):
    """Each model starts from the seed, not from what earlier models left of the RNG: 06 with its pretrained
    network alone gives the pretrained row of the full smoke run (and so would 02's and 03's later rows)."""
    import shutil

    from derm_nb.cli import main

    run_dir = tmp_path / "smoke"
    (run_dir / "notebooks").mkdir(parents=True)
    shutil.copytree(smoke_run[0] / "00_data", run_dir / "00_data")
    shutil.copy(smoke_run[0] / "notebooks" / "00_data.ipynb", run_dir / "notebooks")
    shutil.copy(smoke_run[0] / "run_log.json", run_dir)
    (tmp_path / "alone.yaml").write_text("notebooks:\n  06_architectures:\n    architectures: [pretrained]\n")
    assert main(["run", "--profile", "smoke", "--only", "06_architectures", "--params", str(tmp_path / "alone.yaml"),
                 "--run-dir", str(run_dir)]) == 0
    def models(path):  # the chapter's own variants: the floor is a linear probe, not one of them
        return {k: v for k, v in read_json(path)["variants"].items() if not v.get("floor")}

    alone = models(run_dir / "06_architectures" / "metrics.json")
    together = models(smoke_run[0] / "06_architectures" / "metrics.json")
    assert len(together) > len(alone) == 1
    name = next(iter(alone))
    assert _without_times(alone[name]) == _without_times(together[name])
