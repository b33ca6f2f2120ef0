"""Dask: the chapter graph, variants as tasks (the same numbers as serially), and a worker killed mid-variant."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from derm_nb import cluster
from derm_nb.chapters import CHAPTERS
from derm_nb.cli import main
from derm_nb.studies import study001
from derm_nb.train import TrainConfig, load_checkpoint

EPOCHS = 4


def test_chapter_graph_runs_data_first_and_the_summaries_last():
    order = [c.stem for c in CHAPTERS]
    graph = cluster.chapter_graph(order)
    assert graph["00_data"] == ()
    assert set(graph["03_experts"]) == {"00_data", "01_eda", "02_baseline"}
    assert set(graph["04_efficientnet"]) == {"00_data"}          # side by side with 01-03 and 05-07
    assert set(graph["09_summary"]) >= {"02_baseline", "03_experts", "04_efficientnet", "05_deep_clustering",
                                        "06_architectures", "07_gcn_mil"}
    assert set(graph["10_speed"]) == set(order) - {"10_speed"}
    assert cluster.chapter_graph(["00_data", "04_efficientnet"]) == {"00_data": (), "04_efficientnet": ("00_data",)}
    # what each chapter reads, stated here rather than derived from the registry the graph is built from
    assert set(graph["01_eda"]) == set(graph["02_baseline"]) == set(graph["06_architectures"]) == {"00_data"}
    assert set(graph["08_error_analysis"]) == {"00_data", "01_eda", "02_baseline", "03_experts", "04_efficientnet"}
    assert set(graph["09_summary"]) == {"00_data", "02_baseline", "03_experts", "04_efficientnet",
                                        "05_deep_clustering", "06_architectures", "07_gcn_mil"}
    for stem, upstream in graph.items():
        assert all(order.index(u) < order.index(stem) for u in upstream), stem


def test_resources_ask_a_gpu_only_on_cuda():
    assert cluster.chapter_resources(False) == {"chapter": 1}
    assert cluster.chapter_resources(True) == {"chapter": 1, "GPU": 1}
    assert cluster.wants_gpu("cuda") and not cluster.wants_gpu("cpu")


@pytest.mark.parametrize("flags, message", [(["--workers", "0"], "1 or more"),
                                            (["--workers", "2", "--scheduler", "tcp://x:1"], "one of them")])
def test_bad_cluster_flags_are_named(flags, message, capsys):
    with pytest.raises(SystemExit) as err:
        main(["run", "--profile", "smoke", *flags])
    assert message in str(err.value)


def _grid(folder: Path) -> study001.AblationGrid:
    rng = np.random.default_rng(0)
    frames, images = {}, {}
    for split, n in (("train", 48), ("val", 24), ("test", 24)):
        target = np.arange(n) % 3 == 0
        pixels = rng.integers(0, 200, (n, 3, 24, 24), dtype=np.uint8)
        pixels[target, 0] += 40                                   # a red cast the models can learn
        images[split] = torch.from_numpy(pixels)
        frames[split] = pd.DataFrame({"image_id": [f"{split}{i}" for i in range(n)], "target": target.astype(int),
                                      "group_id": [f"p{i}" for i in range(n)]})
    recipe = TrainConfig(epochs=EPOCHS, batch_size=16, lr=1e-3, optimizer="adamw", scheduler="cosine",
                         keep="last", freeze_backbone_epochs=0, sampler_pos_share=0.5, device="cpu", seed=3)
    return study001.AblationGrid(images, frames, "resnet18", "none", False, recipe, 0.25, 2.0, folder)


def _ablations() -> list[study001.Ablation]:
    return [study001.variant(key, 24, 24, 0.2, EPOCHS, EPOCHS, 0.75) for key in ("recipe", "no_focal")]


def _numbers(trained: dict) -> dict:
    return {key: (variant.metrics["roc_auc"], variant.predictions["prob"].round(7).tolist(),
                  variant.history["train_loss"].round(7).tolist()) for key, (variant, _) in trained.items()}


@pytest.fixture(scope="module")
def local_cluster():
    with cluster.book_client(workers=2) as client:
        yield client


def _kill_during(client, key_prefix: str, checkpoint: Path, seen: dict) -> None:
    """SIGKILL the worker process that runs `key_prefix` once its first epoch is checkpointed."""
    deadline = time.time() + 240
    while time.time() < deadline and not checkpoint.is_file():
        time.sleep(0.05)
    running = {address: keys for address, keys in client.processing().items()
               if any(str(k).startswith(key_prefix) for k in keys)}
    pids = client.run(os.getpid, workers=list(running))
    for pid in pids.values():
        os.kill(pid, signal.SIGKILL)
    seen["killed"] = list(pids.values())
    seen["history"] = load_checkpoint(checkpoint)["history"] if pids else []


def test_variants_on_dask_equal_serial_and_survive_a_killed_worker(local_cluster, tmp_path):
    serial = study001.train_ablations(_ablations(), _grid(tmp_path / "serial"))

    grid = _grid(tmp_path / "dask")
    seen: dict = {}
    killer = threading.Thread(target=_kill_during, args=(local_cluster, "variant-recipe-",
                                                         grid.checkpoints / "recipe" / "last.pt", seen))
    killer.start()
    torch.manual_seed(11)
    distributed = study001.train_ablations(_ablations(), grid, client=local_cluster)
    chapter_draw = torch.rand(3)                  # the models rebuilt on reading leave the chapter's draws alone
    killer.join()

    assert seen["killed"], "no worker was running the recipe when its first epoch was checkpointed"
    resumed = distributed["recipe"][0].history
    assert 1 <= len(seen["history"]) < EPOCHS
    kept = pd.DataFrame(seen["history"])        # the epochs before the kill come back from last.pt, not rerun
    assert resumed["seconds"].head(len(kept)).tolist() == kept["seconds"].tolist()
    assert _numbers(distributed) == _numbers(serial)
    for key, (_, model) in serial.items():
        rebuilt = distributed[key][1]
        assert type(rebuilt) is type(model) and rebuilt.training == model.training
        assert all(torch.equal(rebuilt.state_dict()[k], v) for k, v in model.state_dict().items())
    torch.manual_seed(11)
    assert torch.equal(chapter_draw, torch.rand(3))
    files = sorted((grid.checkpoints / "results").iterdir())
    assert [p.name for p in files] == ["no_focal.pt", "recipe.pt"]
    for path in files:
        torch.load(path, weights_only=True)       # plain data and tensors: no pickled object in the file


def test_a_scheduler_whose_workers_offer_no_chapter_slot_is_refused():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as plain, \
            Client(plain) as client:
        with pytest.raises(cluster.ClusterError, match="--resources"):
            cluster.check_workers(client, gpu=False, wait_seconds=5)


def test_a_grid_inside_a_task_runs_serially(local_cluster, tmp_path):
    def probe() -> dict:
        # a task never waits on tasks it submitted: the client it is handed is not used
        return cluster.run_variants(lambda item, _: item * 2, {"a": 1, "b": 2}, None, tmp_path, 0, client=object())

    assert local_cluster.submit(probe, pure=False).result() == {"a": 2, "b": 4}


def test_the_chapter_context_carries_the_scheduler_and_no_module_holds_a_client(tmp_path):
    from derm_nb.chapters import chapter

    serial = chapter("02_baseline", {"profile": "smoke", "run_dir": str(tmp_path), "seed": 3, "_private": 1})
    assert serial.client is None and serial.scheduler == ""
    assert dict(serial.parameters) == {"profile": "smoke", "run_dir": str(tmp_path), "seed": 3}
    assert chapter("02_baseline", {"profile": "smoke", "run_dir": "", "scheduler": "tcp://h:1"}).scheduler == "tcp://h:1"
    assert not [name for name in vars(cluster) if "client" in name.lower() and not callable(getattr(cluster, name))]


def test_an_existing_scheduler_with_chapter_slots_is_joined():
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                      resources={"chapter": 1}) as existing:
        with cluster.book_client(scheduler=existing.scheduler_address) as client:
            assert client.scheduler.address == existing.scheduler_address
            assert client.submit(sum, [1, 2]).result() == 3


def test_each_local_worker_sees_its_own_gpu(monkeypatch):
    from types import SimpleNamespace

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    plugin = cluster.pin_gpu_plugin(2)
    for name, card in ((0, "0"), (1, "1"), (3, "1")):
        plugin.setup(SimpleNamespace(name=name))
        assert os.environ["CUDA_VISIBLE_DEVICES"] == card


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_a_cuda_run_without_a_gpu_is_refused():
    with pytest.raises(cluster.ClusterError, match="no GPU"):
        with cluster.book_client(workers=1, gpu=True):
            pass
