"""Paired notebooks: the .py and .ipynb hold the same cells, no outputs, a kernelspec; one registry."""

from __future__ import annotations

import json
import subprocess

import jupytext
import nbformat
import pytest
import yaml

from derm_nb.chapters import CHAPTERS

STEMS = [nb.stem for nb in CHAPTERS]


def cells(nb):
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in nb.cells]


@pytest.mark.parametrize("stem", STEMS)
def test_pair_is_in_sync(root, stem):
    text = jupytext.read(root / "notebooks" / f"{stem}.py")
    ipynb = nbformat.read(root / "notebooks" / f"{stem}.ipynb", as_version=4)
    assert cells(text) == cells(ipynb), f"{stem}.py and {stem}.ipynb differ: run `make notebooks`"
    assert ipynb.metadata["kernelspec"]["name"] == "python3"
    assert text.metadata["kernelspec"]["name"] == "python3"
    assert "parameters" in [t for c in ipynb.cells for t in c.metadata.get("tags", [])]


def test_sync_check_fails_when_a_pair_drifts(root, tmp_path):
    text = jupytext.read(root / "notebooks" / f"{STEMS[0]}.py")
    ipynb = nbformat.read(root / "notebooks" / f"{STEMS[0]}.ipynb", as_version=4)
    ipynb.cells[-1].source += "\nprint('edited only in the ipynb')"
    assert cells(text) != cells(ipynb)


def tracked_notebooks(root):
    out = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=root, capture_output=True, text=True)
    return [root / p for p in out.stdout.split()] if out.returncode == 0 else []


def has_outputs(path) -> bool:
    nb = json.loads(path.read_text())
    return any(c.get("outputs") or c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code")


def test_no_committed_notebook_holds_outputs(root):
    for path in list((root / "notebooks").glob("*.ipynb")) + tracked_notebooks(root):
        assert not has_outputs(path), f"{path} holds outputs: run `make notebooks` to strip them"


def test_output_check_catches_outputs(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1", outputs=[
        nbformat.v4.new_output("execute_result", data={"text/plain": "1"}, execution_count=1)])])
    nbformat.write(nb, tmp_path / "x.ipynb")
    assert has_outputs(tmp_path / "x.ipynb")


def test_registry_files_and_toc_agree(root):
    files = sorted(p.stem for p in (root / "notebooks").glob("[0-9][0-9]_*.py"))
    assert files == sorted(STEMS)
    assert sorted(p.stem for p in (root / "notebooks").glob("[0-9][0-9]_*.ipynb")) == sorted(STEMS)
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    chapters = [c["file"] for part in toc.get("parts", [toc]) for c in part["chapters"]]
    assert chapters == [f"notebooks/{s}" for s in STEMS]
    for nb in CHAPTERS:
        assert all(STEMS.index(need) < STEMS.index(nb.stem) for need in nb.needs)


def test_book_config_does_not_execute(root):
    config = yaml.safe_load((root / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"


def test_the_page_shows_each_progress_bar_at_its_last_state():
    """tqdm's refreshes arrive as separate stream outputs; MyST-NB alone would print each on its own line."""
    from myst_nb.core.utils import coalesce_streams

    from derm_nb.runner import for_the_page

    refreshes = [f"\rRecipe epoch 1/2: {p:3d}%|" for p in (0, 50, 100)] + ["\n", "\rRecipe epoch 2/2: 100%|", "\n"]
    outputs = [nbformat.v4.new_output("stream", name="stdout", text=t) for t in refreshes]
    outputs.append(nbformat.v4.new_output("stream", name="stderr", text="a warning\n"))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("train()", outputs=outputs)])
    shown = coalesce_streams(for_the_page(nb).cells[0].outputs)
    assert [o["text"] for o in shown] == ["Recipe epoch 1/2: 100%|\nRecipe epoch 2/2: 100%|\n", "a warning\n"]
    assert "hide-input" in nb.cells[0].metadata["tags"]
