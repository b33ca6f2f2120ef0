"""`derm-nb download` against a local HTTP server on 127.0.0.1 serving small zips in ISIC 2017's real file names,
built from tests/formats.py's fixture: a whole download read by 00_data, a rerun that fetches nothing, a dropped
connection finished by a second call, a wrong MD5, a truncated zip, a 404, a full disk and an unknown name; and every
command of the README's "Getting the data" section. Nothing here leaves 127.0.0.1."""

from __future__ import annotations

import errno
import hashlib
import http.server
import io
import os
import re
import shlex
import shutil
import subprocess
import threading
import zipfile
from dataclasses import replace
from pathlib import Path

import formats
import pandas as pd
import pytest

from derm_nb.cli import main
from derm_nb.data import download, registry
from derm_nb.data.archive import ArchiveFile
from derm_nb.data.archives.isic2017 import PARTS as ISIC2017_PARTS

PART_NAMES = ("Training", "Validation", "Test_v2")


def _zip_folder(folder: Path) -> bytes:
    """A zip holding `folder/` and its files, as the ISIC zips ship (one top folder named as the zip)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, f"{folder.name}/{path.relative_to(folder)}")
    return buffer.getvalue()


def _served(fixture: Path) -> dict[str, bytes]:
    """ISIC 2017's nine files by their path on the host, made from the formats fixture."""
    files = {}
    for part in PART_NAMES:
        stem = f"ISIC-2017_{part}"
        files[f"2017/{stem}_Data.zip"] = _zip_folder(fixture / f"{stem}_Data")
        files[f"2017/{stem}_Part1_GroundTruth.zip"] = _zip_folder(fixture / f"{stem}_Part1_GroundTruth")
        files[f"2017/{stem}_Part3_GroundTruth.csv"] = (fixture / f"{stem}_Part3_GroundTruth.csv").read_bytes()
    return files


