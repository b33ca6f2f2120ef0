"""Figures shared by the chapters: image grids, and (later) curves and matrices. seaborn/matplotlib."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from PIL import Image


def image_grid(images: Sequence[str | Path | np.ndarray], titles: Sequence[str] | None = None,
               masks: Sequence[str | Path | np.ndarray | None] | None = None, ncols: int = 6,
               size: float = 2.0, suptitle: str | None = None) -> Figure:
    """A grid of images, each with an optional title and an optional mask drawn as a contour."""
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if suptitle else 0)),
                             squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        img = images[k]
        ax.imshow(np.asarray(Image.open(img).convert("RGB")) if isinstance(img, (str, Path)) else img)
        if masks is not None and masks[k] is not None:
            m = masks[k]
            m = np.asarray(Image.open(m)) if isinstance(m, (str, Path)) else m
            if np.asarray(m).any():
                ax.contour(np.asarray(m) > 127 if np.asarray(m).dtype != bool else m, levels=[0.5],
                           colors="yellow", linewidths=1)
        if titles is not None:
            ax.set_title(titles[k], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def loss_curves(history, title: str = "Training and validation loss", ncols: int = 4) -> Figure:
    """One panel per model: train and validation loss by epoch, the best epoch marked."""

    models = list(dict.fromkeys(history["model"]))
    ncols = min(ncols, len(models))
    nrows = int(np.ceil(len(models) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3.2 * nrows), squeeze=False, sharey=True)
    for ax, name in zip(axes.flat, models):
        h = history[history["model"] == name]
        ax.plot(h["epoch"], h["train_loss"], marker="o", label="train")
        ax.plot(h["epoch"], h["val_loss"], marker="o", label="validation")
        best = h.loc[h["val_loss"].idxmin()]
        ax.axvline(best["epoch"], color="grey", linestyle=":", label=f"best epoch ({int(best['epoch'])})")
        ax.set(title=name, xlabel="epoch", ylabel="loss")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(models):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def roc_curves(predictions, title: str = "ROC curves", oracle: tuple | None = None) -> Figure:
    """ROC curve per model (from predictions with model, label, prob), AUC in the legend."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, p in predictions.groupby("model", sort=False):
        fpr, tpr, _ = roc_curve(p["label"], p["prob"])
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(p['label'], p['prob']):.3f})")
    if oracle is not None:
        fpr, tpr, _ = roc_curve(*oracle)
        ax.plot(fpr, tpr, color="black", linestyle="--", label=f"oracle (AUC {roc_auc_score(*oracle):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
    ax.axhspan(0.8, 1.0, color="orange", alpha=0.08, label="TPR ≥ 0.8 (pAUC band)")
    ax.set(title=title, xlabel="false positive rate (1 - specificity)", ylabel="true positive rate (sensitivity)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def confusion_matrices(predictions, class_names: list[str], title: str = "Confusion matrices",
                       ncols: int = 4) -> Figure:
    """One confusion matrix per model (counts), from `label` and `pred` columns."""
    import seaborn as sns
    from sklearn.metrics import confusion_matrix

    models = list(dict.fromkeys(predictions["model"]))
    ncols = min(ncols, len(models))
    nrows = int(np.ceil(len(models) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.3 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, models):
        p = predictions[predictions["model"] == name]
        cm = confusion_matrix(p["label"], p["pred"], labels=list(range(len(class_names))))
        sns.heatmap(cm, annot=True, fmt="d", cbar=False, cmap="Blues", ax=ax,
                    xticklabels=class_names, yticklabels=class_names)
        ax.set(title=name, xlabel="predicted", ylabel="true")
    for ax in list(axes.flat)[len(models):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def training_curves(history, metrics: tuple[str, ...] = ("loss", "acc"), title: str = "Training curves") -> Figure:
    """Train (solid) and validation (dashed) curves of every model, one panel per metric (study 003's Figs. 2-3)."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        for k, (name, h) in enumerate(history.groupby("model", sort=False)):
            color = f"C{k}"
            ax.plot(h["epoch"], h[f"train_{metric}"], color=color, label=f"{name} train")
            ax.plot(h["epoch"], h[f"val_{metric}"], color=color, linestyle="--", label=f"{name} validation")
        ax.set(xlabel="epoch", ylabel={"loss": "cross-entropy loss", "acc": "accuracy"}.get(metric, metric),
               title={"loss": "Loss (log scale)", "acc": "Accuracy"}.get(metric, metric))
        if metric == "loss":
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
