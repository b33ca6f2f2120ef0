"""Each loader on a fixture in its real format, and every bad-input rule."""

from __future__ import annotations

import formats
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from derm_nb.data.cache import build_cache
from derm_nb.data.errors import DataError, MissingColumnError
from derm_nb.data.manifest import MANIFEST_SCHEMA, validate_manifest
from derm_nb.data.sources import load_source


@pytest.mark.parametrize("source, n, classes, kind", [
    ("isic2020", 10, {"benign": 8, "malignant": 2}, "patient"),
    ("isic2019", 6, {"NV": 3, "MEL": 2, "BCC": 1}, "lesion"),
    ("ham10000", 7, {"bkl": 3, "nv": 1, "mel": 1, "bcc": 1, "akiec": 1}, "lesion"),
    ("isic2017", 5, {"nevus": 3, "melanoma": 1, "seborrheic_keratosis": 1}, "image"),
    ("busi", 7, {"benign": 3, "malignant": 2, "normal": 2}, "image"),
])
def test_loader_reads_its_real_format(tmp_path, source, n, classes, kind):
    formats.FORMATS[source](tmp_path)
    manifest, report = load_source(source, tmp_path, workers=1)
    validate_manifest(manifest)
    assert list(manifest.columns) == list(MANIFEST_SCHEMA)
    assert len(manifest) == n
    assert manifest["label_name"].value_counts().to_dict() == classes
    assert set(manifest["group_kind"]) == {kind}
    assert all(p.endswith((".jpg", ".png")) for p in manifest["path"])
    assert not report.excluded_ids()


def test_isic2020_targets_and_patients(tmp_path):
    formats.isic2020(tmp_path)
    manifest, _ = load_source("isic2020", tmp_path, workers=1)
    mel = manifest[manifest["target"] == 1]
    assert set(mel["group_id"]) == {"IP_0962375"}
    assert (manifest["label"] == manifest["target"]).all()


def test_isic2019_lesion_id_missing_falls_back_to_image(tmp_path):
    formats.isic2019(tmp_path)
    manifest, report = load_source("isic2019", tmp_path, workers=1)
    row = manifest.set_index("image_id").loc["ISIC_0000000"]
    assert row["group_id"] == "ISIC_0000000"
    assert manifest.set_index("image_id").loc["ISIC_0024306", "group_id"] == "HAM_0000550"
    assert manifest.set_index("image_id").loc["ISIC_0024306", "site"] == "unknown"
    checks = report.frame()
    assert {"missing group id", "missing age", "missing site"} <= set(checks["check"])


def test_ham10000_mel_is_target_and_unknown_age_imputed(tmp_path):
    formats.ham10000(tmp_path)
    manifest, report = load_source("ham10000", tmp_path, workers=1)
    by_id = manifest.set_index("image_id")
    assert by_id.loc["ISIC_0029176", "target"] == 1 and manifest["target"].sum() == 1
    assert by_id.loc["ISIC_0025276", "age_imputed"]
    assert by_id.loc["ISIC_0025276", "age"] == pytest.approx(77.5)  # median of 80,80,80,75,60,70
    assert "HAM10000_images_part_2" in by_id.loc["ISIC_0025030", "path"]


def test_isic2017_both_zero_is_nevus_and_masks_found(tmp_path):
    formats.isic2017(tmp_path)
    manifest, _ = load_source("isic2017", tmp_path, workers=1)
    by_id = manifest.set_index("image_id")
    assert by_id.loc["ISIC_0000000", "label_name"] == "nevus"
    assert by_id.loc["ISIC_0012090", "label_name"] == "seborrheic_keratosis"
    assert all(p.endswith("_segmentation.png") for p in manifest["mask_path"])
    assert not any("superpixels" in p for p in manifest["path"])
    assert by_id.loc["ISIC_0000003", "sex"] == "unknown" and by_id.loc["ISIC_0000003", "age_imputed"]


def test_busi_masks_are_merged(tmp_path):
    formats.busi(tmp_path)
    manifest, report = load_source("busi", tmp_path, workers=1)
    row = manifest.set_index("image_id").loc["benign_0002"]
    assert row["mask_path"].count(";") == 1
    assert "merged" in set(report.frame()["action"])
    cache = build_cache(manifest, tmp_path / "cache", size=36, workers=1)
    mask = np.asarray(Image.open(cache.set_index("image_id").loc["benign_0002", "cache_mask_path"])) > 127
    single = np.asarray(Image.open(cache.set_index("image_id").loc["benign_0001", "cache_mask_path"])) > 127
    assert mask.sum() > single.sum() > 0
    normal = np.asarray(Image.open(cache.set_index("image_id").loc["normal_0001", "cache_mask_path"]))
    assert normal.max() == 0


@pytest.mark.parametrize("source, file, column", [
    ("isic2020", "train.csv", "patient_id"),
    ("isic2019", "ISIC_2019_Training_GroundTruth.csv", "MEL"),
    ("isic2019", "ISIC_2019_Training_Metadata.csv", "lesion_id"),
    ("ham10000", "HAM10000_metadata.csv", "dx"),
    ("isic2017", "ISIC-2017_Training_Part3_GroundTruth.csv", "seborrheic_keratosis"),
])
def test_missing_column_names_file_and_column(tmp_path, source, file, column):
    formats.FORMATS[source](tmp_path)
    path = tmp_path / file
    pd.read_csv(path).drop(columns=column).to_csv(path, index=False)
    with pytest.raises(MissingColumnError) as err:
        load_source(source, tmp_path, workers=1)
    assert file in str(err.value) and f"'{column}'" in str(err.value)


def _entries(report, image_id):
    frame = report.frame()
    return frame[frame["image_id"] == image_id]


