"""Evaluation: threshold metrics, the ISIC partial AUC, threshold choices, bootstrap CIs.

Degenerate inputs, one rule for the whole module: a metric that needs both classes (the AUCs and their
CIs, sensitivity at a specificity, balanced accuracy, the recall or specificity of an absent class) is NaN
when the labels lack a class, and the dict-returning functions say why under `auc_skipped` (None when
everything was computed). A threshold cannot be chosen on one class: the threshold rules raise `Skipped`,
and `evaluate_binary` then applies 0.5 and says so under `threshold_skipped`. Scores that are NaN or
infinite raise `Skipped`. Writers turn NaN into JSON null (`results.json_ready`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics as skm

NAN = float("nan")


class Skipped(ValueError):
    """A result that cannot be computed from these inputs; `str(error)` is the reason a chapter shows."""


def missing_class_reason(y: np.ndarray) -> str | None:
    """Why a metric that needs both classes cannot be computed on binary labels `y`; None when it can."""
    y = np.asarray(y).astype(int)
    positives = int((y == 1).sum())
    if 0 < positives < len(y):
        return None
    return f"needs both classes: no {'positives' if positives == 0 else 'negatives'} among {len(y)} images"


def require_both_classes(y: np.ndarray, what: str) -> None:
    """Raise `Skipped` naming `what` when `y` lacks a class."""
    reason = missing_class_reason(y)
    if reason is not None:
        raise Skipped(f"{what} {reason}")


def format_metric(value: float | None, spec: str = ".3f", missing: str = "n/a") -> str:
    """A metric for prose (`spec`), or `missing` when it was skipped (None or NaN)."""
    return missing if pd.isna(value) else format(value, spec)


def require_finite(p: np.ndarray, what: str = "the scores") -> None:
    """Raise `Skipped` when a score is NaN or infinite (a diverged model, a failed projection)."""
    bad = int((~np.isfinite(np.asarray(p, dtype=float))).sum())
    if bad:
        raise Skipped(f"{bad} of {np.size(p)} of {what} are NaN or infinite")


def partial_auc_above_tpr(y: np.ndarray, p: np.ndarray, min_tpr: float = 0.8) -> float:
    """The ISIC challenge's `auc_sens_80`: raw area under the ROC curve where TPR >= min_tpr.

    Not scikit-learn's McClish-standardised `max_fpr` variant: the maximum is 1 - min_tpr (0.2).
    As the challenge scorer does, labels and scores are flipped so that the TPR band becomes an
    FPR band [0, 1 - min_tpr], and the curve is interpolated at its edge. NaN when `y` lacks a class.
    """
    y = np.asarray(y)
    if missing_class_reason(y) is not None:
        return NAN
    flipped_y, flipped_p = np.abs(y - 1), -np.asarray(p, dtype=float)
    max_fpr = 1 - min_tpr
    fpr, tpr, _ = skm.roc_curve(flipped_y, flipped_p)
    stop = np.searchsorted(fpr, max_fpr, "right")
    x_edge, y_edge = [fpr[stop - 1], fpr[stop]], [tpr[stop - 1], tpr[stop]]
    tpr = np.append(tpr[:stop], np.interp(max_fpr, x_edge, y_edge))
    fpr = np.append(fpr[:stop], max_fpr)
    return float(skm.auc(fpr, tpr))


def threshold_youden(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold maximising Youden's J = TPR - FPR; raises `Skipped` when `y` lacks a class."""
    require_both_classes(y, "the Youden threshold")
    fpr, tpr, thresholds = skm.roc_curve(y, p)
    finite = np.isfinite(thresholds)
    j = (tpr - fpr)[finite]
    return float(thresholds[finite][int(np.argmax(j))])


