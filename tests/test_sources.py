"""Each loader on a fixture in its real format, and every bad-input rule."""

from __future__ import annotations

from pathlib import Path

import formats
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from derm_nb.data.cache import build_cache
from derm_nb.data.errors import DataError, MissingColumnError
from derm_nb.data.manifest import MANIFEST_SCHEMA, validate_manifest
from derm_nb.data.sources import CLASSES, LAYOUTS, LOADERS, load_source


@pytest.mark.parametrize("source, classes, kinds, splits, excluded", [
    ("isic2020", {"benign": 8, "malignant": 2}, {"patient"}, {"": 10}, {"ISIC_0082348"}),  # a listed duplicate
    ("isic2019", {"NV": 3, "MEL": 2, "BCC": 1}, {"lesion"}, {"": 6}, set()),
    ("isic2018", {"NV": 7, "MEL": 4, "BKL": 3, "BCC": 2, "AKIEC": 2, "DF": 1, "VASC": 1}, {"lesion", "image"},
     {"train": 11, "val": 4, "test": 5}, set()),
    ("ham10000", {"bkl": 3, "nv": 1, "mel": 1, "bcc": 1, "akiec": 1}, {"lesion"}, {"": 7}, set()),
    ("isic2017", {"nevus": 8, "melanoma": 3, "seborrheic_keratosis": 3}, {"image"}, {"train": 5, "val": 4, "test": 5},
     set()),
    ("busi", {"benign": 3, "malignant": 2, "normal": 2}, {"image"}, {"": 7}, set()),
])
def test_loader_reads_its_real_format(tmp_path, source, classes, kinds, splits, excluded):
    formats.FORMATS[source](tmp_path)
    manifest, report = load_source(source, tmp_path, workers=1)
    validate_manifest(manifest)
    assert list(manifest.columns) == list(MANIFEST_SCHEMA)
    assert list(MANIFEST_SCHEMA)[list(MANIFEST_SCHEMA).index("source") + 1] == "official_split"
    assert len(manifest) == sum(classes.values())
    assert manifest["label_name"].value_counts().to_dict() == classes
    assert set(manifest["label_name"]) <= set(CLASSES[source])
    assert (manifest["label_name"] == [CLASSES[source][k] for k in manifest["label"]]).all()
    assert set(manifest["group_kind"]) == kinds
    assert manifest["official_split"].value_counts().to_dict() == splits
    assert all(p.endswith((".jpg", ".png")) for p in manifest["path"])
    assert not any(Path(p).name.endswith(("_superpixels.png", ".txt")) for p in manifest["path"])
    assert report.excluded_ids() == excluded


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
    ("isic2017", "ISIC-2017_Test_v2_Part3_GroundTruth.csv", "melanoma"),
    ("isic2018", "ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv", "MEL"),
    ("isic2018", "ISIC2018_Task3_Validation_GroundTruth/ISIC2018_Task3_Validation_GroundTruth.csv", "VASC"),
    ("isic2018", "ISIC2018_Task3_Training_LesionGroupings.csv", "lesion_id"),
    ("isic2020", "ISIC_2020_Training_Duplicates.csv", "image_name_2"),
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
    ("isic2017", "ISIC-2017_Validation_Part3_GroundTruth.csv", 1, "melanoma", 1.0),
    ("isic2018", "ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv", 0, "NV", 0.0),  # no 1.0
    ("isic2018", "ISIC2018_Task3_Test_GroundTruth/ISIC2018_Task3_Test_GroundTruth.csv", 2, "MEL", 1.0),  # two ones
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
    assert entry["row"].iloc[0] == row + 2 and entry["file"].iloc[0] == str(path)


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
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "train.csv").write_text(formats.isic2020(tmp_path / "y").joinpath("train.csv").read_text())
    with pytest.raises(DataError, match=r"not an isic2020 root: .*; missing \(jpeg/train/ or train/ or "
                                        r"ISIC_2020_Training_JPEG/train/\); found: train.csv$"):
        load_source("isic2020", tmp_path / "x")


