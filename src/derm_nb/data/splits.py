"""Group-aware stratified splits under named schemes, with a leakage check."""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np
import pandas as pd

from derm_nb.data.errors import DataError, LeakageError


def split_column(scheme: str) -> str:
    return f"split_{scheme}"


def group_split(frame: pd.DataFrame, ratios: Mapping[str, float], seed: int, stratify: str = "target",
                group: str = "group_id") -> pd.Series:
    """Assign every row a split name so that no group crosses splits and each stratum keeps the ratios.

    A group's stratum is its most severe class (its maximum `stratify` value). Within each stratum
    the groups are shuffled by `seed` and cut where the cumulative image count crosses each ratio.
    """
    if frame.empty:
        return pd.Series([], dtype="string", index=frame.index)
    names = list(ratios)
    weights = np.asarray([ratios[n] for n in names], dtype=float)
    if (weights <= 0).any():
        raise DataError(f"split ratios must be positive: {dict(ratios)}")
    bounds = np.cumsum(weights / weights.sum())
    groups = frame.groupby(group, sort=True).agg(size=(stratify, "size"), stratum=(stratify, "max"))
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    for _, members in groups.groupby("stratum", sort=True):
        order = members.iloc[rng.permutation(len(members))]
        # Position of each group's midpoint in the stratum's cumulative image count.
        ends = order["size"].cumsum().to_numpy()
        mids = (ends - order["size"].to_numpy() / 2) / ends[-1]
        slots = np.searchsorted(bounds, mids, side="right").clip(0, len(names) - 1)
        assignment.update(zip(order.index.astype(str), (names[s] for s in slots)))
    split = frame[group].astype(str).map(assignment).astype("string")
    assert_no_leakage(frame.assign(_split=split), "_split", group)
    return split


def assert_no_leakage(frame: pd.DataFrame, split: str, group: str = "group_id") -> None:
    """Raise LeakageError naming the first group found in more than one split."""
    spread = frame.groupby(group)[split].nunique()
    leaking = spread[spread > 1]
    if not leaking.empty:
        name = leaking.index[0]
        seen = sorted(frame.loc[frame[group] == name, split].dropna().unique())
        raise LeakageError(f"{group} '{name}' appears in splits {seen} ({len(leaking)} groups leak in '{split}')")


def split_schemes(manifest: pd.DataFrame) -> list[str]:
    """The split schemes a manifest carries, from its `split_<scheme>` columns."""
    return [c.removeprefix("split_") for c in manifest.columns if c.startswith("split_")]


OFFICIAL_SPLITS = ("train", "val", "test")


def partition_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Images per official partition ({} where the archive ships none)."""
    if "official_split" not in frame:
        return {}
    named = frame["official_split"].fillna("").astype(str)
    counts = named[named != ""].value_counts()
    return {s: int(counts[s]) for s in OFFICIAL_SPLITS if s in counts}


def partitions_not_found(manifest: pd.DataFrame) -> str:
    """'the archive's test partition was not found' (each official partition absent), for a split's note;
    'the archive ships no partitions of its own' where it has none."""
    present = partition_counts(manifest)
    missing = [s for s in OFFICIAL_SPLITS if s not in present]
    if not present:
        return "the archive ships no partitions of its own"
    if not missing:
        return "the archive's own partitions were not found"
    return f"the archive's {' and '.join(missing)} partition{'s were' if len(missing) > 1 else ' was'} not found"


def has_official_splits(manifest: pd.DataFrame) -> bool:
    """Whether the archive shipped its own train, validation and test partitions (ISIC 2017, ISIC 2018)."""
    return "official_split" in manifest and set(OFFICIAL_SPLITS) <= set(manifest["official_split"].dropna())


def add_study_splits(manifest: pd.DataFrame, schemes: Mapping[str, Mapping[str, float]], seed: int,
                     stratify: str = "target", official: Collection[str] = ()) -> tuple[pd.DataFrame, dict[str, str]]:
    """The manifest with one `split_<scheme>` column per scheme ({name: {split: ratio}}), and a note per scheme.

    A scheme in `official` takes the archive's own partitions where it ships all three; every other
    scheme splits the archive's training images only (all images where the archive has no partitions).
    """
    out = manifest.copy()
    shipped = has_official_splits(out)
    not_found = partitions_not_found(out)
    pool = out["official_split"].fillna("").isin(["", "train"]) if "official_split" in out else \
        pd.Series(True, index=out.index)
    notes = {}
    for scheme, ratios in schemes.items():
        column = split_column(scheme)
        ratio_text = "/".join(f"{100 * r / sum(ratios.values()):.1f}" for r in ratios.values())
        if scheme in official and shipped:
            out[column] = out["official_split"].where(out["official_split"].isin(list(ratios))).astype("string")
            counts = out[column].value_counts()
            notes[scheme] = "the archive's official partitions (" + ", ".join(
                f"{counts.get(n, 0)} {n}" for n in ratios) + ")"
            continue
        out[column] = pd.Series(pd.NA, index=out.index, dtype="string")
        out.loc[pool, column] = group_split(out.loc[pool], ratios, seed, stratify=stratify)
        kind = str(out["group_kind"].iloc[0]) if "group_kind" in out and len(out) else "group"
        notes[scheme] = (f"{ratio_text} % ({'/'.join(ratios)}), grouped by {kind}, stratified by class"
                         + (", of the archive's training images" if not pool.all() else "")
                         + (f" ({not_found})" if scheme in official else ""))
    return out, notes
