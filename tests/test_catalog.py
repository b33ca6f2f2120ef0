"""The dataset catalog: slots, targets, roots, missing sources, official splits, and the runner's skip."""

from __future__ import annotations

import re
from pathlib import Path

import formats
import nbformat
import pandas as pd
import pytest
from PIL import Image

from derm_nb.artifacts import write_json
from derm_nb.chapters import CHAPTERS, MissingData, chapter
from derm_nb.data.catalog import TARGETS, CatalogError, Dataset, apply_target, resolve
from derm_nb.data.prepared import prepare
from derm_nb.data.sources import CLASSES, load_source
from derm_nb.data.splits import add_study_splits
from derm_nb.params import Declared, Profile
from derm_nb.runner import NotebookFailed, check_data, skipped_notebook
from derm_nb.studies import dataset_uses, official_schemes, split_schemes

USES = dataset_uses()


def test_every_study_names_its_papers_dataset():
    plan = resolve(USES, {}, {})
    assert {slot: d.key for slot, d in plan.slots.items()} == {
        "study000": "isic2020-melanoma", "study001": "isic2018-malignant", "study002": "isic2020-melanoma",
        "study002_sweep": "isic2019-melanoma_vs_nevus", "study003": "busi-malignant", "study004": "isic2017-melanoma"}
    assert [d.key for d in plan.datasets()] == ["isic2020-melanoma", "isic2018-malignant",
                                                "isic2019-melanoma_vs_nevus", "busi-malignant", "isic2017-melanoma"]
    assert set(plan.roots.values()) == {"synthetic"} and not plan.missing
    assert official_schemes() == {"study004"}


def test_every_chapter_slot_is_a_study_slot():
    for c in CHAPTERS:
        assert set(c.slots) <= set(USES), c.stem


@pytest.mark.parametrize("datasets, data, message", [
    ({"study009": "isic2020"}, {}, "datasets.study009 is not a study slot"),
    ({"study000": "isic2021"}, {}, "datasets.study000 = 'isic2021' is not a source"),
    ({"study002_sweep": "isic2020"}, {}, "which isic2020 does not have (sources that do: isic2019"),
    ({"study000": "busi"}, {}, "asks for the target 'melanoma'"),
    ({"study004": "busi"}, {}, "study004 runs on isic2017 only"),
    ({}, {"isic2030": "/x"}, "data.isic2030: unknown source"),
    ({}, {"isic2020": "/no/such/folder"}, "data.isic2020 = /no/such/folder: no such folder"),
])
def test_bad_catalog_input_names_the_key(datasets, data, message):
    with pytest.raises(CatalogError, match=re.escape(message)):
        resolve(USES, datasets, data)


def test_unknown_policy_is_an_error():
    with pytest.raises(CatalogError, match="missing_data = 'maybe'"):
        resolve(USES, {}, {}, "maybe")


def test_once_a_root_is_given_other_sources_are_missing(tmp_path):
    plan = resolve(USES, {}, {"isic2020": str(tmp_path), "busi": "synthetic"})
    assert plan.roots == {"isic2020": str(tmp_path.resolve()), "busi": "synthetic"}
    assert plan.missing == {"study001": "isic2018", "study002_sweep": "isic2019", "study004": "isic2017"}
    assert [d.key for d in plan.datasets()] == ["isic2020-melanoma", "busi-malignant"]
    entry = plan.record()["slots"]["study001"]
    assert entry["status"] == "missing" and "--data isic2018=" in entry["message"]


def test_a_slot_can_point_at_another_source():
    plan = resolve(USES, {"study003": "isic2017"}, {})
    assert plan.slots["study003"] == Dataset("isic2017", "malignant")


def test_melanoma_vs_nevus_excludes_and_reports_the_other_classes(tmp_path):
    formats.isic2019(tmp_path)
    manifest, report = load_source("isic2019", tmp_path, workers=1)
    out = apply_target(manifest, TARGETS["melanoma_vs_nevus"], report)
    assert set(out["label_name"]) == {"MEL", "NV"}
    assert dict(zip(out["label_name"], out["label"])) == {"MEL": 0, "NV": 1}
    assert (out["target"].to_numpy() == out["label_name"].eq("MEL").to_numpy(bool)).all()
    excluded = report.frame().query("check == 'outside the study\\'s classes'")
    assert set(excluded["image_id"]) == set(manifest.loc[~manifest["label_name"].isin(["MEL", "NV"]), "image_id"])
    assert len(excluded) > 0


def test_malignant_counts_mel_bcc_akiec_on_isic2018(tmp_path):
    formats.isic2018(tmp_path)
    manifest, report = load_source("isic2018", tmp_path, workers=1)
    out = apply_target(manifest, TARGETS["malignant"], report)
    assert len(out) == len(manifest)
    assert (out["target"].to_numpy() == out["label_name"].isin(["MEL", "BCC", "AKIEC"]).to_numpy(bool)).all()
    assert 0 < out["target"].sum() < len(out)


def test_every_target_names_real_classes():
    for target in TARGETS.values():
        for source, labels in target.positive.items():
            assert set(labels) <= set(CLASSES[source]), (target.name, source)
            assert set(labels) <= set(target.classes(source))


def _official_frame() -> pd.DataFrame:
    rows = [(f"I{k}", f"G{k}", k % 3 == 0, split) for k, split in enumerate(["train"] * 60 + ["val"] * 9 + ["test"] * 18)]
    frame = pd.DataFrame(rows, columns=["image_id", "group_id", "label", "official_split"])
    return frame.assign(label=frame["label"].astype(int), target=frame["label"].astype(int), group_kind="image")


