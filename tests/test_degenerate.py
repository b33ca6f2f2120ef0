"""Degenerate inputs: constant, identical or collinear features, a class missing from a split, tiny splits.

Every case either gives a finite, correct value or a documented skip (`derm_nb.metrics.Skipped`, a
`Variant.skipped` reason, NaN with an `auc_skipped` reason), never a crash inside scikit-learn.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn import metrics as skm
from torch import nn

from derm_nb.analysis import calibration, subgroup_auc
from derm_nb.losses import BCE
from derm_nb.metrics import (
    Skipped,
    binary_metrics,
    bootstrap_auc_ci,
    class_weighted_metrics,
    evaluate_binary,
    format_metric,
    missing_class_reason,
    multiclass_report,
    partial_auc_above_tpr,
    sensitivity_at_specificity,
    threshold_max_f1,
    threshold_youden,
)
from derm_nb.models.backbones import Provenance
from derm_nb.results import json_ready, run_binary_variant, run_multiclass_variant, write_model_artifacts
from derm_nb.studies.study002 import CARD as CARD_002
from derm_nb.studies.study002 import train_variant as train_002
from derm_nb.studies.study002.baselines import (
    UNSUPERVISED_BASELINES,
    CAEConfig,
    ConvAutoencoder,
    cae_scores,
    unsupervised_baseline,
)
from derm_nb.studies.study002.experiments import (
    SweepGrid,
    findings,
    run_clustering_variant,
    run_direct_classifier,
    scored_variant,
    sweep_cell,
    sweep_summary,
    table,
)
from derm_nb.studies.study002.inputs import FeatureSet
from derm_nb.studies.study002.rows import MAIN, ChapterInputs, rows, sweep_rows
from derm_nb.studies.study002.training import ClusterConfig
from derm_nb.studies.study004.mil import GCNMIL, make_bag, predict_bags, standardise_bags
from derm_nb.studies.study004.segmentation import attention_adds, gcn_mil_variant, recognition, segment, table_row
from derm_nb.train import TrainConfig

PROVENANCE = Provenance("stub", "none", "random init")

PAPER_SWEEP = CARD_002.tables["Sweep"].iloc[:, 0]   # the study's own sweep column, as the chapter passes it


def blobs(n_maj: int, n_min: int, d: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.r_[rng.normal(size=(n_maj, d)), rng.normal(size=(n_min, d)) + 4.0]
    return x, np.r_[np.zeros(n_maj, int), np.ones(n_min, int)]


def on_a_line(n_maj: int, n_min: int, seed: int, relu: bool = False) -> np.ndarray:
    """Rank-1 features t * v; with `relu` every row points the same way (cosine cannot tell them apart)."""
    v = np.random.default_rng(99).normal(size=6)
    rng = np.random.default_rng(seed)
    t = np.r_[rng.normal(0, 1, n_maj), rng.normal(8, 0.5, n_min)]
    return np.outer(np.abs(t), np.abs(v)) if relu else np.outer(t, v)


X, _ = blobs(60, 12)
XT, YT = blobs(30, 8, seed=1)
CASES = {  # name: (train features, test features)
    "identical rows": (np.tile(X[:1], (40, 1)), XT),
    "all zero": (np.zeros((40, 6), np.float32), XT),
    "one image": (X[:1], XT),
    "three images": (X[[0, 1, 60]], XT),
    "constant columns": (np.c_[X, np.full((len(X), 4), 3.0)], np.c_[XT, np.full((len(XT), 4), 3.0)]),
    "duplicate columns": (np.c_[X, X[:, :3]], np.c_[XT, XT[:, :3]]),
    "rank 1": (on_a_line(60, 12, 0), on_a_line(30, 8, 1)),
    "rank 1, one direction": (on_a_line(60, 12, 0, relu=True), on_a_line(30, 8, 1, relu=True)),
}
SKIPS = {  # (case, baseline or "*"): the reason's words; everything else must score the test blobs well
    ("identical rows", "*"): "identical", ("all zero", "*"): "identical", ("one image", "*"): "at least",
    ("three images", "LLE"): "at least 6",
    ("rank 1", "GMM"): "equally far", ("rank 1", "K-Means"): "equally far",
    ("rank 1, one direction", "GMM"): "equally far", ("rank 1, one direction", "K-Means"): "equally far",
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", UNSUPERVISED_BASELINES)
def test_unsupervised_baselines_score_or_skip(case, name):
    train, test = CASES[case]
    reason = SKIPS.get((case, name)) or SKIPS.get((case, "*"))
    if reason:
        with pytest.raises(Skipped, match=reason):
            unsupervised_baseline(name, train, test, seed=0)
        return
    score = unsupervised_baseline(name, train, test, seed=0)
    assert score.shape == (len(test),) and np.isfinite(score).all() and ((score >= 0) & (score <= 1)).all()
    assert skm.roc_auc_score(YT, score) > 0.9, (case, name)


@pytest.mark.parametrize("name", ["PCA", "Fast ICA", "ODL"])
def test_a_tie_between_the_two_projection_clusters_still_scores(name):
    # Two clusters of five: 2-means gives a 5/5 tie, which used to make every score 0.5.
    train = np.r_[np.zeros((5, 3)), np.ones((5, 3)) * [1.0, 2.0, 3.0]] + np.arange(10)[:, None] * 1e-3
    score = unsupervised_baseline(name, train, train, seed=0)
    low, high = sorted([score[:5], score[5:]], key=np.mean)
    assert np.isfinite(score).all() and high.min() > 0.5 > low.max()  # the clusters fall either side of 0.5


def test_cae_on_flat_images_is_skipped():
    from derm_nb.datasets import CachedImages

    flat = CachedImages(torch.full((6, 3, 16, 16), 90, dtype=torch.uint8), np.zeros(6, int),
                        lambda im: im.float() / 255)
    with pytest.raises(Skipped, match="CAE: all 6 training feature vectors are identical"):
        cae_scores(ConvAutoencoder((4, 8, 8)), flat, flat, device="cpu")


ONE_CLASS = {"no positives": np.zeros(6, int), "no negatives": np.ones(6, int), "one image": np.array([1]),
             "no images": np.array([], int)}


@pytest.mark.parametrize("case", ONE_CLASS)
def test_metrics_that_need_both_classes_are_nan_with_a_reason(case):
    y = ONE_CLASS[case]
    p = np.linspace(0.1, 0.9, len(y))
    reason = missing_class_reason(y)
    assert reason and ("positives" in reason or "negatives" in reason)
    assert math.isnan(partial_auc_above_tpr(y, p)) and math.isnan(sensitivity_at_specificity(y, p))
    assert all(math.isnan(v) for v in bootstrap_auc_ci(y, p))
    for rule in (threshold_youden, threshold_max_f1):
        with pytest.raises(Skipped, match="needs both classes"):
            rule(y, p)
    if not len(y):
        return
    m = evaluate_binary(y, p, "youden")
    assert m["auc_skipped"] == reason and m["threshold"] == 0.5 and m["threshold_rule"] == "0.5"
    assert "Youden" in m["threshold_skipped"]
    for key in ("roc_auc", "pauc_80", "roc_auc_ci_low", "roc_auc_ci_high", "sens_at_spec90", "balanced_accuracy"):
        assert math.isnan(m[key]), key
    assert math.isnan(m["recall"] if y.sum() == 0 else m["specificity"])  # the absent class has none
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, p >= 0.5))
    cw = class_weighted_metrics(y, p)
    assert cw["auc_skipped"] == reason and math.isnan(cw["specificity"]) and math.isnan(cw["roc_auc"])
    assert cw["accuracy"] == pytest.approx(skm.accuracy_score(y, p >= 0.5))
    assert (math.isnan(cw["melanoma_recall"]) if y.sum() == 0 else cw["melanoma_recall"] == pytest.approx(0.5,
                                                                                                          abs=0.5))


def test_a_tiny_split_with_both_classes_is_scored():
    m = evaluate_binary(np.array([0, 1, 0]), np.array([0.2, 0.7, 0.4]), "max_f1")
    assert m["roc_auc"] == 1.0 and m["auc_skipped"] is None and m["threshold_skipped"] is None
    assert m["roc_auc_ci_low"] == m["roc_auc_ci_high"] == 1.0


def test_threshold_on_one_class_validation_falls_back_visibly():
    y, p = np.array([0, 1, 0, 1]), np.array([0.2, 0.9, 0.6, 0.4])
    m = evaluate_binary(y, p, "max_f1", threshold_from=(np.zeros(3, int), np.array([0.1, 0.3, 0.8])))
    assert m["threshold"] == 0.5 and "max-F1 threshold needs both classes: no positives" in m["threshold_skipped"]
    assert m["roc_auc"] == pytest.approx(0.75) and m["auc_skipped"] is None


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_scores_raise_skipped(bad):
    y, p = np.array([0, 1, 0, 1]), np.array([0.2, bad, 0.6, 0.4])
    for fn in (binary_metrics, class_weighted_metrics, evaluate_binary, bootstrap_auc_ci):
        with pytest.raises(Skipped, match="1 of 4 of the scores are NaN or infinite"):
            fn(y, p)


def test_multiclass_report_with_an_absent_class():
    y, pred = np.array([0, 0, 2, 2, 2]), np.array([0, 1, 2, 2, 0])
    table_ = multiclass_report(y, pred, ["a", "b", "c"])
    assert math.isnan(table_.loc["b", "recall"]) and math.isnan(table_.loc["b", "f1-score"])
    assert table_.loc["b", "precision"] == 0.0  # predicted once, never right
    assert table_.loc["weighted avg", "f1-score"] == pytest.approx(skm.f1_score(y, pred, average="weighted"))


def test_json_ready_and_format_metric():
    assert json_ready({"a": float("nan"), "b": [np.float32("inf"), 1.5], "c": (None, "x")}) == \
        {"a": None, "b": [None, 1.5], "c": [None, "x"]}
    assert format_metric(float("nan")) == "n/a" and format_metric(None) == "n/a" and format_metric(0.51234) == "0.512"


class StubInputs:
    """What study 002's shallow baselines and skip checks read from a ModelInputs."""

    def __init__(self, features: dict[str, np.ndarray], targets: dict[str, np.ndarray]):
        self._features, self.targets, self.provenance = features, targets, PROVENANCE

    def features(self, split: str) -> np.ndarray:
        return self._features[split]


