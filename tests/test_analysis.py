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
