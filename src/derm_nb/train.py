"""The one training engine every model uses, and the classifier training built on it.

`run_epochs` owns everything a training run shares: seeding, the device with bf16 autocast and
channels-last on CUDA, the progress bar, per-epoch reseeding (so a resumed run replays the same
batches), history, the best epoch by a monitored metric, early stopping, atomic `best.pt` /
`last.pt`, resume and the reload of the best epoch. A study hands it only a `Task`: how to draw
an epoch's batches, one step's loss, and an evaluation.
"""

from __future__ import annotations

import math
import random
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from derm_nb.artifacts import write_atomic
from derm_nb.datasets import present, to_device
from derm_nb.metrics import epoch_scores
from derm_nb.progress import bar
from derm_nb.transforms import mixup

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def pick_device(device: str = "auto") -> torch.device:
    """`auto` is CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels where it has them."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Python's, NumPy's and torch's generators seeded with `seed` inside the block, and their states as
    they were restored after it: a model built inside starts from the same weights whatever ran before,
    and nothing outside sees a reseed."""
    python, numpy_state = random.getstate(), np.random.get_state()
    devices = range(torch.cuda.device_count()) if torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=devices):
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)
            yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy_state)


def autocast(device: torch.device, amp: bool) -> torch.autocast:
    """bf16 autocast on CUDA when `amp`; a no-op elsewhere (the CPU path stays in float32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda")


class Stateful(Protocol):
    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> Any: ...


@dataclass
class Epoch:
    """What one epoch's batches and steps may draw on: its number and its RNGs, fixed by (seed, epoch)."""

    index: int
    rng: np.random.Generator
    generator: torch.Generator
    device: torch.device


@dataclass
class StepOutput:
    """One step's loss, the examples it covers (weights the epoch mean) and, if known, how many were right."""

    loss: torch.Tensor
    n: int = 1
    correct: int | None = None


@dataclass
class Task:
    """What a study hands the engine.

    `batches(epoch)` gives the epoch's batches, `step(batch, epoch, i)` their loss (the engine does
    the backward pass and the optimiser step), `evaluate()` the validation metrics after each
    epoch. `monitor` names the metric that picks the best epoch (`mode` min or max); `None` keeps
    the last epoch. `restore_best=False` records the best epoch but keeps the last epoch's weights.
    `state` holds extra objects saved with every checkpoint (e.g. prototypes).
    """

    optimizer: torch.optim.Optimizer
    batches: Callable[[Epoch], Iterable]
    step: Callable[[Any, Epoch, int], StepOutput]
    evaluate: Callable[[], dict[str, float]] | None = None
    monitor: str | None = "val_loss"
    mode: str = "min"
    patience: int | None = None
    min_epochs: int = 0
    scheduler: Any = None
    before_epoch: Callable[[Epoch], None] | None = None
    grad_accum: int = 1
    amp: bool = True
    state: dict[str, Stateful] = field(default_factory=dict)
    restore_best: bool = True


@dataclass
class TrainResult:
    history: pd.DataFrame
    best_epoch: int
    best_value: float
    seconds: float
    checkpoint: Path
    device: str
    amp_used: bool

    @property
    def best_monitor(self) -> float:
        """The best epoch's value of the monitored score: the validation loss, or its AUC (`monitor`)."""
        return self.best_value


def run_signature(model: nn.Module, config: dict) -> dict:
    """What a checkpoint must match to be resumed: the configuration and every parameter's name and shape."""
    return {"config": config, "shapes": [(k, tuple(v.shape)) for k, v in model.state_dict().items()]}


