"""What a chapter asks of the machine, in units a study states: model passes (images x epochs x variants)
at an archive's size as it ships, for `bench --estimate`.

Each study states its own chapters' passes (`workload(stem, params, n)` in its module) with `Pass` and
`epochs_of`; the archives' sizes are their `Source.published` records (`data/registry.py`);
`derm_nb.book_workload` gathers every study's passes (it is the one that imports the studies).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from derm_nb.data.archive import Scale

__all__ = ["Pass", "Scale", "epochs_of", "pretrained", "split_sizes"]


@dataclass(frozen=True)
class Pass:
    """`images` forward passes (with backward and step when `train`) of `backbone` at `size` px.

    `build` makes the model where `backbone` is no torchvision or timm name (a study's own network);
    `probe(device)` gives one unit's step to time where the unit is no image (a graph, a bag);
    `stands_in_for` names the backbone the study asks for where `backbone` is the stand-in that runs here.
    """

    what: str
    backbone: str
    size: int
    images: float
    train: bool = True
    build: Callable[[], nn.Module] | None = None
    probe: Callable[[torch.device], Callable[[], None]] | None = None
    stands_in_for: str = ""


def pretrained(p: Mapping[str, Any], backbone: str) -> dict[str, str]:
    """`Pass` fields for an ImageNet-initialised `backbone` under the chapter's `weights` and
    `weights_fallback`: the stand-in where that is what would run here, so the estimate times it."""
    from derm_nb.models.backbones import built_offline

    built = built_offline(backbone, p.get("weights", "none"), p.get("weights_fallback", ""))
    return {"backbone": built, "stands_in_for": "" if built == backbone else backbone}


def split_sizes(scale: Scale, split: Mapping[str, float]) -> dict[str, float]:
    """Images per split: the official partitions where the archive has them, else the study's ratios."""
    if scale.official:
        return {name: float(n) for name, n in scale.official.items()}
    total = sum(split.values())
    return {name: scale.images * share / total for name, share in split.items()}


def epochs_of(p: Mapping[str, Any], train: float, val: float, what: str, backbone: str, size: int,
              factor: float = 1.0, epochs: int | None = None, stands_in_for: str = "") -> list[Pass]:
    """A classifier's usual passes: `factor` x `train` images per epoch, a validation pass per epoch, for
    every epoch (an upper bound: early stopping may end sooner)."""
    n = epochs if epochs is not None else p["epochs"]
    return [Pass(what, backbone, size, train * factor * n, stands_in_for=stands_in_for),
            Pass(f"{what}: validation", backbone, size, val * n, False, stands_in_for=stands_in_for)]
