"""Near-duplicate images: resized and re-encoded copies of one image, found by perceptual hash.

Each image gets two 256-bit hashes from `imagehash` at hash_size 16, a DCT hash (phash) and a gradient hash
(dhash); two images are near-duplicates when both hashes differ in at most MAX_DISTANCE bits, and their
distance is the larger of the two. Pairs are searched on phash in blocks (XOR + popcount) and confirmed on dhash.

Measured: among 1,869 distinct synthetic dermoscopy images (`generate`, isic2020, 150 patients; 1.7 M pairs) the
closest pair is 54 bits apart (phash alone: 48), so none is flagged at MAX_DISTANCE = 32 (nor at 52), while copies
resized to 25-200 % or squashed to a square, and JPEG re-encodings at quality 60-95 from JPEG or PNG, of synthetic
and photographic images stay within 17 bits (25 after brightening by 10 %); 64-bit hashes cannot tell these images
apart (the 8x8 phash puts 172 distinct pairs within the 6 bits its own copies need). 35,000 images are compared
in about 5 s on one core, in blocks of about 40 MB.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import imagehash
import numpy as np
import pandas as pd
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from derm_nb.data.errors import LeakageError
from derm_nb.data.quality import NEAR_DUPLICATE_COLUMNS, QualityReport

HASH_SIZE = 16
WORDS = HASH_SIZE * HASH_SIZE // 64  # uint64 words per hash; an image hash is phash then dhash
HEX_DIGITS = 2 * HASH_SIZE * HASH_SIZE // 4
MAX_DISTANCE = 32
BLOCK_CELLS = 4_000_000  # pairs compared at once: bounds memory at about 40 MB
HELD_OUT = ("val", "test")  # an archive's official held-out partitions, kept as published
_BYTE_BITS = np.array([bin(b).count("1") for b in range(256)], np.uint8)


def image_hash(im: Image.Image) -> str:
    """The image's phash and dhash (256 bits each) as 128 hex digits; pass it as displayed (ImageOps.exif_transpose)."""
    return str(imagehash.phash(im, hash_size=HASH_SIZE)) + str(imagehash.dhash(im, hash_size=HASH_SIZE))


def hash_words(hashes: Sequence[str]) -> np.ndarray:
    """Image hashes as an (N, 2 * WORDS) uint64 array: the phash words, then the dhash words."""
    if any(not isinstance(h, str) or len(h) != HEX_DIGITS for h in hashes):
        raise ValueError(f"image hashes must be strings of {HEX_DIGITS} hex digits (see image_hash)")
    raw = np.frombuffer(bytes.fromhex("".join(hashes)), dtype=">u8")
    return raw.astype(np.uint64).reshape(len(hashes), 2 * WORDS)


def _bits(words: np.ndarray) -> np.ndarray:
    """Set bits of each uint64 element (uint8)."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(words)
    return _BYTE_BITS[words.view(np.uint8)].reshape(*words.shape, 8).sum(axis=-1, dtype=np.uint8)


def _popcount(words: np.ndarray) -> np.ndarray:
    """Set bits of each row of uint64 words (summed over the last axis)."""
    return _bits(words).sum(axis=-1, dtype=np.uint16)


def hash_distance(a: str, b: str) -> int:
    """Bits in which two image hashes differ: the larger of the phash and dhash distances."""
    x = hash_words([a, b])
    diff = (x[0] ^ x[1]).reshape(2, WORDS)
    return int(_popcount(diff).max())


def _close_pairs(words: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row pairs i < j of `words` (N, W uint64) that differ in at most `max_distance` bits, with the distances."""
    n = len(words)
    columns = np.ascontiguousarray(words.T)
    rows = max(1, BLOCK_CELLS // max(n, 1))
    found_i, found_j, found_d = [], [], []
    for start in range(0, max(n - 1, 0), rows):
        block = words[start:start + rows]
        dist = np.zeros((len(block), n - start - 1), np.uint16)
        for w in range(words.shape[1]):
            dist += _bits(block[:, w, None] ^ columns[w, start + 1:])
        r, c = np.nonzero(dist <= max_distance)
        upper = c >= r  # column c is image start + 1 + c, row r is image start + r
        found_i.append(r[upper] + start)
        found_j.append(c[upper] + start + 1)
        found_d.append(dist[r[upper], c[upper]])
    if not found_i:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0, np.uint16)
    return np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_d)


