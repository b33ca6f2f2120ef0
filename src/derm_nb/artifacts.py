"""Where a run's outputs live, and how they are written without ever leaving a half-written file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def project_root(start: Path | None = None) -> Path:
    """The repository root: the nearest folder above `start` holding `pyproject.toml` and `params/`."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "params").is_dir():
            return folder
    raise FileNotFoundError(
        f"no derm-nb project root (a folder with pyproject.toml and params/) above {here}; "
        "pass run_dir explicitly"
    )


def run_dir_for(profile: str, run_dir: str | os.PathLike[str] = "") -> Path:
    """`runs/<profile>` under the project root unless an explicit run folder is given."""
    return Path(run_dir).resolve() if str(run_dir) else project_root() / "runs" / profile


def notebook_dir(run_dir: str | os.PathLike[str], stem: str) -> Path:
    """The artifact folder `runs/<profile>/<notebook-stem>/`, created if missing."""
    folder = Path(run_dir) / stem
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def current_umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it over `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~current_umask())  # mkstemp makes 0600; an ordinary write honours the umask
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_atomic(target: str | os.PathLike[str], write: Callable[[Path], Any]) -> Path:
    """Call `write(tmp_path)` and move the result onto `target` in one rename."""
    with atomic_path(target) as tmp:
        write(tmp)
    return Path(target)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json(target: str | os.PathLike[str], data: Any) -> Path:
    """Write `data` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=False, default=_json_default)
    return write_atomic(target, lambda p: p.write_text(text + "\n", encoding="utf-8"))


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_parquet(target: str | os.PathLike[str], frame: pd.DataFrame) -> Path:
    """Write a DataFrame to parquet, atomically."""
    return write_atomic(target, lambda p: frame.to_parquet(p, index=False))


def write_csv(target: str | os.PathLike[str], frame: pd.DataFrame) -> Path:
    """Write a DataFrame to CSV, atomically."""
    return write_atomic(target, lambda p: frame.to_csv(p, index=False))
