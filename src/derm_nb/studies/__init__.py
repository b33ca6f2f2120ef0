"""The five studies, one place each. Every study exposes the same small face:

- `SPLIT`: its split scheme ({split: ratio});
- its transforms and model builders;
- its named variants;
- `CARD`: its paper card (the paper's data and published figures);
- `verdict(rows)`: one line for the summary from its chapter's metrics (indexed by variant).

Studies never import each other, and the shared core never imports a study.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from derm_nb.cards import PaperCard

STUDIES: dict[str, str] = {"000": "study000", "001": "study001", "002": "study002", "003": "study003",
                           "004": "study004"}


def study(study_id: str) -> ModuleType:
    """The module of study `study_id` ('000' ... '004')."""
    if study_id not in STUDIES:
        raise KeyError(f"unknown study '{study_id}' (known: {', '.join(STUDIES)})")
    return importlib.import_module(f"derm_nb.studies.{STUDIES[study_id]}")


def split_schemes() -> dict[str, dict[str, float]]:
    """Every study's split scheme, named `studyNNN` as the manifest's `split_studyNNN` columns."""
    return {name: dict(study(sid).SPLIT) for sid, name in STUDIES.items()}


def cards() -> list[PaperCard]:
    """Every study's paper card, in study order."""
    return [study(sid).CARD for sid in STUDIES]
