"""The book's workload for `bench --estimate`: every model chapter's passes, gathered from the studies.

Beside bench and the runner, this is a face that reads every study through the studies' registry; the
units (`Pass`, `split_sizes`, `epochs_of`) are in `derm_nb.workload`, which the studies import, and
each archive's size as it ships is its `Source.published` record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from derm_nb.chapters import CHAPTERS, spec
from derm_nb.data import registry
from derm_nb.data.archive import Scale
from derm_nb.studies import dataset_uses, study
from derm_nb.workload import Pass, split_sizes


def published_scale(source: str, target: str) -> Scale:
    """`source`'s published size under `target`; ValueError naming both when its record has none."""
    record = registry.get(source)
    if target not in record.published:
        raise ValueError(f"no published size of {source} for the target '{target}' (its record states "
                         f"{', '.join(record.published) or 'none'}): add it to data/archives/{source}.py")
    return record.published[target]


def archive_images() -> int:
    """Images in every archive the studies read by default (each source and target once)."""
    return sum(published_scale(*a).images for a in {(u.source, u.target) for u in dataset_uses().values()})


def chapter_numbers(stem: str, params: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """What a chapter's workload is computed from: its slot's split sizes, groups, positives and
    classes at archive scale (training-split shares), and the run's cache size."""
    chapter = spec(stem)
    use = dataset_uses()[chapter.dataset]
    scale = published_scale(use.source, use.target)
    sizes = split_sizes(scale, study(chapter.study).SPLIT)
    share = sizes["train"] / scale.images
    return {**sizes, "groups_train": scale.groups * share, "positives_train": scale.positives * share,
            "classes_train": {c: n * sizes["train"] / sum(scale.classes.values()) for c, n in scale.classes.items()},
            "cache_size": params["00_data"]["cache_size"], "source": use.source}


def passes(params: Mapping[str, Mapping[str, Any]]) -> dict[str, list[Pass]]:
    """{chapter: its passes} for every model chapter, from a profile's resolved parameters."""
    out = {}
    for chapter in CHAPTERS:
        if chapter.kind == "model":
            out[chapter.stem] = study(chapter.study).workload(chapter.stem, params[chapter.stem],
                                                              chapter_numbers(chapter.stem, params))
    return out
