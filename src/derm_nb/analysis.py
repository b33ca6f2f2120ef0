"""Cross-chapter analysis: collect every model chapter's artifacts, subgroup AUCs, calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, roc_auc_score

from derm_nb.artifacts import read_json
from derm_nb.chapters import MODEL_CHAPTERS
from derm_nb.metrics import NAN, bootstrap_auc_ci, groups_of, missing_class_reason, require_finite


def load_model_runs(run_dir: str | Path, chapters: tuple[str, ...] = MODEL_CHAPTERS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row of metrics per chapter x variant, all predictions) from the chapters that have run."""
    rows, predictions = [], []
    for chapter in chapters:
        folder = Path(run_dir) / chapter
        if not (folder / "metrics.json").is_file():
            continue
        record = read_json(folder / "metrics.json")
        for variant, metrics in record["variants"].items():
            rows.append({"chapter": chapter, "study": record.get("study"), "variant": variant,
                         "evaluation": record.get("evaluation"), "split": record.get("split"),
                         "oracle_auc": record.get("oracle_auc"),
                         "main": variant == record.get("main_model"),
                         **{k: v for k, v in metrics.items() if not isinstance(v, dict)},
                         "weights": metrics["weights"]})
        predictions.append(pd.read_parquet(folder / "predictions.parquet").assign(chapter=chapter))
    return pd.DataFrame(rows), (pd.concat(predictions, ignore_index=True) if predictions else pd.DataFrame())


def scored_predictions(metrics: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Each chapter's predictions on the split it scored (metrics.json's `split`, e.g. 'study001 test'), so a
    chapter that also kept its validation predictions is judged on its test split only; a chapter that records
    no split is an error naming it."""
    if predictions.empty:
        return predictions
    splits = metrics.drop_duplicates("chapter").set_index("chapter")["split"]
    unknown = sorted(c for c in predictions["chapter"].unique() if not isinstance(splits.get(c), str))
    if unknown:
        raise ValueError(f"metrics.json of {', '.join(unknown)} records no `split`: run the chapter again")
    split_name = predictions["chapter"].map(splits).str.split().str[-1]
    return predictions[predictions["split"] == split_name].reset_index(drop=True)


def age_band(age: pd.Series) -> pd.Series:
    """Age in three bands: <40, 40-60, >60."""
    return pd.cut(age, [-np.inf, 40, 60, np.inf], labels=["<40", "40-60", ">60"]).astype(str)


SUBGROUP_COLUMNS = ["model", "attribute", "subgroup", "n", "positives", "roc_auc", "ci_low", "ci_high"]


def subgroup_skip_reason(labels: pd.Series, min_positives: int = 2) -> str | None:
    """Why a subgroup gets no AUC: a class missing, or fewer than `min_positives` positives; None when it gets one."""
    positives = int(labels.sum())
    if reason := missing_class_reason(labels):
        return reason
    return f"{positives} positive(s), fewer than {min_positives}" if positives < min_positives else None


def subgroup_auc(predictions: pd.DataFrame, attributes: pd.DataFrame, columns: list[str], n_boot: int = 500,
                 seed: int = 0, min_positives: int = 2, include_skipped: bool = False) -> pd.DataFrame:
    """ROC-AUC with a bootstrap 95 % CI per model and subgroup (binary `label`). A subgroup lacking a class or
    with fewer than `min_positives` positives is left out, or with `include_skipped` kept with NaN AUC and CI
    and its reason in a `skipped` column. With a `group_id` column in `attributes`, the CI resamples whole groups."""
    merged = predictions.merge(attributes, on="image_id", how="left")
    rows = []
    for model, part in merged.groupby("model", sort=False):
        for column in columns:
            for level, sub in part.groupby(column, dropna=False):
                row = {"model": model, "attribute": column, "subgroup": str(level), "n": len(sub),
                       "positives": int(sub["label"].sum())}
                if reason := subgroup_skip_reason(sub["label"], min_positives):
                    if include_skipped:
                        rows.append({**row, "roc_auc": NAN, "ci_low": NAN, "ci_high": NAN, "skipped": reason})
                    continue
                lo, hi = bootstrap_auc_ci(sub["label"], sub["prob"], n_boot=n_boot, seed=seed, groups=groups_of(sub))
                rows.append({**row, "roc_auc": roc_auc_score(sub["label"], sub["prob"]), "ci_low": lo, "ci_high": hi,
                             "skipped": None})
    return pd.DataFrame(rows, columns=SUBGROUP_COLUMNS + (["skipped"] if include_skipped else []))


def calibration(predictions: pd.DataFrame, n_bins: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(Brier score per model, reliability-curve points per model) for binary probabilities. Both are defined
    with one class too (the observed share is then 0 or 1 in every bin); no predictions give empty frames.
    A NaN or infinite probability raises `Skipped`."""
    scores, curves = [], []
    for model, part in predictions.groupby("model", sort=False):
        require_finite(part["prob"], f"{model}'s probabilities")
        scores.append({"model": model, "brier": brier_score_loss(part["label"], part["prob"]),
                       "mean_prob": part["prob"].mean(), "prevalence": part["label"].mean(), "n": len(part)})
        observed, predicted = calibration_curve(part["label"], part["prob"], n_bins=n_bins, strategy="quantile")
        curves.append(pd.DataFrame({"model": model, "predicted": predicted, "observed": observed}))
    return (pd.DataFrame(scores, columns=["model", "brier", "mean_prob", "prevalence", "n"]),
            pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=["model", "predicted", "observed"]))


