"""Paper cards: each study's published figures, quoted as the paper's, with the data they came from.

A card lives beside its study's code (`derm_nb.studies.studyNNN.CARD`); this module holds the
type and the display helpers every chapter shares.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd


@dataclass(frozen=True)
class PaperCard:
    """One study's paper: its data, its published tables, notes, and headline figures for the summary.

    `headlines` are (model, metric, value, data) rows; every value is the paper's, never ours.
    """

    study: str
    title: str
    data: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    headlines: tuple[tuple[str, str, float, str], ...] = ()

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
