"""The validation trials behind default.yaml's real_data settings: only validation scores are kept, and
the README's trade-off table is printed from the kept files (benchmarks/real_trials.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEC = importlib.util.spec_from_file_location("real_trials", ROOT / "benchmarks" / "real_trials.py")
real_trials = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(real_trials)

METRICS = {"split": "study003 val", "main_model": "Pretrained",
           "variants": {"Pretrained": {"roc_auc": 0.9, "f1_weighted": 0.75, "train_seconds": 10.0, "weights": {}},
                        "Simple CNN": {"skipped": "diverged"},
                        "Linear probe": {"roc_auc": 0.85, "f1_weighted": 0.7, "floor": True}}}


def test_a_trial_that_scored_a_test_split_is_refused():
    with pytest.raises(ValueError, match="scored 'study003 test', not a validation split"):
        real_trials.kept_figures("t", "06_architectures", {}, {**METRICS, "split": "study003 test"}, 60.0)


def test_the_table_shows_main_and_floor_with_the_chapters_minutes(tmp_path):
    kept = real_trials.kept_figures("t06", "06_architectures", {"epochs": 8}, METRICS, 90.0)
    assert set(kept["variants"]) == {"Pretrained", "Linear probe"} and kept["variants"]["Linear probe"]["floor"]
    (tmp_path / "t06.json").write_text(json.dumps(kept | {"note": "ran beside other work"}))
    table = real_trials.table(tmp_path)
    assert "| 06_architectures | epochs: 8 | Pretrained | 0.900 | 0.750 | 0.850 | 0.700 | 1.5 (note) |" in table
    assert table.endswith("- 06_architectures, t06: ran beside other work")


def test_every_kept_trial_scored_validation():
    for path in (ROOT / "benchmarks" / "real_trials").glob("*.json"):
        assert json.loads(path.read_text())["split"].endswith(" val"), path.name


def test_a_missing_real_folder_is_named(tmp_path):
    with pytest.raises(SystemExit, match="the real copies are not at .*ISIC2017"):
        real_trials.run("t", "06_architectures", {}, tmp_path / "run", tmp_path / "real")


@pytest.mark.parametrize("name", ["real_copies.yaml", "real_main_models.yaml"])
def test_the_readme_real_run_files_validate_against_the_default_profile(name):
    from derm_nb.runner import resolved_parameters

    params = resolved_parameters(ROOT, "default", ROOT / "benchmarks" / name)
    assert params["00_data"]["datasets"]["study001"] == "isic2017"
    if name == "real_main_models.yaml":
        assert params["04_efficientnet"]["variants"] == ["recipe"] and params["02_baseline"]["aug_copies"] == []


def test_the_real_images_table_counts_a_floors_feature_seconds_once():
    spec = importlib.util.spec_from_file_location("real_images_table", ROOT / "benchmarks" / "real_images_table.py")
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    variants = {"Main": {"train_seconds": 60.0}, "Other": {"train_seconds": 120.0}, "Skipped": {"skipped": "why"},
                "Linear probe": {"train_seconds": 30.0, "feature_seconds": 24.0, "floor": True}}
    assert table.training_minutes(variants, "Main") == (1.5, 2.0)