def frames_for(targets: dict[str, np.ndarray]) -> dict[str, pd.DataFrame]:
    return {s: pd.DataFrame({"image_id": [f"{s}{k}" for k in range(len(t))], "target": t}) for s, t in targets.items()}


def test_collapsed_backbone_features_skip_every_shallow_baseline_and_the_chapter_survives(tmp_path):
    # The reported failure: frozen features that are all identical (tiny images), FastICA's "A has a NaN entry".
    targets = {"train": np.r_[np.zeros(20, int), np.ones(4, int)], "val": np.array([0, 1, 0]), "test": np.array([0, 1, 0])}
    inputs = StubInputs({s: np.zeros((len(t), 8), np.float32) for s, t in targets.items()}, targets)
    frames = frames_for(targets)
    chapter_inputs = ChapterInputs({MAIN: inputs}, {}, frames, {}, {}, CAEConfig(), tmp_path, 8, True, "full", 0)
    jobs = [r for r in rows("vgg16", (), (0.2,)).values() if r.table == "Shallow" and r.name != "CAE"]
    shallow = [train_002(job, chapter_inputs) for job in jobs]
    assert [v.name for v in shallow] == list(UNSUPERVISED_BASELINES)
    assert all("identical" in v.skipped and v.predictions.empty for v in shallow)
    shown = table(shallow).data
    assert shown["AUC"].isna().all() and shown["skipped"].str.contains("identical").all()
    scored = scored_variant("ok", frames, {"val": np.array([0.2, 0.8, 0.3]), "test": np.array([0.1, 0.9, 0.2])},
                            PROVENANCE.as_dict(), record={"n_params": 3})
    write_model_artifacts(tmp_path, [scored, *shallow], {"oracle_auc": float("nan")})
    record = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=pytest.fail)  # strict JSON
    assert record["oracle_auc"] is None and "identical" in record["variants"]["Fast ICA"]["skipped"]
    assert len(pd.read_parquet(tmp_path / "predictions.parquet")) == 6  # the scored variant's val + test rows
    out = findings(scored, [scored], [scored, scored], shallow, pd.DataFrame({"SDC - Classifier": [np.nan]}), None,
                   PAPER_SWEEP)
    assert math.isnan(out["shallow_min_auc"]) and out["extreme_ratio"] == "none" and out["best_direct_auc"] == 1.0


