"""JupyterLab on the chapters: a round trip through Lab's save path leaves the tracked pair unchanged,
`make notebooks` strips outputs, and the settings land in the environment."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from derm_nb import lab
from derm_nb.chapters import CHAPTERS

LANGUAGE_INFO = {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py", "mimetype": "text/x-python",
                 "name": "python", "nbconvert_exporter": "python", "pygments_lexer": "ipython3", "version": "3.11.2"}


@pytest.fixture
def copy(root, tmp_path) -> Path:
    shutil.copytree(root / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return tmp_path


def test_opening_and_saving_an_unchanged_chapter_rewrites_nothing(copy):
    """What Lab does: read through jupytext's contents manager, the kernel adds language_info, autosave."""
    from jupytext import TextFileContentsManager

    manager = TextFileContentsManager(root_dir=str(copy), pre_save_hook="derm_nb.lab.pre_save")
    before = {p.name: p.read_bytes() for p in (copy / "notebooks").iterdir() if p.is_file()}
    for chapter in CHAPTERS:
        for suffix in (".py", ".ipynb"):
            model = manager.get(f"notebooks/{chapter.stem}{suffix}")
            model["content"]["metadata"]["language_info"] = dict(LANGUAGE_INFO)
            manager.save(model, f"notebooks/{chapter.stem}{suffix}")
    after = {p.name: p.read_bytes() for p in (copy / "notebooks").iterdir() if p.is_file()}
    assert [name for name in before if before[name] != after[name]] == []


def test_the_pre_save_hook_touches_chapters_only():
    model = {"type": "notebook", "content": {"metadata": {"language_info": {}, "kernelspec": {"name": "python3"}}}}
    lab.pre_save(model, "notebooks/02_baseline.ipynb")
    assert model["content"]["metadata"] == {"kernelspec": {"name": "python3"}}
    elsewhere = {"type": "notebook", "content": {"metadata": {"language_info": {}}}}
    lab.pre_save(elsewhere, "scratch/mine.ipynb")
    assert "language_info" in elsewhere["content"]["metadata"]


def _recipe(root: Path, target: str) -> list[str]:
    """The shell lines of a Makefile target, with $(RUN) as the environment's own executables."""
    text = (root / "Makefile").read_text()
    block = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", text, re.M).group(1)
    return [line.strip().replace("$(RUN) ", "") for line in block.splitlines()]


def test_make_notebooks_strips_outputs(root, copy):
    path = copy / "notebooks" / "02_baseline.ipynb"
    tracked = path.read_text()
    nb = nbformat.read(path, as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs, code.execution_count = [nbformat.v4.new_output("stream", text="ran by hand\n")], 7
    nb.metadata["language_info"] = dict(LANGUAGE_INFO)
    nbformat.write(nb, path)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for line in _recipe(root, "notebooks"):
        subprocess.run(line, shell=True, cwd=copy, env=env, check=True, capture_output=True)
    assert path.read_text() == tracked


def test_install_writes_the_viewer_and_the_hook_and_keeps_other_settings(tmp_path):
    server = tmp_path / "etc" / "jupyter" / "jupyter_server_config.json"
    server.parent.mkdir(parents=True)
    server.write_text(json.dumps({"ServerApp": {"port": 9999}, "ContentsManager": {"allow_hidden": True}}))
    written = lab.install(tmp_path)
    viewers = json.loads(written[0].read_text())["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers == {"python": "Jupytext Notebook"}
    config = json.loads(server.read_text())
    assert config["ServerApp"] == {"port": 9999}
    assert config["ContentsManager"] == {"allow_hidden": True, "pre_save_hook": "derm_nb.lab.pre_save"}
    assert lab.install(tmp_path) == written and json.loads(server.read_text()) == config  # idempotent
