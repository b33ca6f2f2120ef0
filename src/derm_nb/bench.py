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

from derm_nb.artifacts import read_json, write_json
from derm_nb.chapters import CHAPTERS
from derm_nb.progress import bar
from derm_nb.train import autocast

TARGETS = {"smoke_book_seconds": 300.0, "default_book_seconds": 1800.0, "data_wait_share": 0.10,
           "cache_speedup": 3.0, "full_data_seconds": 180.0}
FULL_SCALE = {"images": 33_126, "workers": 16}  # ISIC 2020's training set, on the GPU machine's 16 cores
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


def data_scale(patients: int = 40, workers: int = 1) -> dict:
    """00_data's cost per image and worker at the full profile's size (synthetic 640x480 ISIC 2020 -> 256 px):
    the generator, then prepare (checks, hashes, near-duplicates, splits, cache), and the full-scale time
    that implies, linear in images and workers (the near-duplicate search, quadratic, is ~5 s at 35k)."""
    from derm_nb.data.catalog import Dataset
    from derm_nb.data.prepared import prepare, synthetic_source

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tic = time.perf_counter()
        root, oracle = synthetic_source("isic2020", tmp / "raw", seed=0, workers=workers, n_patients=patients,
                                        height=480, width=640)
        generated = time.perf_counter() - tic
        n = sum(1 for _ in root.rglob("*.jpg"))
        schemes = {"bench": {"train": 0.8, "val": 0.2}}
        prepared = _timed(lambda: prepare(Dataset("isic2020", "melanoma"), root, tmp / "out", schemes, cache_size=256,
                                          workers=workers, oracle_file=oracle, synthetic=True))
    per_image = {"generator": generated * workers / n, "prepare": prepared * workers / n}
    full = FULL_SCALE["images"] * sum(per_image.values()) / FULL_SCALE["workers"]
    return {"measured_images": n, "measured_workers": workers, "seconds_per_image_worker": per_image,
            "full_images": FULL_SCALE["images"], "full_workers": FULL_SCALE["workers"], "full_seconds": full}


class _PerImage(torch.utils.data.Dataset):
    """The path before batch views, kept as the loader benchmark's reference: each image transformed
    on its own by torchvision v2 in the DataLoader's workers."""

    def __init__(self, images: torch.Tensor, transform: Callable):
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(self.images[i])


