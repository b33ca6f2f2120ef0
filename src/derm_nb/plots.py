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
