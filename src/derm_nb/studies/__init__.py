"""The five studies, one place each. Every study exposes the same face (`tests/test_study_face.py`):

- `SPLIT`: its split scheme ({split: ratio}), and `OFFICIAL_SPLIT = True` where it used the
  archive's own partitions;
- `DATASETS`: its data slots, each with its paper's source and target (`derm_nb.data.catalog.Use`);
- `CARD`: its paper card (the paper's data and published figures);
- `params(stem, parameters)`: a typed parameters dataclass per chapter, from the notebook's parameters;
- `variants(params)`: {name: variant}, what the chapter trains;
- `train_variant(variant, inputs)`: one variant trained and scored (run by `cluster.run_variants`);
- `findings(results, ...)`: the numbers the chapter's prose glues, robust to skipped or None metrics;
- `verdict(rows)`: one line for the summary from its chapter's metrics (indexed by variant);
- `workload(stem, p, n)`: its chapters' passes at archive scale, for `bench --estimate`.

Studies never import each other, and the shared core never imports a study.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from derm_nb.cards import PaperCard
from derm_nb.data.catalog import Use

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


def official_schemes() -> set[str]:
    """The schemes that take an archive's own train/val/test partitions where it ships them."""
    return {name for sid, name in STUDIES.items() if getattr(study(sid), "OFFICIAL_SPLIT", False)}


def dataset_uses() -> dict[str, Use]:
    """Every study's data slots ({slot: Use}), in study order: the catalog's defaults."""
    return {slot: use for sid in STUDIES for slot, use in study(sid).DATASETS.items()}


def cards() -> list[PaperCard]:
    """Every study's paper card, in study order."""
    return [study(sid).CARD for sid in STUDIES]


def paper_settings() -> dict[str, dict[str, object]]:
    """Every chapter's settings as its study's paper ran them ({notebook: {parameter: value}}), from the cards."""
    settings: dict[str, dict[str, object]] = {}
    for sid in STUDIES:
        for stem, values in study(sid).CARD.settings.items():
            settings.setdefault(stem, {}).update(values)
    return settings