class Host(http.server.ThreadingHTTPServer):
    """The bucket: `files` by path; each GET logged in `requests`; a path in `drop` is cut off halfway once."""

    daemon_threads = True

    def __init__(self, files: dict[str, bytes]):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files, self.requests, self.drop = dict(files), [], set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = self.path.lstrip("/")
        self.server.requests.append(path)
        body = self.server.files.get(path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if path in self.server.drop:  # the whole length announced, half sent, then the connection closed
            self.server.drop.discard(path)
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> dict[str, bytes]:
    return _served(formats.isic2017(tmp_path_factory.mktemp("fixture")))


@pytest.fixture
def host(served):
    server = Host(served)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _files(name: str) -> tuple[ArchiveFile, ...]:
    return registry.get(name).remote.files


def _use_files(monkeypatch, name: str, files: tuple[ArchiveFile, ...]) -> None:
    """Register `name` with `files` in place of its published ones, for this test only."""
    source = registry.get(name)
    monkeypatch.setitem(registry.SOURCES, name, replace(source, remote=replace(source.remote, files=files)))


def _table_for(served: dict[str, bytes]) -> tuple[ArchiveFile, ...]:
    """ISIC 2017's table with the fixture's MD5s and image counts in place of the real archive's."""
    counts = {p: len(formats.ISIC2017_TRUTH[p]) for p in PART_NAMES}
    part_name = dict(zip(download.PARTS, PART_NAMES))
    return tuple(replace(f, md5=hashlib.md5(served[f.path]).hexdigest() if f.is_zip else None,
                         images=counts[part_name[f.part]] if f.is_zip else None)
                 for f in _files("isic2017"))


@pytest.fixture
def fixture_md5s(served, monkeypatch):
    _use_files(monkeypatch, "isic2017", _table_for(served))


def _tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


def _fetch(host: Host, root: Path, *extra: str) -> int:
    return main(["download", "isic2017", "--root", str(root), "--mirror", host.url, *extra])


def test_whole_download_is_read_by_00_data_and_a_rerun_fetches_nothing(host, fixture_md5s, tmp_path, capsys, root):
    archive = tmp_path / "ISIC2017"
    assert _fetch(host, archive) == 0
    out = capsys.readouterr().out
    assert f"--data isic2017={archive}" in out and "9 of 9 files fetched" in out
    for truth, data, masks in ISIC2017_PARTS.values():
        assert (archive / truth).is_file() and (archive / data).is_dir() and (archive / masks).is_dir()
        assert (archive / data / f"{data}_metadata.csv").is_file()
    assert not list(archive.glob(".*")), "staging or temporary folders left behind"
    assert not list(archive.rglob("*.zip"))

    served_before = len(host.requests)
    assert _fetch(host, archive) == 0
    assert len(host.requests) == served_before, "an already complete folder was fetched again"
    assert "0 of 9 files fetched" in capsys.readouterr().out

    run_dir = tmp_path / "run"
    assert main(["run", "--profile", "smoke", "--only", "00_data", "--data", f"isic2017={archive}",
                 "--missing-data", "skip", "--run-dir", str(run_dir)]) == 0
    manifest = pd.read_parquet(run_dir / "00_data" / "isic2017-melanoma" / "manifest.parquet")
    expected = {line.split(",")[0] for rows in formats.ISIC2017_TRUTH.values() for line in rows}
    assert set(manifest["image_id"]) == expected
    assert set(manifest["official_split"]) == {"train", "val", "test"}
    assert manifest["mask_path"].str.startswith(str(archive)).all()


def test_a_dropped_connection_is_finished_by_a_second_call(host, fixture_md5s, tmp_path, capsys):
    archive, name = tmp_path / "ISIC2017", "2017/ISIC-2017_Training_Data.zip"
    host.drop.add(name)
    assert _fetch(host, archive, "--parts", "training") == 1
    err = capsys.readouterr().err
    assert "ISIC-2017_Training_Data.zip" in err and "broke off" in err
    assert _tree(archive) == {}, "a partial download was kept or unpacked"
    (archive / download.STAGING).mkdir(parents=True)  # what a killed run leaves: pooch's temporary file, half a folder
    (archive / download.STAGING / "tmpk2x9w1").write_bytes(b"PK\x03\x04 half")
    (archive / f"{download.UNPACKING}ISIC-2017_Training_Data-x1").mkdir()
    assert _fetch(host, archive, "--parts", "training") == 0
    assert not list(archive.glob(".*")), "leftovers of a killed run were kept"
    assert host.requests.count(name) == 2
    assert len(list((archive / "ISIC-2017_Training_Data").glob("*.jpg"))) == len(formats.ISIC2017_TRUTH["Training"])


def test_a_wrong_md5_is_refused_naming_the_file_and_the_folder_is_left_as_it_was(host, root, tmp_path):
    """Through the installed command, as a user runs it (with its progress bar in bytes), on the real table: its
    published MD5s are not the fixture's."""
    archive = tmp_path / "ISIC2017"
    archive.mkdir()
    (archive / "notes.txt").write_text("mine\n")
    before = _tree(archive)
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    done = subprocess.run([str(root / ".venv" / "bin" / "derm-nb"), "download", "isic2017", "--root", str(archive),
                           "--mirror", host.url, "--parts", "validation"], env=env, capture_output=True, text=True)
    assert done.returncode == 1
    assert "ISIC-2017_Validation_Data.zip: wrong MD5" in done.stderr and "8d6419d942112f709894c0d82f6c9038" in done.stderr
    assert re.search(r"100%\|.*\| ([\d.]+k)/\1 \[.*B/s\]", done.stderr), done.stderr  # the bar counted bytes
    assert _tree(archive) == before


def test_a_truncated_zip_without_a_published_md5_is_refused_and_deleted(host, served, monkeypatch, tmp_path, capsys):
    table = tuple(replace(f, md5=None) for f in _table_for(served))
    _use_files(monkeypatch, "isic2017", table)
    name = "2017/ISIC-2017_Training_Part1_GroundTruth.zip"
    host.files[name] = served[name][: len(served[name]) * 3 // 5]  # whole transfer, of a cut-off zip
    archive = tmp_path / "ISIC2017"
    assert _fetch(host, archive, "--parts", "training") == 1
    err = capsys.readouterr().err
    assert "ISIC-2017_Training_Part1_GroundTruth.zip: not a whole zip" in err
    assert set(_tree(archive)) >= {"ISIC-2017_Training_Data"}  # the file before it is whole and stays
    assert not (archive / "ISIC-2017_Training_Part1_GroundTruth").exists()
    assert not list(archive.glob(".*")) and not list(archive.rglob("*.zip"))


def test_a_404_names_the_file_and_leaves_nothing(host, fixture_md5s, tmp_path, capsys):
    del host.files["2017/ISIC-2017_Training_Data.zip"]
    archive = tmp_path / "ISIC2017"
    assert _fetch(host, archive) == 1
    err = capsys.readouterr().err
    assert "ISIC-2017_Training_Data.zip" in err and "answered 404" in err
    assert _tree(archive) == {}


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["download", "unpack"])
def test_a_full_disk_names_the_file_and_leaves_nothing_half_written(host, fixture_md5s, monkeypatch, tmp_path,
                                                                    capsys, where):
    import pooch

    if where == "download":
        monkeypatch.setattr(pooch.HTTPDownloader, "__call__", _full_disk)
    else:
        monkeypatch.setattr(shutil, "copyfileobj", _full_disk)  # zipfile writes each member through it
    archive = tmp_path / "ISIC2017"
    assert _fetch(host, archive, "--parts", "training") == 1
    err = capsys.readouterr().err
    assert "ISIC-2017_Training_Data.zip" in err and "the disk is full" in err
    assert not (archive / "ISIC-2017_Training_Data").exists()
    assert not list(archive.glob(f"{download.UNPACKING}*"))
    left = {p.name for p in (archive / download.STAGING).glob("*")} if where == "unpack" else set()
    assert left <= {"ISIC-2017_Training_Data.zip"}  # a verified zip is kept for the next try, never a partial


def test_an_unknown_name_part_or_mirror_is_an_error_naming_it(tmp_path, capsys):
    assert main(["download", "isic2016", "--list"]) == 1
    assert "unknown dataset 'isic2016'" in capsys.readouterr().err
    assert main(["download", "isic2019", "--parts", "validation", "--list"]) == 1
    assert "isic2019 has the parts training" in capsys.readouterr().err
    assert main(["download", "isic2019", "--root", str(tmp_path / "x"), "--mirror", "ftp://copy.example"]) == 1
    assert "--mirror ftp://copy.example: give an http:// or https:// address" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_list_fetches_nothing_and_marks_what_is_there(host, tmp_path, capsys):
    archive = tmp_path / "ISIC2017"
    (archive / "ISIC-2017_Training_Data").mkdir(parents=True)
    assert main(["download", "isic2017", "--list", "--root", str(archive), "--mirror", host.url]) == 0
    out = capsys.readouterr().out
    assert host.requests == []
    assert re.search(r"ISIC-2017_Training_Data\.zip .*\[present: not fetched\]", out)
    assert re.search(r"ISIC-2017_Test_v2_Data\.zip .*\[to fetch\]", out)
    assert "size: not verified" in out and f"{host.url}/2017/" in out



def _zip_files(files: dict[str, Path]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for arcname, path in files.items():
            archive.write(path, arcname)
    return buffer.getvalue()


def _served_as(name: str, fixture: Path) -> dict[str, bytes]:
    """`name`'s files on the host, from the formats fixture: a zip per folder (ISIC 2020's JPEG zip holding `train/`
    with no top folder named as the zip), a CSV per file (ISIC 2020's ground truth from Kaggle's train.csv)."""
    served = {}
    for file in _files(name):
        stem = file.name.removesuffix(".zip")
        if file.name == "ISIC_2020_Training_JPEG.zip":
            served[file.path] = _zip_files({f"train/{p.name}": p for p in sorted((fixture / "jpeg/train").iterdir())})
        elif file.is_zip:
            served[file.path] = _zip_folder(fixture / stem)
        else:
            served[file.path] = (fixture / ("train.csv" if "GroundTruth_v2" in file.name else file.name)).read_bytes()
    return served


@pytest.mark.parametrize("name", ["isic2018", "isic2019", "isic2020"])
def test_every_year_lands_in_the_layout_its_loader_reads(name, host, monkeypatch, tmp_path, capsys):
    from derm_nb.data.sources import load_source

    fixture = formats.FORMATS[name](tmp_path / "fixture")
    host.files = _served_as(name, fixture)
    counted = lambda f: sum(n.endswith(f.counted) for n in zipfile.ZipFile(io.BytesIO(host.files[f.path])).namelist())
    table = tuple(replace(f, images=counted(f) if f.images else None) for f in _files(name))
    _use_files(monkeypatch, name, table)
    archive = tmp_path / name
    assert main(["download", name, "--root", str(archive), "--mirror", host.url]) == 0
    assert f"--data {name}={archive}" in capsys.readouterr().out
    manifest, _ = load_source(name, archive)
    expected, _ = load_source(name, fixture)
    assert len(manifest) == len(expected) > 0
    assert sorted(manifest["image_id"]) == sorted(expected["image_id"])

def _readme_commands(readme: str) -> list[str]:
    section = readme.split("## Getting the data", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"`(?:\.venv/bin/)?(derm-nb download [^`]+)`", section)


def test_every_readme_command_runs_as_shown_or_as_a_dry_run(root, tmp_path, capsys):
    commands = _readme_commands((root / "README.md").read_text())
    assert {shlex.split(c)[2] for c in commands} == set(download.known())
    formats.busi(tmp_path / "busi")
    formats.ham10000(tmp_path / "ham10000")
    for command in commands:
        argv = shlex.split(command)[1:]
        name = argv[1]
        if "--root" in argv:  # the README's folder -> one here (a fixture in the layout for busi / ham10000)
            argv[argv.index("--root") + 1] = str(tmp_path / name)
        if name in download.remotes() and "--list" not in argv:
            argv.append("--list")  # its dry run: what it would fetch, from where, into which layout
        assert main(argv) == 0, command
        out = capsys.readouterr().out
        if name in download.manuals():
            assert f"--data {name}={tmp_path / name}" in out
        else:
            assert "size: not verified" in out


def test_only_the_download_command_imports_pooch(root):
    importers = [p.relative_to(root) for p in (root / "src").rglob("*.py") if "import pooch" in p.read_text()]
    assert importers == [Path("src/derm_nb/data/download.py")]


def test_parts_fetches_only_those_partitions_and_says_the_catalog_needs_training(host, fixture_md5s, tmp_path, capsys):
    archive = tmp_path / "ISIC2017"
    assert _fetch(host, archive, "--parts", "validation") == 0
    assert sorted(p.name for p in archive.iterdir()) == [f"ISIC-2017_Validation_{s}" for s in
                                                         ("Data", "Part1_GroundTruth", "Part3_GroundTruth.csv")]
    assert {p.split("/")[1].split("_")[1] for p in host.requests} == {"Validation"}
    assert "once its training part is there: add --parts training" in capsys.readouterr().out
