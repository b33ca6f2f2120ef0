"""The source registry: one record per archive drives the loader, catalog, generator, estimate and command line.

A toy source defined here, registered into a copy of the registry, goes through all of them: adding a
source touches its own module (here, this file) and the registry, nothing else.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import re
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_download import Host, _zip_folder

from derm_nb.artifacts import write_csv
from derm_nb.cli import build_parser, data_roots, main
from derm_nb.data import download, registry
from derm_nb.data.archive import ArchiveFile, Manual, Remote, Scale, Source, TargetClasses
from derm_nb.data.catalog import TARGETS, CatalogError, Use, resolve
from derm_nb.data.errors import DataError
from derm_nb.data.manifest import require_columns
from derm_nb.data.prepared import prepare_catalog
from derm_nb.data.quality import QualityReport
from derm_nb.data.reading import drop_rows, find_image, finish, read_csv
from derm_nb.data.sources import CLASSES, LOADERS, load_source
from derm_nb.data.synth_kit import MEL_W, SynthConfig, SynthPreset, image_files, patient_sizes, random_ids, skin_attributes
from derm_nb.data.synthetic import PRESETS, generate

ROOT = Path(__file__).resolve().parents[1]
TOY_CLASSES = ("benign", "malignant")


def load_toy(root: Path, report: QualityReport) -> pd.DataFrame:
    """toy_labels.csv (image, patient, diagnosis) and toy_images/<image>.png."""
    file = root / "toy_labels.csv"
    raw = read_csv(file)
    require_columns(raw, file, ["image", "patient", "diagnosis"])
    frame = pd.DataFrame({"image_id": raw["image"].astype(str), "group_id": raw["patient"], "sex": np.nan,
                          "age": np.nan, "site": np.nan, "diagnosis": raw["diagnosis"]})
    frame = drop_rows(frame, ~raw["diagnosis"].isin(TOY_CLASSES), file, report, "unknown label",
                      lambda r: f"diagnosis = {r['diagnosis']!r}")
    frame["label_name"] = frame["diagnosis"]
    frame["label"] = frame["label_name"].map({c: k for k, c in enumerate(TOY_CLASSES)}).astype(int)
    frame["target"] = (frame["label_name"] == "malignant").astype(int)
    frame["path"] = [find_image([root / "toy_images"], i) for i in frame["image_id"]]
    frame["official_split"] = ""
    return finish(frame, file, report, "toy", "patient")


def _toy_layout(meta: pd.DataFrame, out: Path, cfg: SynthConfig, rng: np.random.Generator) -> pd.DataFrame:
    meta["image"] = random_ids(rng, len(meta), "TOY_", 6)
    return image_files(meta, {"train": out / "toy_images"}, {}, suffix=".png")


def _toy_write(meta: pd.DataFrame, out: Path, cfg: SynthConfig, rng: np.random.Generator) -> None:
    write_csv(out / "toy_labels.csv", pd.DataFrame({"image": meta["image"], "patient": meta["patient"],
                                                    "diagnosis": [TOY_CLASSES[k] for k in meta["label"]]}))


TOY = Source(
    name="toy", title="Toy archive", loader=load_toy, classes=TOY_CLASSES,
    targets={"malignant": TargetClasses(("malignant",)), "melanoma": TargetClasses(("malignant",))},
    layout=(("toy_labels.csv",), ("toy_images/",)), files="`toy_labels.csv`, `toy_images/`", grouping="patient",
    masks="none",
    synthetic=SynthPreset(TOY_CLASSES, (0.6, 0.4), ("malignant",), ({}, MEL_W), "patient", patient_sizes,
                          skin_attributes, _toy_layout, _toy_write),
    published={"malignant": Scale(100, 20, 40)},
)
SMALL = {"height": 48, "width": 64, "mean_images_per_patient": 3.0}


@pytest.fixture
def toy(monkeypatch):
    """The toy source registered in a copy of the registry (the built-in one is left as it was)."""
    monkeypatch.setattr(registry, "SOURCES", dict(registry.SOURCES))
    return registry.register(TOY)


def test_a_registered_source_is_read_by_the_generator_and_the_loader(toy, tmp_path):
    assert "toy" in PRESETS and CLASSES["toy"] == TOY_CLASSES and LOADERS["toy"] is load_toy
    folder = generate(SynthConfig(preset="toy", n_patients=8, workers=1, **SMALL), tmp_path / "toy")
    assert (folder / "toy_labels.csv").is_file() and any((folder / "toy_images").glob("TOY_*.png"))
    manifest, _ = load_source("toy", folder, workers=1)
    assert len(manifest) > 0 and set(manifest["source"]) == {"toy"}
    assert set(manifest["label_name"]) <= set(TOY_CLASSES)
    with pytest.raises(DataError, match="is not a toy root: expected toy_labels.csv and toy_images/"):
        load_source("toy", tmp_path, workers=1)  # the folder above the dataset: laid out as nothing


def test_the_catalog_prepares_a_registered_source(toy, tmp_path):
    assert TARGETS["malignant"].supports("toy") and TARGETS["malignant"].classes("toy") == list(TOY_CLASSES)
    assert not TARGETS["melanoma_vs_nevus"].supports("toy")
    plan = resolve({"toy": Use("toy", "malignant")}, {}, {})
    assert plan.roots == {"toy": "synthetic"}
    prepared = prepare_catalog(plan, tmp_path, {"toy": {"train": 0.6, "val": 0.2, "test": 0.2}}, cache_size=16,
                               workers=1, synth={"n_patients": {"toy": 16}, **SMALL})
    manifest = prepared["toy-malignant"].manifest
    assert set(manifest["split_toy"]) == {"train", "val", "test"}
    assert manifest["target"].sum() > 0
    with pytest.raises(CatalogError, match="which toy does not have"):
        resolve({"toy": Use("toy", "melanoma_vs_nevus")}, {}, {})


def _choices(parser: argparse.ArgumentParser, command: str, flag: str) -> list[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return list(next(a for a in sub._actions if flag in a.option_strings).choices)


def test_the_command_line_lists_a_registered_source(toy, tmp_path, capsys):
    parser = build_parser()
    assert _choices(parser, "data", "--source") == registry.names() and "toy" in registry.names()
    assert "toy" in _choices(parser, "synth", "--preset")
    assert data_roots(["toy=synthetic"]) == {"toy": "synthetic"}
    with pytest.raises(SystemExit):
        main(["data", "--help"])
    assert "toy" in capsys.readouterr().out
    assert main(["synth", "--out", str(tmp_path / "toy"), "--preset", "toy", "--n-patients", "4", "--workers", "1"]) == 0
    assert (tmp_path / "toy" / "toy_labels.csv").is_file()


def test_the_registry_drives_the_command_lines_choices(monkeypatch):
    monkeypatch.setattr(registry, "SOURCES", {k: v for k, v in registry.SOURCES.items() if k != "ham10000"})
    parser = build_parser()
    assert _choices(parser, "data", "--source") == registry.names()
    assert "ham10000" not in _choices(parser, "data", "--source")
    assert _choices(parser, "synth", "--preset") == [s.name for s in registry.SOURCES.values() if s.synthetic]
    assert "ham10000" not in download.known() and "busi" in download.known()


@pytest.fixture
def toy_host(tmp_path):
    """A 127.0.0.1 host serving a generated toy archive (its images as one zip, its labels CSV); the archive too."""
    made = generate(SynthConfig(preset="toy", n_patients=6, workers=1, **SMALL), tmp_path / "made")
    server = Host({"toy/toy_images.zip": _zip_folder(made / "toy_images"),
                   "toy/toy_labels.csv": (made / "toy_labels.csv").read_bytes()})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, made
    server.shutdown()
    server.server_close()


def test_download_fetches_a_registered_source_from_its_own_record(toy, toy_host, monkeypatch, tmp_path, capsys):
    """The toy's `remote` names its files and host; `derm-nb download` lists and fetches it, download.py untouched."""
    server, made = toy_host
    images = len(list((made / "toy_images").glob("*.png")))
    files = (ArchiveFile("toy/toy_images.zip", "training", hashlib.md5(server.files["toy/toy_images.zip"]).hexdigest(),
                         images, ".png"), ArchiveFile("toy/toy_labels.csv", "training"))
    monkeypatch.setitem(registry.SOURCES, "toy", replace(TOY, remote=Remote(files, host=server.url)))
    assert "toy" in download.remotes() and "toy" in download.known()
    with pytest.raises(SystemExit):
        main(["download", "--help"])
    assert "toy" in capsys.readouterr().out
    assert main(["download", "toy", "--list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Toy archive (toy): 2 files from {server.url}/toy/\n") and server.requests == []
    assert f"MD5 {files[0].md5}, {images} images" in out and "-> toy_images/" in out
    archive = tmp_path / "toy"
    assert main(["download", "toy", "--root", str(archive)]) == 0
    assert f"--data toy={archive}" in capsys.readouterr().out
    assert server.requests == ["toy/toy_images.zip", "toy/toy_labels.csv"]
    fetched, _ = load_source("toy", archive, workers=1)
    assert sorted(fetched["image_id"]) == sorted(load_source("toy", made, workers=1)[0]["image_id"])


def test_download_points_to_a_registered_source_behind_a_login(toy, monkeypatch, capsys):
    monkeypatch.setitem(registry.SOURCES, "toy", replace(TOY, manual=Manual("the toy shop", "DIR/toy_labels.csv")))
    assert main(["download", "toy", "--root", "/nowhere/toy"]) == 1
    out = capsys.readouterr().out
    assert "Toy archive (toy) is not fetched by derm-nb" in out and "the toy shop" in out
    assert "/nowhere/toy/toy_labels.csv" in out and "/nowhere/toy is not there yet" in out
    assert main(["download", "toy", "--list"]) == 1
    assert "--list, --parts and --mirror apply to isic2017" in capsys.readouterr().err


def test_an_unknown_source_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(registry.UnknownSource, match=r"unknown data source 'isic2021' \(known: isic2020, .*busi\)"):
        registry.get("isic2021")
    with pytest.raises(DataError, match="unknown data source 'isic2021'"):
        load_source("isic2021", tmp_path)
    with pytest.raises(SystemExit, match="unknown source 'isic2021' .*known: isic2020"):
        data_roots(["isic2021=/x"])
    with pytest.raises(SystemExit):
        main(["data", "--source", "isic2021", "--root", str(tmp_path), "--out", str(tmp_path / "o")])
    assert "invalid choice: 'isic2021'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown synthetic preset 'ham10000'"):
        generate(SynthConfig(preset="ham10000"), tmp_path / "ham")