def _feed(crc: int, value: Any, depth: int = 0) -> int:
    if isinstance(value, torch.Tensor):
        return zlib.crc32(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes(), crc)
    if isinstance(value, np.ndarray):
        return zlib.crc32(np.ascontiguousarray(value).tobytes(), crc) if value.dtype != object else crc
    if isinstance(value, (nn.Module, int, float, str, bool, type(None))):
        return zlib.crc32(repr(value).encode(), crc)
    if depth < 3 and (isinstance(value, (list, tuple, dict)) or hasattr(value, "to_dict")):
        items = (value.to_dict() if hasattr(value, "to_dict") else value)
        for item in (items.items() if isinstance(items, dict) else items):
            crc = _feed(crc, item, depth + 1)
        return crc
    if depth < 3 and hasattr(value, "__dict__"):
        return _feed(crc, {k: v for k, v in vars(value).items() if not k.startswith("_")}, depth + 1)
    return crc


def data_fingerprint(*datasets: Any) -> str:
    """A checksum of what training reads: each dataset's tensors, arrays, views (size, augmentation) and
    settings, or a sequence's items (graph bags). A checkpoint trained on other data is not resumed."""
    crc = 0
    for dataset in datasets:
        crc = _feed(crc, dataset)
    return f"{crc:08x}"


def load_resumable(last_path: Path, signature: dict, device: torch.device) -> dict | None:
    """The state in `last_path` if it was written by the same model and configuration.

    A checkpoint of another run (changed parameters, another backbone) is not resumed: training
    starts over, says so, and replaces the files (atomically) as it goes.
    """
    if not last_path.is_file():
        return None
    state = torch.load(last_path, map_location=device, weights_only=True)
    if state.get("signature") == signature:
        return state
    print(f"{last_path.parent}: checkpoint from a different model or configuration; starting over")
    return None


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    """A checkpoint written by the engine; tensors only (`weights_only=True`), never pickled code."""
    return torch.load(path, map_location=device, weights_only=True)


def _improved(value: float, best: float, mode: str) -> bool:
    if value is None or math.isnan(value):
        return False
    return value < best if mode == "min" else value > best


def _restore(model: nn.Module, task: Task, state: dict) -> None:
    model.load_state_dict(state["model"])
    for name, obj in task.state.items():
        obj.load_state_dict(state[name])


def _snapshot(model: nn.Module, task: Task) -> dict:
    return {"model": model.state_dict(), **{name: obj.state_dict() for name, obj in task.state.items()}}


def _train_one_epoch(model: nn.Module, task: Task, epoch: Epoch, desc: str, total_epochs: int) -> dict:
    """One pass over the epoch's batches; returns the epoch's training statistics."""
    device, optimizer = epoch.device, task.optimizer
    model.train()
    optimizer.zero_grad(set_to_none=True)
    batches = task.batches(epoch)
    n_batches = len(batches) if isinstance(batches, Sized) else None
    total, count, correct, wait, tic = 0.0, 0, 0, 0.0, time.perf_counter()
    progress = bar(batches, desc=f"{desc} epoch {epoch.index + 1}/{total_epochs}", leave=False)
    fetched = time.perf_counter()
    for i, batch in enumerate(progress):
        wait += time.perf_counter() - fetched
        with autocast(device, task.amp):
            out = task.step(batch, epoch, i)
        (out.loss / task.grad_accum).backward()
        if (i + 1) % task.grad_accum == 0 or (n_batches is not None and i + 1 == n_batches):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        total += float(out.loss.detach()) * out.n
        count += out.n
        correct = None if out.correct is None or correct is None else correct + out.correct
        progress.set_postfix(loss=f"{total / count:.4f}", refresh=False)  # shown at the bar's own pace
        fetched = time.perf_counter()
    stats = {"train_loss": total / max(count, 1)}
    if correct is not None:
        stats["train_acc"] = correct / max(count, 1)
    stats["data_wait_share"] = wait / max(time.perf_counter() - tic, 1e-9)  # of the training steps' time
    return stats


