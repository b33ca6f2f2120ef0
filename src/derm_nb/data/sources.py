"""Reading a dataset folder into the canonical manifest, for any registered source, with its quality report.

What each archive holds, and its loader, is in its own module (`data/archives/<name>.py`, listed in
`data/registry.py`; the README's source table is rendered from them). `official_split` is train / val /
test for the partitions an archive itself ships (ISIC 2017, ISIC 2018), '' for archives without them. A
root that is not laid out as its source raises DataError (`check_layout`).

Stated rules for bad input (each listed in the quality report): those of every loader
(`data/reading.py`: missing sex, site, age or group id imputed; unknown label and repeated image id
excluded), each archive's own (e.g. ISIC 2020's listed duplicates), and here: missing, unreadable or
truncated image -> excluded; byte-identical or perceptual near-duplicate images -> all but the first
excluded (all excluded if their labels disagree), except that copies in an archive's official held-out
partitions are kept as published and their training copies go (near_duplicates.kept_rows); missing mask
-> kept without a mask.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd
from PIL import Image, ImageOps

from derm_nb.data import registry
from derm_nb.data.errors import DataError
from derm_nb.data.manifest import to_manifest
from derm_nb.data.near_duplicates import exclude_duplicates, image_hash
from derm_nb.data.quality import QualityReport
from derm_nb.data.splits import partition_counts
from derm_nb.parallel import parallel_map

# Each registered source's classes, title, required layout and loader, by name (read from the registry).
CLASSES = registry.View(lambda s: s.classes)
NAMES = registry.View(lambda s: s.title)
LAYOUTS = registry.View(lambda s: s.layout)
LOADERS = registry.View(lambda s: s.loader)


def _present(root: Path, entry: str) -> bool:
    path = root / entry.rstrip("/")
    return path.is_dir() if entry.endswith("/") else path.is_file()


def _listing(root: Path, limit: int = 20) -> str:
    names = sorted(f"{p.name}/" if p.is_dir() else p.name for p in root.iterdir())
    if not names:
        return "nothing (the folder is empty)"
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def check_layout(source: str, root: Path) -> None:
    """Raise DataError, naming the expected entries and what the root holds, if `root` is not laid out as `source`."""
    required = registry.get(source).layout
    missing = [alts for alts in required if not any(_present(root, a) for a in alts)]
    if not missing:
        return
    describe = lambda entries: " and ".join(f"({' or '.join(alts)})" if len(alts) > 1 else alts[0] for alts in entries)
    expected = describe(required)
    lacking = f"; missing {describe(missing)}" if len(missing) < len(required) else ""
    article = "an" if source[0] in "aeiou" else "a"
    raise DataError(f"{root} is not {article} {source} root: expected {expected}{lacking}; found: {_listing(root)}")


def inspect_image(path: str) -> tuple[str | None, str | None, tuple[int, int] | None, str | None]:
    """(md5 of the bytes, error message, displayed (width, height), perceptual hash) for one image file,
    decoding all of it (at a reduced JPEG scale) and applying its EXIF orientation."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None, "file not found", None, None
    except OSError as err:
        return None, f"cannot read: {err}", None, None
    digest = hashlib.md5(data).hexdigest()
    try:
        with Image.open(path) as im:
            width, height = im.size
            im.draft("RGB", (256, 256))
            im.load()
            shown = ImageOps.exif_transpose(im)
            if shown.size != im.size:  # turned by 90 degrees
                width, height = height, width
            return digest, None, (width, height), image_hash(shown)
    except Exception as err:  # PIL raises many types for corrupt or truncated files
        return digest, f"unreadable image: {err}", None, None


def check_images(frame: pd.DataFrame, report: QualityReport, workers: int = 0) -> pd.DataFrame:
    """Exclude missing, unreadable, byte-duplicate and near-duplicate images (see near_duplicates.kept_rows; the
    pairs found go to report.near_duplicates); drop mask paths whose files are missing."""
    results = parallel_map(inspect_image, frame["path"].tolist(), workers, "checking images", chunksize=32,
                           min_items=64)
    frame = frame.copy()
    frame["_md5"] = [r[0] for r in results]
    frame["_hash"] = [r[3] for r in results]
    errors = pd.Series([r[1] for r in results], index=frame.index)
    for idx in frame.index[errors.notna()]:
        check = "missing image" if errors[idx] == "file not found" else "corrupt image"
        report.add(frame.at[idx, "path"], None, frame.at[idx, "image_id"], check, "excluded", errors[idx])
    frame = frame.loc[errors.isna()]

    frame = exclude_duplicates(frame.drop(columns=["_md5", "_hash"]), frame["_hash"].tolist(), frame["_md5"].tolist(),
                               report)

    for idx in frame.index:
        paths = [p for p in str(frame.at[idx, "mask_path"]).split(";") if p]
        if paths and not all(Path(p).is_file() for p in paths):
            report.add(frame.at[idx, "path"], None, frame.at[idx, "image_id"], "missing mask", "kept",
                       "image kept without a mask")
            frame.at[idx, "mask_path"] = ""
    return frame


def load_source(source: str, root: str | os.PathLike[str], workers: int = 0) -> tuple[pd.DataFrame, QualityReport]:
    """Read one dataset folder into the canonical manifest, with the quality report of what changed."""
    record = registry.get(source)
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist")
    check_layout(source, root)
    report = QualityReport()
    frame = record.loader(root, report)
    report.partitions_read = partition_counts(frame)
    frame = check_images(frame, report, workers)
    return to_manifest(frame), report
