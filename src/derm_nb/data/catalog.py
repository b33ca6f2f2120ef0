"""The dataset catalog: which source each study reads, with which target, and from which folder.

A *slot* is one data need of a study (`study000`, `study002_sweep`, ...). Each study declares its
slots with its paper's source and target (`Use`); a profile's `datasets` mapping may point a slot
at another source. Roots come per source (`--data NAME=ROOT`). With no root given at all, every
source is the built-in generator's output in that source's real layout; once any root is given, a
slot whose source has none is *missing*, and `missing_data` says whether its chapters stop with an
error or are skipped with a note.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from derm_nb.data import registry
from derm_nb.data.errors import DataError
from derm_nb.data.quality import QualityReport

SYNTHETIC = "synthetic"
POLICIES = ("error", "skip")


class CatalogError(DataError):
    """A slot, source, target or root the catalog cannot use, named with the key at fault."""


@dataclass(frozen=True)
class Target:
    """A binary target, named; each source states its positive and kept classes for it (`Source.targets`)."""

    name: str
    description: str

    @property
    def positive(self) -> dict[str, tuple[str, ...]]:
        """{source: its positive classes} over the registered sources that have this target."""
        return {s.name: s.targets[self.name].positive for s in registry.SOURCES.values() if self.name in s.targets}

    def supports(self, source: str) -> bool:
        """Whether `source` is registered and states this target."""
        return source in registry.SOURCES and self.name in registry.SOURCES[source].targets

    def describe(self, source: str) -> str:
        """The target in this source's own class names, e.g. 'malignant (MEL, BCC, AKIEC) vs NV, BKL, DF, VASC'."""
        positive = self.positive[source]
        rest = [c for c in self.classes(source) if c not in positive]
        dropped = [c for c in registry.get(source).classes if c not in self.classes(source)]
        return (f"{self.name} ({', '.join(positive)}) vs {', '.join(rest)}"
                + (f"; {', '.join(dropped)} excluded" if dropped else ""))

    def classes(self, source: str) -> list[str]:
        """The source's classes this target keeps, in the source's order."""
        record = registry.get(source)
        keep = record.targets[self.name].keep
        return [c for c in record.classes if keep is None or c in keep]


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("melanoma", "melanoma vs every other class"),
    Target("malignant", "malignant vs benign (melanoma, basal cell carcinoma, actinic keratosis / Bowen's, SCC)"),
    Target("melanoma_vs_nevus", "melanoma vs nevus; every other class excluded"),
)}


@dataclass(frozen=True)
class Use:
    """What a study slot reads by default: its paper's source and the target it asks of it."""

    source: str
    target: str
    paper_data: str = ""
    only: tuple[str, ...] = ()   # the sources its chapter can read at all (empty: any with the target)
    why_only: str = ""


@dataclass(frozen=True)
class Dataset:
    """One prepared dataset: a source read under one target (`isic2019-melanoma_vs_nevus`)."""

    source: str
    target: str

    @property
    def key(self) -> str:
        return f"{self.source}-{self.target}"


@dataclass
class Plan:
    """The resolved catalog of a run: every slot's dataset, each source's root, and the missing slots."""

    slots: dict[str, Dataset]
    roots: dict[str, str]
    missing: dict[str, str]
    policy: str
    paper_sources: dict[str, str] = field(default_factory=dict)   # each slot's own study's source

    def datasets(self) -> list[Dataset]:
        """The distinct datasets to prepare, in slot order (missing ones left out)."""
        seen: dict[str, Dataset] = {}
        for slot, dataset in self.slots.items():
            if slot not in self.missing:
                seen.setdefault(dataset.key, dataset)
        return list(seen.values())

    def record(self) -> dict:
        """The JSON the chapters read (`00_data/catalog.json`)."""
        return {"policy": self.policy, "roots": self.roots, "slots": {
            slot: {"source": d.source, "paper_source": self.paper_sources.get(slot, d.source),
                   "target": d.target, "folder": d.key,
                   "status": "missing" if slot in self.missing else "ready",
                   "synthetic": self.roots.get(d.source) == SYNTHETIC,
                   "message": missing_message(slot, d.source) if slot in self.missing else ""}
            for slot, d in self.slots.items()}}


