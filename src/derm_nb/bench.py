"""The speed benchmark behind `derm-nb bench`: cache build, data loading, model throughput, data wait,
and the wall time of every notebook, checked against the book's targets and written as JSON.

Timings are printed and saved, never asserted in tests: they depend on the machine.
"""

from __future__ import annotations

import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from derm_nb.artifacts import read_json, write_json

TARGETS = {"smoke_book_seconds": 300.0, "default_book_seconds": 1800.0, "data_wait_share": 0.10,
           "cache_speedup": 3.0}
MODEL_GRID = (("resnet18", 128), ("resnet18", 224), ("efficientnet_b0", 128), ("efficientnet_b0", 224))


# The heaviest augmentation in the book (study 000's flip, shift-scale-rotate and brightness).
HEAVY_AUGMENT = {"degrees": 45, "translate": 0.0625, "scale": (0.9, 1.1), "jitter": (0.2, 0, 0)}


def machine() -> dict:
    """What the figures were measured on."""
    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
            "date": datetime.now(UTC).isoformat(timespec="seconds")}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _timed(fn: Callable[[], object], sync: bool = False) -> float:
    tic = time.perf_counter()
    fn()
    if sync:
        torch.cuda.synchronize()
    return time.perf_counter() - tic


def cache_speed(patients: int = 50, width: int = 1024, height: int = 768, size: int = 256,
                workers: int = 0) -> dict:
    """Images/s of `build_cache` against the naive single-process loop, on the same synthetic JPEGs
    and masks at a camera-like resolution; both write the same image and mask files."""
    from derm_nb.data.cache import build_cache, naive_cache
    from derm_nb.data.sources import load_source
    from derm_nb.data.synthetic import SynthConfig, generate

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = generate(SynthConfig("isic2017", n_patients=patients, height=height, width=width), tmp / "isic2017")
        manifest, _ = load_source("isic2017", root)
        rows = {}
        # ISIC 2020 has no masks: the images-only row is the target; the masks row shows the cost of
        # ISIC 2017's segmentation masks, whose PNGs must be decoded at full size either way.
        for kind, frame in (("images", manifest.assign(mask_path="")), ("images + masks", manifest)):
            naive = _timed(lambda: naive_cache(frame, tmp / f"naive {kind}", size))
            ours = _timed(lambda: build_cache(frame, tmp / f"ours {kind}", size, workers))
            rows[kind] = (naive, ours)
    n = len(manifest)
    (naive, ours), (naive_m, ours_m) = rows["images"], rows["images + masks"]
    return {"images": n, "source_px": [width, height], "cache_px": size, "naive_images_per_s": n / naive,
            "ours_images_per_s": n / ours, "speedup": naive / ours, "with_masks_naive_images_per_s": n / naive_m,
            "with_masks_ours_images_per_s": n / ours_m, "with_masks_speedup": naive_m / ours_m}


def loader_speed(n_images: int = 512, size: int = 128, batch_size: int = 64, workers: tuple[int, ...] = (0, 2)) -> list[dict]:
    """Images/s the training DataLoader delivers from the in-memory cache, with study 000's
    augmentation (affine + colour jitter, the heaviest in the book) and with the plain eval transform."""
    from derm_nb.datasets import CachedImages
    from derm_nb.transforms import augment_transform, eval_transform

    images = torch.randint(0, 256, (n_images, 3, size, size), dtype=torch.uint8)
    targets = np.zeros(n_images, dtype=int)
    rows = []
    for name, transform in (("augmented", augment_transform(size, **HEAVY_AUGMENT)), ("eval", eval_transform(size))):
        dataset = CachedImages(images, targets, transform)
        for w in workers:
            loader = DataLoader(dataset, batch_size, shuffle=True, num_workers=w)
            seconds = _timed(lambda: [None for _ in loader])
            rows.append({"transform": name, "num_workers": w, "size": size, "images_per_s": n_images / seconds})
    return rows