def test_a_test_split_without_melanoma_gives_nan_auc_and_null_json(tmp_path):
    frames = frames_for({"val": np.array([0, 1]), "test": np.zeros(4, int)})
    v = scored_variant("x", frames, {"val": np.array([0.3, 0.6]), "test": np.array([0.1, 0.7, 0.2, 0.4])},
                       PROVENANCE.as_dict())
    assert math.isnan(v.metrics["roc_auc"]) and "no positives among 4" in v.metrics["auc_skipped"]
    assert math.isnan(v.metrics["specificity"]) and v.metrics["accuracy"] == 0.75 and v.skipped is None
    write_model_artifacts(tmp_path, [v])
    entry = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=pytest.fail)["variants"]["x"]
    assert entry["roc_auc"] is None and entry["accuracy"] == 0.75


@pytest.mark.parametrize("train", [np.zeros(6, int), np.ones(6, int)])
def test_supervised_training_without_both_classes_is_skipped_before_training(tmp_path, train):
    inputs = StubInputs({}, {"train": train})
    frames = frames_for({"train": train, "test": np.array([0, 1])})
    sdc = run_clustering_variant("SDC", inputs, ClusterConfig(epochs=1), frames, tmp_path)
    clf = run_direct_classifier("clf", inputs, TrainConfig(epochs=1), frames, tmp_path)
    assert "needs both classes" in sdc.skipped and "needs both classes" in clf.skipped
    assert not list(tmp_path.iterdir())  # nothing was trained


