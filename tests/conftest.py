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
def smoke_run(root, tmp_path_factory):
    """Every notebook under the smoke profile, once per test session, through the real runner."""
    from derm_nb.runner import run_notebooks

    run_dir = tmp_path_factory.mktemp("runs") / "smoke"
    timings = run_notebooks(root, "smoke", run_dir=run_dir)
    return run_dir, timings


@pytest.fixture(scope="session")
def smoke_book(root, smoke_run):
    """The HTML book built from the smoke run: the path of its index.html."""
    from derm_nb.runner import build_book

    return build_book(root, "smoke", run_dir=smoke_run[0])


@pytest.fixture(scope="session")
def archive_run(tmp_path_factory) -> Path:
    """The smoke book on one archive-format fixture per source, every root given with `--data` (see
    tests/archive_run.py); run in this process after the smoke run (measured: faster than beside it)."""
    import archive_run as archives

    from derm_nb.chapters import CHAPTERS
    from derm_nb.cli import main

    base = tmp_path_factory.mktemp("archives")
    stems = [c.stem for c in CHAPTERS if c.stem != "10_speed"]   # the appendix reads no data
    assert main(archives.argv(base, stems)) == 0
    return base / "run"
