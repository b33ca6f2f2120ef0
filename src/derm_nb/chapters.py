"""The one registry of chapters, and the one-call context a chapter opens with.

Each chapter names its kind, the study it follows, the prepared dataset and split scheme it
reads, and every file it reads from an upstream chapter. The runner orders and checks runs
with it, the analysis chapters find the model chapters with it, and a notebook starts, right after
its parameters and imports, with `ctx = chapter("02_baseline", globals())`: the context keeps a copy
of the parameters (profile, run_dir, the scheduler and the chapter's own), taken before the chapter
defines anything else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from derm_nb.artifacts import notebook_dir, project_root, read_json, run_dir_for, write_csv
from derm_nb.cards import PaperCard, differences
from derm_nb.data.prepared import Prepared, load_prepared, oracle_auc
from derm_nb.models.backbones import Provenance
from derm_nb.params import profile_facts


@dataclass(frozen=True)
class Chapter:
    """One chapter: its notebook stem, kind, study, dataset, split scheme and named upstream reads."""

    stem: str
    kind: str                          # data | eda | model | analysis | appendix
    study: str | None = None
    dataset: str | None = None         # the catalog slot it reads (a study's data need, e.g. study000)
    reads: Mapping[str, tuple[str, str]] = field(default_factory=dict)   # name -> (chapter, file)
    also: tuple[str, ...] = ()         # further slots it reads (study 002's sweep set)

    @property
    def slots(self) -> tuple[str, ...]:
        """Every catalog slot this chapter reads."""
        return ((self.dataset,) if self.dataset else ()) + self.also

    @property
    def scheme(self) -> str | None:
        return f"study{self.study}" if self.study else None

    @property
    def needs(self) -> tuple[str, ...]:
        """The chapters whose artifacts this one reads, in registry order."""
        upstream = {source for source, _ in self.reads.values()} | ({"00_data"} if self.dataset else set())
        return tuple(c.stem for c in CHAPTERS if c.stem in upstream)


def _metrics(*stems: str) -> dict[str, tuple[str, str]]:
    return {f"{stem}/{name}": (stem, name) for stem in stems for name in ("metrics.json", "predictions.parquet")}


CHAPTERS: tuple[Chapter, ...] = (
    Chapter("00_data", "data"),
    Chapter("01_eda", "eda", "000", "study000"),
    Chapter("02_baseline", "model", "000", "study000"),
    Chapter("03_experts", "model", "000", "study000", {
        "brightness_split": ("01_eda", "brightness_split.json"), "image_stats": ("01_eda", "image_stats.parquet"),
        **_metrics("02_baseline")}),
    Chapter("04_efficientnet", "model", "001", "study001"),
    Chapter("05_deep_clustering", "model", "002", "study002", also=("study002_sweep",)),
    Chapter("06_architectures", "model", "003", "study003"),
    Chapter("07_gcn_mil", "model", "004", "study004"),
    Chapter("08_error_analysis", "analysis", None, "study000", {
        "brightness_split": ("01_eda", "brightness_split.json"), "image_stats": ("01_eda", "image_stats.parquet"),
        **_metrics("02_baseline", "03_experts", "04_efficientnet")}),
    Chapter("09_summary", "analysis", None, None, {
        "data_summary": ("00_data", "summary.json"), "catalog": ("00_data", "catalog.json"),
        **_metrics("02_baseline", "03_experts", "04_efficientnet", "05_deep_clustering", "06_architectures",
                   "07_gcn_mil")}),
    Chapter("10_speed", "appendix"),
)

MODEL_CHAPTERS: tuple[str, ...] = tuple(c.stem for c in CHAPTERS if c.kind == "model")


def spec(stem: str) -> Chapter:
    """The registry entry of chapter `stem`; a KeyError naming the known ones otherwise."""
    for c in CHAPTERS:
        if c.stem == stem:
            return c
    raise KeyError(f"unknown chapter '{stem}' (known: {', '.join(c.stem for c in CHAPTERS)})")


CATALOG_FILE = "catalog.json"


class MissingData(RuntimeError):
    """A chapter's catalog slot has no data in this run; the message names the source and the flag."""


def catalog_record(run_dir: str | os.PathLike[str]) -> dict:
    """What 00_data wrote about every slot (`00_data/catalog.json`); a clear error if it has not run."""
    path = Path(run_dir) / "00_data" / CATALOG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the 00_data notebook (or `derm-nb run --only 00_data`) first")
    return read_json(path)


def missing_slots(stem: str, record: Mapping[str, Any]) -> dict[str, str]:
    """{slot: message} for each slot of chapter `stem` that this run has no data for."""
    slots = record["slots"]
    return {slot: slots[slot]["message"] for slot in spec(stem).slots
            if slot in slots and slots[slot]["status"] == "missing"}


