"""Metrics against scikit-learn and against hand-known values."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from derm_nb.metrics import (
    binary_metrics,
    bootstrap_auc_ci,
    evaluate_binary,
    multiclass_report,
    partial_auc_above_tpr,
    sensitivity_at_specificity,
    threshold_max_f1,
    threshold_youden,
)


@pytest.fixture
def scores():
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.2).astype(int)
    p = np.clip(0.3 * y + rng.normal(0.35, 0.2, 400), 0, 1)
    return y, p


def test_binary_metrics_match_sklearn(scores):
    y, p = scores
    m = binary_metrics(y, p, 0.5)
    pred = p >= 0.5
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["specificity"] == pytest.approx(skm.recall_score(1 - y, ~pred))
    assert m["f1_weighted"] == pytest.approx(skm.f1_score(y, pred, average="weighted"))
    assert m["tp"] + m["fn"] == y.sum()


def _pauc_by_integration(y, p, min_tpr=0.8):
    """Independent check: integrate (1 - FPR) over TPR in [min_tpr, 1] on the ordinary ROC curve."""
    fpr, tpr, _ = skm.roc_curve(y, p)
    grid = np.linspace(min_tpr, 1, 20001)
    # the lowest FPR reaching each TPR: the ROC curve as a step-free interpolant in TPR
    fpr_at = np.interp(grid, tpr, fpr)
    return np.trapezoid(1 - fpr_at, grid)


def test_partial_auc_is_raw_and_matches_integration(scores):
    y, p = scores
    assert partial_auc_above_tpr(y, p) == pytest.approx(_pauc_by_integration(y, p), abs=2e-3)
    assert partial_auc_above_tpr([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == pytest.approx(0.2)  # perfect: max 0.2
    rng = np.random.default_rng(1)
    y_r = rng.integers(0, 2, 20000)
    assert partial_auc_above_tpr(y_r, rng.random(20000)) == pytest.approx(0.02, abs=0.003)  # chance: 0.02
    # not the McClish-standardised value scikit-learn's max_fpr returns
    assert partial_auc_above_tpr(y, p) < 0.2 < skm.roc_auc_score(1 - y, -p, max_fpr=0.2)


def test_thresholds(scores):
    y, p = scores
    t = threshold_youden(y, p)
    fpr, tpr, thr = skm.roc_curve(y, p)
    assert t == pytest.approx(thr[np.argmax(tpr - fpr)])
    t_f1 = threshold_max_f1(y, p, (0.8, 0.9))
    recall = skm.recall_score(y, p >= t_f1)
    assert 0.8 <= recall <= 0.9
    others = [u for u in thr[np.isfinite(thr)] if 0.8 <= skm.recall_score(y, p >= u) <= 0.9]
    assert skm.f1_score(y, p >= t_f1) == pytest.approx(max(skm.f1_score(y, p >= u) for u in others))


def test_threshold_falls_back_to_the_nearest_tpr_when_the_band_is_empty():
    y = np.array([0, 0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.9])  # TPR jumps 0 -> 0.5 -> 1
    t = threshold_max_f1(y, p, (0.8, 0.9))
    assert t == pytest.approx(0.6)


def test_bootstrap_ci_brackets_the_auc(scores):
    y, p = scores
    lo, hi = bootstrap_auc_ci(y, p, n_boot=300, seed=0)
    auc = skm.roc_auc_score(y, p)
    assert lo < auc < hi and hi - lo < 0.2
    assert bootstrap_auc_ci(y, p, n_boot=300, seed=0) == (lo, hi)


def test_evaluate_binary_and_sensitivity(scores):
    y, p = scores
    out = evaluate_binary(y, p, "youden")
    assert out["threshold"] == pytest.approx(threshold_youden(y, p))
    assert 0 <= out["sens_at_spec90"] <= 1
    assert sensitivity_at_specificity([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    with pytest.raises(KeyError, match="unknown threshold rule"):
        evaluate_binary(y, p, "magic")


def test_multiclass_report_matches_sklearn():
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0, 2])
    table = multiclass_report(y, pred, ["benign", "malignant", "normal"])
    assert table.loc["malignant", "precision"] == pytest.approx(2 / 3)
    assert table.loc["normal", "recall"] == pytest.approx(2 / 3)
    assert table.loc["weighted avg", "f1-score"] == pytest.approx(skm.f1_score(y, pred, average="weighted"))
    assert table["support"].tolist() == [2, 2, 3, 7]


def test_bootstrap_resample_aucs_equal_sklearn_with_ties():
    from scipy.stats import rankdata

    rng = np.random.default_rng(1)
    y = np.r_[np.ones(7, int), np.zeros(30, int)]
    p = rng.integers(0, 5, len(y)) / 4  # many ties
    for _ in range(20):
        idx = np.r_[rng.choice(7, 7), 7 + rng.choice(30, 30)]
        ranks = rankdata(p[idx])
        ours = (ranks[:7].sum() - 7 * 8 / 2) / (7 * 30)
        assert ours == pytest.approx(skm.roc_auc_score(y[idx], p[idx]))
    lo, hi = bootstrap_auc_ci(y, p, n_boot=2000, seed=0)
    # Against a plain loop over scikit-learn with the same resampling scheme: same interval within noise.
    aucs = [skm.roc_auc_score(y, p[np.r_[rng.choice(7, 7), 7 + rng.choice(30, 30)]]) for _ in range(2000)]
    assert lo == pytest.approx(np.quantile(aucs, 0.025), abs=0.05)
    assert hi == pytest.approx(np.quantile(aucs, 0.975), abs=0.05)


def clustered_scores(n_groups: int = 30, per_group: int = 12, seed: int = 0):
    """Images of patients who share their risk: each patient's scores and labels follow one patient effect."""
    rng = np.random.default_rng(seed)
    effect = rng.normal(size=n_groups)
    groups = np.repeat(np.arange(n_groups), per_group)
    risk = effect[groups] + 0.3 * rng.normal(size=len(groups))
    y = (rng.random(len(groups)) < 1 / (1 + np.exp(-2 * risk))).astype(int)
    p = 1 / (1 + np.exp(-(effect[groups] + 0.5 * rng.normal(size=len(groups)))))
    return y, p, np.array([f"IP_{g}" for g in groups])


