"""Study 004's scoring: recognition (Table 5's columns) and lesion masks read off the attention
weights (Eq. 3), with the Jaccard index (Eq. 9) and the threshold sweep; the variant record, the
chapter's closing numbers and its bag and contour figures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch_geometric.data import Data

from derm_nb.metrics import NAN, evaluate_binary, format_metric, multiclass_report
from derm_nb.results import Variant
from derm_nb.studies.study004.mil import GCNMIL, predict_bags
from derm_nb.studies.study004.sources import to_cache_frame


def pixel_scores(attention: np.ndarray, class_prob: float, corners: np.ndarray, block: int | tuple[int, int],
                 shape: tuple[int, int]) -> np.ndarray:
    """Eq. 3's score map: each block scores (alpha / max alpha) x p, the attention weight scaled to
    [0, 1] within the image times the predicted class's probability; a pixel covered by several blocks
    takes the maximum, a pixel covered by none scores 0. Blocks are k x k or (height, width), and may
    reach outside the map."""
    by, bx = (block, block) if isinstance(block, int) else block
    scores = np.zeros(shape, dtype=np.float32)
    top = float(np.max(attention)) if len(attention) else 0.0
    block_scores = (np.asarray(attention) / top if top > 0 else np.zeros(len(attention))) * class_prob
    for (y, x), value in zip(corners, block_scores):
        window = scores[max(y, 0):max(y + by, 0), max(x, 0):max(x + bx, 0)]
        np.maximum(window, value, out=window)
    return scores


def jaccard(pred: np.ndarray, truth: np.ndarray | None) -> float:
    """Eq. 9: |pred and truth| / |pred or truth|; two empty masks agree perfectly (1); NaN without a mask."""
    if truth is None:
        return NAN
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    union = np.logical_or(pred, truth).sum()
    return float(np.logical_and(pred, truth).sum() / union) if union else 1.0


ETA_GRID = np.round(np.arange(0.0, 1.0001, 0.05), 2)


def sweep_eta(score_maps: list[np.ndarray], masks: list[np.ndarray], etas: np.ndarray = ETA_GRID) -> pd.DataFrame:
    """Mean Jaccard over the images for each threshold eta (pixel = lesion where score >= eta); NaN without images."""
    pairs = [(s, m) for s, m in zip(score_maps, masks) if m is not None]
    return pd.DataFrame({"eta": etas, "jaccard": [mean_or_nan([jaccard(s >= eta, m) for s, m in pairs])
                                                   for eta in etas]})


def mean_or_nan(values: np.ndarray | list[float]) -> float:
    """The mean, or NaN (without numpy's empty-slice warning) when there is nothing to average."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else NAN


def score_maps(prob: np.ndarray, attention: list[np.ndarray], bags: Sequence[Data], block: int,
               size: int, fit: str = "crop") -> list[np.ndarray]:
    """Eq. 3's score map of each image, scaled by its predicted class's probability, in the frame of
    the `size` px cache made with `fit` (blocks of an original-resolution bag are mapped onto it)."""
    maps = []
    for p, a, b in zip(prob, attention, bags):
        shape = tuple(b.image_hw[0].tolist()) if "image_hw" in b else (size, size)
        corners, k = to_cache_frame(b.corners.numpy(), block, shape, size, fit)
        maps.append(pixel_scores(a, float(p.max()), corners, k, (size, size)))
    return maps


@dataclass
class Segmentation:
    """Masks from attention on the test images at the threshold η calibrated on training melanomas."""

    eta: float
    sweep: pd.DataFrame        # mean Jaccard by η on the training melanomas
    maps: list[np.ndarray]     # test score maps
    masks: list[np.ndarray]    # test ground truth
    jaccard: np.ndarray        # per test image at η
    whole_image: np.ndarray    # per test image, calling the whole image lesion (the trivial mask)
    skipped: str | None = None  # why η could not be calibrated (η and the test Jaccards are then NaN)


def segment(train_maps: list[np.ndarray], train_masks: list[np.ndarray | None] | None, test_maps: list[np.ndarray],
            test_masks: list[np.ndarray | None] | None) -> Segmentation:
    """Sweep η on the training maps, keep the best, and score every test image at it. Without training
    maps (no melanoma in the training split) or without lesion masks (`None`: the dataset has none) η
    cannot be calibrated: it is NaN and `skipped` says why. An image kept without a mask scores NaN."""
    if train_masks is None or test_masks is None:
        nothing = np.full(len(test_maps), NAN)
        return Segmentation(NAN, sweep_eta([], []), test_maps, [None] * len(test_maps), nothing, nothing,
                            "this dataset has no lesion masks")
    sweep = sweep_eta(train_maps, train_masks)
    whole = np.array([jaccard(np.ones_like(s), m) for s, m in zip(test_maps, test_masks)])
    if not len(train_maps) or sweep["jaccard"].isna().all():
        return Segmentation(NAN, sweep, test_maps, test_masks, np.full(len(test_maps), NAN), whole,
                            "no melanoma in the training split to calibrate η on")
    eta = float(sweep.loc[sweep["jaccard"].idxmax(), "eta"])
    test_ja = np.array([jaccard(s >= eta, m) for s, m in zip(test_maps, test_masks)])
    return Segmentation(eta, sweep, test_maps, test_masks, test_ja, whole)


def recognition(prob: np.ndarray, y: np.ndarray, classes: list[str], seed: int = 0) -> dict:
    """Table 5's recognition columns: melanoma AUC, accuracy and recall (melanoma vs the benign
    classes, argmax calls), and the seborrheic keratosis AUC (one vs rest), with the class report."""
    mel, sk = classes.index("melanoma"), classes.index("seborrheic_keratosis")
    pred = prob.argmax(1)
    mel_pred = (pred == mel).astype(int)
    return {"pred": pred, "report": multiclass_report(y, pred, classes),
            "melanoma": evaluate_binary((y == mel).astype(int), prob[:, mel], "0.5", seed=seed),
            "sk": evaluate_binary((y == sk).astype(int), prob[:, sk], "0.5", seed=seed),
            "accuracy": float((mel_pred == (y == mel)).mean()),
            "recall": mean_or_nan(mel_pred[y == mel])}


def table_row(scores: dict, seg: Segmentation, y: np.ndarray, mel: int, label: str) -> pd.DataFrame:
    """Our row in Table 5's layout, with the melanomas' Jaccard and the AUC's interval."""
    m = scores["melanoma"]
    return pd.DataFrame({"Seborrheic Keratosis-AUC": [scores["sk"]["roc_auc"]], "AUC": [m["roc_auc"]],
                         "Accuracy": [scores["accuracy"]], "Recall": [scores["recall"]],
                         "JA": [mean_or_nan(seg.jaccard)], "JA (melanomas)": [mean_or_nan(seg.jaccard[y == mel])],
                         "AUC CI": [f"{format_metric(m['roc_auc_ci_low'])}-{format_metric(m['roc_auc_ci_high'])}"]},
                        index=[label])


def gcn_mil_variant(name: str, history: pd.DataFrame, frame: pd.DataFrame, prob: np.ndarray, y: np.ndarray,
                    classes: list[str], scores: dict, seg: Segmentation, provenance: dict, record: dict) -> Variant:
    """The trained model as a variant under the artifact contract (metrics, per-image predictions). With several
    seeds (`record`'s `seeds`), `roc_auc` and `sk_roc_auc` are their means (each seed's in `roc_auc_seeds` and
    `sk_roc_auc_seeds`); the interval and the predictions are the first seed's."""
    mel = classes.index("melanoma")
    m, report, pred = scores["melanoma"], scores["report"], scores["pred"]
    metrics = {**{k: m[k] for k in ("roc_auc", "roc_auc_ci_low", "roc_auc_ci_high", "pauc_80", "sens_at_spec90",
                                    "auc_skipped")},
               "accuracy": scores["accuracy"], "recall": scores["recall"], "sk_roc_auc": scores["sk"]["roc_auc"],
               "sk_auc_skipped": scores["sk"]["auc_skipped"],
               "jaccard": mean_or_nan(seg.jaccard), "jaccard_melanoma": mean_or_nan(seg.jaccard[y == mel]),
               "eta": seg.eta, "jaccard_whole_image": mean_or_nan(seg.whole_image), "segmentation_skipped": seg.skipped,
               "accuracy_3class": float((pred == y).mean()), "f1_weighted": float(report.loc["weighted avg", "f1-score"]),
               "target_class": "melanoma", "per_class": report.drop(index="weighted avg").to_dict("index"),
               **record, "epochs_run": len(history), "train_seconds": float(history["seconds"].sum()),
               "n_eval": len(y)}
    if record.get("seeds", 1) > 1:  # the mean over seeds is the chapter's AUC, as its prose and 09 quote it
        metrics["roc_auc"], metrics["sk_roc_auc"] = record["seed_mean_roc_auc"], record["seed_mean_sk_roc_auc"]
    predictions = pd.DataFrame({"image_id": frame["image_id"], "split": "test", "model": name, "label": y,
                                "prob": prob[:, mel], "pred": pred,
                                **{f"prob_{c}": prob[:, k] for k, c in enumerate(classes)}, "jaccard": seg.jaccard})
    return Variant(name, history.assign(model=name), predictions, metrics, metrics["train_seconds"], provenance,
                   metrics["n_params"])


def melanoma_maps(model: GCNMIL, bags: Sequence[Data], labels: np.ndarray, mel: int, block: int, size: int,
                  device: str = "auto", fit: str = "crop") -> tuple[list[np.ndarray], np.ndarray]:
    """Score maps of the training melanomas and their row positions; `bags` holds one unrotated bag per
    training image, in order."""
    rows = np.flatnonzero(labels == mel)
    chosen = [bags[int(i)] for i in rows]
    prob, attention = predict_bags(model, chosen, device)
    return score_maps(prob, attention, chosen, block, size, fit), rows


def attention_adds(seg: Segmentation, margin: float = 0.02) -> str:
    """Whether the attention masks beat calling the whole image lesion by more than `margin` Jaccard."""
    if seg.skipped:
        return f"cannot be shown to add (skipped: {seg.skipped})"
    return "adds" if mean_or_nan(seg.jaccard) > mean_or_nan(seg.whole_image) + margin else "adds little"


def findings(scores: dict, seg: Segmentation, y: np.ndarray, mel: int, blocks: int,
             seeds: pd.DataFrame | None, paper: pd.Series) -> dict[str, float | int | str]:
    """The chapter's closing numbers (for glue) beside the study's Table 5: AUCs and Jaccard indices
    as the mean over `seeds` (a `seed_table`; else this run's), the interval and η of this run; `paper`: the
    card's Table 5 row of GCN-based MIL."""
    m = scores["melanoma"]
    ours = {"mel_auc": m["roc_auc"], "sk_auc": scores["sk"]["roc_auc"], "jaccard": mean_or_nan(seg.jaccard),
            "jaccard_melanoma": mean_or_nan(seg.jaccard[y == mel])}
    over = "one seed"
    if seeds is not None:  # one row per seed, then the mean and the SD
        mean, sd, n = seeds.iloc[-2], seeds.iloc[-1], len(seeds) - 2
        ours = {"mel_auc": mean["AUC"], "sk_auc": mean["Seborrheic Keratosis-AUC"], "jaccard": mean["JA"],
                "jaccard_melanoma": mean["JA (melanomas)"]}
        over = "one seed" if n == 1 else f"the mean of {n} seeds, SD {format_metric(sd['AUC'])}"
    ours = {k: float(v) for k, v in ours.items()}  # numpy scalars glue as 'np.float64(...)', which MyST cannot format
    return {**ours, "over_seeds": over, "mel_ci_low": m["roc_auc_ci_low"], "mel_ci_high": m["roc_auc_ci_high"],
            "n_test": len(y), "paper_mel_auc": float(paper["AUC"]),
            "paper_sk_auc": float(paper["Seborrheic Keratosis-AUC"]), "eta": seg.eta,
            "paper_jaccard": float(paper["JA"]), "blocks_per_bag": blocks,
            "jaccard_whole_image": mean_or_nan(seg.whole_image), "attention_adds": attention_adds(seg)}


def bag_figure(image: torch.Tensor, bag: Data, block: int) -> Figure:
    """One image with its block centres, Eq. 1's edges and one block outlined."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.imshow(image.permute(1, 2, 0).numpy())
    corners = bag.corners.numpy()
    centres = corners + block / 2
    for m, n in bag.edge_index.T.numpy():
        ax.plot(*zip(centres[m][::-1], centres[n][::-1]), color="cyan", linewidth=0.4, alpha=0.6)
    ax.scatter(centres[:, 1], centres[:, 0], s=10, color="yellow")
    y0, x0 = corners[len(corners) // 2]
    ax.add_patch(plt.Rectangle((x0, y0), block, block, fill=False, color="red", linewidth=1.5))
    ax.set(title="Block centres and Eq. 1's edges (one block outlined)")
    ax.axis("off")
    return fig


def overlay_rows(y: np.ndarray, mel: int, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Up to `n` test images drawn at random from the melanomas and from the rest (for the contour figures)."""
    rng = np.random.default_rng(seed)
    groups = {"Melanoma images": np.flatnonzero(y == mel), "Non-melanoma images": np.flatnonzero(y != mel)}
    return {g: rng.choice(m, min(n, len(m)), replace=False) if len(m) else m for g, m in groups.items()}


def _jaccard_title(seg: Segmentation, i: int) -> str:
    """An image's Jaccard for its figure title, or why there is none (no mask, or η not calibrated)."""
    if seg.masks[i] is None:
        return "no mask to score"
    return "JA not scored (no η)" if np.isnan(seg.jaccard[i]) else f"JA {seg.jaccard[i]:.2f}"


def contour_figure(images: torch.Tensor, rows: np.ndarray, seg: Segmentation, pred: np.ndarray, classes: list[str],
                   title: str) -> Figure:
    """The test images `rows` with the predicted contour at η (green) and the dermatologists' (red)."""
    fig, axes = plt.subplots(1, len(rows), figsize=(3 * len(rows), 3.3), squeeze=False)
    for ax, i in zip(axes[0], rows):
        ax.imshow(images[i].permute(1, 2, 0).numpy())
        if not np.isnan(seg.eta):
            ax.contour(seg.maps[i] >= seg.eta, levels=[0.5], colors="lime", linewidths=1.2)
        if seg.masks[i] is not None:
            ax.contour(seg.masks[i], levels=[0.5], colors="red", linewidths=1.2)
        ax.set_title(f"pred {classes[pred[i]]}\n{_jaccard_title(seg, i)}", fontsize=8)
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
