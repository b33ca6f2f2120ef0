"""The linear-probe floor: C chosen on validation, the row marked as the floor, a one-class split skipped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from derm_nb.artifacts import read_json, write_json, write_parquet
from derm_nb.floor import (
    FloorSpec,
    ProbeFeatures,
    add_to_artifacts,
    choose_c,
    embed,
    floor_table,
    floor_verdict,
    linear_probe,
)
from derm_nb.models.backbones import Provenance

PROVENANCE = Provenance("efficientnet_lite0", "imagenet", "PyPI package", "0" * 64, "resnet18")


def _frame(y: np.ndarray, prefix: str) -> pd.DataFrame:
    return pd.DataFrame({"image_id": [f"{prefix}{i}" for i in range(len(y))], "target": y, "label": y})


def _shifted_validation(seed: int = 0):
    """Train where feature 0 separates the classes with a wide margin; validation where it is reversed for a
    third of the rows, so confident (large-C) fits are punished there and a small C wins on validation."""
    rng = np.random.default_rng(seed)
    y_train = np.repeat([0, 1], 60)
    x_train = rng.normal(size=(120, 5)) + np.outer(y_train * 2 - 1, [3, 0, 0, 0, 0])
    y_val = np.repeat([0, 1], 30)
    sign = np.where(rng.random(60) < 0.35, -1, 1) * (y_val * 2 - 1)
    x_val = rng.normal(size=(60, 5)) + np.outer(sign, [3, 0, 0, 0, 0])
    return x_train, y_train, x_val, y_val


def test_c_is_chosen_on_validation_not_on_train():
    x_train, y_train, x_val, y_val = _shifted_validation()
    grid = (0.001, 0.01, 0.1, 1.0, 10.0)
    on_val, val_losses, where = choose_c(x_train, y_train, (x_val, y_val), grid)
    on_train, _, cv_where = choose_c(x_train, y_train, None, grid)
    assert where == "the validation split" and "cross-validation on train" in cv_where
    assert on_val != on_train and on_val < on_train
    assert val_losses[on_val] == min(val_losses.values())


def test_the_probe_is_the_floor_and_scores_the_asked_split(tmp_path):
    x_train, y_train, x_val, y_val = _shifted_validation()
    frames = {"train": _frame(y_train, "t"), "val": _frame(y_val, "v"), "test": _frame(y_val, "s")}
    probe = ProbeFeatures({"train": x_train, "val": x_val, "test": x_val}, PROVENANCE, 1.5, 1000, 96)
    variant = linear_probe(probe, frames, FloorSpec(seed=0))
    assert variant.extra["floor"] is True and variant.skipped is None
    assert variant.extra["probe"]["selected_on"] == "the validation split"
    assert set(variant.predictions["split"]) == {"test"} and len(variant.predictions) == 60
    assert variant.metrics["n_eval"] == 60 and variant.metrics["train_seconds"] >= 1.5
    assert 0.5 < variant.metrics["roc_auc"] < 1
    assert variant.provenance["substituted_for"] == "resnet18"  # the row says which weights it used

    main = pd.DataFrame({"image_id": frames["test"]["image_id"], "split": "test", "model": "Main", "label": y_val,
                         "prob": 0.5, "pred": 0})
    write_parquet(tmp_path / "predictions.parquet", main)
    write_json(tmp_path / "metrics.json", {"variants": {"Main": {"roc_auc": 0.6, "weights": PROVENANCE.as_dict()}},
                                           "main_model": "Main"})
    for _ in range(2):  # a second run replaces the floor, never adds another
        record = add_to_artifacts(tmp_path, variant)
    assert [n for n, m in read_json(tmp_path / "metrics.json")["variants"].items() if m.get("floor")] == ["Linear probe"]
    assert record["main_model"] == "Main"
    assert len(pd.read_parquet(tmp_path / "predictions.parquet")) == 120
    table = floor_table(record, {"roc_auc": "AUC"})
    assert list(table["role"]) == ["main model", "floor"]
    floor_auc = record["variants"]["Linear probe"]["roc_auc"]
    assert floor_verdict(record, {"roc_auc": "AUC", "recall": "recall"}) == (
        f"**The main model, Main, is below its floor**: AUC 0.600 against the floor's {floor_auc:.3f}.")


def test_the_floor_verdict_names_each_metric_below_and_stays_silent_without_a_main_model():
    record = {"main_model": "GCN", "variants": {
        "GCN": {"roc_auc": 0.73, "sk_roc_auc": 0.90, "accuracy": 0.1},
        "Linear probe": {"roc_auc": 0.75, "sk_roc_auc": 0.83, "accuracy": 0.9, "floor": True}}}
    columns = {"roc_auc": "melanoma AUC", "sk_roc_auc": "SK AUC", "accuracy": "accuracy"}
    assert floor_verdict(record, columns) == ("**The main model, GCN, is below its floor on melanoma AUC**: melanoma AUC "
                                              "0.730 against the floor's 0.750; SK AUC 0.900 against the floor's 0.830.")
    record["variants"]["GCN"]["roc_auc"] = 0.75
    assert "is at or above its floor" in floor_verdict(record, columns)
    assert floor_verdict({**record, "main_model": None}, columns) == ""
    record["variants"]["Linear probe"]["skipped"] = "one class"
    assert floor_verdict(record, columns) == ""


def test_the_floor_cannot_be_the_main_model(tmp_path):
    write_json(tmp_path / "metrics.json", {"variants": {}, "main_model": "Linear probe"})
    write_parquet(tmp_path / "predictions.parquet", pd.DataFrame(columns=["model"]))
    x = np.random.default_rng(0).normal(size=(20, 3))
    y = np.repeat([0, 1], 10)
    frames = {s: _frame(y, s) for s in ("train", "val", "test")}
    variant = linear_probe(ProbeFeatures({s: x for s in frames}, PROVENANCE, 0.1, 10, 64), frames, FloorSpec())
    with pytest.raises(ValueError, match="cannot be the chapter's main model"):
        add_to_artifacts(tmp_path, variant)


def test_a_one_class_split_is_skipped_with_its_reason():
    x = np.random.default_rng(0).normal(size=(20, 3))
    y = np.repeat([0, 1], 10)
    frames = {"train": _frame(y, "t"), "val": _frame(y, "v"), "test": _frame(np.zeros(20, int), "s")}
    variant = linear_probe(ProbeFeatures({s: x for s in frames}, PROVENANCE, 0.1, 10, 64), frames, FloorSpec())
    assert variant.skipped and "test split" in variant.skipped and "no positives" in variant.skipped
    assert variant.extra["floor"] is True and variant.predictions.empty


def test_multiclass_floor_keeps_every_class_probability():
    rng = np.random.default_rng(1)
    y = np.tile([0, 1, 2], 20)
    x = rng.normal(size=(60, 4)) + np.eye(3, 4)[y] * 2
    frames = {s: _frame(y, s) for s in ("train", "val", "test")}
    spec = FloorSpec(kind="multiclass", classes=("benign", "malignant", "normal"), target_class=1)
    variant = linear_probe(ProbeFeatures({s: x for s in frames}, PROVENANCE, 0.1, 10, 64), frames, spec)
    assert {"prob_benign", "prob_malignant", "prob_normal"} <= set(variant.predictions.columns)
    assert np.allclose(variant.predictions["prob"], variant.predictions["prob_malignant"])
    assert variant.metrics["f1_weighted"] > 0.5 and variant.metrics["target_class"] == "malignant"


def test_embed_batches_in_order_without_gradients():
    module = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    images = torch.randint(0, 255, (5, 3, 8, 8), dtype=torch.uint8)
    features = embed(module, images, 8, batch_size=2)
    whole = embed(module, images, 8, batch_size=5)
    assert features.shape == (5, 3) and np.allclose(features, whole, atol=1e-6)


def test_summary_puts_each_main_model_beside_its_floor_and_the_quoted_figures():
    from derm_nb import studies
    from derm_nb.floor import study_floors

    weights = PROVENANCE.as_dict()
    metrics = pd.DataFrame([
        {"chapter": "06_architectures", "study": "003", "variant": "Pretrained", "main": True, "roc_auc": 0.8,
         "f1_weighted": 0.7, "evaluation": "study003 test split", "weights": weights},
        {"chapter": "06_architectures", "study": "003", "variant": "Linear probe", "main": False, "floor": True,
         "roc_auc": 0.85, "f1_weighted": 0.75, "evaluation": "study003 test split", "weights": weights},
        {"chapter": "04_efficientnet", "study": "001", "variant": "Recipe", "main": True, "roc_auc": 0.7,
         "evaluation": "study001 test split", "weights": weights}])
    table = study_floors(metrics, studies.cards()).set_index("chapter")
    assert list(table.index) == ["06_architectures"]  # a chapter without a floor gets no row
    row = table.loc["06_architectures"]
    assert row["main model"] == "Pretrained" and row["main - floor (AUC)"] == pytest.approx(-0.05)
    assert "0.87" in row["paper (quoted)"] and "0.85-0.90" in row["best public figure (quoted)"]


def test_a_chapter_scorer_replaces_the_kinds_metrics():
    rng = np.random.default_rng(2)
    y = np.tile([0, 1, 2], 20)
    x = rng.normal(size=(60, 4)) + np.eye(3, 4)[y] * 2
    frames = {s: _frame(y, s) for s in ("train", "val", "test")}
    seen = {}

    def scorer(labels, prob):
        seen["shape"] = prob.shape
        return {"roc_auc": 0.5, "sk_roc_auc": 0.25}

    spec = FloorSpec(kind="multiclass", classes=("melanoma", "sk", "nevus"), target_class=0, scorer=scorer)
    variant = linear_probe(ProbeFeatures({s: x for s in frames}, PROVENANCE, 0.1, 10, 64), frames, spec)
    assert seen["shape"] == (60, 3) and variant.metrics["sk_roc_auc"] == 0.25 and "f1_weighted" not in variant.metrics
