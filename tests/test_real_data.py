"""The book on the real copies in ../shared/real/ (ISIC 2017 with its official partitions, BUSI): the data
layer's counts, the whole smoke book with every study on a real folder, and a tiny real-format folder whose
validation split holds one class (slow). Skipped, saying why, where the folder is absent.
Nothing is written under ../shared/real/."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from derm_nb.artifacts import read_json
from derm_nb.chapters import CHAPTERS
from derm_nb.cli import main

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / ".." / "shared" / "real"
ISIC2017 = REAL / "ISIC2017"
BUSI = REAL / "BUSI" / "Dataset_BUSI_with_GT"
pytestmark = pytest.mark.skipif(not (ISIC2017.is_dir() and BUSI.is_dir()),
                                reason=f"the real datasets are not in {REAL.resolve()} (../shared/real/ from the "
                                       "repository root, with ISIC2017/ and BUSI/; CI has them)")
EVERY_SLOT_ON_ISIC2017 = {"study000": "isic2017", "study001": "isic2017", "study002": "isic2017",
                          "study002_sweep": "isic2017"}
SAMPLE = 150  # max_images in the default suite's run (smoke's 400 takes 06 about 5x its synthetic time)


def run(run_dir: Path, data: dict[str, Path], params: dict, *extra: str, real_data: dict | None = None) -> None:
    """`derm-nb run --profile smoke` with these roots and a --params file of 00_data keys (and `real_data` ones)."""
    user = run_dir.parent / f"{run_dir.name}.yaml"
    user.write_text(json.dumps({"notebooks": {"00_data": params}, "real_data": real_data or {}}))  # JSON is YAML
    argv = ["run", "--profile", "smoke", "--run-dir", str(run_dir), "--params", str(user), *extra]
    for source, root in data.items():
        argv += ["--data", f"{source}={root}"]
    assert main(argv) == 0


REAL_IMAGE_SIZE = 48   # a `real_data` key of the run's parameter file: 06 must run with it, on a real folder


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    """The whole smoke book on the real folders: 003 on BUSI, every other study on ISIC 2017 (004 on its
    official partitions), each dataset sampled to about SAMPLE images."""
    run_dir = tmp_path_factory.mktemp("real") / "smoke"
    run(run_dir, {"isic2017": ISIC2017, "busi": BUSI}, {"datasets": EVERY_SLOT_ON_ISIC2017, "max_images": SAMPLE},
        real_data={"06_architectures": {"image_size": REAL_IMAGE_SIZE}})
    return run_dir


def summary_of(run_dir: Path, folder: str) -> dict:
    return read_json(run_dir / "00_data" / folder / "summary.json")


def test_isic2017_reads_the_official_partitions_and_keeps_them_whole(real_run):
    summary = summary_of(real_run, "isic2017-melanoma")
    partitions = summary["partitions"]
    assert partitions["read"] == {"train": 2000, "val": 150, "test": 600}
    assert partitions["kept"]["test"] == 600 and partitions["kept"]["val"] == 150  # no within-val copies here
    assert partitions["kept"]["train"] < 2000 and not partitions["not_found"]
    pairs = pd.read_csv(real_run / "00_data" / "isic2017-melanoma" / "near_duplicates.csv", keep_default_na=False)
    crossing = pairs[pairs["partition_a"] != pairs["partition_b"]]
    assert len(crossing) == summary["cross_partition_pairs"] >= 6  # the published train / test copies
    train_test = crossing[(crossing["partition_a"] == "train") & (crossing["partition_b"] == "test")]
    assert len(train_test) >= 5 and set(train_test["kept"]) == {"b"}  # the test copy stays, the training one goes
    assert pairs["same_bytes"].astype(str).eq("True").sum() == summary["identical_pairs"] >= 6
    quality = pd.read_csv(real_run / "00_data" / "isic2017-melanoma" / "quality_report.csv")
    dropped = quality[quality["detail"].str.contains("official test partition stays whole", na=False)]
    assert set(dropped["action"]) == {"excluded"} and len(dropped) == len(train_test)


def test_the_sample_is_stated_and_keeps_every_partition(real_run):
    summary = summary_of(real_run, "isic2017-melanoma")
    assert summary["sample"] == {"max_images": SAMPLE, "n_images": summary["n_images"], "of": 2736}
    assert SAMPLE * 0.9 <= summary["n_images"] <= SAMPLE * 1.1
    manifest = pd.read_parquet(real_run / "00_data" / "isic2017-melanoma" / "manifest.parquet")
    assert manifest.groupby("official_split")["label_name"].nunique().to_dict() == {"train": 3, "val": 3, "test": 3}
    assert "the archive's official partitions" in summary["splits"]["study004"]


def test_busi_flags_its_duplicates_and_no_pair_crosses_a_split(real_run):
    folder = real_run / "00_data" / "busi-malignant"
    summary = summary_of(real_run, "busi-malignant")
    assert summary["duplicate_pairs"] >= 150 and summary["cross_partition_pairs"] == 0
    quality = pd.read_csv(folder / "quality_report.csv")
    conflicts = quality[quality["detail"].str.contains("with different labels", na=False)]
    assert conflicts["image_id"].str.startswith("benign").any() and conflicts["image_id"].str.startswith("malignant").any()
    assert (quality["check"].str.contains("duplicate") & (quality["action"] == "excluded")).sum() >= 150
    manifest = pd.read_parquet(folder / "manifest.parquet")
    pairs = pd.read_csv(folder / "near_duplicates.csv", keep_default_na=False)
    inside = pairs[pairs["image_a"].isin(manifest["image_id"]) & pairs["image_b"].isin(manifest["image_id"])]
    assert inside.empty  # one copy of every group is left, so no pair can cross any split


def test_the_studies_run_on_their_own_real_data_and_the_pages_show_no_machine_path(real_run):
    for stem, source, folder in (("06_architectures", "BUSI", "Dataset_BUSI_with_GT"),
                                 ("07_gcn_mil", "ISIC 2017", "ISIC2017")):
        metrics = read_json(real_run / stem / "metrics.json")
        assert metrics["variants"]
        differences = pd.read_csv(real_run / stem / "differences.csv")
        data = differences.set_index("aspect").loc["data"]
        assert data["this run"].startswith(f"{source} from the folder {folder}, a sample of ")
        assert "synthetic" not in data["why"] and "own archive" in data["why"]
        assert not differences["why"].str.contains("the book on the built-in synthetic data").any()
        page = (real_run / "notebooks" / f"{stem}.ipynb").read_text()
        assert str(REAL.resolve()) not in page and "site-packages" not in page  # figure titles: test_paper_004


def test_the_smoke_book_runs_with_every_study_on_a_real_folder(real_run):
    log = read_json(real_run / "run_log.json")
    assert list(log) == [c.stem for c in CHAPTERS] and not any(e.get("skipped") for e in log.values())
    slots = read_json(real_run / "00_data" / "catalog.json")["slots"]
    assert {e["source"] for e in slots.values()} == {"isic2017", "busi"}
    assert all(e["status"] == "ready" and not e["synthetic"] for e in slots.values())
    for stem in ("02_baseline", "03_experts", "04_efficientnet", "05_deep_clustering", "06_architectures",
                 "07_gcn_mil"):
        assert read_json(real_run / stem / "metrics.json")["variants"], stem
    assert log["06_architectures"]["parameters"]["image_size"] == REAL_IMAGE_SIZE   # the real_data layer
    assert log["04_efficientnet"]["parameters"]["image_size"] != REAL_IMAGE_SIZE   # only 06 has the key


def tiny_isic2017(root: Path, per_class: int = 8) -> Path:
    """An ISIC 2017 layout of real images (symlinks): `per_class` of each class in training, half that in
    test, and a validation partition whose ground truth is rewritten to one class (nevus)."""
    root.mkdir(parents=True)
    for part, n in (("Training", per_class), ("Validation", per_class // 2), ("Test_v2", per_class // 2)):
        truth = pd.read_csv(ISIC2017 / f"ISIC-2017_{part}_Part3_GroundTruth.csv")
        truth["cls"] = truth["melanoma"] + 2 * truth["seborrheic_keratosis"]
        picked = truth.groupby("cls").head(n).drop(columns="cls")
        if part == "Validation":
            picked = picked.assign(melanoma=0.0, seborrheic_keratosis=0.0)
        picked.to_csv(root / f"ISIC-2017_{part}_Part3_GroundTruth.csv", index=False, quoting=csv.QUOTE_MINIMAL)
        data = root / f"ISIC-2017_{part}_Data"
        data.mkdir(parents=True)
        for image_id in picked["image_id"]:
            (data / f"{image_id}.jpg").symlink_to((ISIC2017 / data.name / f"{image_id}.jpg").resolve())
        metadata = ISIC2017 / data.name / f"{data.name}_metadata.csv"  # the test partition has none here
        if metadata.is_file():
            pd.read_csv(metadata).merge(picked[["image_id"]]).to_csv(data / metadata.name, index=False)
    return root


@pytest.mark.slow
def test_the_smoke_book_finishes_when_validation_holds_one_class(tmp_path):
    folder = tiny_isic2017(tmp_path / "ISIC2017")
    run_dir = tmp_path / "smoke"
    run(run_dir, {"isic2017": folder}, {"datasets": {**EVERY_SLOT_ON_ISIC2017, "study003": "isic2017"}})
    assert list(read_json(run_dir / "run_log.json")) == [c.stem for c in CHAPTERS]
    page = (run_dir / "notebooks" / "07_gcn_mil.ipynb").read_text()
    assert "skipped" in page