SHOWN = ["study", "model", "data", "ROC-AUC", "CI low", "CI high", "oracle AUC", "oracle_lift"]


def oracle_lift(auc: pd.Series, oracle: pd.Series) -> pd.Series:
    """(AUC - 0.5) / (oracle AUC - 0.5): the share of the oracle's lift over chance a model reached;
    NaN on real data (no oracle) or where the oracle itself is at chance."""
    auc, oracle = pd.to_numeric(auc, errors="coerce"), pd.to_numeric(oracle, errors="coerce")
    return ((auc - 0.5) / (oracle - 0.5)).where(oracle > 0.5)


GOAL_LIFT = 0.6  # the default book's goal: each main model reaches 60 % of the oracle's lift over chance


def goal_table(table: pd.DataFrame, lift: float = GOAL_LIFT) -> pd.DataFrame:
    """Each study's main model (`benchmark_table`'s `main` rows) against the book's goal: a 95 % CI above
    chance and at least `lift` of the oracle's lift over chance (NaN on real data, where there is no oracle)."""
    main = table[table["main"]]
    reached = main["oracle_lift"].ge(lift).where(main["oracle_lift"].notna())
    return pd.DataFrame({"study": main["study"], "model": main["model"], "ROC-AUC": main["ROC-AUC"],
                         "CI low": main["CI low"], "oracle_lift": main["oracle_lift"],
                         "CI above chance": main["CI low"].gt(0.5), f"lift ≥ {lift:.0%}": reached}
                        ).reset_index(drop=True)


def benchmark_table(metrics: pd.DataFrame, slots: dict) -> pd.DataFrame:
    """One row per model of every chapter (`load_model_runs`), with its dataset (from the catalog's `slots`),
    the split it was scored on (metrics.json's `split`), AUC with CI, the oracle ceiling and `oracle_lift`, and
    its cost and weights."""
    from derm_nb.data.catalog import slot_scheme
    from derm_nb.results import weights_label

    data_of = {slot.removeprefix("study"): ("synthetic " if entry["synthetic"] else "") + entry["folder"]
               for slot, entry in slots.items() if slot == slot_scheme(slot)}
    table = pd.DataFrame({
        "study": metrics["study"], "model": metrics["variant"], "data": metrics["study"].map(data_of),
        "split": metrics["split"],
        "ROC-AUC": metrics["roc_auc"], "CI low": metrics["roc_auc_ci_low"], "CI high": metrics["roc_auc_ci_high"],
        "pAUC (TPR≥0.8)": metrics["pauc_80"], "balanced acc.": metrics["balanced_accuracy"],
        "sens. @ 90 % spec.": metrics["sens_at_spec90"], "oracle AUC": metrics["oracle_auc"],
        "oracle_lift": oracle_lift(metrics["roc_auc"], metrics["oracle_auc"]),
        "train time (s)": metrics["train_seconds"], "parameters": metrics["n_params"],
        "weights": metrics["weights"].map(weights_label),
        "skipped": metrics["skipped"] if "skipped" in metrics else None,
        "main": metrics["main"]})
    numeric = table.columns.difference(["study", "model", "data", "split", "weights", "skipped", "main"])
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")
    return table
