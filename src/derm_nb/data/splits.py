"""Group-aware stratified splits under named schemes, with a leakage check."""

from __future__ import annotations

from collections.abc import Mapping

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


def add_study_splits(manifest: pd.DataFrame, schemes: Mapping[str, Mapping[str, float]], seed: int,
                     stratify: str = "target") -> pd.DataFrame:
    """The manifest with one `split_<scheme>` column per scheme ({name: {split: ratio}})."""
    out = manifest.copy()
    for scheme, ratios in schemes.items():
        out[split_column(scheme)] = group_split(out, ratios, seed, stratify=stratify)
    return out
