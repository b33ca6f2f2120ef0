"""A trained model variant's results: train and score it, write it under the artifact contract,
and show it in a results table.

Every model chapter trains variants the same way (fit, predict the evaluation split, score),
so that loop lives here; the chapters only say which variants to build.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import balanced_accuracy_score
from torch import nn
from torch.utils.data import Dataset

from derm_nb.artifacts import write_json, write_parquet
from derm_nb.metrics import Skipped, evaluate_binary, groups_of, multiclass_report
from derm_nb.models.backbones import Provenance
from derm_nb.train import TrainConfig, fit, predict

PREDICTION_COLUMNS = ["image_id", "split", "model", "label", "prob", "pred"]


@dataclass
class Variant:
    """One trained model variant: its curves, its scores on the evaluation split, and its record.

    `skipped` is None for a scored variant; otherwise why it could not be scored: it then has no
    predictions and no metrics but its record (written as `skipped` in metrics.json).
    """

    name: str
    history: pd.DataFrame
    predictions: pd.DataFrame  # image_id, split, model, label, prob, pred
    metrics: dict
    seconds: float
    provenance: dict
    n_params: int
    extra: dict = field(default_factory=dict)
    skipped: str | None = None


def skipped_variant(name: str, reason: str, provenance: dict, history: pd.DataFrame | None = None,
                    record: dict | None = None, seconds: float = 0.0) -> Variant:
    """A variant that could not be scored, with the reason a chapter shows as "skipped: <reason>"."""
    record = {"n_params": 0, **(record or {})}
    history = pd.DataFrame() if history is None else history.assign(model=name)
    return Variant(name, history, pd.DataFrame(columns=PREDICTION_COLUMNS), record, seconds, provenance,
                   int(record["n_params"]), skipped=reason)


def skip_notes(variants: list[Variant]) -> list[str]:
    """One markdown line per skipped variant: "`name`: skipped: reason"."""
    return [f"`{v.name}`: skipped: {v.skipped}" for v in variants if v.skipped]


def json_ready(value: Any) -> Any:
    """`value` with every NaN or infinite float (nested in dicts, lists and tuples) replaced by None:
    NaN is not valid JSON."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        return None
    return value


def count_parameters(model: nn.Module) -> int:
    """Trainable and frozen parameters of `model`."""
    return int(sum(p.numel() for p in model.parameters()))


def train_and_predict(name: str, model: nn.Module, loss_fn: nn.Module, train: Dataset, evaluation: Dataset,
                       cfg: TrainConfig, checkpoint_dir: Path, activation, train_targets: np.ndarray | None,
                       score_on: Dataset | None = None):
    """Fit with `evaluation` as the validation set, then predict `score_on` (default: `evaluation`)."""
    cfg.desc = name
    result = fit(model, loss_fn, train, evaluation, cfg, checkpoint_dir, train_targets=train_targets)
    scored = evaluation if score_on is None else score_on
    prob = predict(model, scored, batch_size=cfg.batch_size * 2, device=cfg.device, activation=activation)
    record = {"train_seconds": round(result.seconds, 1), "best_epoch": result.best_epoch,
              "epochs_run": len(result.history), "device": result.device, "amp": result.amp_used,
              "n_train": len(train), "n_eval": len(scored), "n_params": count_parameters(model)}
    return result, prob, record


def run_binary_variant(name: str, model: nn.Module, provenance: Provenance, loss_fn: nn.Module,
                       train: Dataset, evaluation: Dataset, eval_frame: pd.DataFrame, cfg: TrainConfig,
                       checkpoint_dir: Path, split: str = "val", threshold_rule: str = "max_f1",
                       train_targets: np.ndarray | None = None,
                       test: tuple[Dataset, pd.DataFrame] | None = None) -> Variant:
    """Train `model`, predict `evaluation` with the best epoch, score it at the chosen threshold.

    With `test=(dataset, frame)`, the threshold is chosen on `evaluation` (validation) and the
    scores are those of the test split; predictions of both splits are kept. A model whose scores are
    NaN or infinite (it diverged) comes back skipped, with its history and record.
    """
    result, prob, record = train_and_predict(name, model, loss_fn, train, evaluation, cfg, checkpoint_dir,
                                              torch.sigmoid, train_targets)
    try:
        return _score_binary(name, model, result, prob, record, eval_frame, cfg, split, threshold_rule, test,
                             provenance)
    except Skipped as error:
        return skipped_variant(name, str(error), provenance.as_dict(), result.history, record, result.seconds)


def _score_binary(name: str, model: nn.Module, result, prob: np.ndarray, record: dict, eval_frame: pd.DataFrame,
                  cfg: TrainConfig, split: str, threshold_rule: str, test: tuple[Dataset, pd.DataFrame] | None,
                  provenance: Provenance) -> Variant:
    label = eval_frame["target"].to_numpy()
    scores = {**evaluate_binary(label, prob, threshold_rule, seed=cfg.seed, groups=groups_of(eval_frame)), **record}
    frames = [pd.DataFrame({"image_id": eval_frame["image_id"].to_numpy(), "split": split, "model": name,
                            "label": label, "prob": prob})]
    if test is not None:
        test_set, test_frame = test
        test_prob = predict(model, test_set, batch_size=cfg.batch_size * 2, device=cfg.device)
        test_label = test_frame["target"].to_numpy()
        scores = {**evaluate_binary(test_label, test_prob, threshold_rule, seed=cfg.seed,
                                    threshold_from=(label, prob), groups=groups_of(test_frame)),
                  **record, "n_eval": len(test_set)}
        frames.append(pd.DataFrame({"image_id": test_frame["image_id"].to_numpy(), "split": "test", "model": name,
                                    "label": test_label, "prob": test_prob}))
    predictions = pd.concat(frames, ignore_index=True)
    predictions["pred"] = (predictions["prob"] >= scores["threshold"]).astype(int)
    return Variant(name, result.history.assign(model=name), predictions, scores, result.seconds,
                   provenance.as_dict(), record["n_params"])


