"""The synthetic generator: every preset's real layout, determinism, the oracle beside the data, known structure."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from derm_nb.data.sources import CLASSES, LOADERS, load_source
from derm_nb.data.synthetic import (
    PRESET_NAMES,
    PRESETS,
    SynthConfig,
    generate,
    oracle_path,
    render,
    render_ultrasound,
    sample_metadata,
)

SMALL = {  # a few seconds in all at 60x80
    "isic2020": dict(n_patients=30, prevalence=0.1, duplicate_fraction=0.03),
    "isic2017": dict(n_patients=24, duplicate_fraction=0.02),
    "isic2018": dict(n_patients=120),
    "isic2019": dict(n_patients=100),
    "busi": dict(n_patients=60),
}
T3 = "ISIC2018_Task3"
# Every metadata file of each layout, relative to the root, with its exact header.
HEADERS = {
    "isic2020": {"train.csv": "image_name,patient_id,sex,age_approx,anatom_site_general_challenge,diagnosis,"
                              "benign_malignant,target",
                 "ISIC_2020_Training_Duplicates.csv": "image_name_1,image_name_2"},
    "isic2017": {**{f"ISIC-2017_{p}_Part3_GroundTruth.csv": "image_id,melanoma,seborrheic_keratosis"
                    for p in ("Training", "Validation", "Test_v2")},
                 **{f"ISIC-2017_{p}_Data/ISIC-2017_{p}_Data_metadata.csv": "image_id,age_approximate,sex"
                    for p in ("Training", "Validation", "Test_v2")}},
    "isic2018": {**{f"{T3}_{p}_GroundTruth/{T3}_{p}_GroundTruth.csv": "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC"
                    for p in ("Training", "Validation", "Test")},
                 f"{T3}_Training_LesionGroupings.csv": "image,lesion_id,diagnosis_confirm_type"},
    "isic2019": {"ISIC_2019_Training_GroundTruth.csv": "image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK",
                 "ISIC_2019_Training_Metadata.csv": "image,age_approx,anatom_site_general,lesion_id,sex"},
    "busi": {},
}
# Image folders per partition (train, val, test) and, where the archive has them, mask folders.
IMAGE_DIRS = {
    "isic2020": {"train": "jpeg/train"},
    "isic2017": {"train": "ISIC-2017_Training_Data", "val": "ISIC-2017_Validation_Data", "test": "ISIC-2017_Test_v2_Data"},
    "isic2018": {"train": f"{T3}_Training_Input", "val": f"{T3}_Validation_Input", "test": f"{T3}_Test_Input"},
    "isic2019": {"train": "ISIC_2019_Training_Input"},
}
MASK_DIRS = {
    "isic2017": {"train": "ISIC-2017_Training_Part1_GroundTruth", "val": "ISIC-2017_Validation_Part1_GroundTruth",
                 "test": "ISIC-2017_Test_v2_Part1_GroundTruth"},
    "isic2018": {"train": "HAM10000_segmentations_lesion_tschandl"},
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """preset -> its small dataset folder, generated once per module on first use."""
    cache: dict[str, Path] = {}

    def get(preset: str) -> Path:
        if preset not in cache:
            out = tmp_path_factory.mktemp("syn") / preset
            cache[preset] = generate(SynthConfig(preset, seed=5, height=60, width=80, workers=2, **SMALL[preset]), out)
        return cache[preset]
    return get


def _oracle(root: Path) -> pd.DataFrame:
    return pd.read_csv(oracle_path(root))


def _image_ids(preset: str, root: Path) -> dict[str, str]:
    """image id -> partition, from the image files on disk (BUSI: the loader's `benign_0001` ids)."""
    if preset == "busi":
        files = [p for p in (root / "Dataset_BUSI_with_GT").rglob("*.png") if "_mask" not in p.name]
        return {f"{p.parent.name}_{int(p.stem.split('(')[1].rstrip(')')):04d}": "train" for p in files}
    return {p.stem: part for part, folder in IMAGE_DIRS[preset].items() for p in (root / folder).glob("*.jpg")}


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_layout_has_the_exact_files_and_headers(built, preset):
    root = built(preset)
    for name, header in HEADERS[preset].items():
        assert (root / name).read_text().splitlines()[0] == header, name
    csvs = {p.relative_to(root).as_posix() for p in root.rglob("*.csv")}
    assert csvs == set(HEADERS[preset]), "no CSV beyond the archive's (and never the oracle)"
    if preset == "isic2018":
        for folder in [f"{T3}_{p}_{k}" for p in ("Training", "Validation", "Test") for k in ("Input", "GroundTruth")]:
            assert {"LICENSE.txt", "ATTRIBUTION.txt"} <= {p.name for p in (root / folder).iterdir()}, folder
    if preset == "busi":
        assert {p.name for p in (root / "Dataset_BUSI_with_GT").iterdir()} == {"benign", "malignant", "normal"}
        assert (root / "Dataset_BUSI_with_GT" / "benign" / "benign (1).png").is_file()
        assert (root / "Dataset_BUSI_with_GT" / "benign" / "benign (1)_mask.png").is_file()


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_csv_rows_match_image_files_and_oracle(built, preset):
    root = built(preset)
    on_disk = _image_ids(preset, root)
    oracle = _oracle(root)
    assert set(oracle["image_id"]) == set(on_disk) and oracle["image_id"].is_unique
    assert dict(zip(oracle["image_id"], oracle["partition"])) == on_disk
    truth = {"isic2020": ("train.csv", "image_name"), "isic2019": ("ISIC_2019_Training_GroundTruth.csv", "image")}
    if preset in truth:
        name, column = truth[preset]
        assert set(pd.read_csv(root / name)[column]) == set(on_disk)
    if preset == "isic2018":
        listed = pd.concat([pd.read_csv(p) for p in root.glob(f"{T3}_*_GroundTruth/*.csv")])
        assert sorted(listed["image"]) == sorted(on_disk)
        onehot = listed[list(CLASSES["isic2018"])]
        assert onehot.isin([0.0, 1.0]).all().all() and onehot.sum(axis=1).eq(1).all()


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_oracle_probabilities(built, preset):
    root = built(preset)
    oracle = _oracle(root)
    classes = list(CLASSES[preset])  # named as the loader names the labels
    p = oracle[[f"p_{c}" for c in classes]]
    assert np.allclose(p.sum(axis=1), 1) and (p >= 0).all().all()
    assert oracle["label"].between(0, len(classes) - 1).all()
    positive = {"isic2020": ["malignant"], "isic2017": ["melanoma"], "isic2018": ["MEL", "BCC", "AKIEC"],
                "isic2019": ["MEL"], "busi": ["malignant"]}[preset]
    assert np.allclose(oracle["p_true"], oracle[[f"p_{c}" for c in positive]].sum(axis=1))
    latent = {"busi": ["irregularity", "margin", "orientation", "shadowing", "size", "mass"]}.get(
        preset, ["asymmetry", "border", "variegation", "diameter", "waxiness", "vascular", "patient_effect"])
    assert set(latent) <= set(oracle.columns)
    if preset == "isic2019":
        assert (oracle["p_UNK"] == 0).all() and not (oracle["label"] == classes.index("UNK")).any()


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_oracle_is_beside_not_inside(built, preset):
    root = built(preset)
    oracle = oracle_path(root)
    assert oracle.is_file() and root not in oracle.parents
    assert not any("p_true" in p.read_text()[:2000] for p in root.rglob("*.csv"))


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_same_seed_same_bytes(tmp_path, preset):
    small = {**SMALL[preset], "n_patients": max(4, SMALL[preset]["n_patients"] // 4), "duplicate_fraction": 0.05}
    make = lambda seed, name: generate(SynthConfig(preset, seed=seed, height=40, width=50, workers=1, **small),
                                       tmp_path / name)
    a, b, c = make(2, "a"), make(2, "b"), make(3, "c")
    assert len(_digests(a)) > 5 and _digests(a) == _digests(b)
    assert oracle_path(a).read_bytes() == oracle_path(b).read_bytes()
    assert oracle_path(a).read_bytes() != oracle_path(c).read_bytes()


@pytest.mark.parametrize("preset, n", [("isic2017", 2000), ("isic2018", 4000), ("isic2019", 4000), ("busi", 3000)])
def test_class_mix(preset, n):
    meta = sample_metadata(SynthConfig(preset, n_patients=n, seed=0))
    spec = PRESETS[preset]
    want = np.asarray(spec.mix) / sum(spec.mix)
    got = meta["label"].value_counts(normalize=True).reindex(range(len(want)), fill_value=0).to_numpy()
    assert got == pytest.approx(want, abs=0.025)
    assert meta[[f"p_{c}" for c in spec.classes]].mean().to_numpy() == pytest.approx(want, abs=2e-3)


def test_class_mix_isic2018_matches_ham10000():
    meta = sample_metadata(SynthConfig("isic2018", n_patients=4000, seed=1))
    share = meta["label"].map(dict(enumerate(CLASSES["isic2018"]))).value_counts(normalize=True)
    assert share["NV"] == pytest.approx(0.669, abs=0.025) and share["VASC"] == pytest.approx(0.014, abs=0.008)
    assert share[["MEL", "BCC", "AKIEC"]].sum() == pytest.approx(0.195, abs=0.025)


@pytest.mark.parametrize("preset, shares", [("isic2017", (2000, 150, 600)), ("isic2018", (10015, 193, 1512))])
def test_partitions_have_archive_proportions_and_share_no_group(preset, shares):
    meta = sample_metadata(SynthConfig(preset, n_patients=1500, seed=3))
    got = meta["partition"].value_counts(normalize=True).reindex(["train", "val", "test"]).to_numpy()
    assert got == pytest.approx(np.asarray(shares) / sum(shares), abs=0.01)
    assert meta.groupby("patient")["partition"].nunique().max() == 1


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_written_partitions_share_no_patient_or_lesion(built, preset):
    root = built(preset)
    oracle = _oracle(root)
    assert oracle.groupby("patient")["partition"].nunique().max() == 1
    if preset in ("isic2017", "isic2018"):
        assert set(oracle["partition"]) == {"train", "val", "test"}
    if preset == "isic2018":
        groups = pd.read_csv(root / f"{T3}_Training_LesionGroupings.csv")
        train = oracle[oracle["partition"] == "train"]
        assert set(groups["image"]) == set(train["image_id"])
        assert groups["lesion_id"].str.fullmatch(r"HAM_\d{7}").all()
        assert groups.groupby("lesion_id").size().max() > 1, "several images per lesion, as in HAM10000"
        lesion_of = groups.set_index("image")["lesion_id"]
        assert train.groupby(train["image_id"].map(lesion_of))["label"].nunique().max() == 1
        assert set(groups["diagnosis_confirm_type"]) <= {
            "histopathology", "serial imaging showing no change", "single image expert consensus",
            "confocal microscopy with consensus dermoscopy"}


@pytest.mark.parametrize("preset", ["isic2017"])
def test_isic2017_ids_superpixels_and_masks(built, preset):
    root = built(preset)
    ids = pd.concat([pd.read_csv(p) for p in root.glob("ISIC-2017_*_Part3_GroundTruth.csv")])["image_id"]
    assert ids.is_unique and ids.str.fullmatch(r"ISIC_\d{7}").all()
    superpixels = list(root.glob("ISIC-2017_*_Data/*_superpixels.png"))
    assert {p.parent.name for p in superpixels} == set(IMAGE_DIRS["isic2017"].values())
    assert all(p.name.replace("_superpixels.png", ".jpg") in os.listdir(p.parent) for p in superpixels)


@pytest.mark.parametrize("preset", ["isic2020"])
def test_isic2020_duplicates_file_lists_real_pairs(built, preset):
    root = built(preset)
    pairs = pd.read_csv(root / "ISIC_2020_Training_Duplicates.csv")
    train = pd.read_csv(root / "train.csv").set_index("image_name")
    images = root / "jpeg" / "train"
    assert len(pairs) >= 4 and not pairs.duplicated().any()
    identical = []
    for first, second in pairs.itertuples(index=False):
        assert train.at[first, "patient_id"] == train.at[second, "patient_id"]
        assert train.at[first, "target"] == train.at[second, "target"]
        assert train.at[first, "diagnosis"] == train.at[second, "diagnosis"]
        a, b = (images / f"{first}.jpg").read_bytes(), (images / f"{second}.jpg").read_bytes()
        identical.append(a == b)
        if a != b:  # a resized, re-encoded copy of the same picture
            small = cv2.imread(str(images / f"{second}.jpg"))
            big = cv2.resize(cv2.imread(str(images / f"{first}.jpg")), small.shape[1::-1], interpolation=cv2.INTER_AREA)
            assert small.shape[:2] != (60, 80) and np.abs(small.astype(int) - big).mean() < 12
    assert any(identical) and not all(identical)


@pytest.mark.parametrize("preset", ["isic2020", "isic2019"])
def test_no_masks_where_the_archive_has_none(built, preset):
    root = built(preset)
    assert not (root / "masks").exists()
    assert not list(root.rglob("*_segmentation.png")) and not list(root.rglob("*.png"))


@pytest.mark.parametrize("preset", list(MASK_DIRS))
def test_lesion_masks_cover_the_archive_images(built, preset):
    root = built(preset)
    for part, folder in MASK_DIRS[preset].items():
        images = {p.stem for p in (root / IMAGE_DIRS[preset][part]).glob("*.jpg")}
        masks = {p.name.removesuffix("_segmentation.png") for p in (root / folder).glob("*_segmentation.png")}
        assert masks == images, folder
    if preset == "isic2018":
        assert not list(root.glob(f"{T3}_Validation_*/*.png")), "HAM10000 masks cover training images only"


@pytest.mark.parametrize("preset", ["busi"])
def test_busi_masks(built, preset):
    root = built(preset)
    base = root / "Dataset_BUSI_with_GT"
    multi = 0
    for image in [p for p in base.rglob("*.png") if "_mask" not in p.name]:
        masks = sorted(image.parent.glob(f"{image.stem}_mask*.png"))
        assert masks, image
        pixels = [cv2.imread(str(m), cv2.IMREAD_GRAYSCALE) for m in masks]
        assert all(m.shape == (60, 80) and set(np.unique(m)) <= {0, 255} for m in pixels)
        rgb = cv2.imread(str(image), cv2.IMREAD_UNCHANGED)
        assert rgb.shape == (60, 80, 3) and (rgb[..., 0] == rgb[..., 2]).all(), "grey, saved as RGB"
        if image.parent.name == "normal":
            assert len(masks) == 1 and not pixels[0].any()
        else:
            assert all(m.any() for m in pixels)
            multi += len(masks) > 1
    assert multi >= 1 and {p.name for p in base.rglob("*_mask_1.png")}
    counts = {c: len([p for p in (base / c).glob("*.png") if "_mask" not in p.name]) for c in CLASSES["busi"]}
    assert counts["benign"] > counts["malignant"] > 0 and counts["normal"] > 0


@pytest.mark.skipif(not set(PRESET_NAMES) <= set(LOADERS), reason="a loader for a preset is missing")
@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_the_real_loader_reads_it_excluding_only_the_planted_duplicates(built, preset):
    root = built(preset)
    manifest, report = load_source(preset, root, workers=1)
    oracle = _oracle(root)
    excluded = report.frame().query("action == 'excluded'")
    assert set(excluded["check"]) <= {"listed duplicate", "duplicate image"}
    planted = oracle.loc[oracle["duplicate_of"].notna(), "image_id"]
    assert set(excluded["image_id"]) == set(planted)
    assert (len(planted) > 0) == (preset in ("isic2020", "isic2017"))
    if preset == "isic2020":
        assert set(planted) == set(pd.read_csv(root / "ISIC_2020_Training_Duplicates.csv")["image_name_2"])
    assert len(manifest) == len(oracle) - len(excluded)
    merged = manifest.merge(oracle, on="image_id", how="left", suffixes=("", "_oracle"))
    assert merged["p_true"].notna().all() and (merged["label"] == merged["label_oracle"]).all()
    if "official_split" in manifest and preset in ("isic2017", "isic2018"):
        assert (merged["official_split"] == merged["partition"]).all()


def test_label_model_is_known_and_learnable():
    meta = sample_metadata(SynthConfig("isic2020", n_patients=3000, seed=0, prevalence=0.0176))
    assert meta["label"].mean() == pytest.approx(0.0176, abs=0.004)
    assert meta["p_true"].mean() == pytest.approx(0.0176, abs=1e-3)
    assert roc_auc_score(meta["label"], meta["p_true"]) > 0.85
    # Malignant lesions are larger, more variegated and more asymmetric; men have more hair.
    for attr in ("diameter", "variegation", "asymmetry", "border"):
        assert meta.loc[meta["label"] == 1, attr].mean() > meta.loc[meta["label"] == 0, attr].mean()
    hair = meta.groupby("sex")["hair"].mean()
    assert hair["male"] > 2 * hair["female"]
    per_patient = meta.groupby("patient").size()
    assert per_patient.min() >= 1 and per_patient.max() <= 100 and per_patient.max() > 20


@pytest.mark.parametrize("preset, cls, attr", [("isic2018", "VASC", "vascular"), ("isic2018", "DF", "fibrosis"),
                                               ("isic2019", "SCC", "scale"), ("isic2019", "BCC", "arborizing"),
                                               ("isic2017", "seborrheic_keratosis", "waxiness"),
                                               ("busi", "malignant", "margin"), ("busi", "malignant", "shadowing")])
def test_each_class_shows_its_latent_sign(preset, cls, attr):
    meta = sample_metadata(SynthConfig(preset, n_patients=3000, seed=0))
    classes = PRESETS[preset].classes
    reference = meta["label"] == classes.index({"busi": "benign", "isic2017": "nevus"}.get(preset, "NV"))
    assert meta.loc[meta["label"] == classes.index(cls), attr].mean() > 1.2 * meta.loc[reference, attr].mean()


def _lesion_rgb(attrs: dict) -> np.ndarray:
    rgb, (mask,) = render(attrs, (0, 1), 120, 160)
    return rgb[mask > 0].astype(float).mean(axis=0)


def test_render_draws_the_signs_from_latents_only():
    plain = dict(skin_tone=0.2, hair=False, asymmetry=0.2, border=0.2, variegation=0.1, diameter=0.6, waxiness=0.1,
                 pigment=0.5, vascular=0.05, scale=0.05, fibrosis=0.05, arborizing=0.05, patient_effect=0.0)
    base = _lesion_rgb(plain)
    red = _lesion_rgb({**plain, "vascular": 0.8})
    white = _lesion_rgb({**plain, "fibrosis": 0.8})
    assert red[0] - red[1] > base[0] - base[1] + 20  # red lacunae
    assert white.mean() > base.mean() + 10  # a white scar-like patch
    assert np.array_equal(render(plain, (0, 1), 60, 80)[0], render(plain, (0, 1), 60, 80)[0])
    mass = dict(irregularity=0.3, margin=0.2, orientation=0.2, shadowing=0.2, echo=0.3, size=0.5, mass=True, multi=False)
    grey, (m,) = render_ultrasound(mass, (0, 1), 120, 160)
    assert m.any() and grey[m > 0].mean() < 0.6 * grey[(m == 0) & (grey[..., 0] > 0)].mean()  # hypoechoic mass
    assert not render_ultrasound({**mass, "mass": False}, (0, 1), 120, 160)[1][0].any()


def test_interrupted_run_resumes_and_a_new_config_replaces_the_old(tmp_path):
    cfg = SynthConfig("busi", n_patients=20, seed=1, height=40, width=50, workers=1)
    root = generate(cfg, tmp_path / "busi")
    before = _digests(root)
    victim = next(p for p in (root / "Dataset_BUSI_with_GT" / "benign").glob("*.png") if "_mask" not in p.name)
    victim.unlink()
    marker = root / ".synth_config.json"
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "complete": False}))
    assert _digests(generate(cfg, root)) == before  # the interrupted run is finished, byte for byte
    smaller = generate(SynthConfig("busi", n_patients=8, seed=1, height=40, width=50, workers=1), root)
    assert len(_image_ids("busi", smaller)) == 8 == len(_oracle(smaller))  # no stale images of the old config


def test_class_mix_is_checked():
    with pytest.raises(ValueError, match="class_mix for isic2018 needs 7"):
        sample_metadata(SynthConfig("isic2018", class_mix=(0.5, 0.5)))


def test_a_latent_changes_the_lesion_and_nothing_else():
    """Skin, lesion and lens draw from separate streams, and the lesion layer only touches the lesion's box."""
    import cv2

    plain = dict(skin_tone=0.3, hair=True, asymmetry=0.3, border=0.3, variegation=0.4, diameter=0.4, waxiness=0.1,
                 pigment=0.5, vascular=0.05, scale=0.05, fibrosis=0.05, arborizing=0.05, patient_effect=0.0)
    a, (mask,) = render(plain, (0, 7), 120, 160)
    b, _ = render({**plain, "fibrosis": 0.8, "variegation": 0.9}, (0, 7), 120, 160)
    far = cv2.dilate(mask, np.ones((41, 41), np.uint8)) == 0
    assert far.any() and np.array_equal(a[far], b[far])
    assert np.abs(a.astype(int) - b.astype(int))[mask > 0].mean() > 5
