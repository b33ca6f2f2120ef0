"""One way to map a function over many files: worker processes with a progress bar, serial when small."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from derm_nb.progress import bar

T = TypeVar("T")
R = TypeVar("R")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's or a batch job's share), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no sched_getaffinity
        return os.cpu_count() or 1


def default_workers(workers: int = 0) -> int:
    """`workers`, or (for 0) one process per available core."""
    return workers or available_cores()


def parallel_map(fn: Callable[[T], R], items: Sequence[T], workers: int = 0, desc: str = "",
                 unit: str = "img", chunksize: int = 16, min_items: int = 32) -> list[R]:
    """`[fn(x) for x in items]` in order; in worker processes when there are enough items to pay for them."""
    workers = default_workers(workers)
    if workers > 1 and len(items) > min_items:
        with ProcessPoolExecutor(workers) as pool:
            return list(bar(pool.map(fn, items, chunksize=chunksize), total=len(items), desc=desc, unit=unit))
    return [fn(x) for x in bar(items, desc=desc, unit=unit)]