def model_speed(name: str, size: int, device: str = "cpu", batch_size: int = 32, steps: int = 3,
                channels_last: bool = False, amp: bool = False) -> dict:
    """Training (forward, backward, SGD step) and inference images/s of a torchvision model with
    random weights (speed does not depend on them), after one warm-up step."""
    import torchvision

    dev = torch.device(device)
    model = torchvision.models.get_model(name, weights=None).to(dev)
    x = torch.randn(batch_size, 3, size, size, device=dev)
    y = torch.randint(0, 1000, (batch_size,), device=dev)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cuda", enabled=amp and dev.type == "cuda")
    sync = dev.type == "cuda"

    def train_step() -> None:
        with torch.autocast(dev.type, enabled=amp and dev.type == "cuda"):
            loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    @torch.inference_mode()
    def infer_step() -> None:
        with torch.autocast(dev.type, enabled=amp and dev.type == "cuda"):
            model(x)

    model.train()
    _timed(train_step, sync)
    train = _timed(lambda: [train_step() for _ in range(steps)], sync)
    model.eval()
    _timed(infer_step, sync)
    infer = _timed(lambda: [infer_step() for _ in range(steps)], sync)
    return {"model": name, "size": size, "device": dev.type, "batch_size": batch_size,
            "channels_last": channels_last, "amp": amp, "train_images_per_s": steps * batch_size / train,
            "inference_images_per_s": steps * batch_size / infer}


def data_wait_in_training(n_images: int = 256, size: int = 64, batch_size: int = 32, workers: tuple[int, ...] = (0, 2),
                          device: str = "auto") -> list[dict]:
    """Share of training-step time spent waiting for the next batch, measured by the book's own
    `fit` loop (ResNet-18 at the chapters' image size, study 000's augmentation, one epoch)."""
    import torchvision

    from derm_nb.datasets import CachedImages
    from derm_nb.train import TrainConfig, fit
    from derm_nb.transforms import augment_transform, eval_transform

    images = torch.randint(0, 256, (n_images, 3, size, size), dtype=torch.uint8)
    targets = (np.arange(n_images) % 2).astype(np.float32)
    train = CachedImages(images, targets, augment_transform(size, **HEAVY_AUGMENT))
    val = CachedImages(images[:batch_size], targets[:batch_size], eval_transform(size))
    rows = []
    for w in workers:
        model = torchvision.models.get_model("resnet18", weights=None, num_classes=1)
        cfg = TrainConfig(epochs=1, batch_size=batch_size, lr=1e-3, num_workers=w, device=device, resume=False,
                          desc=f"data wait, {w} workers")
        with tempfile.TemporaryDirectory() as tmp:
            result = fit(model, nn.BCEWithLogitsLoss(), train, val, cfg, tmp)
        rows.append({"num_workers": w, "size": size, "device": result.device,
                     "data_wait_share": float(result.history["data_wait_share"].iloc[0])})
    return rows


def notebook_times(run_dir: str | Path) -> pd.DataFrame:
    """Each notebook's wall time in a profile's last run (run_log.json), with its training data-wait
    share where the chapter trained through `fit` (mean over epochs and variants of history.parquet)."""
    run_dir = Path(run_dir)
    log_path = run_dir / "run_log.json"
    if not log_path.is_file():
        return pd.DataFrame(columns=["notebook", "seconds", "finished", "data_wait_share", "epoch_seconds"])
    rows = []
    for stem, entry in read_json(log_path).items():
        share, epoch_seconds = np.nan, np.nan
        history = run_dir / stem / "history.parquet"
        if history.is_file():
            frame = pd.read_parquet(history)
            if "data_wait_share" in frame:
                timed = frame[frame["data_wait_share"].notna()]
                share, epoch_seconds = float(timed["data_wait_share"].mean()), float(timed["seconds"].mean())
        rows.append({"notebook": stem, "seconds": float(entry["seconds"]), "finished": entry.get("finished"),
                     "data_wait_share": share, "epoch_seconds": epoch_seconds})
    return pd.DataFrame(rows, columns=["notebook", "seconds", "finished", "data_wait_share", "epoch_seconds"])