def slot_scheme(slot: str) -> str:
    """The split scheme a slot's study uses: its study's (`study002_sweep` -> `study002`)."""
    return slot.split("_")[0]


def missing_message(slot: str, source: str) -> str:
    """What a chapter says when its source was not given: the source and the flag to give."""
    return (f"{slot} reads the '{source}' dataset, which this run was not given: pass "
            f"`--data {source}=/path/to/{source}` (or `--data {source}=synthetic` for the built-in stand-in), "
            f"or set `missing_data: skip` to skip its chapters")


def _dataset(slot: str, source: str, target: str) -> Dataset:
    if source not in registry.SOURCES:
        raise CatalogError(f"datasets.{slot} = '{source}' is not a source (known: {', '.join(registry.SOURCES)})")
    if not TARGETS[target].supports(source):
        able = [s for s in registry.SOURCES if TARGETS[target].supports(s)]
        raise CatalogError(f"datasets.{slot} = '{source}': {slot} asks for the target '{target}' "
                           f"({TARGETS[target].description}), which {source} does not have "
                           f"(sources that do: {', '.join(able)})")
    return Dataset(source, target)


def _roots(data: Mapping[str, str]) -> dict[str, str]:
    roots = {}
    for source, root in data.items():
        if source not in registry.SOURCES:
            raise CatalogError(f"data.{source}: unknown source (known: {', '.join(registry.SOURCES)})")
        root = str(root).strip()
        if not root:
            raise CatalogError(f"data.{source}: empty root; give the dataset folder or 'synthetic'")
        if root != SYNTHETIC:
            path = Path(root).expanduser()
            if not path.is_dir():
                raise CatalogError(f"data.{source} = {root}: no such folder")
            root = str(path.resolve())
        roots[source] = root
    return roots


def resolve(uses: Mapping[str, Use], datasets: Mapping[str, str], data: Mapping[str, str],
            missing_data: str = "error") -> Plan:
    """Check the slot overrides, roots and policy against the studies' uses; the run's plan."""
    unknown = sorted(set(datasets) - set(uses))
    if unknown:
        raise CatalogError(f"datasets.{unknown[0]} is not a study slot (known: {', '.join(uses)})")
    if missing_data not in POLICIES:
        raise CatalogError(f"missing_data = '{missing_data}' (allowed: {', '.join(POLICIES)})")
    for slot, source in datasets.items():
        if uses[slot].only and source not in uses[slot].only:
            raise CatalogError(f"datasets.{slot} = '{source}': {slot} runs on {', '.join(uses[slot].only)} only "
                               f"({uses[slot].why_only})")
    slots = {slot: _dataset(slot, datasets.get(slot, use.source), use.target) for slot, use in uses.items()}
    roots = _roots(data)
    if not roots:
        roots = {d.source: SYNTHETIC for d in slots.values()}
    missing = {slot: d.source for slot, d in slots.items() if d.source not in roots}
    return Plan(slots, roots, missing, missing_data, {slot: use.source for slot, use in uses.items()})


def apply_target(manifest: pd.DataFrame, target: Target, report: QualityReport) -> pd.DataFrame:
    """The rows `target` keeps, labels renumbered over its classes and `target` recomputed; each
    excluded row goes into the report."""
    source = str(manifest["source"].iloc[0]) if len(manifest) else ""
    classes = target.classes(source)
    kept = manifest["label_name"].isin(classes)
    for row in manifest.loc[~kept].itertuples():
        report.add(row.path, None, row.image_id, "outside the study's classes", "excluded",
                   f"{row.label_name} is not one of {', '.join(classes)} ({target.description})")
    out = manifest.loc[kept].copy()
    out["label"] = out["label_name"].map({c: k for k, c in enumerate(classes)}).astype("int64")
    out["target"] = out["label_name"].isin(target.positive[source]).astype("int64")
    return out.reset_index(drop=True)


def oracle_probability(oracle: pd.DataFrame, source: str, target: Target) -> pd.Series:
    """The generator's true probability of `target`: P(positive) / P(kept classes) from its per-class columns."""
    columns = [f"p_{c}" for c in target.classes(source)]
    positive = oracle[[f"p_{c}" for c in target.positive[source]]].sum(axis=1)
    return positive / oracle[columns].sum(axis=1)
