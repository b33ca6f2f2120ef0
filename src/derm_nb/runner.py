"""Execute the book's notebooks with papermill in dependency order, and build the HTML book."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jupytext
import nbformat
import papermill
from tqdm.auto import tqdm

from derm_nb.artifacts import read_json, write_json
from derm_nb.chapters import CHAPTERS, catalog_record, missing_slots, reads_real_data, spec
from derm_nb.params import Declared, Profile, declared_from_inspection, load_profile, merge_values
from derm_nb.studies import paper_settings

KERNEL = "python3"
KERNELSPEC = {"name": KERNEL, "display_name": "Python 3", "language": "python"}


class NotebookFailed(RuntimeError):
    """A notebook raised while papermill executed it."""


def source_path(root: Path, stem: str) -> Path:
    """The reviewed text form of a notebook, `notebooks/<stem>.py`."""
    return root / "notebooks" / f"{stem}.py"


def read_source(root: Path, stem: str) -> nbformat.NotebookNode:
    """Read the text notebook with jupytext (one way: the `.py` is the source of truth)."""
    nb = jupytext.read(source_path(root, stem))
    nb.metadata.setdefault("kernelspec", dict(KERNELSPEC))
    return nb


def prepare_inputs(root: Path, run_dir: Path, stems: Sequence[str]) -> dict[str, Path]:
    """Write each notebook's `.ipynb` input under `runs/<profile>/notebooks/_inputs/`."""
    folder = run_dir / "notebooks" / "_inputs"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for stem in stems:
        path = folder / f"{stem}.ipynb"
        nbformat.write(read_source(root, stem), path)
        paths[stem] = path
    return paths


def declared_parameters(inputs: Mapping[str, Path]) -> dict[str, dict[str, Declared]]:
    """Each notebook's declared parameters, from its `parameters`-tagged cell."""
    declared = {}
    for stem, path in inputs.items():
        inspected = papermill.inspect_notebook(str(path))
        if not inspected:
            raise NotebookFailed(f"{stem}: no cell tagged 'parameters'; papermill could not inject parameters")
        declared[stem] = declared_from_inspection(inspected)
    return declared


def load_run_profile(root: Path, inputs_dir: Path, profile_name: str, user_params: Path | None = None,
                     overrides: Mapping[str, Any] | None = None) -> tuple[dict[str, Path], dict, Profile]:
    """The chapters' run inputs (written to `inputs_dir`), their declared parameters, and the profile
    loaded over them (the full profile starting from the paper cards)."""
    inputs = prepare_inputs(root, inputs_dir, [c.stem for c in CHAPTERS])
    declared = declared_parameters(inputs)
    return inputs, declared, load_profile(root, profile_name, declared, user_params, overrides, paper_settings())


def resolved_parameters(root: Path, profile_name: str, user_params: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every notebook's parameters as a run under `profile_name` would see them: its own defaults with
    the profile's (and `user_params`') values injected, checked like a run."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        _, declared, profile = load_run_profile(root, Path(tmp), profile_name, user_params)
    return {stem: {name: d.default for name, d in declared[stem].items()} | profile.for_notebook(stem, declared[stem])
            for stem in declared}


def execution_order(only: Sequence[str] | None) -> list[str]:
    """All notebooks in registry order, or the named ones (checked to exist) in that order."""
    if not only:
        return [c.stem for c in CHAPTERS]
    wanted = {spec(name).stem for name in only}
    return [c.stem for c in CHAPTERS if c.stem in wanted]


def executed_path(run_dir: Path, stem: str) -> Path:
    return run_dir / "notebooks" / f"{stem}.ipynb"


def _failure_message(stem: str, output: Path, err: Exception) -> str:
    cell = getattr(err, "cell_index", None)
    count = getattr(err, "exec_count", None)
    ename = getattr(err, "ename", type(err).__name__)
    evalue = getattr(err, "evalue", str(err))
    where = f"cell {cell} (execution count {count})" if cell is not None else "before any cell ran"
    return f"notebook {stem} failed at {where}: {ename}: {evalue}\n  executed copy with the traceback: {output}"