def run_epochs(model: nn.Module, task: Task, cfg: Any, checkpoint_dir: str | Path, data: str = "") -> TrainResult:
    """Train `model` for `cfg.epochs` epochs with `task`; the one epoch loop of the package.

    `cfg` is the study's configuration dataclass (with `epochs`, `seed`, `device`, `resume` and
    `desc`); every field but `resume` and `desc`, and `data` (the training data's `data_fingerprint`), is
    part of the signature a checkpoint must match.
    """
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    model.to(device, memory_format=torch.channels_last)  # also on a CPU: 1.3-1.5x faster training (bench)
    folder = Path(checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    last_path, best_path = folder / "last.pt", folder / "best.pt"
    signature = run_signature(model, {k: v for k, v in asdict(cfg).items() if k not in ("resume", "desc")} | {"data": data})
    state = load_resumable(last_path, signature, device) if cfg.resume else None
    history, best, best_epoch, stale, elapsed, start = [], math.inf if task.mode == "min" else -math.inf, -1, 0, 0.0, 0
    if state is not None:
        _restore(model, task, state)
        task.optimizer.load_state_dict(state["optimizer"])
        if task.scheduler is not None:
            task.scheduler.load_state_dict(state["scheduler"])
        history, best, best_epoch = state["history"], state["best_value"], state["best_epoch"]
        stale, elapsed, start = state["stale"], state["seconds"], state["epoch"] + 1
    generator = torch.Generator()
    for epoch in range(start, cfg.epochs):
        if task.patience is not None and best_epoch >= 1 and stale >= task.patience and epoch >= task.min_epochs:
            break
        tic = time.perf_counter()
        torch.manual_seed(cfg.seed + epoch)
        generator.manual_seed(cfg.seed + epoch)
        current = Epoch(epoch, np.random.default_rng([cfg.seed, epoch]), generator, device)
        if task.before_epoch is not None:
            task.before_epoch(current)
        stats = _train_one_epoch(model, task, current, getattr(cfg, "desc", "train"), cfg.epochs)
        if task.scheduler is not None:
            task.scheduler.step()
        scores = task.evaluate() if task.evaluate is not None else {}
        seconds = time.perf_counter() - tic
        elapsed += seconds
        history.append({"epoch": epoch + 1, **stats, **scores, "lr": task.optimizer.param_groups[0]["lr"],
                        "seconds": seconds})
        if task.monitor is not None and _improved(scores.get(task.monitor), best, task.mode):
            best, best_epoch, stale = scores[task.monitor], epoch + 1, 0
            write_atomic(best_path, lambda p: torch.save({**_snapshot(model, task), "epoch": epoch + 1,
                                                           task.monitor: best}, p))
        else:
            stale += 1
        write_atomic(last_path, lambda p: torch.save(
            {**_snapshot(model, task), "optimizer": task.optimizer.state_dict(),
             "scheduler": task.scheduler.state_dict() if task.scheduler is not None else None,
             "history": history, "best_value": best, "best_epoch": best_epoch, "stale": stale,
             "seconds": elapsed, "epoch": epoch, "signature": signature}, p))
    if best_epoch >= 1 and task.restore_best:  # this run's best (a best.pt of another configuration never loads)
        _restore(model, task, load_checkpoint(best_path, device))
    return TrainResult(pd.DataFrame(history), best_epoch, best, elapsed, best_path, str(device),
                       task.amp and device.type == "cuda")


# --- Classifiers: the engine with a DataLoader, a loss module and an optimiser by name ---------------


@dataclass
class TrainConfig:
    """A classifier's training; each study's defaults live in its profile, not here."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-5
    weight_decay: float = 0.0
    optimizer: str = "adam"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    scheduler: str = "cosine"        # cosine | step | none
    step_size: int = 7               # StepLR
    gamma: float = 0.1               # StepLR
    patience: int = 3                # epochs without val-loss gain before stopping
    keep: str = "best"               # best: early stopping, the best val-loss epoch; last: every epoch, the last
    cosine_epochs: int = 0           # the cosine schedule's length (T_max); 0: `epochs`
    min_epochs: int = 1
    freeze_backbone_epochs: int = 0  # warm-up with the backbone frozen
    amp: bool = True                 # bf16 autocast, used on CUDA only
    grad_accum: int = 1
    sampler_pos_share: float = 0.0   # >0: class-balanced sampling with this share of positives
    mixup_alpha: float = 0.0         # >0: mixup with lam ~ Beta(alpha, alpha) (binary targets become soft)
    epoch_threshold: float | None = None  # binary: also F1, precision, recall, AUC, confusion counts per epoch
    monitor: str = "val_loss"        # the best epoch by val_loss (lowest) or, with epoch_threshold, val_roc_auc
    device: str = "auto"
    seed: int = 0
    num_workers: int = 0              # DataLoader workers: 0 is fastest for the in-memory cache (see `derm-nb bench`)
    resume: bool = True
    desc: str = "train"


def balanced_sampler(targets: np.ndarray, pos_share: float, seed: int,
                     generator: torch.Generator | None = None) -> WeightedRandomSampler:
    """Draw positives with probability `pos_share` per sample (study 001: 60/40 benign/malignant)."""
    targets = np.asarray(targets).astype(int)
    n_pos, n_neg = int(targets.sum()), int(len(targets) - targets.sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("balanced sampling needs both classes in the training set")
    weights = np.where(targets == 1, pos_share / n_pos, (1 - pos_share) / n_neg)
    generator = generator if generator is not None else torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), len(targets), generator=generator)


def forward(model: nn.Module, batch: dict) -> torch.Tensor:
    """The model's output for a batch dict: one logit squeezed to (N,), or (N, classes)."""
    inputs = {k: batch[k] for k in ("tabular", "gate") if k in batch}
    image = batch["image"]
    if image.ndim == 4:
        image = image.contiguous(memory_format=torch.channels_last)
    out = model(image, **inputs)
    return out.squeeze(-1) if out.ndim == 2 and out.shape[1] == 1 else out


def _set_backbone_frozen(model: nn.Module, frozen: bool) -> None:
    for module in getattr(model, "backbones", [getattr(model, "backbone", None)]):
        if module is not None:
            for param in module.parameters():
                param.requires_grad_(not frozen)


def _correct(output: torch.Tensor, target: torch.Tensor) -> int:
    """Correct predictions in a batch: argmax for class scores, logit > 0 for a single logit."""
    pred = output.argmax(dim=1) if output.ndim == 2 else (output > 0).long()
    return int((pred == target.long()).sum())


def _scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig):
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, cfg.cosine_epochs or cfg.epochs))
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def make_optimizer(params: Iterable, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser `cfg.optimizer` names, with `cfg`'s learning rate, decay and (Adam's) betas and eps."""
    extra = {"betas": cfg.betas, "eps": cfg.eps} if cfg.optimizer in ("adam", "adamw") else {}
    return OPTIMIZERS[cfg.optimizer](params, lr=cfg.lr, weight_decay=cfg.weight_decay, **extra)


def loader(dataset: Dataset, batch_size: int, device: torch.device, workers: int = 0, **kw) -> DataLoader:
    """Batches of `dataset` (gathered whole where it can, `CachedImages.__getitems__`), pinned for CUDA."""
    return DataLoader(dataset, batch_size, num_workers=workers, pin_memory=device.type == "cuda",
                      collate_fn=getattr(dataset, "collate", None), persistent_workers=workers > 0, **kw)


def fit(model: nn.Module, loss_fn: nn.Module, train: Dataset, val: Dataset, cfg: TrainConfig,
        checkpoint_dir: str | Path, train_targets: np.ndarray | None = None) -> TrainResult:
    """Train a classifier, with resume: early stopping and the best val-loss epoch (`cfg.keep` 'best'), or
    every epoch with the last kept ('last')."""
    device = pick_device(cfg.device)
    optimizer = make_optimizer(model.parameters(), cfg)
    generator = torch.Generator()
    # A last training batch of one image breaks BatchNorm in training mode; drop it only then.
    lone = len(train) % cfg.batch_size == 1 and len(train) > 1
    if cfg.sampler_pos_share > 0:
        targets = train_targets if train_targets is not None else train.all_targets
        sampler = balanced_sampler(targets, cfg.sampler_pos_share, cfg.seed, generator)
        train_loader = loader(train, cfg.batch_size, device, cfg.num_workers, sampler=sampler, drop_last=lone)
    else:
        train_loader = loader(train, cfg.batch_size, device, cfg.num_workers, shuffle=True, generator=generator,
                               drop_last=lone)
    val_loader = loader(val, cfg.batch_size * 2, device, cfg.num_workers, shuffle=False)

    def batches(epoch: Epoch) -> DataLoader:
        generator.manual_seed(cfg.seed + epoch.index)
        return train_loader

    def step(batch: dict, epoch: Epoch, _: int) -> StepOutput:
        batch = present(train, to_device(batch, epoch.device))
        target = batch["target"]
        if cfg.mixup_alpha > 0:
            batch["image"], target = mixup(batch["image"], target, cfg.mixup_alpha, epoch.rng)
        output = forward(model, batch)
        return StepOutput(loss_fn(output, target), len(target), _correct(output.detach(), batch["target"]))

    def evaluate() -> dict[str, float]:
        loss, acc, output, target = evaluate_outputs(model, loss_fn, val_loader, device, cfg.amp)
        scores = {"val_loss": loss, "val_acc": acc}
        if cfg.epoch_threshold is not None:
            prob = torch.sigmoid(output).numpy()
            scores |= {f"val_{k}": v for k, v in epoch_scores(target.numpy(), prob, cfg.epoch_threshold).items()}
        return scores

    if cfg.keep not in ("best", "last"):
        raise ValueError(f"TrainConfig.keep is 'best' or 'last', not '{cfg.keep}'")
    if cfg.monitor != "val_loss" and cfg.epoch_threshold is None:
        raise ValueError(f"TrainConfig.monitor '{cfg.monitor}' is scored only with an epoch_threshold")
    best = cfg.keep == "best"
    task = Task(optimizer, batches, step, evaluate, monitor=cfg.monitor, mode="min" if cfg.monitor.endswith("loss")
                else "max", patience=cfg.patience if best else None, min_epochs=cfg.min_epochs,
                scheduler=_scheduler(optimizer, cfg), grad_accum=cfg.grad_accum, amp=cfg.amp, restore_best=best,
                before_epoch=lambda e: _set_backbone_frozen(model, e.index < cfg.freeze_backbone_epochs))
    return run_epochs(model, task, cfg, checkpoint_dir, data_fingerprint(train, val))


@torch.no_grad()
def evaluate_outputs(model: nn.Module, loss_fn: nn.Module, batches: DataLoader, device: torch.device,
                     amp: bool = False) -> tuple[float, float, torch.Tensor, torch.Tensor]:
    """Mean loss and accuracy over a loader, with every output and target (float32, on the CPU)."""
    model.eval()
    total, count, correct, outputs, targets = 0.0, 0, 0, [], []
    for batch in batches:
        batch = present(batches.dataset, to_device(batch, device))
        with autocast(device, amp):
            output = forward(model, batch)
            loss = loss_fn(output, batch["target"])
        total += float(loss) * len(batch["target"])
        count += len(batch["target"])
        correct += _correct(output.float(), batch["target"])
        outputs.append(output.float().cpu())
        targets.append(batch["target"].float().cpu())
    joined = [torch.cat(t) if t else torch.empty(0) for t in (outputs, targets)]
    return total / max(count, 1), correct / max(count, 1), *joined


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, batch_size: int = 128, device: str = "auto",
            activation: Callable[[torch.Tensor], torch.Tensor] | None = torch.sigmoid) -> np.ndarray:
    """Model outputs for every item, in order: sigmoid probabilities by default, softmax for multi-class."""
    dev = pick_device(device)
    model.to(dev, memory_format=torch.channels_last).eval()
    outputs = []
    for batch in loader(dataset, batch_size, dev, shuffle=False):
        out = forward(model, present(dataset, to_device(batch, dev))).float()
        outputs.append((activation(out) if activation else out).cpu())
    return torch.cat(outputs).numpy()
