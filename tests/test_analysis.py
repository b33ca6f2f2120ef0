"""Subgroup AUCs and calibration on predictions with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from derm_nb.analysis import age_band, calibration, subgroup_auc


def predictions(n=400, seed=0):
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < 0.3).astype(int)
    group = np.where(np.arange(n) % 2, "good", "bad")
    prob = np.where(group == "good", 0.2 + 0.6 * label + rng.normal(0, 0.05, n), rng.random(n))
    return pd.DataFrame({"image_id": [f"i{k}" for k in range(n)], "model": "m", "label": label,
                         "prob": prob.clip(0, 1)}), pd.DataFrame({"image_id": [f"i{k}" for k in range(n)],
                                                                  "group": group})


def test_subgroup_auc_separates_a_good_and_a_bad_subgroup():
    pred, attrs = predictions()
    table = subgroup_auc(pred, attrs, ["group"], n_boot=200).set_index("subgroup")
    assert table.loc["good", "roc_auc"] > 0.99
    assert 0.35 < table.loc["bad", "roc_auc"] < 0.65
    assert table.loc["bad", "ci_low"] < table.loc["bad", "roc_auc"] < table.loc["bad", "ci_high"]


def test_subgroups_without_both_classes_are_skipped():
    pred, attrs = predictions()
    attrs["group"] = np.where(pred["label"] == 1, "all positive", attrs["group"])
    table = subgroup_auc(pred, attrs, ["group"], n_boot=50)
    assert table.empty and "roc_auc" in table.columns


def test_calibration_of_perfectly_calibrated_probabilities():
    rng = np.random.default_rng(1)
    prob = rng.random(20000)
    label = (rng.random(20000) < prob).astype(int)
    scores, curve = calibration(pd.DataFrame({"model": "m", "label": label, "prob": prob}))
    assert scores["brier"].iloc[0] == pytest.approx(1 / 6, abs=0.01)  # E[p(1-p)] for p ~ U(0,1)
    assert np.abs(curve["observed"] - curve["predicted"]).max() < 0.03


def test_age_band():
    assert age_band(pd.Series([25.0, 50.0, 75.0])).tolist() == ["<40", "40-60", ">60"]


def test_oracle_lift_is_the_share_of_the_ceiling_over_chance():
    import pandas as pd

    from derm_nb.analysis import oracle_lift

    lift = oracle_lift(pd.Series([0.75, 0.5, 0.9, 0.7]), pd.Series([1.0, 0.8, None, 0.5]))
    assert lift.iloc[0] == 0.5 and lift.iloc[1] == 0.0
    assert lift.iloc[2:].isna().all()  # no oracle (real data), or an oracle at chance


def test_the_goal_table_holds_each_main_model_against_the_goal():
    from derm_nb.analysis import goal_table

    table = pd.DataFrame({"study": ["000", "000", "001", "004"], "model": ["Base All", "Base Small", "Recipe", "GCN"],
                          "ROC-AUC": [0.80, 0.95, 0.60, 0.70], "CI low": [0.70, 0.9, 0.49, 0.6],
                          "oracle_lift": [0.75, 1.1, 0.25, None], "main": [True, False, True, True]})
    goal = goal_table(table, lift=0.6).set_index("model")
    assert list(goal.index) == ["Base All", "Recipe", "GCN"]  # a better non-main variant is not the main model
    assert goal["CI above chance"].tolist() == [True, False, True]
    assert goal.loc["Base All", "lift ≥ 60%"] == True and goal.loc["Recipe", "lift ≥ 60%"] == False  # noqa: E712
    assert pd.isna(goal.loc["GCN", "lift ≥ 60%"])  # real data: no oracle, so no verdict


def test_the_main_model_is_written_and_must_be_a_variant(tmp_path):
    import json

    from derm_nb.analysis import benchmark_table, load_model_runs
    from derm_nb.results import Variant, write_model_artifacts
    from derm_nb.studies.study002.experiments import scored_variant

    frames = {s: pd.DataFrame({"image_id": ["a", "b", "c", "d"], "target": [0, 1, 0, 1]}) for s in ("val", "test")}
    scores = {"val": np.array([0.2, 0.8, 0.3, 0.6]), "test": np.array([0.3, 0.7, 0.4, 0.2])}
    weights = {"backbone": "b", "weights": "none", "source": "random init", "sha256": None, "substituted_for": None}
    rows: list[Variant] = [scored_variant(name, frames, scores, weights) for name in ("A", "B")]
    with pytest.raises(ValueError, match="'C' is not among"):
        write_model_artifacts(tmp_path / "05_deep_clustering", rows, main="C")
    write_model_artifacts(tmp_path / "05_deep_clustering", rows,
                          {"study": "002", "evaluation": "study002 test", "split": "study002 test"}, main="B")
    assert json.loads((tmp_path / "05_deep_clustering" / "metrics.json").read_text())["main_model"] == "B"
    metrics, _ = load_model_runs(tmp_path)
    table = benchmark_table(metrics, {})
    assert table.set_index("model")["main"].to_dict() == {"A": False, "B": True}


def test_subgroup_cis_resample_whole_patients_when_the_attributes_name_them():
    pred, attrs = predictions()
    by_image = subgroup_auc(pred, attrs, ["group"], n_boot=200).set_index("subgroup")
    patients = attrs.assign(group_id=[f"IP_{k // 40}" for k in range(len(attrs))])  # 10 patients of 40 images
    by_patient = subgroup_auc(pred, patients, ["group"], n_boot=200).set_index("subgroup")
    assert by_patient.loc["bad", "roc_auc"] == by_image.loc["bad", "roc_auc"]
    assert (by_patient.loc["bad", ["ci_low", "ci_high"]] != by_image.loc["bad", ["ci_low", "ci_high"]]).all()


def test_each_chapter_is_judged_on_the_split_its_metrics_record():
    from derm_nb.analysis import scored_predictions

    metrics = pd.DataFrame({"chapter": ["02_baseline", "04_efficientnet"], "split": ["study000 val", "study001 test"]})
    predictions = pd.DataFrame({"chapter": ["02_baseline", "04_efficientnet", "04_efficientnet"],
                                "split": ["val", "val", "test"], "image_id": ["a", "b", "c"]})
    assert scored_predictions(metrics, predictions)["image_id"].tolist() == ["a", "c"]
    with pytest.raises(ValueError, match="04_efficientnet records no `split`"):
        scored_predictions(metrics.assign(split=["study000 val", None]), predictions)