def skipped_notebook(root: Path, stem: str, reasons: Mapping[str, str]) -> nbformat.NotebookNode:
    """The executed copy of a chapter this run skips: its title and why, so the book shows the gap."""
    title = next((line for cell in read_source(root, stem).cells if cell.cell_type == "markdown"
                  for line in cell.source.splitlines() if line.startswith("# ")), f"# {stem}")
    why = "\n".join(f"* {message}." for message in reasons.values())
    note = (f"{title}\n\n```{{note}}\nThis chapter was **skipped** in this run (`missing_data: skip`):\n\n"
            f"{why}\n```\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(note)])
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    return nb


def check_data(run_dir: Path, stem: str) -> dict[str, str]:
    """{slot: message} of the slots `stem` reads that this run has no data for; NotebookFailed under
    `missing_data: error`, so a chapter never starts on data it lacks."""
    if stem == "00_data" or not spec(stem).slots:
        return {}
    record = catalog_record(run_dir)
    reasons = missing_slots(stem, record)
    if reasons and record["policy"] == "error":
        raise NotebookFailed(f"{stem} cannot run: " + "; ".join(reasons.values()))
    return reasons


@dataclass(frozen=True)
class ChapterJob:
    """What one chapter run needs, wherever it runs (this process or a Dask worker)."""

    root: Path
    run_dir: Path
    stem: str
    notebook: Path
    parameters: dict
    sources: list[str]
    takes_scheduler: bool = False   # the notebook declares `scheduler`: its variants may run as Dask tasks
    real_parameters: dict = field(default_factory=dict)   # the profile's `real_data` keys, for a real folder


def job_parameters(job: ChapterJob) -> dict:
    """The chapter's parameters, with the profile's `real_data` keys over them where it reads a real folder
    (decided when it starts, from 00_data's catalog)."""
    parameters = dict(job.parameters)
    if job.real_parameters and reads_real_data(job.run_dir, job.stem, parameters.get("data") or {}):
        merge_values(parameters, job.real_parameters)
    return parameters


def run_chapter(job: ChapterJob, scheduler: str = "") -> dict:
    """Execute one chapter with papermill (or write its skip note); return its run_log entry, with its
    start and finish times, so a parallel run's intervals can be read back. A chapter that declares
    `scheduler` is given the run's scheduler address (empty on a serial run)."""
    output = executed_path(job.run_dir, job.stem)
    started = time.time()
    entry: dict[str, Any] = {"started": started, "sources": job.sources}
    reasons = check_data(job.run_dir, job.stem)
    if reasons:
        nbformat.write(skipped_notebook(job.root, job.stem, reasons), output)
        return entry | {"seconds": 0.0, "skipped": list(reasons.values()), "ended": time.time()}
    parameters = job_parameters(job)
    try:
        papermill.execute_notebook(str(job.notebook), str(output), kernel_name=KERNEL,
                                   parameters=parameters | ({"scheduler": scheduler} if job.takes_scheduler and scheduler
                                                            else {}),
                                   cwd=str(job.root / "notebooks"), progress_bar=False, report_mode=False)
    except papermill.PapermillExecutionError as err:
        raise NotebookFailed(_failure_message(job.stem, output, err)) from err
    ended = time.time()
    return entry | {"seconds": round(ended - started, 2), "ended": ended,
                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ended)), "parameters": parameters}