def test_imbalance_sweep_skips_a_ratio_the_pool_cannot_supply(tmp_path):
    frames = frames_for({"train": np.r_[np.zeros(10, int), np.ones(3, int)], "test": np.array([0, 1])})
    grid = SweepGrid(None, frames, {"seed": 0}, {}, tmp_path, 8)
    sweep = sweep_rows({f"{maj}_{mino}_0": sweep_cell((maj, mino, 0), grid) for maj, mino in [(8, 5), (20, 2)]})
    assert sweep["roc_auc"].isna().all() and len(sweep) == 4
    assert sweep["skipped"].str.contains("needs more images than the pool has").all()
    ran = pd.DataFrame({"method": ["SDC COM-Triplet", "Classifier"], "ratio": "8:2", "roc_auc": [0.8, 0.7],
                        "skipped": None})
    summary = sweep_summary(pd.concat([ran, sweep], ignore_index=True))
    assert list(summary.index) == ["8:2", "8:5", "20:2"] and summary["SDC - Classifier"].iloc[0] == pytest.approx(0.1)
    assert summary["SDC - Classifier"].iloc[1:].isna().all() and summary["skipped"].iloc[0] == ""
    stub = scored_variant("v", frames_for({"val": np.array([0, 1]), "test": np.array([0, 1])}),
                          {"val": np.array([0.2, 0.8]), "test": np.array([0.2, 0.8])}, PROVENANCE.as_dict())
    out = findings(stub, [stub], [stub, stub], [stub], summary, None, PAPER_SWEEP)
    assert out["extreme_ratio"] == "8:2" and out["extreme_gap"] == pytest.approx(0.1)  # the last ratio that ran


def tiny_sets(targets: dict[str, np.ndarray], width: int = 4):
    rng = np.random.default_rng(0)
    return {s: FeatureSet(rng.normal(size=(len(t), width)) + t[:, None], t) for s, t in targets.items()}


def test_binary_variant_with_one_class_validation_and_test(tmp_path):
    targets = {"train": np.array([0, 1] * 6), "val": np.zeros(4, int), "test": np.zeros(3, int)}
    sets, frames = tiny_sets(targets), frames_for(targets)
    torch.manual_seed(0)
    v = run_binary_variant("lin", nn.Linear(4, 1), PROVENANCE, BCE(), sets["train"], sets["val"],
                           frames["val"], TrainConfig(epochs=1, batch_size=4, device="cpu"), tmp_path,
                           test=(sets["test"], frames["test"]))
    assert v.skipped is None and math.isnan(v.metrics["roc_auc"]) and v.metrics["threshold"] == 0.5
    assert "no positives among 4" in v.metrics["threshold_skipped"] and "among 3" in v.metrics["auc_skipped"]
    write_model_artifacts(tmp_path, [v])
    json.loads((tmp_path / "metrics.json").read_text(), parse_constant=pytest.fail)


class Diverged(nn.Module):
    def __init__(self, out: int):
        super().__init__()
        self.linear = nn.Linear(4, out)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.linear(image) * float("nan")


def test_a_diverged_binary_model_is_skipped_not_crashed(tmp_path):
    targets = {"train": np.array([0, 1] * 4), "val": np.array([0, 1, 0, 1])}
    sets, frames = tiny_sets(targets), frames_for(targets)
    v = run_binary_variant("nan", Diverged(1), PROVENANCE, BCE(), sets["train"], sets["val"],
                           frames["val"], TrainConfig(epochs=1, batch_size=4, device="cpu"), tmp_path)
    assert "NaN or infinite" in v.skipped and v.predictions.empty and v.metrics["epochs_run"] == 1


def test_multiclass_variant_without_the_target_class_in_test(tmp_path):
    labels = {"train": np.array([0, 1, 2] * 4), "val": np.array([0, 1, 2]), "test": np.array([0, 2, 2, 0])}
    sets = tiny_sets(labels)
    frame = pd.DataFrame({"image_id": list("abcd"), "label": labels["test"]})
    v = run_multiclass_variant("mc", nn.Linear(4, 3), PROVENANCE, nn.CrossEntropyLoss(), sets["train"], sets["val"],
                               frame, TrainConfig(epochs=1, batch_size=4, device="cpu"), tmp_path, ["a", "b", "c"], 1,
                               score_on=sets["test"])
    assert math.isnan(v.metrics["roc_auc"]) and "no positives among 4" in v.metrics["auc_skipped"]
    assert math.isnan(v.metrics["per_class"]["b"]["recall"]) and np.isfinite(v.metrics["f1_weighted"])