def models_above_chance(run_dir: str | Path) -> pd.DataFrame:
    """Every model of a profile's run with its ROC-AUC and CI: is it above chance (0.5)?"""
    from derm_nb.analysis import load_model_runs

    runs, _ = load_model_runs(run_dir)
    if runs.empty:
        return pd.DataFrame(columns=["chapter", "variant", "roc_auc", "roc_auc_ci_low"])
    return runs[["chapter", "variant", "roc_auc", "roc_auc_ci_low"]].reset_index(drop=True)


def check_targets(result: dict) -> pd.DataFrame:
    """One row per target of issue #12: the measured figure, the target and whether it is met."""
    rows = []
    for profile, key in (("smoke", "smoke_book_seconds"), ("default", "default_book_seconds")):
        times = pd.DataFrame(result["notebooks"].get(profile, []))
        if times.empty:
            rows.append({"target": f"{profile} book under {TARGETS[key] / 60:.0f} min", "measured": "not run",
                         "met": None, "note": f"run `derm-nb run --profile {profile}` first"})
            continue
        total, slowest = times["seconds"].sum(), times.loc[times["seconds"].idxmax()]
        rows.append({"target": f"{profile} book under {TARGETS[key] / 60:.0f} min", "measured": f"{total / 60:.1f} min",
                     "met": bool(total < TARGETS[key]),
                     "note": f"{len(times)} notebooks; slowest {slowest['notebook']} ({slowest['seconds']:.0f} s)"})
    chance = pd.DataFrame(result.get("models_default", []))
    if not chance.empty:
        below = chance[chance["roc_auc"] <= 0.5]
        rows.append({"target": "every default model above chance", "measured":
                     f"{len(chance) - len(below)}/{len(chance)} with AUC > 0.5", "met": below.empty,
                     "note": ", ".join(f"{r.chapter}/{r.variant} {r.roc_auc:.3f}" for r in below.itertuples())
                     or f"{int((chance['roc_auc_ci_low'] > 0.5).sum())} also with the CI above 0.5"})
    # The default profile's chapters that train on images (smoke epochs are a few batches, dominated by
    # start-up; an epoch under a second trains a linear head on cached features, with no image pipeline).
    trained = [r for r in result["notebooks"].get("default", []) if r["data_wait_share"] == r["data_wait_share"]]
    shares = [r["data_wait_share"] for r in trained if r.get("epoch_seconds", 1.0) >= 1.0]
    heads = [f"{r['notebook']} {r['data_wait_share']:.0%} of {r['epoch_seconds']:.2f} s epochs" for r in trained
             if r.get("epoch_seconds", 1.0) < 1.0]
    fit_share = [r["data_wait_share"] for r in result.get("data_wait", [])]
    if shares or fit_share:
        worst = max(shares + fit_share)
        rows.append({"target": "data wait under 10 % of step time", "measured": f"max {worst:.1%}",
                     "met": bool(worst < TARGETS["data_wait_share"]),
                     "note": "default chapters' training histories and the controlled fit run"
                     + (f"; not counted (feature heads): {', '.join(heads)}" if heads else "")})
    if "cache" in result:
        speedup = result["cache"]["speedup"]
        rows.append({"target": "cache build 3x the naive loop", "measured": f"{speedup:.1f}x",
                     "met": bool(speedup >= TARGETS["cache_speedup"]),
                     "note": f"{result['cache']['ours_images_per_s']:.0f} vs {result['cache']['naive_images_per_s']:.0f} "
                     f"images/s; with masks {result['cache']['with_masks_speedup']:.1f}x"})
    return pd.DataFrame(rows)


def target_table(result: dict) -> pd.DataFrame:
    """`check_targets` for reading: met as yes / no, or – where the figure was not measured."""
    checks = check_targets(result)
    checks["met"] = checks["met"].apply(lambda met: "–" if met is None else "yes" if met else "no")
    return checks


