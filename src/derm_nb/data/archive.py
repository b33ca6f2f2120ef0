"""What one public archive is, as the package knows it: the `Source` record each archive module fills in.

A source's module (`data/archives/<name>.py`) holds everything about that archive: its loader, its
classes and targets, how its images group, its masks, the layout a root must have, the synthetic
generator's preset in that layout, its published size, and where `derm-nb download` gets it (the
files on its host, or a pointer for an archive behind a login). `data/registry.py` lists the modules.
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


ISIC_HOST = "https://isic-challenge-data.s3.amazonaws.com"  # the ISIC challenges' public bucket, no login


@dataclass(frozen=True)
class ArchiveFile:
    """One published file: its path on the host, its partition, its MD5 (None: none published) and, for a zip,
    how many members ending in `counted` it holds (None: not checked)."""

    path: str
    part: str
    md5: str | None = None
    images: int | None = None
    counted: str = ".jpg"

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def is_zip(self) -> bool:
        return self.name.endswith(".zip")

    def target(self, root: Path) -> Path:
        """Where the catalog reads it: a zip's folder (named as the zip) or the file itself, in the root."""
        return root / (self.name.removesuffix(".zip") if self.is_zip else self.name)

    def url(self, host: str) -> str:
        """Its address on `host` (the public one, or a mirror with the same paths)."""
        return f"{host.rstrip('/')}/{self.path}"


@dataclass(frozen=True)
class Remote:
    """Where `derm-nb download` fetches an archive: its files (image counts: the archive's published sizes, as
    the cards and the synthetic generator quote them), on `host` under their `path`s."""

    files: tuple[ArchiveFile, ...]
    host: str = ISIC_HOST


@dataclass(frozen=True)
class Manual:
    """An archive behind its host's login: where to get it (`where`), and the layout to unpack it into (`layout`,
    with DIR for the dataset folder)."""

    where: str
    layout: str


@dataclass(frozen=True)
class Source:
    """One archive: everything the loaders, catalog, generator, workload estimate and command line read.

    `layout` lists what a root must hold (each entry a tuple of alternatives; names ending in '/' are
    folders); `files`, `grouping` and `masks` are the README catalog's words for it; `published` is the
    archive's size per target (for `bench --estimate`); `remote` the files `derm-nb download` fetches, or
    `manual` where to get an archive it cannot fetch (neither: download does not know it)."""

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
    remote: Remote | None = None
    manual: Manual | None = None
