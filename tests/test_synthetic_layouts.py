"""Every synthetic preset writes its archive's exact layout, which the real loader reads back."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from derm_nb.data.sources import CLASSES, load_source
from derm_nb.data.synthetic import PRESETS, SynthConfig, generate, oracle_path, sample_metadata

FILES = {
    "isic2020": ["train.csv", "jpeg/train", "ISIC_2020_Training_Duplicates.csv"],
    "isic2017": ["ISIC-2017_Training_Part3_GroundTruth.csv", "ISIC-2017_Training_Data",
                 "ISIC-2017_Training_Part1_GroundTruth", "ISIC-2017_Validation_Part3_GroundTruth.csv",
                 "ISIC-2017_Validation_Data/ISIC-2017_Validation_Data_metadata.csv",
                 "ISIC-2017_Test_v2_Part3_GroundTruth.csv", "ISIC-2017_Test_v2_Part1_GroundTruth"],
    "isic2018": ["ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv",
                 "ISIC2018_Task3_Training_Input/LICENSE.txt", "ISIC2018_Task3_Training_Input/ATTRIBUTION.txt",
                 "ISIC2018_Task3_Training_LesionGroupings.csv",
                 "ISIC2018_Task3_Validation_GroundTruth/ISIC2018_Task3_Validation_GroundTruth.csv",
                 "ISIC2018_Task3_Test_GroundTruth/ISIC2018_Task3_Test_GroundTruth.csv",
                 "HAM10000_segmentations_lesion_tschandl"],
    "isic2019": ["ISIC_2019_Training_GroundTruth.csv", "ISIC_2019_Training_Metadata.csv", "ISIC_2019_Training_Input"],
    "busi": ["Dataset_BUSI_with_GT/benign", "Dataset_BUSI_with_GT/malignant", "Dataset_BUSI_with_GT/normal"],
}
SIZES = {"isic2020": 12, "isic2017": 12, "isic2018": 60, "isic2019": 50, "busi": 40}


@pytest.fixture(scope="module", params=list(PRESETS))
def dataset(request, tmp_path_factory):
    preset = request.param
    out = tmp_path_factory.mktemp("syn") / preset
    cfg = SynthConfig(preset, n_patients=SIZES[preset], seed=3, prevalence=0.2, height=48, width=64, workers=1,
                      duplicate_fraction=0.03)
    return preset, generate(cfg, out)


def test_every_preset_writes_its_archives_files(dataset):
    preset, root = dataset
    for name in FILES[preset]:
        assert (root / name).exists(), name
    if preset in ("isic2020", "isic2019"):
        assert not list(root.rglob("*_segmentation.png"))   # these archives ship no masks


def test_the_real_loader_reads_it_back_with_every_image_in_the_oracle(dataset):
    preset, root = dataset
    manifest, report = load_source(preset, root, workers=1)
    excluded = report.frame().query("action == 'excluded'")
    assert set(excluded["check"]) <= {"listed duplicate", "duplicate image", "near-duplicate image"}
    oracle = pd.read_csv(oracle_path(root))
    assert set(manifest["image_id"]) <= set(oracle["image_id"].astype(str))
    probs = oracle[[f"p_{c}" for c in CLASSES[preset]]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1)
    if preset in ("isic2017", "isic2018"):
        assert set(manifest["official_split"]) == {"train", "val", "test"}
        groups = manifest.groupby("group_id")["official_split"].nunique()
        assert groups.max() == 1   # no lesion / patient in two partitions
    if preset == "busi":
        masked = manifest.set_index("label_name")["mask_path"]
        assert (masked != "").all()


def test_busi_normal_masks_are_empty(dataset):
    preset, root = dataset
    if preset != "busi":
        pytest.skip("BUSI only")
    from PIL import Image

    for path in (root / "Dataset_BUSI_with_GT" / "normal").glob("*_mask.png"):
        assert not np.asarray(Image.open(path)).any()
    assert any(np.asarray(Image.open(p)).any() for p in (root / "Dataset_BUSI_with_GT" / "malignant").glob("*_mask.png"))


def test_isic2020_lists_copies_that_are_not_byte_identical(dataset):
    preset, root = dataset
    if preset != "isic2020":
        pytest.skip("ISIC 2020 only")
    pairs = pd.read_csv(root / "ISIC_2020_Training_Duplicates.csv")
    digest = lambda name: hashlib.md5((root / "jpeg" / "train" / f"{name}.jpg").read_bytes()).hexdigest()
    same = [digest(a) == digest(b) for a, b in zip(pairs["image_name_1"], pairs["image_name_2"])]
    assert len(same) >= 2 and any(same) and not all(same)


@pytest.mark.parametrize("preset", ["isic2018", "isic2019", "busi"])
def test_class_mix_follows_the_archive(preset):
    meta = sample_metadata(SynthConfig(preset, n_patients=4000, seed=0))
    share = meta["label"].value_counts(normalize=True).reindex(range(len(PRESETS[preset].classes)), fill_value=0)
    assert share.to_numpy() == pytest.approx(np.asarray(PRESETS[preset].mix), abs=0.03)
    assert meta["p_true"].between(0, 1).all()