def test_segmentation_without_training_melanomas_and_recognition_without_test_melanomas(tmp_path):
    masks = [np.zeros((4, 4), bool), np.ones((4, 4), bool)]
    maps = [np.full((4, 4), 0.2, np.float32), np.full((4, 4), 0.9, np.float32)]
    classes = ["melanoma", "seborrheic_keratosis", "nevus"]
    prob, y = np.array([[0.2, 0.3, 0.5], [0.1, 0.6, 0.3]]), np.array([2, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no empty-mean warnings either
        seg = segment([], [], maps, masks)
        scores = recognition(prob, y, classes)
        row = table_row(scores, seg, y, 0, "ours")
        variant = gcn_mil_variant("GCN-MIL", pd.DataFrame({"epoch": [1], "seconds": [0.1]}),
                                  pd.DataFrame({"image_id": ["a", "b"]}), prob, y, classes, scores, seg,
                                  PROVENANCE.as_dict(), {"n_params": 1})
    assert math.isnan(seg.eta) and "no melanoma in the training split" in seg.skipped
    assert np.isnan(seg.jaccard).all() and seg.whole_image.tolist() == [0.0, 1.0]
    assert "skipped" in attention_adds(seg)
    assert math.isnan(scores["melanoma"]["roc_auc"]) and math.isnan(scores["recall"])
    assert scores["sk"]["roc_auc"] == 1.0 and row["AUC CI"].iloc[0] == "n/a-n/a"
    write_model_artifacts(tmp_path, [variant])
    entry = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=pytest.fail)["variants"]["GCN-MIL"]
    assert entry["roc_auc"] is None and entry["jaccard_melanoma"] is None and entry["eta"] is None
    assert "no positives among 2" in entry["auc_skipped"] and "η" in entry["segmentation_skipped"]
    assert entry["sk_roc_auc"] == 1.0 and entry["jaccard_whole_image"] == 0.5


def test_bags_with_one_block_and_no_bags():
    bag = make_bag(torch.ones(1, 4), torch.zeros((2, 0), dtype=torch.long), 0, np.zeros((1, 2), int), 0)
    mean, sd = standardise_bags({"train": [bag]})
    assert torch.isfinite(bag.x).all() and torch.isfinite(sd).all()
    prob, attention = predict_bags(GCNMIL(4, 8, 4, 3), [], "cpu")
    assert prob.shape == (0, 3) and attention == []


def test_subgroups_lacking_a_class_can_be_listed_with_their_reason():
    pred = pd.DataFrame({"image_id": list("abcdefgh"), "model": "m", "label": [0, 1, 1, 0, 0, 0, 1, 0],
                         "prob": [0.1, 0.8, 0.7, 0.3, 0.2, 0.4, 0.9, 0.6]})
    attrs = pd.DataFrame({"image_id": list("abcdefgh"), "g": ["x"] * 4 + ["y"] * 3 + ["z"]})
    kept = subgroup_auc(pred, attrs, ["g"], n_boot=20)
    listed = subgroup_auc(pred, attrs, ["g"], n_boot=20, include_skipped=True).set_index("subgroup")
    assert kept["subgroup"].tolist() == ["x"] and "skipped" not in kept
    assert listed.loc["x", "roc_auc"] == 1.0 and pd.isna(listed.loc["x", "skipped"])
    assert "1 positive(s), fewer than 2" in listed.loc["y", "skipped"] and math.isnan(listed.loc["y", "roc_auc"])
    assert "no positives among 1" in listed.loc["z", "skipped"]


def test_calibration_with_no_predictions_or_one_class_or_nan():
    scores, curves = calibration(pd.DataFrame(columns=["model", "label", "prob"]))
    assert scores.empty and curves.empty and "observed" in curves
    scores, curves = calibration(pd.DataFrame({"model": "m", "label": [0, 0, 0], "prob": [0.1, 0.2, 0.3]}))
    assert scores["brier"].iloc[0] == pytest.approx((0.01 + 0.04 + 0.09) / 3) and (curves["observed"] == 0).all()
    with pytest.raises(Skipped, match="m's probabilities"):
        calibration(pd.DataFrame({"model": "m", "label": [0, 1], "prob": [0.1, np.nan]}))
