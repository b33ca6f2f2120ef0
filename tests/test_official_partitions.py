"""An archive's official partitions as prepared: a missing one still runs and is named, and the data line
names the folder, not the machine's path."""

from __future__ import annotations

import formats
import pandas as pd

from derm_nb.data.catalog import Dataset
from derm_nb.data.prepared import prepare
from derm_nb.studies import official_schemes, split_schemes


def test_a_missing_test_partition_still_prepares_and_is_named(tmp_path):
    root = formats.populate("isic2017", tmp_path / "ISIC2017", 60, seed=2)
    (root / "ISIC-2017_Test_v2_Part3_GroundTruth.csv").unlink()
    prepared = prepare(Dataset("isic2017", "melanoma"), root, tmp_path / "out", split_schemes(),
                       official=official_schemes(), cache_size=32, workers=1)
    assert prepared.summary["partitions"]["not_found"] == ["test"]
    assert set(prepared.summary["partitions"]["read"]) == {"train", "val"}
    note = prepared.summary["splits"]["study004"]
    assert note.endswith("(the archive's test partition was not found)")
    assert set(prepared.split("study004", "test")["official_split"]) == {"train"}  # split from the training images
    quality = prepared.quality
    assert quality["detail"].str.contains("ISIC-2017_Test_v2_Part3_GroundTruth.csv not found").any()


def test_the_data_line_names_the_folder_and_the_sample(tmp_path):
    root = formats.populate("isic2017", tmp_path / "my archive" / "ISIC2017", 80, seed=3)
    prepared = prepare(Dataset("isic2017", "melanoma"), root, tmp_path / "out", split_schemes(),
                       official=official_schemes(), cache_size=32, workers=1, max_images=40)
    line = prepared.describe()
    assert line.startswith("ISIC 2017 from the folder ISIC2017, a sample of ") and str(tmp_path) not in line
    sample = prepared.summary["sample"]
    assert sample["of"] > sample["n_images"] == len(prepared.manifest) and f"of its {sample['of']:,} images" in line
    pairs = pd.read_csv(tmp_path / "out" / "near_duplicates.csv")
    assert list(pairs.columns) == ["image_a", "image_b", "distance", "same_bytes", "partition_a", "partition_b", "kept"]
