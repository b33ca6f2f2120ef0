"""The registry of sources: one `Source` record per archive, each from its own module in `data/archives/`.

The loaders (`sources.load_source`), the catalog's targets, the synthetic generator's presets, the
workload estimate's archive sizes, `derm-nb download`'s files, the command line's choices and the README's
source table all read `SOURCES`. Adding a source: write `data/archives/<name>.py` with its `SOURCE`, and
list it in `BUILT_IN`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

from derm_nb.data.archive import Source
from derm_nb.data.archives import busi, ham10000, isic2017, isic2018, isic2019, isic2020
from derm_nb.data.errors import DataError

T = TypeVar("T")

BUILT_IN: tuple[Source, ...] = (isic2020.SOURCE, isic2019.SOURCE, isic2018.SOURCE, ham10000.SOURCE, isic2017.SOURCE,
                                busi.SOURCE)
SOURCES: dict[str, Source] = {}


class UnknownSource(DataError, KeyError):
    """A source name that is not registered; the message names it and the known ones."""

    def __str__(self) -> str:
        return str(self.args[0])


def register(source: Source) -> Source:
    """Add `source` under its name (a name taken by another record is an error); returns it."""
    if source.name in SOURCES and SOURCES[source.name] is not source:
        raise ValueError(f"a source named '{source.name}' is already registered ({SOURCES[source.name].title})")
    SOURCES[source.name] = source
    return source


def get(name: str) -> Source:
    """The source registered as `name`; UnknownSource naming it and the known sources otherwise."""
    try:
        return SOURCES[name]
    except KeyError:
        raise UnknownSource(f"unknown data source '{name}' (known: {', '.join(SOURCES)})") from None


def names() -> list[str]:
    """The registered sources' names, in registration order (the command line's choices)."""
    return list(SOURCES)


class View(Mapping[str, T]):
    """{name: one field of each registered source}, read when asked (a source registered later is in it)."""

    def __init__(self, field: Callable[[Source], T]) -> None:
        self._field = field

    def __getitem__(self, name: str) -> T:
        return self._field(SOURCES[name])

    def __iter__(self) -> Iterator[str]:
        return iter(SOURCES)

    def __len__(self) -> int:
        return len(SOURCES)


def source_table() -> str:
    """The README's table of sources (layout read, grouping, masks), rendered from the records."""
    rows = ["| source | layout read (as the archive ships it) | grouped by | masks |", "|---|---|---|---|"]
    rows += [f"| `{s.name}` | {s.files} | {s.grouping} | {s.masks} |" for s in SOURCES.values()]
    return "\n".join(rows)


for _source in BUILT_IN:
    register(_source)