def test_the_ci_resamples_whole_patients_and_is_wider_than_an_image_resample():
    y, p, groups = clustered_scores()
    by_image = bootstrap_auc_ci(y, p, n_boot=500, seed=0)
    by_patient = bootstrap_auc_ci(y, p, n_boot=500, seed=0, groups=groups)
    assert by_patient[0] < skm.roc_auc_score(y, p) < by_patient[1]
    assert by_patient[1] - by_patient[0] > 1.25 * (by_image[1] - by_image[0])  # 1.43 here
    assert bootstrap_auc_ci(y, p, n_boot=500, seed=0, groups=groups) == by_patient


def test_one_image_per_group_gives_the_image_resample():
    y, p, _ = clustered_scores()
    ids = np.array([f"ISIC_{i}" for i in range(len(y))])
    assert bootstrap_auc_ci(y, p, n_boot=300, seed=2, groups=ids) == bootstrap_auc_ci(y, p, n_boot=300, seed=2)


def test_cluster_resample_aucs_equal_sklearn():
    from derm_nb.metrics import cluster_aucs

    y, p, groups = clustered_scores(n_groups=8, per_group=5, seed=3)
    ours = cluster_aucs(y, p, groups, 40, np.random.default_rng(0))
    rng = np.random.default_rng(0)
    ids, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(ids))]
    with_pos = [g for g, m in enumerate(members) if y[m].any()]
    without = [g for g, m in enumerate(members) if not y[m].any()]
    for b in range(40):
        idx = np.concatenate([members[g] for s in (with_pos, without) if s for g in np.asarray(s)[rng.choice(len(s), len(s))]])
        if 0 < y[idx].sum() < len(idx):
            assert ours[b] == pytest.approx(skm.roc_auc_score(y[idx], p[idx]))
