"""What one public archive is, as the package knows it: the `Source` record each archive module fills in.

A source's module (`data/archives/<name>.py`) holds everything about that archive: its loader, its
classes and targets, how its images group, its masks, the layout a root must have, the synthetic
generator's preset in that layout, and its published size. `data/registry.py` lists the modules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from derm_nb.data.quality import QualityReport
from derm_nb.data.synth_kit import SynthPreset

Loader = Callable[[Path, QualityReport], pd.DataFrame]


@dataclass(frozen=True)
class TargetClasses:
    """A binary target in one source's class names: the positive classes, and the classes kept (None: all)."""

    positive: tuple[str, ...]
    keep: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Scale:
    """An archive's size as it ships, for one target: images, groups (patients or lesions), positives,
    its official partitions where it has them, and per-class counts where a study needs them (of the
    images the training split is drawn from: the official training partition where there is one)."""

    images: int
    groups: int
    positives: int
    classes: Mapping[str, int] = field(default_factory=dict)
    official: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Source:
    """One archive: everything the loaders, catalog, generator, workload estimate and command line read.

    `layout` lists what a root must hold (each entry a tuple of alternatives; names ending in '/' are
    folders); `files`, `grouping` and `masks` are the README catalog's words for it; `published` is the
    archive's size per target (for `bench --estimate`)."""

    name: str
    title: str
    loader: Loader
    classes: tuple[str, ...]
    targets: Mapping[str, TargetClasses]
    layout: tuple[tuple[str, ...], ...]
    files: str
    grouping: str
    masks: str
    synthetic: SynthPreset | None = None
    published: Mapping[str, Scale] = field(default_factory=dict)