def test_missing_image_is_excluded_and_reported(tmp_path):
    formats.isic2020(tmp_path)
    (tmp_path / "jpeg" / "train" / "ISIC_0015719.jpg").unlink()
    manifest, report = load_source("isic2020", tmp_path, workers=1)
    assert "ISIC_0015719" not in set(manifest["image_id"])
    entry = _entries(report, "ISIC_0015719")
    assert entry[["check", "action"]].values.tolist() == [["missing image", "excluded"]]


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_image_is_excluded_and_reported(tmp_path, damage):
    formats.isic2020(tmp_path)
    path = tmp_path / "jpeg" / "train" / "ISIC_0052212.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not an image at all")
    manifest, report = load_source("isic2020", tmp_path, workers=1)
    assert "ISIC_0052212" not in set(manifest["image_id"])
    entry = _entries(report, "ISIC_0052212")
    assert entry["check"].tolist() == ["corrupt image"] and str(path) in entry["file"].iloc[0]


def test_nan_metadata_is_imputed_by_the_stated_rule(tmp_path):
    formats.isic2020(tmp_path)
    csv = tmp_path / "train.csv"
    frame = pd.read_csv(csv)
    frame.loc[1, ["sex", "age_approx", "anatom_site_general_challenge"]] = np.nan
    frame.to_csv(csv, index=False)
    manifest, report = load_source("isic2020", tmp_path, workers=1)
    row = manifest.set_index("image_id").loc["ISIC_0015719"]
    assert row["sex"] == "unknown" and row["site"] == "unknown" and row["age_imputed"]
    assert row["age"] == pytest.approx(frame["age_approx"].median())
    entry = _entries(report, "ISIC_0015719")
    assert set(entry["check"]) == {"missing sex", "missing age", "missing site"}
    assert set(entry["action"]) == {"imputed"} and set(entry["row"]) == {3}  # CSV line 3


def test_duplicate_image_content_keeps_first(tmp_path):
    formats.isic2020(tmp_path)
    folder = tmp_path / "jpeg" / "train"
    (folder / "ISIC_0074311.jpg").write_bytes((folder / "ISIC_0074268.jpg").read_bytes())
    manifest, report = load_source("isic2020", tmp_path, workers=1)
    assert "ISIC_0074268" in set(manifest["image_id"]) and "ISIC_0074311" not in set(manifest["image_id"])
    assert "same bytes as ISIC_0074268" in _entries(report, "ISIC_0074311")["detail"].iloc[0]


def test_duplicate_image_with_conflicting_labels_excludes_all(tmp_path):
    formats.isic2020(tmp_path)
    folder = tmp_path / "jpeg" / "train"
    (folder / "ISIC_0075663.jpg").write_bytes((folder / "ISIC_0149568.jpg").read_bytes())
    manifest, report = load_source("isic2020", tmp_path, workers=1)
    assert not {"ISIC_0075663", "ISIC_0149568"} & set(manifest["image_id"])
    assert "different labels" in _entries(report, "ISIC_0149568")["detail"].iloc[0]


@pytest.mark.parametrize("source, file, row, column, value", [
    ("isic2020", "train.csv", 0, "target", 2),
    ("ham10000", "HAM10000_metadata.csv", 0, "dx", "xyz"),
    ("isic2017", "ISIC-2017_Training_Part3_GroundTruth.csv", 0, "melanoma", 1.0),  # with SK below: both 1
    ("isic2019", "ISIC_2019_Training_GroundTruth.csv", 0, "MEL", 1.0),             # two ones in a row
])
def test_unknown_label_is_excluded(tmp_path, source, file, row, column, value):
    formats.FORMATS[source](tmp_path)
    path = tmp_path / file
    frame = pd.read_csv(path)
    if source == "isic2017":
        frame.loc[row, "seborrheic_keratosis"] = 1.0
    frame.loc[row, column] = value
    frame.to_csv(path, index=False)
    image_id = str(frame.iloc[row, 0 if source != "ham10000" else 1])
    manifest, report = load_source(source, tmp_path, workers=1)
    assert image_id not in set(manifest["image_id"])
    entry = _entries(report, image_id)
    assert entry[["check", "action"]].values.tolist() == [["unknown label", "excluded"]]
    assert entry["row"].iloc[0] == row + 2


def test_repeated_image_id_row_is_excluded(tmp_path):
    formats.isic2020(tmp_path)
    csv = tmp_path / "train.csv"
    frame = pd.read_csv(csv)
    pd.concat([frame, frame.iloc[[3]]]).to_csv(csv, index=False)
    manifest, report = load_source("isic2020", tmp_path, workers=1)
    assert manifest["image_id"].is_unique and len(manifest) == 10
    assert _entries(report, frame.iloc[3]["image_name"])["check"].tolist() == ["repeated image id"]


def test_missing_mask_keeps_image_and_reports(tmp_path):
    formats.isic2017(tmp_path)
    (tmp_path / "ISIC-2017_Training_Part1_GroundTruth" / "ISIC_0000001_segmentation.png").unlink()
    manifest, report = load_source("isic2017", tmp_path, workers=1)
    assert manifest.set_index("image_id").loc["ISIC_0000001", "mask_path"] == ""
    assert _entries(report, "ISIC_0000001")[["check", "action"]].values.tolist() == [["missing mask", "kept"]]


def test_unknown_source_and_missing_root(tmp_path):
    with pytest.raises(DataError, match="unknown data source 'isic2099'"):
        load_source("isic2099", tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_source("isic2020", tmp_path / "nowhere")
    with pytest.raises(DataError, match="no image folder"):
        (tmp_path / "x").mkdir()
        (tmp_path / "x" / "train.csv").write_text(formats.isic2020(tmp_path / "y").joinpath("train.csv").read_text())
        load_source("isic2020", tmp_path / "x")