def near_duplicate_pairs(ids: Sequence[Hashable], hashes: Sequence[str], max_distance: int = MAX_DISTANCE) -> pd.DataFrame:
    """Every pair whose phash and dhash both differ in at most `max_distance` bits: columns image_a, image_b
    (image_a earlier in `ids`) and distance (the larger of the two)."""
    words = hash_words(hashes)
    i, j, d_phash = _close_pairs(words[:, :WORDS], max_distance)
    d_dhash = _popcount(words[i, WORDS:] ^ words[j, WORDS:])
    keep = d_dhash <= max_distance
    ids = np.asarray(ids, dtype=object)
    return pd.DataFrame({"image_a": ids[i[keep]], "image_b": ids[j[keep]],
                         "distance": np.maximum(d_phash, d_dhash)[keep].astype(int)})


def duplicate_groups(pairs: pd.DataFrame) -> list[list[Hashable]]:
    """The connected groups of images joined by `pairs`, each listed in order of first appearance."""
    ids = pd.unique(pairs[["image_a", "image_b"]].to_numpy().ravel())
    position = pd.Series(np.arange(len(ids)), index=ids)
    graph = coo_matrix((np.ones(len(pairs)), (position[pairs["image_a"]].to_numpy(), position[pairs["image_b"]].to_numpy())),
                       shape=(len(ids), len(ids)))
    _, labels = connected_components(graph, directed=False)
    return pd.Series(ids).groupby(labels, sort=False).agg(list).tolist()


def partitions(frame: pd.DataFrame) -> pd.Series:
    """Each row's official partition (train / val / test; '' where the archive ships none)."""
    return frame.get("official_split", pd.Series("", index=frame.index)).fillna("").astype(str)


def kept_rows(group: pd.DataFrame) -> list[Hashable]:
    """The indices to keep among the rows of one duplicate group.

    Where a copy sits in an archive's official held-out partition, the benchmark stays as published:
    every test copy is kept, one validation copy (none if the validation copies' labels disagree), and
    the training copies go. Otherwise one row is kept, the first in file order, none if labels disagree."""
    partition = partitions(group)
    if not partition.isin(HELD_OUT).any():
        return [] if group["label"].nunique(dropna=False) > 1 else [group.index[0]]
    val = group[partition == "val"]
    one_val = [] if val.empty or val["label"].nunique(dropna=False) > 1 else [val.index[0]]
    return [*group.index[partition == "test"], *one_val]


def _reason(group: pd.DataFrame, kept: list[Hashable], idx: Hashable, pairs: pd.DataFrame, hash_of: dict,
            digest_of: dict) -> tuple[str, str]:
    """(check, detail) for the quality-report line of row `idx` of a duplicate group."""
    image_id = group.at[idx, "image_id"]
    same = [k for k in kept if k != idx and digest_of[group.at[k, "image_id"]] == digest_of[image_id]]
    if not kept:
        ids = ", ".join(map(str, group["image_id"]))
        if group["image_id"].map(digest_of).nunique() == 1:
            return "duplicate image", f"identical images with different labels: {ids}"
        inside = pairs[pairs["image_a"].isin(group["image_id"])]
        listed = ", ".join(f"{a}~{b} {d}" for a, b, d in inside[["image_a", "image_b", "distance"]].itertuples(index=False))
        return "near-duplicate image", f"near-duplicate images with different labels: {ids} (hash distances {listed})"
    other = (same or [k for k in kept if k != idx] or [group.index[0]])[0]
    other_id, partition = group.at[other, "image_id"], partitions(group)
    check = "duplicate image" if same else "near-duplicate image"
    copy = (f"same bytes as {other_id}" if same else
            f"near-duplicate of {other_id} (hash distance {hash_distance(hash_of[image_id], hash_of[other_id])})")
    if idx in kept:
        where = (f"both in the official {partition[idx]} partition" if partition[idx] == partition[other]
                 else f"in the official {partition[idx]} and {partition[other]} partitions")
        return check, f"{copy}: {where}, kept as published"
    if partition[idx] not in HELD_OUT and partition[other] in HELD_OUT:
        return check, (f"{copy}, which is kept: the training copy goes so that the official "
                       f"{partition[other]} partition stays whole")
    return check, f"{copy}, which is kept"


