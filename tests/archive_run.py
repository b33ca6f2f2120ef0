"""The smoke run's command line: the built-in synthetic data for ISIC 2020 and 2019, and one archive-format
fixture our generator did not make (tests/formats.py) for ISIC 2018, BUSI and ISIC 2017, each root given
with `--data` as a user would. One run covers both the generator's path and real archive layouts."""

from __future__ import annotations

from pathlib import Path

import formats

SYNTHETIC = ("isic2020", "isic2019")
ARCHIVES = {"isic2018": 120, "busi": 90, "isic2017": 120}


def argv(run_dir: Path, archives: Path) -> list[str]:
    """`derm-nb run --profile smoke` with every source's root given by `--data`."""
    args = ["run", "--profile", "smoke", "--run-dir", str(run_dir)]
    for source in SYNTHETIC:
        args += ["--data", f"{source}=synthetic"]
    for source, n in ARCHIVES.items():
        args += ["--data", f"{source}={formats.populate(source, archives / source, n, seed=1)}"]
    return args
