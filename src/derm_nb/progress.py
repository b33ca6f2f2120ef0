"""The package's progress bars: tqdm on stdout.

In an executed notebook a bar on stderr is shown as a pink error box; on stdout it is ordinary
output, and the book keeps only each bar's last state (`runner.for_the_page`). Bars are not nested:
in a notebook a nested bar prints a line per refresh.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

QUIET = {"on": False}  # set in a Dask worker: its variant tasks' bars would only interleave in the launcher's terminal


def bar(iterable: Iterable | None = None, **kwargs: Any) -> tqdm:
    """`tqdm(iterable, **kwargs)` writing to the current stdout (the kernel's, inside a notebook)."""
    disable = kwargs.pop("disable", False) or QUIET["on"]
    return tqdm(iterable, file=sys.stdout, disable=disable, **kwargs)