T3 = "ISIC2018_Task3"


def test_isic2018_target_is_mel_bcc_akiec_and_partitions_are_official(tmp_path):
    formats.isic2018(tmp_path)
    manifest, _ = load_source("isic2018", tmp_path, workers=1)
    assert (manifest["target"] == manifest["label_name"].isin(["MEL", "BCC", "AKIEC"])).all()
    assert manifest["target"].sum() == 8 and (manifest["diagnosis"] == manifest["label_name"]).all()
    by_id = manifest.set_index("image_id")
    for split, part in (("train", "Training"), ("val", "Validation"), ("test", "Test")):
        ids = [i for i, _ in formats.ISIC2018_ROWS[part]]
        assert (by_id.loc[ids, "official_split"] == split).all()
        assert all(f"{T3}_{part}_Input" in p for p in by_id.loc[ids, "path"])
    assert by_id.loc["ISIC_0034323", ["label_name", "target"]].tolist() == ["BCC", 1]


def test_isic2018_lesion_groupings_give_group_ids(tmp_path):
    formats.isic2018(tmp_path)
    manifest, report = load_source("isic2018", tmp_path, workers=1)
    by_id = manifest.set_index("image_id")
    assert by_id.loc["ISIC_0025030", "group_id"] == by_id.loc["ISIC_0027419", "group_id"] == "HAM_0000118"
    assert by_id.loc["ISIC_0024306", ["group_id", "group_kind"]].tolist() == ["HAM_0000550", "lesion"]
    assert by_id.loc["ISIC_0031633", "group_id"] == "ISIC_0031633"  # not in the groupings file
    assert _entries(report, "ISIC_0031633")["check"].tolist().count("missing group id") == 1
    held_out = manifest[manifest["official_split"] != "train"]
    assert (held_out["group_id"] == held_out["image_id"]).all() and set(held_out["group_kind"]) == {"image"}
    assert not set(held_out["image_id"]) & set(report.frame().query("check == 'missing group id'")["image_id"])


def test_isic2018_without_groupings_file_reports_it_once(tmp_path):
    formats.isic2018(tmp_path)
    groupings = tmp_path / f"{T3}_Training_LesionGroupings.csv"
    groupings.unlink()
    manifest, report = load_source("isic2018", tmp_path, workers=1)
    assert (manifest["group_id"] == manifest["image_id"]).all()
    frame = report.frame()
    whole_file = frame[frame["file"] == str(groupings)]
    assert len(whole_file) == 1 and whole_file["image_id"].isna().all() and "not found" in whole_file["detail"].iloc[0]


def test_isic2018_license_and_attribution_are_not_images(tmp_path):
    formats.isic2018(tmp_path)
    for folder in (f"{T3}_Training_Input", f"{T3}_Training_GroundTruth", f"{T3}_Test_Input"):
        assert {"LICENSE.txt", "ATTRIBUTION.txt"} <= {p.name for p in (tmp_path / folder).iterdir()}
    manifest, report = load_source("isic2018", tmp_path, workers=1)
    assert len(manifest) == 20
    assert not manifest["image_id"].str.contains("LICENSE|ATTRIBUTION").any()
    assert not manifest["path"].str.endswith(".txt").any()
    assert not report.frame()["file"].str.endswith(".txt").any()


def test_isic2018_masks_are_hams_segmentations_for_training_only(tmp_path):
    formats.isic2018(tmp_path)
    manifest, _ = load_source("isic2018", tmp_path, workers=1)
    train = manifest["official_split"] == "train"
    assert manifest.loc[train, "mask_path"].str.endswith("_segmentation.png").all()
    assert all(Path(p).is_file() for p in manifest.loc[train, "mask_path"])
    assert (manifest.loc[~train, "mask_path"] == "").all()
    for mask in (tmp_path / "HAM10000_segmentations_lesion_tschandl").iterdir():
        mask.unlink()
    (tmp_path / "HAM10000_segmentations_lesion_tschandl").rmdir()
    manifest, report = load_source("isic2018", tmp_path, workers=1)
    assert (manifest["mask_path"] == "").all() and "missing mask" not in set(report.frame()["check"])


