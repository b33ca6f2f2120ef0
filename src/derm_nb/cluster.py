"""Dask distributed for the book: the chapter graph on a cluster, and a chapter's independent variants as tasks.

`derm-nb run --workers N` starts a local cluster of N worker processes; `--scheduler ADDRESS`
joins an existing one (dask-jobqueue, Kubernetes, ...). Each worker has one thread and one
`chapter` slot (and, on CUDA, one `GPU`): a chapter task holds the slot while papermill runs its
kernel, and secedes from the thread pool, so the worker's thread stays free for variant tasks.
A chapter kernel is given the scheduler's address as its `scheduler` parameter, and its context's
client (`ChapterContext.client`) is passed to `run_variants`; without one, variants run serially.
No module holds a client.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from derm_nb.chapters import spec
from derm_nb.progress import bar
from derm_nb.variant_io import load_result, save_result

CHAPTER_SLOT = "chapter"
GPU = "GPU"

T = TypeVar("T")
R = TypeVar("R")


class ClusterError(RuntimeError):
    """The cluster cannot run the book (no worker offers a chapter slot, none joined in time)."""


def chapter_graph(order: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Each chapter's upstream chapters within `order`: the registry's reads, and for the appendix
    (which reports the run's notebook times) every other chapter."""
    graph = {}
    for stem in order:
        if spec(stem).kind == "appendix":
            graph[stem] = tuple(s for s in order if s != stem)
        else:
            graph[stem] = tuple(s for s in spec(stem).needs if s in order)
    return graph


def chapter_resources(gpu: bool) -> dict[str, int]:
    """What one chapter task asks of a worker: its chapter slot, and one GPU on a CUDA run."""
    return {CHAPTER_SLOT: 1, **({GPU: 1} if gpu else {})}


def wants_gpu(device: str) -> bool:
    """Whether a run on `device` (cpu, cuda, auto) trains on CUDA, so each chapter asks for a GPU."""
    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def pin_gpu_plugin(gpus: int) -> Any:
    """A worker plugin: the worker named i sees only GPU i (mod `gpus`), set before any task touches CUDA."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class PinGPU(WorkerPlugin):
        name = "derm-nb-pin-gpu"

        def setup(self, worker: Any) -> None:
            index = int(worker.name) % gpus if str(worker.name).isdigit() else 0
            os.environ["CUDA_VISIBLE_DEVICES"] = str(index)

    return PinGPU()


@contextmanager
def book_client(workers: int = 0, scheduler: str | None = None, gpu: bool = False,
                wait_seconds: float = 600.0) -> Iterator[Any]:
    """A Dask client for a run: to `scheduler`, or to a local cluster of `workers` processes (one thread
    and one chapter slot each; on CUDA one GPU each, pinned), closed afterwards."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            check_workers(client, gpu, wait_seconds)
            yield client
        return
    # torch's CPU results depend on its thread count: every worker keeps a serial run's (Dask's default is 1)
    environ = {f"distributed.nanny.pre-spawn-environ.{k}": torch.get_num_threads()
               for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    environ["distributed.nanny.pre-spawn-environ.OMP_WAIT_POLICY"] = "PASSIVE"  # idle threads sleep, not spin
    gpus = torch.cuda.device_count() if gpu else 0
    if gpu and not gpus:
        raise ClusterError("the run's device is CUDA, but this machine shows no GPU to give the workers")
    with dask.config.set(environ), LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
            resources=chapter_resources(gpu)) as cluster, Client(cluster) as client:
        if gpu:
            client.register_plugin(pin_gpu_plugin(gpus))
        yield client


def check_workers(client: Any, gpu: bool, wait_seconds: float) -> None:
    """Wait for a worker, then require one that offers what a chapter asks (else tasks would wait forever)."""
    try:
        client.wait_for_workers(1, timeout=wait_seconds)
    except TimeoutError as err:
        raise ClusterError(f"no Dask worker joined {client.scheduler.address} in {wait_seconds:.0f} s") from err
    need = chapter_resources(gpu)
    offered = [w.get("resources", {}) for w in client.scheduler_info()["workers"].values()]
    if not any(all(r.get(k, 0) >= v for k, v in need.items()) for r in offered):
        flags = ",".join(f"{k}={v}" for k, v in need.items())
        raise ClusterError(f"no worker of {client.scheduler.address} offers {need}: start workers with "
                           f"`--resources \"{flags}\"` (dask-jobqueue: worker_extra_args=['--resources', '{flags}'])")