def threshold_max_f1(y: np.ndarray, p: np.ndarray, tpr_bounds: tuple[float, float] = (0.8, 0.9)) -> float:
    """Study 000's threshold: maximum F1 among thresholds whose TPR lies within `tpr_bounds`.

    When no threshold gives a TPR inside the bounds (small validation sets), the thresholds whose
    TPR is closest to the band are the candidates. Raises `Skipped` when `y` lacks a class.
    """
    y = np.asarray(y)
    require_both_classes(y, "the max-F1 threshold")
    _, tpr, thresholds = skm.roc_curve(y, p)
    finite = np.isfinite(thresholds)
    tpr, thresholds = tpr[finite], thresholds[finite]
    lo, hi = tpr_bounds
    distance = np.where(tpr < lo, lo - tpr, np.where(tpr > hi, tpr - hi, 0.0))
    candidates = thresholds[distance == distance.min()]
    f1 = [skm.f1_score(y, np.asarray(p) >= t, zero_division=0) for t in candidates]
    return float(candidates[int(np.argmax(f1))])


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Every binary metric the studies report, at one threshold, plus the threshold-free AUCs
    (NaN, with the reason under `auc_skipped`, when `y` lacks a class)."""
    require_finite(p)
    y = np.asarray(y).astype(int)
    pred = (np.asarray(p) >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    reason = missing_class_reason(y)
    both = reason is None
    return {
        "threshold": float(threshold),
        "roc_auc": float(skm.roc_auc_score(y, p)) if both else NAN,
        "pauc_80": partial_auc_above_tpr(y, p),
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)) if tp + fn else NAN,
        "specificity": float(tn / (tn + fp)) if tn + fp else NAN,
        "accuracy": float(skm.accuracy_score(y, pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, pred)) if both else NAN,
        "f1_macro": float(skm.f1_score(y, pred, average="macro", zero_division=0)),
        "f1_weighted": float(skm.f1_score(y, pred, average="weighted", zero_division=0)),
        "tp": int(tp), "fp": int(fp), "tn": int(tn), "fn": int(fn), "auc_skipped": reason,
    }


EPOCH_SCORES = ("f1", "precision", "recall", "roc_auc", "tp", "fp", "tn", "fn")


def epoch_scores(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """F1, precision, recall, ROC-AUC and the confusion counts at one threshold, for a training history;
    all NaN when a score is NaN or infinite (a diverging epoch is recorded, not fatal)."""
    try:
        scores = binary_metrics(y, p, threshold)
    except Skipped:
        return dict.fromkeys(EPOCH_SCORES, NAN)
    return {k: scores[k] for k in EPOCH_SCORES}


def sensitivity_at_specificity(y: np.ndarray, p: np.ndarray, specificity: float = 0.9) -> float:
    """The highest TPR reachable while keeping specificity >= the given value; NaN when `y` lacks a class."""
    if missing_class_reason(y) is not None:
        return NAN
    fpr, tpr, _ = skm.roc_curve(y, p)
    ok = fpr <= 1 - specificity + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def bootstrap_auc_ci(y: np.ndarray, p: np.ndarray, n_boot: int = 1000, seed: int = 0,
                     level: float = 0.95, groups: np.ndarray | None = None) -> tuple[float, float]:
    """Percentile bootstrap CI of the ROC-AUC, resampling positives and negatives separately; with
    `groups` (patients, lesions) that hold several images, whole groups instead (`cluster_aucs`).

    A patient's images share that patient's risk, so resampling them one by one would understate the
    uncertainty. Each resample's AUC is the Mann-Whitney statistic from average ranks (ties count one
    half, as in scikit-learn's AUC). (NaN, NaN) when `y` lacks a class.
    """
    from scipy.stats import rankdata

    require_finite(p)
    y, p = np.asarray(y).astype(int), np.asarray(p, dtype=float)
    if missing_class_reason(y) is not None:
        return NAN, NAN
    rng = np.random.default_rng(seed)
    alpha = (1 - level) / 2
    if groups is not None and len(pd.unique(np.asarray(groups))) < len(y):
        aucs = cluster_aucs(y, p, np.asarray(groups), n_boot, rng)
        if not np.isfinite(aucs).any():
            return NAN, NAN
        return float(np.nanquantile(aucs, alpha)), float(np.nanquantile(aucs, 1 - alpha))
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    aucs = np.empty(n_boot)
    block = max(1, 4_000_000 // len(y))
    for start in range(0, n_boot, block):
        b = min(block, n_boot - start)
        idx = np.concatenate([rng.choice(pos, (b, len(pos))), rng.choice(neg, (b, len(neg)))], axis=1)
        ranks = rankdata(p[idx], axis=1)
        aucs[start:start + b] = (ranks[:, :len(pos)].sum(axis=1) - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))
    return float(np.quantile(aucs, alpha)), float(np.quantile(aucs, 1 - alpha))


def groups_of(frame: pd.DataFrame) -> np.ndarray | None:
    """Each row's patient or lesion (`group_id`), so that CIs resample whole groups; None without the column."""
    return frame["group_id"].to_numpy() if "group_id" in frame else None