def test_isic2018_training_only_is_all_train(tmp_path):
    formats.isic2018(tmp_path)
    for part in ("Validation", "Test"):
        for folder in (tmp_path / f"{T3}_{part}_Input", tmp_path / f"{T3}_{part}_GroundTruth"):
            for path in folder.iterdir():
                path.unlink()
            folder.rmdir()
    manifest, _ = load_source("isic2018", tmp_path, workers=1)
    assert len(manifest) == 11 and set(manifest["official_split"]) == {"train"}


def test_isic2017_validation_and_test_are_read_with_their_split(tmp_path):
    formats.isic2017(tmp_path)
    manifest, report = load_source("isic2017", tmp_path, workers=1)
    by_id = manifest.set_index("image_id")
    assert by_id.loc["ISIC_0001871", ["official_split", "label_name"]].tolist() == ["val", "melanoma"]
    assert by_id.loc["ISIC_0012086", ["official_split", "label_name"]].tolist() == ["test", "seborrheic_keratosis"]
    assert "ISIC-2017_Test_v2_Data" in by_id.loc["ISIC_0012086", "path"]
    assert "ISIC-2017_Validation_Part1_GroundTruth" in by_id.loc["ISIC_0001769", "mask_path"]
    assert by_id.loc["ISIC_0001769", ["sex", "age"]].tolist() == ["male", 15.0]  # from the validation metadata
    assert by_id.loc["ISIC_0012092", "age_imputed"] and by_id.loc["ISIC_0012136", "sex"] == "unknown"
    entry = _entries(report, "ISIC_0012092")
    assert entry["file"].tolist() == [str(tmp_path / "ISIC-2017_Test_v2_Part3_GroundTruth.csv")]
    assert entry["row"].tolist() == [3]  # line 3 of the test ground truth
    for split in ("val", "test"):
        assert set(manifest.loc[manifest["official_split"] == split, "target"]) == {0, 1}
    assert not manifest["path"].str.contains("superpixels").any()


def test_isic2017_training_only_is_all_train(tmp_path):
    formats.isic2017(tmp_path, partitions=False)
    manifest, _ = load_source("isic2017", tmp_path, workers=1)
    assert len(manifest) == 5 and set(manifest["official_split"]) == {"train"}


def test_isic2020_listed_duplicate_is_excluded_and_reported(tmp_path):
    formats.isic2020(tmp_path)
    kept, copy = formats.ISIC2020_DUPLICATE
    folder = tmp_path / "jpeg" / "train"
    assert (folder / f"{kept}.jpg").read_bytes() != (folder / f"{copy}.jpg").read_bytes()  # not caught by md5
    manifest, report = load_source("isic2020", tmp_path, workers=1)
    assert kept in set(manifest["image_id"]) and copy not in set(manifest["image_id"])
    entry = _entries(report, copy)
    assert entry[["check", "action", "row"]].values.tolist() == [["listed duplicate", "excluded", 2]]
    assert "ISIC_2020_Training_Duplicates.csv" in entry["detail"].iloc[0] and f"{kept} is kept" in entry["detail"].iloc[0]


def test_isic2020_listed_duplicates_with_different_labels_are_both_excluded(tmp_path):
    formats.isic2020(tmp_path)
    kept, copy = formats.ISIC2020_DUPLICATE
    csv = tmp_path / "train.csv"
    frame = pd.read_csv(csv)
    frame.loc[frame["image_name"] == copy, ["diagnosis", "benign_malignant", "target"]] = ["melanoma", "malignant", 1]
    frame.to_csv(csv, index=False)
    manifest, report = load_source("isic2020", tmp_path, workers=1)
    assert not {kept, copy} & set(manifest["image_id"]) and len(manifest) == 9
    for image_id in (kept, copy):
        entry = _entries(report, image_id)
        assert entry["check"].tolist() == ["listed duplicate"] and "different labels" in entry["detail"].iloc[0]


