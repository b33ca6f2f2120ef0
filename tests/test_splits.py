"""Group-aware splits: no leakage, deterministic, ratios kept; study-000 small set; study-002 subsets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from derm_nb.data.errors import DataError, LeakageError
from derm_nb.data.splits import add_study_splits, assert_no_leakage, group_split, split_column
from derm_nb.studies import split_schemes
from derm_nb.studies.study000 import small_dataset
from derm_nb.studies.study002.experiments import imbalance_ratios, imbalance_subset

SPLIT_SCHEMES = split_schemes()


def frame(n_groups: int = 300, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 12, n_groups)
    group = np.repeat([f"P{k}" for k in range(n_groups)], sizes)
    target = (rng.random(len(group)) < 0.1).astype(int)
    return pd.DataFrame({"image_id": [f"I{k}" for k in range(len(group))], "group_id": group,
                         "target": target, "label": target})


@pytest.mark.parametrize("scheme", list(SPLIT_SCHEMES))
def test_every_scheme_has_no_leakage_and_keeps_ratios(scheme):
    df = frame()
    split = group_split(df, SPLIT_SCHEMES[scheme], seed=0)
    assert df.assign(s=split).groupby("group_id")["s"].nunique().max() == 1
    shares = split.value_counts(normalize=True)
    total = sum(SPLIT_SCHEMES[scheme].values())
    for name, ratio in SPLIT_SCHEMES[scheme].items():
        assert shares[name] == pytest.approx(ratio / total, abs=0.05)
    for name in SPLIT_SCHEMES[scheme]:  # stratified: every split has positives
        assert df.loc[split == name, "target"].sum() > 0


def test_split_is_deterministic_by_seed():
    df = frame()
    a = group_split(df, SPLIT_SCHEMES["study001"], seed=3)
    b = group_split(df, SPLIT_SCHEMES["study001"], seed=3)
    c = group_split(df, SPLIT_SCHEMES["study001"], seed=4)
    assert a.equals(b) and not a.equals(c)


def test_add_study_splits_adds_one_column_per_scheme():
    df, notes = add_study_splits(frame(), SPLIT_SCHEMES, seed=0)
    assert set(notes) == set(SPLIT_SCHEMES)
    for scheme in SPLIT_SCHEMES:
        assert_no_leakage(df, split_column(scheme))


def test_leakage_is_detected_and_named():
    df = frame(20)
    df["s"] = np.where(np.arange(len(df)) % 2, "train", "val")
    leaking = df.groupby("group_id").size().loc[lambda s: s > 1].index[0]
    with pytest.raises(LeakageError, match=f"group_id '{leaking}' appears in splits"):
        assert_no_leakage(df, "s")


def test_small_dataset_keeps_every_melanoma_and_two_per_patient():
    df = frame()
    small = small_dataset(df, per_group=2, seed=0)
    assert set(df.loc[df["target"] == 1, "image_id"]) <= set(small["image_id"])
    benign = small[small["target"] == 0]
    assert benign.groupby("group_id").size().max() <= 2
    patients_with_benign = df.loc[df["target"] == 0, "group_id"].nunique()
    assert benign["group_id"].nunique() == patients_with_benign
    assert small_dataset(df, 2, seed=0).equals(small)


def test_imbalance_subset_sizes_and_errors():
    df = frame(600)
    sub = imbalance_subset(df, majority=300, minority=20, seed=0)
    assert (sub["target"] == 0).sum() == 300 and (sub["target"] == 1).sum() == 20
    with pytest.raises(DataError, match="needs more images"):
        imbalance_subset(df, majority=10, minority=10_000)
    pairs = imbalance_ratios(4500, [4500, 2250, 1125, 300, 125, 75], 0.01, df)
    assert pairs[0] == (45, 45) and pairs[-1] == (45, 2)
