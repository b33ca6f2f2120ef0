"""Image statistics for the EDA chapter: mean colour, brightness, hair coverage, colour matrices."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image
from scipy import stats

from derm_nb.parallel import parallel_map

LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 weights for perceived brightness


def mean_colour(image: np.ndarray) -> np.ndarray:
    """The image's general colour: an averaging filter as wide as the image, i.e. the mean RGB."""
    return image.reshape(-1, image.shape[-1]).astype(np.float64).mean(axis=0)


def brightness(rgb: np.ndarray) -> np.ndarray:
    """Perceived brightness (0-255) of RGB colour(s) along the last axis."""
    return np.asarray(rgb, dtype=np.float64) @ LUMA


def hair_mask(image: np.ndarray, kernel_frac: float = 0.06, threshold: float = 12.0) -> np.ndarray:
    """Thin dark structures: a grey-level black-hat with a kernel wider than a hair, narrower than a lesion."""
    gray = cv2.cvtColor(np.ascontiguousarray(image, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
    k = max(3, int(round(kernel_frac * min(gray.shape))) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    blackhat = cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, kernel)
    return blackhat > threshold


def hair_coverage(image: np.ndarray, **kwargs: float) -> float:
    """Share of pixels flagged as hair by `hair_mask`."""
    return float(hair_mask(image, **kwargs).mean())


def _stats_one(args: tuple[str, str]) -> tuple[float, float, float, float, float, float]:
    image_path, mask_path = args
    with Image.open(image_path) as im:
        image = np.asarray(im.convert("RGB"))
    r, g, b = mean_colour(image)
    area = float("nan")
    if mask_path and Path(mask_path).is_file():
        with Image.open(mask_path) as m:
            area = float((np.asarray(m) > 127).mean())
    return r, g, b, float(brightness([r, g, b])), hair_coverage(image), area


def image_stats(frame: pd.DataFrame, image_paths: list[Path], hair_threshold: float = 0.01,
                workers: int = 0) -> pd.DataFrame:
    """Per image: mean colour, brightness, hair coverage, `has_hair`, and lesion area share from the mask
    (NaN for an image without a mask)."""
    masked = frame["mask_path"].ne("").to_numpy() if "mask_path" in frame else [True] * len(frame)
    jobs = [(str(p), str(p.with_name(p.stem + "_mask.png")) if m else "") for p, m in zip(image_paths, masked)]
    rows = parallel_map(_stats_one, jobs, workers, "image stats", chunksize=32, min_items=200)
    out = pd.DataFrame(rows, columns=["mean_r", "mean_g", "mean_b", "brightness", "hair_coverage", "lesion_area"],
                       index=frame.index)
    out["has_hair"] = out["hair_coverage"] > hair_threshold
    return pd.concat([frame, out], axis=1)


def colour_matrix(colours: np.ndarray, ncols: int | None = None) -> np.ndarray:
    """Colours sorted by brightness (dark to light) laid out row by row; unused cells are white."""
    colours = np.asarray(colours, dtype=np.float64)
    order = np.argsort(brightness(colours), kind="stable")
    n = len(colours)
    ncols = ncols or max(1, int(np.ceil(np.sqrt(n))))
    nrows = max(1, int(np.ceil(n / ncols)))
    grid = np.full((nrows * ncols, 3), 255.0)
    grid[:n] = colours[order]
    return (grid.reshape(nrows, ncols, 3) / 255.0).clip(0, 1)


def compare_distributions(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Two-sided Mann-Whitney U test of a vs b, with the common-language effect size P(a > b)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    result = stats.mannwhitneyu(a, b, alternative="two-sided")
    return {"n_a": len(a), "n_b": len(b), "median_a": float(np.median(a)), "median_b": float(np.median(b)),
            "U": float(result.statistic), "p_value": float(result.pvalue),
            "p_a_greater": float(result.statistic / (len(a) * len(b)))}


def extremes(frame: pd.DataFrame, column: str, k: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The k rows with the lowest and the k with the highest `column`."""
    ordered = frame.sort_values(column, kind="stable")
    return ordered.head(k), ordered.tail(k).iloc[::-1]