def reads_real_data(run_dir: str | os.PathLike[str], stem: str, data_roots: Mapping[str, str]) -> bool:
    """Whether chapter `stem` reads a real folder in this run: for 00_data, any `--data` root that is not
    `synthetic`; for the others, any of its slots that 00_data catalogued from a real folder."""
    if stem == "00_data":
        return any(str(root) != "synthetic" for root in data_roots.values())
    if not spec(stem).slots:
        return False
    slots = catalog_record(run_dir)["slots"]
    return any(not slots[slot].get("synthetic", True) for slot in spec(stem).slots if slot in slots)


class UndeclaredRead(KeyError):
    """A chapter read a file of another chapter that the registry does not list for it."""


PLAIN = (str, int, float, bool, list, tuple, dict, Path, type(None))
SCORED_SPLITS = ("test", "val")
KERNEL_NAMES = frozenset({"In", "Out"})   # IPython's input and output history, lists and dicts too


def plain_parameters(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The plain values (str, numbers, bool, None, lists, dicts, paths) of `namespace` that are not private: a
    notebook's parameters, when taken before the chapter defines anything else (imports are not plain)."""
    return {k: v for k, v in namespace.items()
            if not k.startswith("_") and k not in KERNEL_NAMES and isinstance(v, PLAIN)}


@dataclass
class ChapterContext:
    """Everything a chapter opens with: its parameters, its out folder, its data and splits, its upstream
    reads, and the run's Dask scheduler (`client`; None on a serial run)."""

    chapter: Chapter
    profile: str
    run_dir: Path
    parameters: Mapping[str, Any] = field(default_factory=dict)
    scheduler: str = ""

    @cached_property
    def client(self) -> Any | None:
        """A client of the run's scheduler (the `scheduler` parameter the runner passes), or None: variants
        then run serially in this kernel."""
        if not self.scheduler:
            return None
        from distributed import Client

        return Client(self.scheduler, set_as_default=False)

    @cached_property
    def out(self) -> Path:
        """`runs/<profile>/<stem>/`, created if missing."""
        return notebook_dir(self.run_dir, self.chapter.stem)

    @cached_property
    def data(self) -> Prepared:
        """The prepared dataset of this chapter's slot (written by 00_data)."""
        if not self.chapter.dataset:
            raise KeyError(f"{self.chapter.stem} reads no prepared dataset")
        return self.dataset(self.chapter.dataset)

    def dataset(self, slot: str) -> Prepared:
        """The prepared dataset of one of this chapter's slots; MissingData if the run has none for it."""
        if slot not in self.chapter.slots:
            raise UndeclaredRead(f"{self.chapter.stem} does not read the slot '{slot}' (it reads: "
                                 f"{', '.join(self.chapter.slots) or 'none'})")
        entry = catalog_record(self.run_dir)["slots"].get(slot)
        if entry is None:
            raise MissingData(f"00_data of this run prepared no dataset for '{slot}': run 00_data again")
        if entry["status"] == "missing":
            raise MissingData(entry["message"])
        return load_prepared(self.run_dir / "00_data" / entry["folder"])

    @property
    def scored(self) -> str:
        """The split a chapter scores as its held-out one: `test`, or `val` in a run that chooses settings
        (`score_split: val`), so that no setting is ever picked by the test split."""
        return str(self.parameters.get("score_split", "test"))

    def split(self, name: str) -> pd.DataFrame:
        """One split (`train`, `val`, `test`) of this chapter's study scheme, rows renumbered from 0; `test`
        is the validation split in a run that chooses settings (`scored`)."""
        name = self.scored if name == "test" else name
        return self.data.split(self.chapter.scheme, name).reset_index(drop=True)

    def splits(self, names: tuple[str, ...] = ("train", "val", "test")) -> dict[str, pd.DataFrame]:
        return {s: self.split(s) for s in names}

    def images(self, frame: pd.DataFrame, data: Prepared | None = None, size: int = 0) -> torch.Tensor:
        """The cached images of `frame`'s rows (from this chapter's dataset, or `data`) as one uint8
        tensor (N, 3, S, S), at `size` px where given (0: the cache's size)."""
        from derm_nb.datasets import load_split_images

        return load_split_images((data or self.data).cache_dir, frame, size)

    def masks(self, frame: pd.DataFrame, size: int) -> list[np.ndarray | None]:
        """The cached lesion masks of `frame`'s rows at `size` px (nearest neighbour), as booleans; None
        for a row kept without a mask; a ValueError where the dataset has none (check `ctx.data.has_masks`)."""
        if not self.data.has_masks:
            raise ValueError(f"{self.data.summary['source']} has no lesion masks; {self.chapter.stem} must skip "
                             "its mask analyses")
        return [np.asarray(Image.open(p).resize((size, size), Image.NEAREST)) > 127 if p else None
                for p in self.data.mask_paths(frame)]

    def on_same_data(self, stems: tuple[str, ...]) -> list[str]:
        """The chapters among `stems` whose slot reads the same prepared dataset as this chapter's."""
        slots = catalog_record(self.run_dir)["slots"]
        mine = slots[self.chapter.dataset]["folder"]
        return [s for s in stems if slots.get(spec(s).dataset or "", {}).get("folder") == mine]

    def model_reads(self) -> tuple[str, ...]:
        """The model chapters whose metrics and predictions the registry lists among this chapter's reads."""
        sources = {source for source, _ in self.chapter.reads.values()}
        return tuple(stem for stem in MODEL_CHAPTERS if stem in sources)

    def oracle_auc(self, frame: pd.DataFrame) -> float | None:
        """The generator's oracle AUC on `frame` (None for real data)."""
        return oracle_auc(self.data, frame)

    def differences(self, card: PaperCard) -> pd.DataFrame:
        """This chapter's "What differs from the paper" table for the run's parameters (those the context
        kept), also written to `differences.csv`."""
        synthetic = bool(self.data.summary.get("synthetic"))
        try:
            follows_paper, note = profile_facts(project_root(), self.profile, real=not synthetic)
        except FileNotFoundError:
            follows_paper, note = False, ""
        table = differences(card, self.chapter.stem, self.parameters, self.data.describe(), synthetic, self.profile,
                            follows_paper, note, data_why="" if synthetic else self._real_data_why(),
                            splits=self.data.summary["splits"].get(self.chapter.scheme or "", ""))
        table = pd.concat([table, self._stand_ins()], ignore_index=True)
        write_csv(self.out / "differences.csv", table)
        return table

    def _real_data_why(self) -> str:
        """Why this chapter read the real folder it read: its study's own archive, or another the run chose."""
        from derm_nb.data.sources import NAMES

        source, summary = self.data.summary["source"], self.data.summary
        paper_source = catalog_record(self.run_dir)["slots"][self.chapter.dataset].get("paper_source", source)
        why = (f"{NAMES[source]} is the study's own archive, given to this run" if source == paper_source else
               f"this run points {self.chapter.dataset} at {NAMES[source]} (`datasets` under 00_data); "
               f"the study's {NAMES[paper_source]} was not given")
        sample = summary.get("sample")
        return why + (f"; a sample of {sample['n_images']:,} of its {sample['of']:,} images (`max_images`), for a "
                      "quick run" if sample else "")

    def _stand_ins(self) -> pd.DataFrame:
        """One row per backbone this chapter's models ran in place of the one asked for (from metrics.json)."""
        path = self.out / "metrics.json"
        variants = read_json(path).get("variants", {}) if path.is_file() else {}
        used = {Provenance(**w) for m in variants.values() if (w := m.get("weights") or {}).get("substituted_for")}
        return pd.DataFrame([(f"weights of {p.substituted_for}", f"{p.substituted_for}, ImageNet", p.label(),
                              f"ImageNet weights for {p.substituted_for} are not available here (offline, not in the "
                              "torch hub cache): the stated fallback")
                             for p in sorted(used, key=lambda p: p.substituted_for)],
                            columns=["aspect", "paper", "this run", "why"])

    def path(self, name: str) -> Path:
        """The path of the upstream file `name`; only reads the registry lists for this chapter."""
        if name not in self.chapter.reads:
            raise UndeclaredRead(f"{self.chapter.stem} does not declare the read '{name}' in derm_nb.chapters "
                                 f"(it declares: {', '.join(self.chapter.reads) or 'none'})")
        source, file = self.chapter.reads[name]
        path = self.run_dir / source / file
        if not path.is_file():
            raise FileNotFoundError(f"{self.chapter.stem} reads {path}, which {source} has not written: run {source} "
                                    f"under the '{self.profile}' profile first")
        return path

    def read(self, name: str) -> Any:
        """An upstream file by its registry name: JSON as a dict, parquet as a DataFrame."""
        path = self.path(name)
        return read_json(path) if path.suffix == ".json" else pd.read_parquet(path)


def chapter(stem: str, parameters: Mapping[str, Any]) -> ChapterContext:
    """The context of chapter `stem` with the notebook's parameters (`plain_parameters` of them are kept):
    `profile`, `run_dir` (runs/<profile>/ when empty) and `scheduler` (empty: a serial run) among them."""
    kept = plain_parameters(parameters)
    missing = [k for k in ("profile", "run_dir") if k not in kept]
    if missing:
        raise KeyError(f"{stem}: chapter() needs the parameters {', '.join(missing)} (the notebook's parameters cell "
                       "declares them)")
    profile = str(kept["profile"])
    if kept.get("score_split", "test") not in SCORED_SPLITS:
        raise ValueError(f"{stem}: score_split is one of {', '.join(SCORED_SPLITS)}, not {kept['score_split']!r}")
    if kept.get("score_split") == "val":
        from IPython.display import Markdown, display

        display(Markdown("**A run that chooses settings** (`score_split: val`): the validation split is scored in the "
                         "test split's place; its numbers compare settings and are not results."))
    return ChapterContext(spec(stem), profile, run_dir_for(profile, kept["run_dir"]), MappingProxyType(kept),
                          str(kept.get("scheduler") or ""))
