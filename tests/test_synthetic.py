"""The synthetic generator: real layouts, determinism, oracle outside the data, known structure."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from derm_nb.data.sources import load_source
from derm_nb.data.synthetic import SynthConfig, generate, oracle_path, sample_metadata


@pytest.fixture(scope="module")
def isic2020(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn") / "isic2020"
    return generate(SynthConfig("isic2020", n_patients=30, seed=5, prevalence=0.1, height=60, width=80,
                                duplicate_fraction=0.02, workers=1), out)


def test_isic2020_layout_is_exact(isic2020):
    frame = pd.read_csv(isic2020 / "train.csv")
    assert list(frame.columns) == ["image_name", "patient_id", "sex", "age_approx",
                                   "anatom_site_general_challenge", "diagnosis", "benign_malignant", "target"]
    assert all((isic2020 / "jpeg" / "train" / f"{n}.jpg").is_file() for n in frame["image_name"])
    assert not (isic2020 / "masks").exists()  # ISIC 2020 ships no lesion masks, and neither do we
    assert set(frame["benign_malignant"]) <= {"benign", "malignant"}
    assert (frame["target"] == frame["benign_malignant"].eq("malignant")).all()
    assert frame["diagnosis"].eq("unknown").mean() > 0.5
    assert frame["image_name"].str.fullmatch(r"ISIC_\d{7}").all()
    assert frame["patient_id"].str.fullmatch(r"IP_\d{7}").all()


def test_oracle_is_beside_not_inside(isic2020):
    oracle = oracle_path(isic2020)
    assert oracle.is_file() and isic2020 not in oracle.parents
    assert not any("oracle" in p.name or "p_true" in p.read_text()[:2000]
                   for p in isic2020.rglob("*.csv"))


def test_duplicates_and_nans_are_planted(isic2020):
    manifest, report = load_source("isic2020", isic2020, workers=1)
    checks = report.frame()
    listed = pd.read_csv(isic2020 / "ISIC_2020_Training_Duplicates.csv")
    assert len(listed) > 0 and set(listed["image_name_2"]) <= set(checks.loc[checks["check"] == "listed duplicate",
                                                                              "image_id"])
    assert {"missing age", "missing sex", "missing site"} & set(checks["check"])


def test_same_seed_same_bytes(tmp_path):
    cfg = SynthConfig("isic2017", n_patients=6, seed=2, height=40, width=50, workers=1)
    a, b = generate(cfg, tmp_path / "a"), generate(cfg, tmp_path / "b")
    assert (a / "ISIC-2017_Training_Part3_GroundTruth.csv").read_bytes() == \
        (b / "ISIC-2017_Training_Part3_GroundTruth.csv").read_bytes()
    digest = lambda p: hashlib.md5(p.read_bytes()).hexdigest()
    name = "ISIC-2017_Training_Data/ISIC_0000003.jpg"
    assert digest(a / name) == digest(b / name)


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


def test_isic2017_class_mix():
    meta = sample_metadata(SynthConfig("isic2017", n_patients=2000, seed=0))
    mix = meta["label"].value_counts(normalize=True).sort_index().to_numpy()
    assert mix == pytest.approx([0.686, 0.187, 0.127], abs=0.03)
    assert np.allclose(meta[["p_nevus", "p_melanoma", "p_seborrheic_keratosis"]].sum(axis=1), 1)
