"""JupyterLab for the book's chapters: a double-click on a paired `.py` opens it as a notebook, and
opening and saving an unchanged chapter leaves both tracked files as they were.

`install()` (run by `make setup`, or `python -m derm_nb.lab`) writes two settings into the
environment, never the user's home: Lab's default viewer for Python files (what
`jupytext-config set-default-viewer python` sets per user) and a server pre-save hook that drops
the kernel's `language_info` from a chapter's `.ipynb`. The `.py` header is kept stable by the
metadata filter in `notebooks/jupytext.toml`. `strip()` (`make notebooks`) removes outputs from a
chapter's `.ipynb`, which is tracked without them.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

VIEWER = {"@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"python": "Jupytext Notebook"}}}
SERVER = {"ContentsManager": {"pre_save_hook": "derm_nb.lab.pre_save"}}
VOLATILE = ("language_info", "widgets")  # written by the connected kernel / widget manager, not by the author
CHAPTER = re.compile(r"(^|/)notebooks/\d\d_[^/]+\.ipynb$")


def pre_save(model: dict[str, Any], path: str, **_: Any) -> None:
    """Jupyter server pre-save hook: a chapter notebook is saved without the kernel's volatile metadata."""
    if model.get("type") == "notebook" and CHAPTER.search(path.replace("\\", "/")):
        for key in VOLATILE:
            model["content"]["metadata"].pop(key, None)


def strip(path: str | Path) -> bool:
    """Remove outputs, execution counts and run-time metadata from a chapter's `.ipynb`; True if it changed."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    for key in VOLATILE:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    after = nbformat.writes(nb)
    if after != before:
        Path(path).write_text(after + "\n")
    return after != before


def _merge(path: Path, settings: dict[str, Any]) -> Path:
    """Merge `settings` (two levels deep) into the JSON file at `path`, keeping what else it holds."""
    current = json.loads(path.read_text()) if path.is_file() else {}
    for section, values in settings.items():
        merged = current.setdefault(section, {})
        for key, value in values.items():
            merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(current, indent=2) + "\n")
    return path


def install(prefix: str | Path = sys.prefix) -> list[Path]:
    """Write Lab's default viewer and the server's pre-save hook into the environment at `prefix`."""
    prefix = Path(prefix)
    return [_merge(prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json", VIEWER),
            _merge(prefix / "etc" / "jupyter" / "jupyter_server_config.json", SERVER)]


def main(argv: list[str]) -> int:
    """`python -m derm_nb.lab`: install the settings; `python -m derm_nb.lab --strip NB.ipynb ...`: strip them."""
    if argv[:1] == ["--strip"]:
        for path in argv[1:]:
            if strip(path):
                print(f"outputs and run-time metadata stripped: {path}")
        return 0
    for written in install():
        print(f"JupyterLab setting written: {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
