"""A capped sample of a prepared dataset (`max_images`): a quick run on a large real folder.

The sample is drawn after the quality checks, so every duplicate was found on the whole folder. It is
seeded, stratified by official partition x class (each stratum keeps its share, and at least one
unit), and takes whole units: an image with its group (patient or lesion) and its near-duplicates,
so no split made later can separate them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def sample_units(manifest: pd.DataFrame, pairs: pd.DataFrame) -> np.ndarray:
    """A unit number per manifest row: rows joined by a shared group_id or a near-duplicate pair share one."""
    n = len(manifest)
    position = pd.Series(np.arange(n), index=manifest["image_id"].to_numpy())
    inside = pairs[pairs["image_a"].isin(position.index) & pairs["image_b"].isin(position.index)]
    first_of_group = manifest.groupby("group_id", sort=False).cumcount().eq(0).to_numpy()
    group_head = pd.Series(np.arange(n)[first_of_group], index=manifest["group_id"].to_numpy()[first_of_group])
    rows = np.concatenate([np.arange(n), position[inside["image_a"]].to_numpy()])
    cols = np.concatenate([group_head[manifest["group_id"]].to_numpy(), position[inside["image_b"]].to_numpy()])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _quotas(sizes: pd.Series, cap: int) -> pd.Series:
    """Images per stratum: its share of `cap` by largest remainder, at least 1."""
    exact = sizes / sizes.sum() * cap
    quota = np.floor(exact).astype(int)
    extra = int(cap - quota.sum())
    if extra > 0:
        quota[(exact - quota).sort_values(ascending=False, kind="stable").index[:extra]] += 1
    return quota.clip(lower=1)


def cap_sample(manifest: pd.DataFrame, pairs: pd.DataFrame, max_images: int, seed: int) -> pd.DataFrame:
    """At most about `max_images` rows of `manifest` (all of them when 0 or more than it holds), drawn by
    `seed` per official partition x class, whole units only (see sample_units); rows keep their order."""
    if max_images <= 0 or len(manifest) <= max_images:
        return manifest
    frame = manifest.reset_index(drop=True)
    unit = pd.Series(sample_units(frame, pairs))
    partition = frame.get("official_split", pd.Series("", index=frame.index)).fillna("").astype(str)
    head = frame.groupby(unit, sort=False).head(1).index  # a unit's stratum is its first row's
    units = pd.DataFrame({"unit": unit[head].to_numpy(), "stratum": (partition[head] + "/" + frame.loc[head, "label"]
                                                                   .astype(str)).to_numpy(),
                          "size": unit.value_counts()[unit[head]].to_numpy()})
    quota = _quotas(units.groupby("stratum")["size"].sum(), max_images)
    rng = np.random.default_rng(seed)
    chosen = []
    for stratum, members in units.groupby("stratum", sort=True):
        order = members.iloc[rng.permutation(len(members))]
        taken = order["size"].cumsum().to_numpy() <= quota[stratum]
        taken[0] = True
        chosen.extend(order.loc[taken, "unit"])
    return manifest.loc[unit.isin(chosen).to_numpy()]