@pytest.mark.parametrize("csv_name, folder", [
    ("ISIC_2020_Training_GroundTruth_v2.csv", "ISIC_2020_Training_JPEG/train"),
    ("ISIC_2020_Training_GroundTruth.csv", "train"),
])
def test_isic2020_archive_names_work(tmp_path, csv_name, folder):
    formats.isic2020(tmp_path)
    frame = pd.read_csv(tmp_path / "train.csv")
    if csv_name.endswith("_v2.csv"):  # the v2 file has a lesion_id column after patient_id
        frame.insert(2, "lesion_id", [f"IL_{k:07d}" for k in range(len(frame))])
    frame.to_csv(tmp_path / csv_name, index=False)
    (tmp_path / "train.csv").unlink()
    (tmp_path / folder).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "jpeg" / "train").rename(tmp_path / folder)
    (tmp_path / "jpeg").rmdir()
    manifest, report = load_source("isic2020", tmp_path, workers=1)
    assert len(manifest) == 10 and report.excluded_ids() == {formats.ISIC2020_DUPLICATE[1]}
    assert all(str(tmp_path / folder) in p for p in manifest["path"])
    assert not manifest["group_id"].str.startswith("IL_").any()  # lesion_id is ignored; patients group


def test_isic2020_prefers_the_v2_ground_truth_and_says_so(tmp_path):
    formats.isic2020(tmp_path)
    frame = pd.read_csv(tmp_path / "train.csv")
    frame.iloc[:-2].to_csv(tmp_path / "ISIC_2020_Training_GroundTruth_v2.csv", index=False)
    manifest, report = load_source("isic2020", tmp_path, workers=1)
    assert len(manifest) == 9  # the v2 file's 9 rows (its copy of the listed duplicate was dropped here)
    ignored = report.frame().query("check == 'several ground truth files'")
    assert ignored["file"].tolist() == [str(tmp_path / "train.csv")]


def test_isic2020_has_no_mask_paths(tmp_path):
    formats.isic2020(tmp_path)
    for image in (tmp_path / "jpeg" / "train").glob("*.jpg"):  # as the synthetic generator writes them
        formats.write_mask(tmp_path / "masks" / "train" / f"{image.stem}_segmentation.png", (4, 4, 20, 16))
    manifest, report = load_source("isic2020", tmp_path, workers=1)
    assert (manifest["mask_path"] == "").all() and "missing mask" not in set(report.frame()["check"])


def _root_entries(root: Path) -> list[str]:
    return [f"{p.name}/" if p.is_dir() else p.name for p in root.iterdir()]


@pytest.mark.parametrize("source", sorted(LOADERS))
def test_wrong_layout_names_expected_and_found_entries(tmp_path, source):
    other = sorted(LOADERS)[(sorted(LOADERS).index(source) + 1) % len(LOADERS)]
    formats.FORMATS[other](tmp_path)
    with pytest.raises(DataError) as err:
        load_source(source, tmp_path, workers=1)
    message = str(err.value)
    assert message.startswith(f"{tmp_path} is not a") and f" {source} root: expected " in message
    assert all(alt in message for alternatives in LAYOUTS[source] for alt in alternatives)
    found = message.split("; found: ")[1]
    assert sorted(found.split(", ")) == sorted(_root_entries(tmp_path))


def test_empty_root_is_not_any_source(tmp_path):
    for source in LOADERS:
        with pytest.raises(DataError, match=rf"not an? {source} root: .*found: nothing"):
            load_source(source, tmp_path, workers=1)


SHARES = {  # (classes, least share of them) that every partition of a populated dataset must hold
    "isic2020": [(["malignant"], 0.12)], "isic2019": [(["MEL"], 0.12), (["NV"], 0.25)],
    "isic2018": [(["MEL", "BCC", "AKIEC"], 0.12)], "ham10000": [(["mel"], 0.12), (["nv"], 0.12)],
    "isic2017": [([c], 0.12) for c in ("melanoma", "seborrheic_keratosis", "nevus")],
    "busi": [([c], 0.12) for c in ("benign", "malignant", "normal")],
}


