"""Paper cards: each study's published figures, quoted as the paper's, with the data they came from.

A card lives beside its study's code (`derm_nb.studies.studyNNN.CARD`); this module holds the
type and the display helpers every chapter shares.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Deviation:
    """A way our method departs from the paper's in every profile (not a parameter), and why. `ours` may name
    the run's parameters as `{name}`: the table fills in this run's values (`fill`), so no profile's value is
    restated in prose."""

    aspect: str
    paper: str
    ours: str
    why: str


@dataclass(frozen=True)
class Benchmark:
    """The best public figure on a study's data, quoted exactly as published (never measured here):
    the figure as printed (a value or a range), its metric, the data and split, and its source."""

    figure: str
    metric: str
    data: str
    source: str


# The best public figures on ISIC 2020 (studies 000 and 002), as study 000's paper quotes them.
ISIC2020_BENCHMARKS = (
    Benchmark("0.949", "ROC-AUC, first place on the competition leaderboard",
              "SIIM-ISIC 2020 official test set (labels hidden; Kaggle), not a split of the training data",
              "study 000's paper, Results: \"first place coming in at 0.949\""),
    Benchmark("0.9442", "ROC-AUC, the winning solution's ensemble of 18 image classifiers",
              "SIIM-ISIC 2020 test set, as the paper quotes it",
              "Ha, Liu and Liu 2020 (winning solution), as quoted in study 000's paper, Related work"),
)


@dataclass(frozen=True)
class PaperCard:
    """One study's paper: its data, splits and settings, its published tables, and where we depart from it.

    `settings` are the paper's hyper-parameters per chapter, keyed by the chapter's parameter names:
    the `full` profile starts from them. `reasons` says, per chapter and key, why `full` still runs
    another value; `methods` lists departures no parameter captures. `headlines` are (model, metric,
    value, data) rows; every value is the paper's, never ours. `benchmarks` are the best public figures on
    the study's data by others (empty: none quoted).
    """

    study: str
    title: str
    data: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    headlines: tuple[tuple[str, str, float, str], ...] = ()
    splits: str = ""
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    reasons: dict[str, dict[str, str]] = field(default_factory=dict)
    methods: dict[str, tuple[Deviation, ...]] = field(default_factory=dict)
    benchmarks: tuple[Benchmark, ...] = ()

    def quote(self, table: str, precision: int = 3, data: str | None = None):
        """One of the card's tables, captioned as published (not computed here) on the card's data."""
        return quote(self.tables[table], data or self.data, precision)


def quote(table: pd.DataFrame, data: str, precision: int = 3):
    """A published table, with a caption naming the data it came from (for display); '–' where not reported."""
    return table.style.set_caption(f"Published (not computed here): {data}").format(precision=precision, na_rep="–")


def headline_table(cards: Iterable[PaperCard]) -> pd.DataFrame:
    """The studies' headline figures, one row each, for the summary chapter."""
    return pd.DataFrame([{"study": c.study, "model": m, "metric": metric, "value": v, "data": d}
                         for c in cards for m, metric, v, d in c.headlines])


NONE_QUOTED = "none quoted"


def benchmark_rows(cards: Iterable[PaperCard]) -> pd.DataFrame:
    """Every card's public benchmarks, one row each (study, figure, metric, data, source); a study with none
    gets one row saying "none quoted"."""
    rows = []
    for card in cards:
        quoted = card.benchmarks or (Benchmark(NONE_QUOTED, "", "", ""),)
        rows += [{"study": card.study, "figure": b.figure, "metric": b.metric, "data": b.data, "source": b.source}
                 for b in quoted]
    return pd.DataFrame(rows, columns=["study", "figure", "metric", "data", "source"])


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_shown(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_shown(v) for v in value)
    return str(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


PLACEHOLDER = re.compile(r"\{(\w+)\}")


def fill(text: str, params: Mapping[str, Any], stem: str = "") -> str:
    """`text` with each `{name}` replaced by the run's parameter `name`; a KeyError naming the chapter and the
    parameter where the chapter has none of that name."""
    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in params:
            raise KeyError(f"{stem}: a card's prose names the parameter '{name}', which the chapter does not declare")
        return _shown(params[name])

    return PLACEHOLDER.sub(value, text)


def differences(card: PaperCard, stem: str, params: Mapping[str, Any], data: str, synthetic: bool,
                profile: str, follows_paper: bool = False, profile_note: str = "", data_why: str = "",
                splits: str = "") -> pd.DataFrame:
    """The chapter's "What differs from the paper" table: data, every setting this run changed, and
    every method departure, each with why (aspect, paper, this run, why).

    `follows_paper` marks a profile that starts from the cards (`full`): there a changed setting is
    the card's stated reason, or else the user's own choice. `data_why` says why this run read the
    data it read (for real data), `splits` the split this chapter ran on."""
    why_data = data_why or ("the built-in synthetic stand-in: the archive is not bundled (point `--data` at it)"
                            if synthetic else "the study's archive, as prepared by 00_data")
    rows = [("data", card.data, data, why_data)]
    if card.splits:
        rows.append(("splits", card.splits, splits or "as 00_data's summary states for this chapter", why_data))
    reasons = card.reasons.get(stem, {})
    for key, paper in card.settings.get(stem, {}).items():
        if key not in params:
            raise KeyError(f"{stem}: the card of study {card.study} sets '{key}', which the chapter does not declare")
        if _same(params[key], paper):
            continue
        budget = f"the {profile} profile" + (f" ({profile_note})" if profile_note else "")
        if follows_paper:
            why = reasons.get(key, f"set for this run, over the {profile} profile's paper value")
        else:
            why = budget + (f"; under full too: {reasons[key]}" if key in reasons else "")
        rows.append((key, _shown(paper), _shown(params[key]), why))
    rows += [(d.aspect, d.paper, fill(d.ours, params, stem), d.why) for d in card.methods.get(stem, ())]
    return pd.DataFrame(rows, columns=["aspect", "paper", "this run", "why"])