def _per_image_augment(size: int) -> Callable:
    from torchvision.transforms import v2

    from derm_nb.models.backbones import IMAGENET_MEAN, IMAGENET_STD

    a = HEAVY_AUGMENT
    return v2.Compose([v2.Resize(size, antialias=True), v2.RandomHorizontalFlip(),
                       v2.RandomAffine(a["degrees"], translate=(a["translate"],) * 2, scale=a["scale"]),
                       v2.ColorJitter(*a["jitter"]), v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def loader_speed(n_images: int = 512, size: int = 128, batch_size: int = 64, workers: tuple[int, ...] = (0, 2),
                 device: str = "auto") -> list[dict]:
    """Images/s delivered to the model from the in-memory cache with study 000's augmentation (the
    book's heaviest) and with the plain eval view: the book's path (whole batches gathered, then viewed
    by kornia on the device) beside the earlier per-image torchvision v2 path in DataLoader workers."""
    from derm_nb.datasets import CachedImages, present, to_device
    from derm_nb.train import loader, pick_device
    from derm_nb.transforms import augment_transform, eval_transform

    dev = pick_device(device)
    images = torch.randint(0, 256, (n_images, 3, size, size), dtype=torch.uint8)
    targets = np.zeros(n_images, dtype=int)
    rows = []
    for name, view in (("augmented", augment_transform(size, **HEAVY_AUGMENT)), ("eval", eval_transform(size))):
        dataset = CachedImages(images, targets, view)
        for w in workers:
            batches = loader(dataset, batch_size, dev, w, shuffle=True)
            seconds = _timed(lambda: [present(dataset, to_device(b, dev)) for b in batches], dev.type == "cuda")
            rows.append({"path": "batch view on " + dev.type, "transform": name, "num_workers": w, "size": size,
                         "images_per_s": n_images / seconds})
    reference = _PerImage(images, _per_image_augment(size))
    for w in workers:
        seconds = _timed(lambda: [None for _ in DataLoader(reference, batch_size, shuffle=True, num_workers=w)])
        rows.append({"path": "per image, torchvision v2 (before)", "transform": "augmented", "num_workers": w,
                     "size": size, "images_per_s": n_images / seconds})
    return rows


def image_model(name: str, build: Callable[[], nn.Module] | None = None) -> nn.Module:
    """A model with random weights (speed does not depend on them): `build()`, else torchvision's or timm's `name`."""
    import torchvision

    if build is not None:
        return build()
    if name in torchvision.models.list_models():
        return torchvision.models.get_model(name, weights=None)
    import timm

    return timm.create_model(name, pretrained=False)


def model_speed(name: str, size: int, device: str = "cpu", batch_size: int = 32, steps: int = 3,
                channels_last: bool = False, amp: bool = False, build: Callable[[], nn.Module] | None = None) -> dict:
    """Training (forward, backward, SGD step) and inference images/s of a model with random weights,
    after one warm-up step (`image_model` says which model)."""
    dev = torch.device(device)
    model = image_model(name, build).to(dev)
    x = torch.randn(batch_size, 3, size, size, device=dev)
    with torch.no_grad():
        classes = model.eval()(x[:1]).shape[-1]
    y = torch.randint(0, classes, (batch_size,), device=dev)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    sync = dev.type == "cuda"

    def train_step() -> None:  # the engine's own switch: bf16 autocast on CUDA (no loss scaling needed)
        with autocast(dev, amp):
            loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @torch.inference_mode()
    def infer_step() -> None:
        with autocast(dev, amp):
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


CALIBRATION = ("resnet18", 128, 32)  # model, px, batch: the fixed workload book times are expressed in


def calibration(steps: int = 3) -> dict:
    """The machine's speed on a fixed CPU workload (ResNet-18 training at 128 px, batch 32, float32): book
    times divided by its seconds per 1,000 images compare across machines and runs that differ up to 2x."""
    name, size, batch = CALIBRATION
    speed = model_speed(name, size, "cpu", batch_size=batch, steps=steps)
    return {"workload": f"{name} training, {size} px, batch {batch}, CPU float32",
            "images_per_s": speed["train_images_per_s"], "seconds_per_unit": 1000 / speed["train_images_per_s"]}


def pass_seconds(work, device: torch.device, measured: dict) -> float:
    """Seconds per unit of `work` (a `workload.Pass`) on `device`, measured once per model and size:
    channels-last everywhere and bf16 on CUDA, as the engine trains."""
    if work.probe is not None:
        key = ("probe", work.backbone, work.size)
        if key not in measured:
            step, sync, repeats = work.probe(device), device.type == "cuda", 20
            _timed(step, sync)  # warm-up
            measured[key] = _timed(lambda: [step() for _ in range(repeats)], sync) / repeats
        return measured[key]
    key = (work.backbone, work.size)
    if key not in measured:
        cuda = device.type == "cuda"
        measured[key] = model_speed(work.backbone, work.size, device.type, batch_size=64 if cuda else 4,
                                    steps=10 if cuda else 1, channels_last=True, amp=cuda, build=work.build)
    return 1 / measured[key]["train_images_per_s" if work.train else "inference_images_per_s"]


def data_seconds(params: dict, measured_cache_ips: float) -> list[dict]:
    """00_data's cache build at archive scale: every slot's archive once, at the measured images/s."""
    from derm_nb.book_workload import archive_images

    images = archive_images()
    return [{"chapter": "00_data", "what": "image cache (decode, crop, resize, write; checks and hashing not timed)",
             "backbone": "", "size": params["00_data"]["cache_size"], "train": False, "images": images,
             "seconds_per_image": 1 / measured_cache_ips}]


def estimate(root: Path, profile: str = "full", device: str = "auto", user_params: Path | None = None,
             seconds: Callable | None = None) -> dict:
    """Expected hours per chapter of `profile` on this machine: each chapter's passes at the archives'
    sizes (`workload`) times the measured seconds per image; every epoch counted (an upper bound)."""
    from derm_nb.book_workload import passes
    from derm_nb.runner import resolved_parameters
    from derm_nb.train import pick_device

    dev, seconds = pick_device(device), seconds or pass_seconds
    params = resolved_parameters(root, profile, user_params)
    cache = cache_speed(patients=6, width=640, height=480, size=params["00_data"]["cache_size"])
    rows, measured = data_seconds(params, cache["ours_images_per_s"]), {}
    for stem, items in bar(passes(params).items(), desc=f"estimate [{profile}]", unit="chapter"):
        rows += [{"chapter": stem, "what": w.what, "backbone": w.backbone, "size": w.size, "train": w.train,
                  "stands_in_for": w.stands_in_for, "images": w.images,
                  "seconds_per_image": seconds(w, dev, measured)} for w in items]
    frame = pd.DataFrame(rows).assign(hours=lambda f: f["images"] * f["seconds_per_image"] / 3600)
    chapters = frame.groupby("chapter", sort=False)["hours"].sum()
    return {"profile": profile, "device": dev.type, "machine": machine(), "goal_hours": 3.0,
            "total_hours": float(chapters.sum()), "chapters": chapters.to_dict(), "passes": frame.to_dict("records")}


def estimate_report(result: dict, top: int = 3) -> str:
    """The estimate as printable text: hours per chapter, the largest passes of each, the total."""
    frame = pd.DataFrame(result["passes"])
    lines = [f"Estimate of the {result['profile']} book on {result['device']} ({result['machine'].get('gpu', 'CPU')}), "
             "at the archives' sizes, every epoch counted:"]
    for stem, hours in sorted(result["chapters"].items(), key=lambda kv: -kv[1]):
        biggest = frame[frame["chapter"] == stem].nlargest(top, "hours")
        parts = ", ".join(f"{r.what} {r.hours:.2f} h" for r in biggest.itertuples())
        lines.append(f"  {stem:<20} {hours:9.2f} h   ({parts})")
    lines.append(f"  {'total':<20} {result['total_hours']:9.2f} h   (goal on one H100-class GPU: "
                 f"{result['goal_hours']:.0f} h)")
    return "\n".join(lines + stand_in_lines(frame))


def stand_in_lines(passes: pd.DataFrame) -> list[str]:
    """Which backbones the estimate timed as their stand-ins: what would run here, offline."""
    swapped = passes[passes.get("stands_in_for", pd.Series("", index=passes.index)).fillna("").ne("")]
    lines = []
    for built, rows in swapped.groupby("backbone", sort=False):
        asked = "; ".join(f"{name} ({', '.join(dict.fromkeys(group['chapter']))})"
                          for name, group in rows.groupby("stands_in_for", sort=False))
        lines.append(f"  timed as run here: {built} standing in for {asked}, whose ImageNet weights are not at hand "
                     "offline")
    return lines


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
        units = (f" = {total / result['calibration']['seconds_per_unit']:.0f} calibration units"
                 if "calibration" in result else "")
        missing = [c.stem for c in CHAPTERS if c.stem not in set(times["notebook"])]
        if missing:  # a budget is judged on a whole book only
            rows.append({"target": f"{profile} book under {TARGETS[key] / 60:.0f} min", "met": "incomplete",
                         "measured": f"incomplete: {len(CHAPTERS) - len(missing)} of {len(CHAPTERS)} notebooks",
                         "note": f"{total / 60:.1f} min{units} for those; not run: {', '.join(missing)}"})
            continue
        rows.append({"target": f"{profile} book under {TARGETS[key] / 60:.0f} min", "measured": f"{total / 60:.1f} min",
                     "met": bool(total < TARGETS[key]),
                     "note": f"{len(times)} notebooks{units}; slowest {slowest['notebook']} ({slowest['seconds']:.0f} s)"})
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
    if "data_scale" in result:
        scale = result["data_scale"]
        rows.append({"target": "full 00_data (33k images, 640x480) within 3 min on 16 cores",
                     "measured": f"{scale['full_seconds']:.0f} s (extrapolated)",
                     "met": bool(scale["full_seconds"] <= TARGETS["full_data_seconds"]),
                     "note": ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in scale["seconds_per_image_worker"].items())
                     + f" per image and worker, measured on {scale['measured_images']} images"})
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
    checks["met"] = checks["met"].apply(lambda met: met if isinstance(met, str) else "–" if met is None
                                        else "yes" if met else "no")
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
    result: dict = {"machine": machine(), "targets": TARGETS, "calibration": calibration()}
    result["cache"] = cache_speed(patients=20 if quick else 50)
    result["data_scale"] = data_scale(patients=15 if quick else 40)
    result["loader"] = loader_speed(n_images=256 if quick else 512, device=device)
    grid = [(m, s) for m, s in MODEL_GRID if not quick or s == 128]
    configs = [(m, s, "cpu", layout, False) for m, s in grid for layout in (False, True)]
    if dev == "cuda":
        configs += [(m, s, "cuda", layout, amp) for m, s in grid for layout in (False, True) for amp in (False, True)]
    result["models"] = [model_speed(m, s, d, batch_size=128 if d == "cuda" else 32,
                                    steps=20 if d == "cuda" else steps, channels_last=layout, amp=amp)
                        for m, s, d, layout, amp in bar(configs, desc="model throughput", unit="config")]
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
    speedup = amp_speedup(result["models"])
    lines += ["", "bf16 autocast + channels-last, training speedup over float32 (the engine's CUDA switch):",
              speedup.to_string(index=False, float_format="%.2f") if len(speedup) else "  n/a: CUDA only, none here"]
    lines += ["", "Data wait in the fit loop:", pd.DataFrame(result["data_wait"]).to_string(index=False, float_format="%.3f")]
    for profile, rows in result["notebooks"].items():
        if rows:
            frame = pd.DataFrame(rows)
            lines += ["", f"Notebooks, {profile} profile (total {frame['seconds'].sum() / 60:.1f} min):",
                      frame.to_string(index=False, float_format="%.3f")]
    if "calibration" in result:
        cal = result["calibration"]
        lines += ["", f"Calibration: {cal['workload']}, {cal['images_per_s']:.1f} images/s: one unit (1,000 images) "
                  f"= {cal['seconds_per_unit']:.1f} s on this machine"]
    lines += ["", "Targets:", target_table(result).to_string(index=False)]
    lines += ["\n" + estimate_report(e) for e in result.get("estimates", {}).values()]
    return "\n".join(lines)


def amp_speedup(models: list[dict]) -> pd.DataFrame:
    """Per CUDA model and size: training images/s with bf16 + channels-last over plain float32."""
    frame = pd.DataFrame(models)
    if frame.empty or not (frame["device"] == "cuda").any():
        return pd.DataFrame()
    cuda = frame[frame["device"] == "cuda"].set_index(["model", "size", "channels_last", "amp"])["train_images_per_s"]
    rows = [{"model": m, "size": sz, "float32": cuda[(m, sz, False, False)], "bf16 + channels-last": cuda[(m, sz, True, True)],
             "speedup": cuda[(m, sz, True, True)] / cuda[(m, sz, False, False)]}
            for m, sz in cuda.index.droplevel([2, 3]).unique()]
    return pd.DataFrame(rows)


def save(result: dict, out: str | Path) -> Path:
    return write_json(out, result)