@pytest.mark.parametrize("source", sorted(formats.POPULATE))
def test_populate_loads_cleanly(tmp_path, source):
    formats.populate(source, tmp_path, 40)
    manifest, report = load_source(source, tmp_path, workers=1)
    validate_manifest(manifest)
    assert set(manifest["label_name"]) == set(CLASSES[source]) - {"UNK"}  # ISIC 2019's UNK has no training image
    listed = set(pd.read_csv(tmp_path / "ISIC_2020_Training_Duplicates.csv")["image_name_2"]) if source == "isic2020" \
        else set()
    assert report.excluded_ids() == listed and len(report.near_duplicates) == 0
    assert set(manifest["official_split"]) == ({"train", "val", "test"} if source in ("isic2017", "isic2018") else {""})
    for split, rows in manifest.groupby("official_split"):
        assert set(rows["target"]) == {0, 1}, split
        assert rows["target"].mean() >= 0.12, split
        for classes, share in SHARES[source]:
            assert rows["label_name"].isin(classes).mean() >= share, (split, classes)
    assert len(manifest) == 40 if source in ("isic2020", "isic2019", "ham10000", "busi") else len(manifest) == 40 + 5 + 10
    has_masks = source in ("isic2017", "busi")
    assert (manifest["mask_path"] != "").all() if has_masks else (manifest["mask_path"] == "").all()


def test_populate_is_deterministic_and_seeded(tmp_path):
    def digest(root):
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    a, b, c = (formats.populate("isic2018", tmp_path / name, 24, seed=s) for name, s in (("a", 3), ("b", 3), ("c", 4)))
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)


def test_populate_ids_groups_and_pictures_look_like_the_archives(tmp_path):
    root = formats.populate("isic2020", tmp_path / "isic2020", 60)
    frame = pd.read_csv(root / "train.csv")
    assert frame["image_name"].str.fullmatch(r"ISIC_00\d{5}").all() and frame["image_name"].is_unique
    assert frame["patient_id"].str.fullmatch(r"IP_\d{7}").all()
    assert frame.groupby("patient_id").size().between(1, 7).all()  # 1-6, plus the listed copy
    sizes, flat, turned = set(), 0, 0
    for path in (root / "jpeg" / "train").glob("*.jpg"):
        with Image.open(path) as im:
            sizes.add(im.size)
            flat += int(np.ptp(np.asarray(im.convert("L"))) < 4)
            turned += int(im.getexif().get(0x0112) == 6)
    assert len(sizes) > 20 and all(48 <= w <= 96 and 36 <= h <= 72 for w, h in sizes)
    assert flat == formats.FLATS and turned == 1
    isic2018 = formats.populate("isic2018", tmp_path / "isic2018", 24) / f"{T3}_Training_Input"
    assert sum(Image.open(p).getexif().get(0x0112) == 6 for p in isic2018.glob("*.jpg")) == 1
    ham = pd.read_csv(formats.populate("ham10000", tmp_path / "ham", 40) / "HAM10000_metadata.csv")
    assert ham["lesion_id"].str.fullmatch(r"HAM_\d{7}").all() and ham["lesion_id"].nunique() < len(ham)
    assert (ham.groupby("lesion_id")["dx"].nunique() == 1).all()
    busi = formats.populate("busi", tmp_path / "busi", 40) / "Dataset_BUSI_with_GT"
    assert len(list(busi.glob("benign/*_mask_1.png"))) == 1
    isic2017 = formats.populate("isic2017", tmp_path / "isic2017", 40)
    for part in ("Training", "Validation", "Test_v2"):
        images = list((isic2017 / f"ISIC-2017_{part}_Data").glob("ISIC_???????.jpg"))
        assert len(images) == len(list((isic2017 / f"ISIC-2017_{part}_Data").glob("*_superpixels.png")))
        assert len(images) == len(list((isic2017 / f"ISIC-2017_{part}_Part1_GroundTruth").glob("*_segmentation.png")))
