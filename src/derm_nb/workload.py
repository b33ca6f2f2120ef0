"""What a profile asks of the machine, chapter by chapter: model passes (images x epochs x variants)
from the resolved parameters and the size of each study's archive as it ships, for `bench --estimate`.

Each study states its own chapters' passes (`workload(stem, params, n)` in its module); this module
supplies the archive sizes and the split sizes they give, and gathers every study's passes through
the registry (a face, like the command line).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from derm_nb.chapters import CHAPTERS, spec


@dataclass(frozen=True)
class Pass:
    """`images` forward passes (with backward and step when `train`) of `backbone` at `size` px.

    `build` makes the model where `backbone` is no torchvision or timm name (a study's own network);
    `probe(device)` gives one unit's step to time where the unit is no image (a graph, a bag).
    """

    what: str
    backbone: str
    size: int
    images: float
    train: bool = True
    build: Callable[[], nn.Module] | None = None
    probe: Callable[[torch.device], Callable[[], None]] | None = None


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


# The archives' published counts (training sets; ISIC 2017 with its official partitions).
ARCHIVE_SCALES: dict[tuple[str, str], Scale] = {
    ("isic2020", "melanoma"): Scale(33126, 2056, 584),
    ("isic2018", "malignant"): Scale(10015, 7470, 1954),
    ("isic2019", "melanoma_vs_nevus"): Scale(17397, 17397, 4522, {"MEL": 4522, "NV": 12875}),
    ("busi", "malignant"): Scale(780, 780, 210, {"benign": 437, "malignant": 210, "normal": 133}),
    ("isic2017", "melanoma"): Scale(2750, 2750, 521, {"melanoma": 374, "seborrheic_keratosis": 254, "nevus": 1372},
                                    {"train": 2000, "val": 150, "test": 600}),
}


def archive_images() -> int:
    """Images in every archive the studies read by default (each source and target once)."""
    from derm_nb.studies import dataset_uses

    return sum(ARCHIVE_SCALES[a].images for a in {(u.source, u.target) for u in dataset_uses().values()})


def split_sizes(scale: Scale, split: Mapping[str, float]) -> dict[str, float]:
    """Images per split: the official partitions where the archive has them, else the study's ratios."""
    if scale.official:
        return {name: float(n) for name, n in scale.official.items()}
    total = sum(split.values())
    return {name: scale.images * share / total for name, share in split.items()}


def chapter_numbers(stem: str, params: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """What a chapter's workload is computed from: its slot's split sizes, groups, positives and
    classes at archive scale (training-split shares), and the run's cache size."""
    from derm_nb.studies import dataset_uses, study

    chapter = spec(stem)
    use = dataset_uses()[chapter.dataset]
    scale = ARCHIVE_SCALES[(use.source, use.target)]
    sizes = split_sizes(scale, study(chapter.study).SPLIT)
    share = sizes["train"] / scale.images
    return {**sizes, "groups_train": scale.groups * share, "positives_train": scale.positives * share,
            "classes_train": {c: n * sizes["train"] / sum(scale.classes.values()) for c, n in scale.classes.items()},
            "cache_size": params["00_data"]["cache_size"], "source": use.source}


def passes(params: Mapping[str, Mapping[str, Any]]) -> dict[str, list[Pass]]:
    """{chapter: its passes} for every model chapter, from a profile's resolved parameters."""
    from derm_nb.studies import study

    out = {}
    for chapter in CHAPTERS:
        if chapter.kind == "model":
            out[chapter.stem] = study(chapter.study).workload(chapter.stem, params[chapter.stem],
                                                              chapter_numbers(chapter.stem, params))
    return out


def epochs_of(p: Mapping[str, Any], train: float, val: float, what: str, backbone: str, size: int,
              factor: float = 1.0, epochs: int | None = None) -> list[Pass]:
    """A classifier's usual passes: `factor` x `train` images per epoch, a validation pass per epoch, for
    every epoch (an upper bound: early stopping may end sooner)."""
    n = epochs if epochs is not None else p["epochs"]
    return [Pass(what, backbone, size, train * factor * n), Pass(f"{what}: validation", backbone, size, val * n, False)]