def cluster_aucs(y: np.ndarray, p: np.ndarray, groups: np.ndarray, n_boot: int,
                 rng: np.random.Generator) -> np.ndarray:
    """AUCs of `n_boot` cluster-bootstrap resamples: the groups with a positive and those without are each
    drawn with replacement, every image of a drawn group coming along. NaN for a resample with one class."""
    from scipy.stats import rankdata

    _, inverse = np.unique(groups.astype(str), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    members = np.split(order, np.cumsum(np.bincount(inverse))[:-1])
    has_positive = np.array([y[m].any() for m in members])
    strata = [s for s in (np.flatnonzero(has_positive), np.flatnonzero(~has_positive)) if len(s)]
    aucs = np.full(n_boot, NAN)
    for b in range(n_boot):
        idx = np.concatenate([members[g] for s in strata for g in rng.choice(s, len(s))])
        yy = y[idx]
        n_pos = int(yy.sum())
        if 0 < n_pos < len(yy):
            aucs[b] = (rankdata(p[idx])[yy == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * (len(yy) - n_pos))
    return aucs


def evaluate_binary(y: np.ndarray, p: np.ndarray, threshold_rule: str = "max_f1", seed: int = 0,
                    threshold_from: tuple[np.ndarray, np.ndarray] | None = None,
                    groups: np.ndarray | None = None) -> dict[str, float]:
    """Metrics at a threshold chosen by rule (`0.5`, `youden`, `max_f1`), with the AUC's bootstrap CI.

    `threshold_from=(y_val, p_val)` picks the threshold on other data (e.g. validation for a test set).
    When that data lacks a class, 0.5 is applied: `threshold_rule` says "0.5" and `threshold_skipped` why.
    `groups` (each row's patient or lesion) makes the CI resample whole groups.
    """
    y_t, p_t = threshold_from if threshold_from is not None else (y, p)
    rules = {"0.5": lambda: 0.5, "youden": lambda: threshold_youden(y_t, p_t),
             "max_f1": lambda: threshold_max_f1(y_t, p_t)}
    if threshold_rule not in rules:
        raise KeyError(f"unknown threshold rule '{threshold_rule}' (known: {', '.join(rules)})")
    require_finite(p)
    if threshold_from is not None:
        require_finite(p_t, "the threshold data's scores")
    try:
        threshold, applied, skipped = rules[threshold_rule](), threshold_rule, None
    except Skipped as error:
        threshold, applied, skipped = 0.5, "0.5", f"{error}; 0.5 applied"
    out = binary_metrics(y, p, threshold)
    out["threshold_rule"], out["threshold_skipped"] = applied, skipped
    out["roc_auc_ci_low"], out["roc_auc_ci_high"] = bootstrap_auc_ci(y, p, seed=seed, groups=groups)
    out["sens_at_spec90"] = sensitivity_at_specificity(y, p, 0.9)
    return out


def multiclass_report(y: np.ndarray, pred: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Per-class precision / recall / F1 / support and the weighted average (study 003's Table I).

    A class absent from `y` has no recall: its recall and F1 are NaN (they weigh 0 in the weighted average).
    """
    report = skm.classification_report(y, pred, labels=list(range(len(classes))), target_names=classes,
                                       output_dict=True, zero_division=0)
    rows = {name: report[name] for name in classes}
    rows["weighted avg"] = report["weighted avg"]
    frame = pd.DataFrame(rows).T[["precision", "recall", "f1-score", "support"]]
    frame["support"] = frame["support"].astype(int)
    frame.loc[frame["support"] == 0, ["recall", "f1-score"]] = NAN
    return frame


def class_weighted_metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5, seed: int = 0,
                           groups: np.ndarray | None = None) -> dict[str, float]:
    """Study 002's table form: recall, precision, specificity and F1 averaged over both classes weighted
    by support (scikit-learn's `average="weighted"`), accuracy and AUC (with its bootstrap CI).

    Class-weighted recall equals accuracy, which is why the study's Recall and Accuracy columns agree.
    A class's specificity is the other class's recall, so weighted specificity weights the swapped recalls;
    it needs both classes, like the AUCs (NaN otherwise, the reason under `auc_skipped`). `groups` as in
    `evaluate_binary`.
    """
    require_finite(p)
    y = np.asarray(y).astype(int)
    pred = (np.asarray(p) >= threshold).astype(int)
    precision, recall, f1, _ = skm.precision_recall_fscore_support(y, pred, labels=[0, 1], average="weighted",
                                                                   zero_division=0)
    per_class_recall = skm.recall_score(y, pred, labels=[0, 1], average=None, zero_division=0)
    support = np.bincount(y, minlength=2) / len(y)
    reason = missing_class_reason(y)
    both = reason is None
    low, high = bootstrap_auc_ci(y, p, seed=seed, groups=groups)
    return {"recall": float(recall), "precision": float(precision),
            "specificity": float(support[0] * per_class_recall[1] + support[1] * per_class_recall[0]) if both else NAN,
            "accuracy": float(skm.accuracy_score(y, pred)), "f1_weighted": float(f1),
            "roc_auc": float(skm.roc_auc_score(y, p)) if both else NAN,
            "roc_auc_ci_low": low, "roc_auc_ci_high": high, "threshold": float(threshold),
            "pauc_80": partial_auc_above_tpr(y, p), "sens_at_spec90": sensitivity_at_specificity(y, p, 0.9),
            "balanced_accuracy": float(skm.balanced_accuracy_score(y, pred)) if both else NAN,
            "melanoma_recall": float(per_class_recall[1]) if y.any() else NAN, "n_eval": int(len(y)),
            "positives": int(y.sum()), "auc_skipped": reason}