def test_official_scheme_keeps_the_archives_partitions_and_others_split_its_training_images():
    frame = _official_frame()
    out, notes = add_study_splits(frame, {"study004": {"train": 0.7, "val": 0.1, "test": 0.2},
                                          "study001": {"train": 0.7, "val": 0.15, "test": 0.15}}, seed=0,
                                  official={"study004"})
    assert (out["split_study004"] == out["official_split"]).all()
    assert "official partitions (60 train, 9 val, 18 test)" in notes["study004"]
    assert out.loc[out["official_split"] != "train", "split_study001"].isna().all()
    assert out.loc[out["official_split"] == "train", "split_study001"].notna().all()
    assert "of the archive's training images" in notes["study001"]


def test_official_scheme_falls_back_to_ratios_without_partitions():
    frame = _official_frame().assign(official_split="")
    out, notes = add_study_splits(frame, {"study004": {"train": 0.7, "val": 0.1, "test": 0.2}}, 0, official={"study004"})
    assert set(out["split_study004"]) == {"train", "val", "test"}
    assert "the archive ships no partitions of its own" in notes["study004"]


def test_isic2017_prepares_with_its_official_partitions(tmp_path):
    formats.isic2017(tmp_path / "raw")
    d = prepare(Dataset("isic2017", "melanoma"), tmp_path / "raw", tmp_path / "out", split_schemes(),
                official=official_schemes(), cache_size=32, workers=1)
    manifest = d.manifest
    assert (manifest["split_study004"].fillna("") == manifest["official_split"]).all()
    assert d.has_masks and d.summary["splits"]["study004"].startswith("the archive's official partitions")


def test_a_dataset_without_masks_says_so(tmp_path):
    formats.isic2020(tmp_path / "raw")
    d = prepare(Dataset("isic2020", "melanoma"), tmp_path / "raw", tmp_path / "out", split_schemes(), cache_size=32,
                workers=1)
    assert not d.has_masks and (d.manifest["mask_path"] == "").all()
    assert "ISIC 2020 from" in d.describe()


def _run_with_catalog(tmp_path, policy: str):
    run_dir = tmp_path / "run"
    plan = resolve(USES, {}, {"isic2020": str(tmp_path)}, policy)
    write_json(run_dir / "00_data" / "catalog.json", plan.record())
    return run_dir


def test_runner_stops_a_chapter_whose_data_is_missing(root, tmp_path):
    run_dir = _run_with_catalog(tmp_path, "error")
    assert check_data(run_dir, "02_baseline") == {}
    with pytest.raises(NotebookFailed, match=re.escape("--data isic2018=")):
        check_data(run_dir, "04_efficientnet")
    with pytest.raises(MissingData, match="isic2018"):
        _ = chapter("04_efficientnet", {"profile": "smoke", "run_dir": run_dir}).data


def test_runner_skips_with_a_note_where_the_profile_says_so(root, tmp_path):
    run_dir = _run_with_catalog(tmp_path, "skip")
    reasons = check_data(run_dir, "05_deep_clustering")
    assert list(reasons) == ["study002_sweep"]
    nb = skipped_notebook(root, "05_deep_clustering", reasons)
    nbformat.validate(nb)
    text = nb.cells[0].source
    assert text.startswith("# Study 002") and "skipped" in text and "--data isic2019=" in text


def test_dict_parameters_merge_key_by_key():
    profile = Profile("p", common={"data": {"isic2020": "/a"}},
                      notebooks={"00_data": {"data": {"busi": "/b"}, "datasets": {"study003": "isic2017"}}})
    declared = {"data": Declared("data", {}), "datasets": Declared("datasets", {})}
    values = profile.for_notebook("00_data", declared)
    assert values["data"] == {"isic2020": "/a", "busi": "/b"}


def test_readme_documents_each_studys_default_dataset(root):
    text = (root / "README.md").read_text()
    for slot, use in USES.items():
        assert re.search(rf"\|\s*`{slot}`\s*\|[^|\n]*\|\s*`{use.source}`\s*\|\s*`{use.target}`\s*\|", text), slot


def test_the_cache_never_enlarges_a_folder_of_smaller_images(tmp_path):
    formats.isic2017(tmp_path / "raw")   # 48 x 36 px images
    small = prepare(Dataset("isic2017", "melanoma"), tmp_path / "raw", tmp_path / "small", split_schemes(),
                    official=official_schemes(), cache_size=64, workers=1)
    assert small.summary["cache_size"] == 36 and small.summary["cache_size_asked"] == 64
    assert small.cache_dir.name == "36" and Image.open(next(small.cache_dir.glob("*.jpg"))).size == (36, 36)
    assert "cached at 36 px, not the 64 px asked for" in small.cache_note()
    fits = prepare(Dataset("isic2017", "melanoma"), tmp_path / "raw", tmp_path / "fits", split_schemes(),
                   official=official_schemes(), cache_size=32, workers=1)
    assert fits.summary["cache_size"] == 32 and fits.cache_note() == ""
    one = Path(fits.manifest["path"].iloc[0])
    Image.open(one).resize((24, 18)).save(one)   # one image smaller than the cache: enlarged, and said so
    mixed = prepare(Dataset("isic2017", "melanoma"), tmp_path / "raw", tmp_path / "mixed", split_schemes(),
                    official=official_schemes(), cache_size=32, workers=1)
    assert mixed.summary["cache_size"] == 32 and mixed.summary["cache_enlarged"] == 1
    assert f"1 of its {len(mixed.manifest)} images are smaller than 32 px" in mixed.cache_note()


def test_cache_side_takes_the_median_shorter_side():
    from derm_nb.data.cache import cache_side

    assert cache_side(300, [256, 256, 200]) == 256 and cache_side(224, [256, 512, 200]) == 224
    assert cache_side(128, []) == 128
