"""The end-to-end archive run as a background process: started when the session collects the test that
needs it, so it shares the 2 cores with the smoke run instead of waiting for it (most of a chapter's
time is single-threaded imports)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import formats

SOURCES = {"isic2020": 160, "isic2018": 120, "isic2019": 140, "busi": 90, "isic2017": 120}
TINY = "notebooks:\n  05_deep_clustering: {sweep_minorities: [4500, 1125], sweep_scale: 0.003}\n"


def argv(base: Path, stems: list[str]) -> list[str]:
    """`derm-nb run` on one populated archive per source, every root given with `--data` as a user would;
    the overlay only scales study 002's sweep to the tiny fixtures."""
    args = ["run", "--profile", "smoke", "--run-dir", str(base / "run"), "--only", *stems]
    for source, n in SOURCES.items():
        args += ["--data", f"{source}={formats.populate(source, base / source, n, seed=1)}"]
    (base / "tiny.yaml").write_text(TINY)
    return [*args, "--params", str(base / "tiny.yaml")]


def start(base: Path, stems: list[str]) -> subprocess.Popen:
    """Write the archives and start the run; its output goes to `base/run.log`."""
    base.mkdir(parents=True, exist_ok=True)
    log = (base / "run.log").open("w")
    code = "import sys; from derm_nb.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, *argv(base, stems)], stdout=log, stderr=subprocess.STDOUT)