def run_benchmark(root: Path, run_profile: str | None = None, quick: bool = False, device: str = "auto") -> dict:
    """Everything, in one run: optionally execute a profile's notebooks, then the micro-benchmarks."""
    from derm_nb.artifacts import run_dir_for
    from derm_nb.runner import run_notebooks
    from derm_nb.train import pick_device

    run_dirs = {p: run_dir_for(p) for p in ("smoke", "default")}
    if run_profile:
        # A fresh folder: in runs/<profile> finished checkpoints would be resumed, not timed.
        run_dirs[run_profile] = root / "runs" / "benchmarks" / run_profile
        shutil.rmtree(run_dirs[run_profile], ignore_errors=True)
        run_notebooks(root, run_profile, run_dir=run_dirs[run_profile])
    dev = pick_device(device).type
    steps = 2 if quick else 4
    result: dict = {"machine": machine(), "targets": TARGETS}
    result["cache"] = cache_speed(patients=20 if quick else 50)
    result["loader"] = loader_speed(n_images=256 if quick else 512)
    grid = [(m, s) for m, s in MODEL_GRID if not quick or s == 128]
    configs = [(m, s, "cpu", layout, False) for m, s in grid for layout in (False, True)]
    if dev == "cuda":
        configs += [(m, s, "cuda", layout, amp) for m, s in grid for layout in (False, True) for amp in (False, True)]
    result["models"] = [model_speed(m, s, d, batch_size=128 if d == "cuda" else 32,
                                    steps=20 if d == "cuda" else steps, channels_last=layout, amp=amp)
                        for m, s, d, layout, amp in tqdm(configs, desc="model throughput", unit="config")]
    result["data_wait"] = data_wait_in_training(device=device)
    result["notebooks"] = {p: notebook_times(d).to_dict("records") for p, d in run_dirs.items()}
    result["run_dirs"] = {p: str(d) for p, d in run_dirs.items()}
    result["models_default"] = models_above_chance(run_dirs["default"]).to_dict("records")
    result["checks"] = check_targets(result).to_dict("records")
    return result


def report(result: dict) -> str:
    """The benchmark as printable text."""
    m = result["machine"]
    lines = [f"derm-nb benchmark, {m['date']}: {m['platform']}, torch {m['torch']}, {m['cpu_threads']} CPU threads"
             + (f", {m['gpu']}" if m.get("gpu") else ", no GPU")]
    c = result["cache"]
    lines += ["", f"Image cache, {c['images']} JPEGs {c['source_px'][0]}x{c['source_px'][1]} -> {c['cache_px']} px:",
              f"  naive single-process PIL loop {c['naive_images_per_s']:8.1f} images/s",
              f"  derm-nb build_cache           {c['ours_images_per_s']:8.1f} images/s ({c['speedup']:.1f}x)",
              f"  with full-size PNG masks: naive {c['with_masks_naive_images_per_s']:.1f}, derm-nb "
              f"{c['with_masks_ours_images_per_s']:.1f} images/s ({c['with_masks_speedup']:.1f}x)"]
    lines += ["", "Data loader (in-memory cache):", pd.DataFrame(result["loader"]).to_string(index=False, float_format="%.0f")]
    lines += ["", "Model throughput (images/s):", pd.DataFrame(result["models"]).to_string(index=False, float_format="%.1f")]
    lines += ["", "Data wait in the fit loop:", pd.DataFrame(result["data_wait"]).to_string(index=False, float_format="%.3f")]
    for profile, rows in result["notebooks"].items():
        if rows:
            frame = pd.DataFrame(rows)
            lines += ["", f"Notebooks, {profile} profile (total {frame['seconds'].sum() / 60:.1f} min):",
                      frame.to_string(index=False, float_format="%.3f")]
    lines += ["", "Targets:", target_table(result).to_string(index=False)]
    return "\n".join(lines)


def save(result: dict, out: str | Path) -> Path:
    return write_json(out, result)
