"""Square image cache (centre-cropped, or the whole image resized): built once, in parallel, safe to
interrupt, read fast."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from derm_nb.artifacts import write_atomic
from derm_nb.parallel import parallel_map


def center_crop_square(im: Image.Image) -> Image.Image:
    """Crop the largest centred square."""
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return im.crop((left, top, left + side, top + side))


FITS = ("crop", "resize")   # the largest centred square, or the whole image squeezed to a square


def check_fit(fit: str) -> str:
    """`fit` if it is one of FITS; a ValueError naming the known ones otherwise."""
    if fit not in FITS:
        raise ValueError(f"unknown cache fit '{fit}' (known: {', '.join(FITS)})")
    return fit


def fit_square(im: Image.Image, fit: str) -> Image.Image:
    """The part of `im` the cache keeps: its largest centred square (`crop`) or all of it (`resize`)."""
    return center_crop_square(im) if check_fit(fit) == "crop" else im


def square_mask(mask_paths: str, original: tuple[int, int], size: int, fit: str = "crop") -> Image.Image:
    """The union of one or more mask files (';'-separated) for an image of `original` (w, h) px,
    fitted like the image (`fit`) and resized to `size` px; an 'L' image of 0/255, empty if none.

    Each mask is fitted and nearest-resized before it is thresholded at 127, so the work after
    decoding is done at the cache size; nearest resizing picks source pixels, so this equals
    thresholding at full size first.
    """
    union = np.zeros((size, size), dtype=bool)
    for path in filter(None, mask_paths.split(";")):
        with Image.open(path) as m:
            m = m if m.mode == "L" else m.convert("L")
            if m.size != original:
                m = m.resize(original, Image.NEAREST)
            union |= np.asarray(fit_square(m, fit).resize((size, size), Image.NEAREST)) > 127
    return Image.fromarray((union * 255).astype(np.uint8))


def short_side(path: str) -> int:
    """An image file's shorter side in px, read from its header alone."""
    with Image.open(path) as im:
        return min(im.size)


def cache_side(asked: int, sides: Sequence[int]) -> int:
    """The cache's size: `asked`, or the images' median shorter side where that is smaller, since
    enlarging images adds pixels, not resolution."""
    return min(asked, int(np.median(sides))) if len(sides) else asked


def cache_folder(size: int, fit: str) -> str:
    """The cache's folder name: its size, with the fit where it is not the usual centred crop."""
    return str(size) if check_fit(fit) == "crop" else f"{size}-{fit}"


def cache_paths(cache_dir: Path, image_id: str) -> tuple[Path, Path]:
    return cache_dir / f"{image_id}.jpg", cache_dir / f"{image_id}_mask.png"


def _cache_one(job: tuple[str, str, str, str, int, str]) -> str:
    image_id, path, mask_paths, cache_dir, size, fit = job
    image_out, mask_out = cache_paths(Path(cache_dir), image_id)
    if image_out.is_file() and (not mask_paths or mask_out.is_file()):
        return "skipped"
    with Image.open(path) as im:
        im.draft("RGB", (size, size))  # JPEG: decode at a reduced scale directly (much faster on large files)
        im = ImageOps.exif_transpose(im).convert("RGB")
        original = im.size  # as displayed: archives store masks in the displayed orientation
        square = fit_square(im, fit).resize((size, size), Image.BILINEAR, reducing_gap=2.0)
    # Masks are fitted in the original image's coordinates, so they stay aligned with the image.
    if mask_paths:  # an image without a mask gets no mask file: no empty mask can pass for "no lesion"
        mask = square_mask(mask_paths, original, size, fit)
        write_atomic(mask_out, lambda p: mask.save(p, format="PNG", compress_level=1))
    write_atomic(image_out, lambda p: square.save(p, format="JPEG", quality=95))
    return "written"


def build_cache(manifest: pd.DataFrame, cache_dir: str | os.PathLike[str], size: int = 256,
                workers: int = 0, fit: str = "crop") -> pd.DataFrame:
    """Write `<image_id>.jpg` at `size` px for every row, and `<image_id>_mask.png` for every row with a
    mask; skip finished ones. `fit` keeps the centred square (`crop`) or the whole image (`resize`).

    Each file is written to a temporary name and renamed, so an interrupted build leaves only
    complete files and the next call picks up where it stopped.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    check_fit(fit)
    jobs = [(r.image_id, r.path, r.mask_path, str(cache_dir), size, fit) for r in manifest.itertuples()]
    status = parallel_map(_cache_one, jobs, workers, f"cache {size}px")
    out = pd.DataFrame({"image_id": manifest["image_id"].to_numpy(), "status": status})
    out["cache_path"] = [str(cache_paths(cache_dir, i)[0]) for i in out["image_id"]]
    out["cache_mask_path"] = [str(cache_paths(cache_dir, i)[1]) for i in out["image_id"]]
    return out


def naive_cache(manifest: pd.DataFrame, cache_dir: str | os.PathLike[str], size: int = 256) -> None:
    """The baseline the benchmark compares against: the same image and mask files, written the
    straightforward way (one process, full-resolution decode, thresholding at full size)."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for r in manifest.itertuples():
        image_out, mask_out = cache_paths(cache_dir, str(r.image_id))
        im = ImageOps.exif_transpose(Image.open(r.path)).convert("RGB")
        center_crop_square(im).resize((size, size), Image.BILINEAR).save(image_out, quality=95)
        if not r.mask_path:
            continue
        union = np.zeros((im.size[1], im.size[0]), dtype=bool)
        for path in filter(None, r.mask_path.split(";")):
            union |= np.asarray(Image.open(path).convert("L").resize(im.size, Image.NEAREST)) > 127
        mask = Image.fromarray((union * 255).astype(np.uint8))
        center_crop_square(mask).resize((size, size), Image.NEAREST).save(mask_out)


def load_images(manifest: pd.DataFrame, cache_dir: str | os.PathLike[str], masks: bool = False) -> np.ndarray:
    """Every cached image of `manifest` as one uint8 array (N, S, S, 3), or the masks as (N, S, S) bool."""
    cache_dir = Path(cache_dir)
    arrays = []
    for image_id in manifest["image_id"]:
        image_path, mask_path = cache_paths(cache_dir, str(image_id))
        with Image.open(mask_path if masks else image_path) as im:
            arrays.append(np.asarray(im) > 127 if masks else np.asarray(im.convert("RGB")))
    return np.stack(arrays) if arrays else np.zeros((0, 0, 0, 3), np.uint8)