def test_a_name_is_registered_once(toy):
    assert registry.register(TOY) is TOY  # the same record again is harmless
    with pytest.raises(ValueError, match="'toy' is already registered"):
        registry.register(Source(**{**TOY.__dict__, "title": "another toy"}))


@pytest.mark.parametrize("source", registry.BUILT_IN, ids=lambda s: s.name)
def test_every_record_agrees_with_itself(source):
    assert set(source.targets) <= set(TARGETS), source.targets
    for target in source.targets.values():
        assert set(target.positive) <= set(target.keep or source.classes) <= set(source.classes)
    if source.synthetic is not None:
        assert source.synthetic.classes == source.classes
        assert len(source.synthetic.mix) == len(source.classes) == len(source.synthetic.weights)
    for target, scale in source.published.items():
        assert target in source.targets and set(scale.classes) <= set(source.classes)
    assert source.remote is None or source.manual is None, "download either fetches it or points to it"
    if source.remote is not None:
        assert {f.part for f in source.remote.files} <= set(download.PARTS)
        assert len({f.name for f in source.remote.files}) == len(source.remote.files)


def test_the_readme_source_table_is_the_rendered_one():
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- sources: rendered by .*? -->\n(.*?)\n\n", readme, re.S)
    assert match, "README.md has no rendered source table"
    assert match.group(1) == registry.source_table(), "regenerate it with derm_nb.data.registry.source_table()"


PLUMBING = ["data/sources.py", "data/catalog.py", "data/synthetic.py", "data/synth_kit.py", "data/reading.py",
            "data/prepared.py", "data/registry.py", "workload.py", "book_workload.py", "cli.py"]


@pytest.mark.parametrize("module", PLUMBING)
def test_no_module_but_an_archives_own_lists_sources(module):
    """The code that reads sources names at most one (a default), so adding a source needs no edit there."""
    tree = ast.parse((ROOT / "src" / "derm_nb" / module).read_text())
    named = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in registry.SOURCES}
    assert len(named) <= 1, f"{module} names the sources {sorted(named)}"
