from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TQDM_DISABLE", "1")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def real_declared(root, tmp_path_factory):
    """Every chapter's declared parameters (from its parameters cell)."""
    from derm_nb.chapters import CHAPTERS
    from derm_nb.runner import declared_parameters, prepare_inputs

    inputs = prepare_inputs(root, tmp_path_factory.mktemp("inputs"), [nb.stem for nb in CHAPTERS])
    return declared_parameters(inputs)


@pytest.fixture(scope="session")
def smoke_run(root, tmp_path_factory):
    """Every notebook under the smoke profile, once per test session, through the CLI: synthetic ISIC 2020
    and 2019, archive-format fixtures for the other sources (tests/archive_run.py)."""
    import archive_run

    from derm_nb.artifacts import read_json
    from derm_nb.cli import main

    base = tmp_path_factory.mktemp("runs")
    run_dir = base / "smoke"
    assert main(archive_run.argv(run_dir, base / "archives")) == 0
    timings = {stem: entry["seconds"] for stem, entry in read_json(run_dir / "run_log.json").items()}
    return run_dir, timings


@pytest.fixture(scope="session")
def smoke_book(root, smoke_run):
    """The HTML book built from the smoke run: the path of its index.html."""
    from derm_nb.runner import build_book

    return build_book(root, "smoke", run_dir=smoke_run[0])