def run_notebooks(
    root: Path,
    profile_name: str,
    only: Sequence[str] | None = None,
    user_params: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    run_dir: Path | None = None,
    workers: int = 0,
    scheduler: str | None = None,
) -> dict[str, float]:
    """Execute notebooks under a profile into `runs/<profile>/notebooks/`; return wall seconds per notebook.
    Serially in this process by default; on Dask with `workers` local processes or an existing `scheduler`."""
    run_dir = (run_dir or root / "runs" / profile_name).resolve()
    inputs, declared, profile = load_run_profile(root, run_dir, profile_name, user_params, overrides)
    order = execution_order(only)
    for stem in order:
        for need in spec(stem).needs:
            if need not in order and not executed_path(run_dir, need).is_file():
                raise NotebookFailed(f"{stem} needs {need}, which has not run under '{profile_name}': run it first")
    jobs = {stem: ChapterJob(root, run_dir, stem, inputs[stem],
                             profile.for_notebook(stem, declared[stem]) | {"run_dir": str(run_dir)}, profile.sources,
                             "scheduler" in declared[stem], dict(profile.real_data.get(stem, {})))
            for stem in order}
    log_path = run_dir / "run_log.json"
    log = read_json(log_path) if log_path.is_file() else {}
    timings: dict[str, float] = {}

    def done(stem: str, entry: dict) -> None:
        log[stem] = entry
        if not entry.get("skipped"):
            timings[stem] = entry["seconds"]
        write_json(log_path, log)

    if workers or scheduler:
        from derm_nb.cluster import book_client, chapter_graph, run_graph, wants_gpu

        gpu = wants_gpu(str(profile.common.get("device", "auto")))
        with book_client(workers, scheduler, gpu) as client:
            run_graph(client, jobs, run_chapter, chapter_graph(order), gpu, done)
        return {stem: timings[stem] for stem in order if stem in timings}
    progress = tqdm(order, desc=f"notebooks [{profile_name}]", unit="nb")
    for stem in progress:
        progress.set_postfix_str(stem)
        done(stem, run_chapter(jobs[stem]))
    return timings


def for_the_page(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """An executed chapter as the book shows it: papermill's injected cell (it holds this machine's run
    path) removed, every other code cell folded behind a toggle, so prose, figures and tables lead, and
    each progress bar at its last state (MyST-NB's own stream merging ends every refresh with a newline)."""
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor

    nb, _ = CoalesceStreamsPreprocessor().preprocess(nb, {})
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.setdefault("tags", [])
        extra = "remove-cell" if "injected-parameters" in tags else "hide-input"
        if extra not in tags:
            tags.append(extra)
    return nb


def build_book(root: Path, profile_name: str, run_dir: Path | None = None) -> Path:
    """Stage `_config.yml`, `_toc.yml`, `book/` and the executed notebooks, then build HTML."""
    run_dir = (run_dir or root / "runs" / profile_name).resolve()
    missing = [c.stem for c in CHAPTERS if not executed_path(run_dir, c.stem).is_file()]
    if missing:
        raise NotebookFailed(
            f"cannot build the '{profile_name}' book: not executed yet: {', '.join(missing)} "
            f"(run `derm-nb run --profile {profile_name}` first)"
        )
    stage = run_dir / "book"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, stage / name)
    shutil.copytree(root / "book", stage / "book")
    (stage / "notebooks").mkdir()
    for nb in CHAPTERS:
        nbformat.write(for_the_page(nbformat.read(executed_path(run_dir, nb.stem), as_version=4)),
                       stage / "notebooks" / f"{nb.stem}.ipynb")
    jb = Path(sys.executable).with_name("jupyter-book")
    # -W --keep-going: a warning (a broken reference, a missing glue key) fails the build, and every
    # warning is reported, not only the first.
    cmd = [str(jb if jb.exists() else "jupyter-book"), "build", str(stage), "--builder", "html", "-W", "--keep-going"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        problems = [line for line in (result.stdout + result.stderr).splitlines() if "WARNING" in line or "ERROR" in line]
        raise RuntimeError("jupyter-book build failed:\n" + "\n".join(problems[:40])
                           + f"\n...\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    index = stage / "_build" / "html" / "index.html"
    if not index.is_file():
        raise RuntimeError(f"jupyter-book reported success but wrote no {index}")
    return index