def run_multiclass_variant(name: str, model: nn.Module, provenance: Provenance, loss_fn: nn.Module,
                           train: Dataset, evaluation: Dataset, eval_frame: pd.DataFrame, cfg: TrainConfig,
                           checkpoint_dir: Path, classes: list[str], target_class: int,
                           split: str = "test", score_on: Dataset | None = None) -> Variant:
    """Train a softmax classifier (early stopping on `evaluation`), score `score_on` (rows: `eval_frame`)
    per class, with weighted averages and the target class's one-vs-rest AUC (NaN, with `auc_skipped`, when the
    scored rows lack or are all the target class). Skipped, with its history, when its scores are not finite."""
    result, prob, record = train_and_predict(name, model, loss_fn, train, evaluation, cfg, checkpoint_dir,
                                              lambda x: torch.softmax(x, dim=1), None, score_on)
    label = eval_frame["label"].to_numpy()
    target = (label == target_class).astype(int)
    try:
        one_vs_rest = evaluate_binary(target, prob[:, target_class], "youden", seed=cfg.seed,
                                      groups=groups_of(eval_frame))
    except Skipped as error:
        return skipped_variant(name, str(error), provenance.as_dict(), result.history, record, result.seconds)
    pred = prob.argmax(axis=1)
    report = multiclass_report(label, pred, classes)
    scores = {**{k: one_vs_rest[k] for k in ("roc_auc", "roc_auc_ci_low", "roc_auc_ci_high", "pauc_80",
                                             "sens_at_spec90", "auc_skipped")},
              "accuracy": float((pred == label).mean()),
              "balanced_accuracy": float(balanced_accuracy_score(label, pred)),
              "f1_weighted": float(report.loc["weighted avg", "f1-score"]),
              "precision_weighted": float(report.loc["weighted avg", "precision"]),
              "recall_weighted": float(report.loc["weighted avg", "recall"]),
              "target_class": classes[target_class],
              "per_class": report.drop(index="weighted avg").to_dict("index"), **record}
    predictions = pd.DataFrame({"image_id": eval_frame["image_id"].to_numpy(), "split": split, "model": name,
                                "label": label, "prob": prob[:, target_class], "pred": pred,
                                **{f"prob_{c}": prob[:, k] for k, c in enumerate(classes)}})
    return Variant(name, result.history.assign(model=name), predictions, scores, result.seconds,
                   provenance.as_dict(), record["n_params"], {"report": report})


def write_model_artifacts(out: Path, variants: list[Variant], meta: dict | None = None,
                          main: str | None = None) -> None:
    """`metrics.json` (one entry per variant, with the weights it started from, and `skipped` with the reason
    for a variant that could not be scored; NaN written as null) and `predictions.parquet`. Two variants of one
    name are an error: one would overwrite the other. `main` names the chapter's main model (`main_model`),
    the one the summary holds against the book's goal."""
    names = [v.name for v in variants]
    if repeated := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"variants share a name ({', '.join(repeated)}): metrics.json would keep only one of each")
    if main is not None and main not in names:
        raise ValueError(f"the main model '{main}' is not among the variants ({', '.join(names)})")
    meta = {**(meta or {}), **({"main_model": main} if main is not None else {})}
    metrics = {v.name: {**v.metrics, "weights": v.provenance, **({"skipped": v.skipped} if v.skipped else {}),
                        **{k: x for k, x in v.extra.items() if not isinstance(x, pd.DataFrame)}} for v in variants}
    write_json(out / "metrics.json", json_ready({"variants": metrics, **meta}))
    write_parquet(out / "predictions.parquet", predictions_of(variants))
    write_parquet(out / "history.parquet", history_of(variants))


def _stack(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """The non-empty frames one under the other (a skipped variant adds none); `columns` when all are empty."""
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def predictions_of(variants: Iterable[Variant]) -> pd.DataFrame:
    """The scored variants' predictions one under the other: a skipped variant's empty frame would turn the
    labels' dtype to object, which scikit-learn's curves refuse."""
    return _stack([v.predictions for v in variants], PREDICTION_COLUMNS)


def history_of(variants: Iterable[Variant]) -> pd.DataFrame:
    """The variants' epoch histories one under the other (a variant skipped before training adds none)."""
    return _stack([v.history for v in variants], ["model"])


def weights_label(provenance: dict) -> str:
    """Short text of the weights a model started from (a Provenance record as a dict), for results tables."""
    return Provenance(**provenance).label()


def weights_note(provenance: dict, model: str = "Backbone") -> str:
    """A markdown line: what `model`'s weights started from and, for a stand-in, what it replaces."""
    p = Provenance(**provenance)
    text = f"{model}: **{p.label()}**"
    return text + (" (its ImageNet weights are not available here)." if p.substituted_for else ".")


def results_table(variants: list[Variant], columns: dict[str, str]) -> pd.DataFrame:
    """A results table with the given metric -> column-title mapping, one row per variant, and its weights;
    with a `skipped` column (the reason, or "") when a variant could not be scored."""
    rows = {v.name: {**{title: v.metrics.get(key) for key, title in columns.items()},
                     "weights": weights_label(v.provenance)} for v in variants}
    table = pd.DataFrame(rows).T
    if any(v.skipped for v in variants):
        table["skipped"] = [v.skipped or "" for v in variants]
    return table
