"""max_images: a seeded sample by partition x class that keeps whole groups and duplicate groups."""

from __future__ import annotations

import pandas as pd

from derm_nb.data.sample import cap_sample, sample_units


def archive(n_train: int = 400, n_val: int = 40, n_test: int = 120) -> pd.DataFrame:
    """Images in three official partitions, 20 % melanoma, the training ones two to a patient."""
    rows = []
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        for k in range(n):
            rows.append({"image_id": f"{split}_{k:04d}", "official_split": split, "label": int(k % 5 == 0),
                         "group_id": f"{split}_p{k // 2}" if split == "train" else f"{split}_{k:04d}"})
    return pd.DataFrame(rows)


PAIRS = pd.DataFrame({"image_a": ["test_0001", "val_0003", "train_0100"], "image_b": ["test_0002", "test_0007", "nowhere"],
                      "distance": [3, 0, 5]})


def test_units_join_groups_and_duplicate_pairs():
    frame = archive()
    unit = pd.Series(sample_units(frame, PAIRS), index=frame["image_id"])
    assert unit["train_0000"] == unit["train_0001"] != unit["train_0002"]  # a patient's two images
    assert unit["test_0001"] == unit["test_0002"] and unit["val_0003"] == unit["test_0007"]
    assert unit["test_0003"] != unit["test_0004"]


def test_the_cap_keeps_partitions_and_classes_in_proportion():
    frame = archive()
    sample = cap_sample(frame, PAIRS, 112, seed=0)
    assert 100 <= len(sample) <= 116
    counts = sample.groupby(["official_split", "label"]).size()
    full = frame.groupby(["official_split", "label"]).size()
    share = counts / full
    assert (share > 0.1).all() and (share < 0.3).all()  # each stratum near 112 / 560 = 20 %
    assert set(counts.index) == set(full.index)  # every partition keeps both classes


def test_whole_units_only_and_order_kept():
    frame = archive()
    for seed in range(5):
        sample = cap_sample(frame, PAIRS, 60, seed=seed)
        ids = set(sample["image_id"])
        assert ("test_0001" in ids) == ("test_0002" in ids) and ("val_0003" in ids) == ("test_0007" in ids)
        patients = frame[frame["group_id"].isin(sample["group_id"])]
        assert set(patients["image_id"]) == ids
        assert sample.index.is_monotonic_increasing


def test_same_seed_same_sample_and_no_cap_is_everything():
    frame = archive()
    assert cap_sample(frame, PAIRS, 80, 3).equals(cap_sample(frame, PAIRS, 80, 3))
    assert not cap_sample(frame, PAIRS, 80, 3).equals(cap_sample(frame, PAIRS, 80, 4))
    assert cap_sample(frame, PAIRS, 0, 0) is frame and cap_sample(frame, PAIRS, 10_000, 0) is frame


def test_an_archive_without_partitions_is_stratified_by_class():
    frame = archive().assign(official_split="")
    sample = cap_sample(frame, PAIRS.iloc[:0], 100, seed=1)
    assert 90 <= len(sample) <= 110 and 0.15 <= sample["label"].mean() <= 0.25
