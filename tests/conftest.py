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


_ARCHIVE_RUN: dict = {}


def pytest_collection_finish(session):
    """Start the archive end-to-end run at once if a collected test needs it (see tests/archive_run.py)."""
    if not any("archive_run" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    import tempfile

    import archive_run

    from derm_nb.chapters import CHAPTERS

    base = Path(tempfile.mkdtemp(prefix="archive-run-"))
    stems = [c.stem for c in CHAPTERS if c.stem != "10_speed"]   # the appendix reads no data
    _ARCHIVE_RUN.update(base=base, process=archive_run.start(base, stems))


@pytest.fixture(scope="session")
def archive_run() -> Path:
    """The finished archive run's folder; fails with the run's log tail if it failed."""
    process = _ARCHIVE_RUN["process"]
    code = process.wait(timeout=3600)
    log = (_ARCHIVE_RUN["base"] / "run.log").read_text()
    assert code == 0, f"the archive run failed (exit {code}):\n{log[-4000:]}"
    return _ARCHIVE_RUN["base"] / "run"


def pytest_sessionfinish(session, exitstatus):
    process = _ARCHIVE_RUN.get("process")
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()
    if "base" in _ARCHIVE_RUN:
        import shutil

        shutil.rmtree(_ARCHIVE_RUN["base"], ignore_errors=True)