def chapter_task(run: Callable[..., dict], job: Any, address: str, *upstream: dict) -> dict:
    """Run one chapter on a worker: leave the thread pool (the kernel does the work, and its variant
    tasks may need this worker's thread), and give the run the scheduler's address (`run(job, address)`)."""
    from distributed import secede

    secede()
    return run(job, address)


def run_graph(client: Any, jobs: Mapping[str, Any], run: Callable[[Any, str], dict], graph: Mapping[str, Sequence[str]],
              gpu: bool, done: Callable[[str, dict], None]) -> None:
    """Submit every chapter as a task after its upstream chapters; call `done(stem, entry)` as each
    finishes. The first failure cancels what has not run and is raised."""
    from distributed import as_completed

    address, token = client.scheduler.address, uuid.uuid4().hex[:8]
    futures: dict[str, Any] = {}
    for stem, job in jobs.items():
        upstream = [futures[s] for s in graph[stem]]
        futures[stem] = client.submit(chapter_task, run, job, address, *upstream, key=f"chapter-{stem}-{token}",
                                      resources=chapter_resources(gpu), pure=False)
    stems = {f.key: s for s, f in futures.items()}
    progress = bar(total=len(futures), desc="chapters [dask]", unit="nb")
    try:
        for future in as_completed(futures.values()):
            done(stems[future.key], future.result())
            progress.update()
    except BaseException:
        client.cancel(list(futures.values()))
        raise
    finally:
        progress.close()


@contextmanager
def kept_random_state() -> Iterator[None]:
    """Python's, NumPy's and torch's (CPU and CUDA) global random states restored on exit."""
    import random

    import numpy as np

    states = random.getstate(), np.random.get_state()
    devices = range(torch.cuda.device_count()) if torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])


def _in_a_task() -> bool:
    """Whether this code runs inside a Dask task (a grid there runs serially: a task never waits on tasks)."""
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:
        return False
    return True


def _shared(value: Any) -> Any:
    return value


def _seeded(fn: Callable[[T, Any], R], item: T, shared: Any, seed: int) -> R:
    from derm_nb.train import seed_everything

    seed_everything(seed)
    return fn(item, shared)


def variant_task(fn: Callable[[T, Any], R], item: T, shared: Any, seed: int, path: str) -> str:
    """One variant on a worker: seeded, and its result saved atomically to `path` as plain data and tensors
    (`variant_io`) for the chapter to gather."""
    from derm_nb import progress

    progress.QUIET["on"] = True
    save_result(path, _seeded(fn, item, shared, seed))
    return path


def run_variants(fn: Callable[[T, Any], R], items: Mapping[str, T], shared: Any, out: str | os.PathLike[str],
                 seed: int, client: Any | None = None, rebuild: Callable[[T, Any], nn.Module] | None = None
                 ) -> dict[str, R]:
    """`{name: fn(item, shared)}`, each variant seeded with `seed` first: as Dask tasks on `client` (the
    chapter context's; each result written atomically to `out/<name>.pt` as plain data, then read back with
    `weights_only=True`), serially without one or inside a task (a task never waits on tasks). The numbers
    are the same either way. A result holding a model needs `rebuild(item, shared)`: a fresh model of its
    architecture, to load the trained state into."""
    if client is None or len(items) < 2 or _in_a_task():
        with kept_random_state():  # as when the variants run elsewhere: the chapter's own draws are untouched
            return {name: _seeded(fn, item, shared, seed) for name, item in items.items()}
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    # a task, not `scatter`: if the worker holding it dies, the scheduler can compute it again
    data = client.submit(_shared, shared, key=f"variants-shared-{token}", pure=False)
    futures = {name: client.submit(variant_task, fn, item, data, seed, str(folder / f"{name}.pt"), pure=False,
                                   key=f"variant-{name}-{token}")
               for name, item in items.items()}
    paths = client.gather(futures)
    with kept_random_state():  # a rebuilt model's initial draws leave the chapter's untouched, as serially
        return {name: load_result(paths[name], None if rebuild is None else partial(rebuild, items[name], shared))
                for name in items}

