"""Group-aware stratified splits, the study-000 'small' set, and the study-002 imbalance subsets."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from derm_nb.data.errors import DataError, LeakageError

# Each study's split, as the seeds state them (study 003's 72/12/15 sums to 99 and is normalised;
# study 004 uses ISIC 2017's official 2000/150/600 proportions).
SPLIT_SCHEMES: dict[str, dict[str, float]] = {
    "study000": {"train": 0.85, "val": 0.15},
    "study001": {"train": 0.70, "val": 0.15, "test": 0.15},
    "study002": {"train": 0.75, "val": 0.125, "test": 0.125},
    "study003": {"train": 0.72, "val": 0.12, "test": 0.15},
    "study004": {"train": 2000 / 2750, "val": 150 / 2750, "test": 600 / 2750},
}


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


def add_study_splits(manifest: pd.DataFrame, seed: int, stratify: str = "target") -> pd.DataFrame:
    """The manifest with one `split_<study>` column per scheme in SPLIT_SCHEMES."""
    out = manifest.copy()
    for scheme, ratios in SPLIT_SCHEMES.items():
        out[split_column(scheme)] = group_split(out, ratios, seed, stratify=stratify)
    return out


def small_dataset(frame: pd.DataFrame, per_group: int = 2, seed: int = 0) -> pd.DataFrame:
    """Study 000's patient-diverse set: every melanoma, plus `per_group` other images of each patient."""
    positives = frame[frame["target"] == 1]
    rest = frame[frame["target"] == 0]
    rng = np.random.default_rng(seed)
    keys = rng.random(len(rest))
    sampled = rest.assign(_key=keys).sort_values("_key").groupby("group_id", sort=False).head(per_group)
    return pd.concat([positives, sampled.drop(columns="_key")]).sort_index()


def imbalance_subset(frame: pd.DataFrame, majority: int, minority: int, seed: int = 0) -> pd.DataFrame:
    """Study 002's majority:minority subsets (benign:malignant), sampled without replacement."""
    neg, pos = frame[frame["target"] == 0], frame[frame["target"] == 1]
    if majority > len(neg) or minority > len(pos):
        raise DataError(f"imbalance subset {majority}:{minority} needs more images than the pool has "
                        f"({len(neg)} benign, {len(pos)} malignant); lower the scale parameter")
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.choice(neg.index.to_numpy(), majority, replace=False),
                             rng.choice(pos.index.to_numpy(), minority, replace=False)])
    return frame.loc[np.sort(chosen)]


def imbalance_ratios(majority: int, minorities: list[int], scale: float, pool: pd.DataFrame) -> list[tuple[int, int]]:
    """Scale the study's 4500:{...} sizes by `scale`, keeping at least 2 of each class."""
    pairs = [(max(2, round(majority * scale)), max(2, round(m * scale))) for m in minorities]
    for maj, mino in pairs:
        if maj > (pool["target"] == 0).sum() or mino > (pool["target"] == 1).sum():
            raise DataError(f"scaled subset {maj}:{mino} exceeds the pool; lower the scale parameter ({scale})")
    return pairs
