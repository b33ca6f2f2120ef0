"""The package's progress bars: tqdm on stdout.

In an executed notebook a bar on stderr is shown as a pink error box; on stdout it is ordinary
output, and the book keeps only each bar's last state (`runner.for_the_page`). Bars are not nested:
in a notebook a nested bar prints a line per refresh.

Off a terminal (a notebook kernel, a log file) every refresh is a message the notebook client handles and
keeps: a bar there refreshes at most once a second (`NOTEBOOK_INTERVAL`), not tqdm's ten times.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

NOTEBOOK_INTERVAL = 1.0  # seconds between a bar's refreshes off a terminal
QUIET = {"on": False}  # set in a Dask worker: its variant tasks' bars would only interleave in the launcher's terminal


def bar(iterable: Iterable | None = None, **kwargs: Any) -> tqdm:
    """`tqdm(iterable, **kwargs)` writing to the current stdout (the kernel's, inside a notebook), refreshed
    at most once a second there unless `mininterval` is given."""
    disable = kwargs.pop("disable", False) or QUIET["on"]
    out = sys.stdout
    if not _is_terminal(out):
        kwargs.setdefault("mininterval", NOTEBOOK_INTERVAL)
    return tqdm(iterable, file=out, disable=disable, **kwargs)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or stand-in stream
        return False