def _annotate(pairs: pd.DataFrame, frame: pd.DataFrame, digests: Sequence[str], kept_ids: set) -> pd.DataFrame:
    """`pairs` with whether the two files are byte-identical, each image's official partition, and which stay."""
    digest_of = dict(zip(frame["image_id"], digests))
    partition_of = dict(zip(frame["image_id"], partitions(frame)))
    kept_a, kept_b = pairs["image_a"].isin(kept_ids), pairs["image_b"].isin(kept_ids)
    return pairs.assign(
        same_bytes=pairs["image_a"].map(digest_of) == pairs["image_b"].map(digest_of),
        partition_a=pairs["image_a"].map(partition_of), partition_b=pairs["image_b"].map(partition_of),
        kept=np.select([kept_a & kept_b, kept_a, kept_b], ["both", "a", "b"], "neither"))[NEAR_DUPLICATE_COLUMNS]


def exclude_duplicates(frame: pd.DataFrame, hashes: Sequence[str], digests: Sequence[str], report: QualityReport,
                       max_distance: int = MAX_DISTANCE) -> pd.DataFrame:
    """Keep the rows kept_rows picks in each group of byte-identical or near-duplicate images and list the
    others in `report` (and held-out copies kept side by side); every pair found goes to
    report.near_duplicates. `hashes` are the rows' image_hash values, `digests` their files' md5."""
    pairs = near_duplicate_pairs(frame["image_id"].tolist(), hashes, max_distance)
    hash_of, digest_of = dict(zip(frame["image_id"], hashes)), dict(zip(frame["image_id"], digests))
    position = pd.Series(np.arange(len(frame)), index=frame["image_id"].to_numpy())
    keep = np.ones(len(frame), bool)
    for ids in duplicate_groups(pairs):
        rows = np.sort(position[ids].to_numpy())
        group = frame.iloc[rows]
        kept = kept_rows(group)
        for row, idx in zip(rows, group.index):
            if idx not in kept or len(kept) > 1:
                check, detail = _reason(group, kept, idx, pairs, hash_of, digest_of)
                report.add(group.at[idx, "path"], None, group.at[idx, "image_id"], check,
                           "kept" if idx in kept else "excluded", detail)
            keep[row] = idx in kept
    pairs = _annotate(pairs, frame, digests, set(frame.loc[keep, "image_id"]))
    report.near_duplicates = pd.concat([report.near_duplicates, pairs], ignore_index=True) \
        if len(report.near_duplicates) else pairs
    return frame.loc[keep]


def assert_no_cross_split_pairs(manifest: pd.DataFrame, pairs: pd.DataFrame, split_column: str = "split") -> None:
    """Raise LeakageError if a near-duplicate pair with both images in `manifest` sits in two different splits
    (missing or empty splits are ignored, and so are pairs of two official held-out copies, kept as published)."""
    split = pd.Series(manifest[split_column].to_numpy(), index=manifest["image_id"]).replace("", np.nan)
    split = split[~split.index.duplicated()]
    a, b = pairs["image_a"].map(split), pairs["image_b"].map(split)
    published = pairs.get("partition_a", pd.Series("", index=pairs.index)).isin(HELD_OUT) & \
        pairs.get("partition_b", pd.Series("", index=pairs.index)).isin(HELD_OUT)
    crossing = a.notna() & b.notna() & (a != b) & ~published
    if crossing.any():
        first = crossing.to_numpy().nonzero()[0][0]
        row = pairs.iloc[first]
        raise LeakageError(f"near-duplicate images {row['image_a']} ({split_column}={a.iloc[first]}) and {row['image_b']} "
                           f"({split_column}={b.iloc[first]}) are {row['distance']} bits apart but in different splits; "
                           f"{int(crossing.sum())} such pair(s) in all")
