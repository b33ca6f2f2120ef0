"""The end-to-end archive run's command line: one populated archive per source, given with `--data`."""

from __future__ import annotations

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
