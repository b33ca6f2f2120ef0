"""The train loop every model chapter uses: checkpoints, resume, early stopping, schedules, sampling."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler
from tqdm.auto import tqdm

from derm_nb.artifacts import write_atomic
from derm_nb.transforms import mixup

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


@dataclass
class TrainConfig:
    """Everything the loop needs; each study's defaults live in its profile, not here."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-5
    weight_decay: float = 0.0
    optimizer: str = "adam"
    scheduler: str = "cosine"        # cosine | step | none
    step_size: int = 7               # StepLR
    gamma: float = 0.1               # StepLR
    patience: int = 3                # epochs without val-loss gain before stopping
    min_epochs: int = 1
    freeze_backbone_epochs: int = 0  # warm-up with the backbone frozen
    amp: bool = True                 # mixed precision, used on CUDA only
    grad_accum: int = 1
    sampler_pos_share: float = 0.0   # >0: class-balanced sampling with this share of positives
    mixup_alpha: float = 0.0         # >0: mixup with lam ~ Beta(alpha, alpha) (binary targets become soft)
    device: str = "auto"
    seed: int = 0
    num_workers: int = 0
    resume: bool = True
    desc: str = "train"


@dataclass
class TrainResult:
    history: pd.DataFrame
    best_epoch: int
    best_val_loss: float
    seconds: float
    checkpoint: Path
    device: str
    amp_used: bool


def pick_device(device: str = "auto") -> torch.device:
    """`auto` is CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def balanced_sampler(targets: np.ndarray, pos_share: float, seed: int) -> WeightedRandomSampler:
    """Draw positives with probability `pos_share` per sample (study 001: 60/40 benign/malignant)."""
    targets = np.asarray(targets).astype(int)
    n_pos, n_neg = int(targets.sum()), int(len(targets) - targets.sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("balanced sampling needs both classes in the training set")
    weights = np.where(targets == 1, pos_share / n_pos, (1 - pos_share) / n_neg)
    generator = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), len(targets), generator=generator)


def _batch_to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _forward(model: nn.Module, batch: dict) -> torch.Tensor:
    inputs = {k: batch[k] for k in ("tabular", "gate") if k in batch}
    out = model(batch["image"], **inputs)
    return out.squeeze(-1) if out.ndim == 2 and out.shape[1] == 1 else out


def _set_backbone_frozen(model: nn.Module, frozen: bool) -> None:
    for module in getattr(model, "backbones", [getattr(model, "backbone", None)]):
        if module is not None:
            for param in module.parameters():
                param.requires_grad_(not frozen)


def _save(path: Path, state: dict) -> None:
    write_atomic(path, lambda p: torch.save(state, p))


def run_signature(model: nn.Module, config: dict) -> dict:
    """What a checkpoint must match to be resumed: the configuration and every parameter's name and shape."""
    return {"config": config, "shapes": [(k, tuple(v.shape)) for k, v in model.state_dict().items()]}


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


@dataclass
class RunStart:
    """What every train loop sets up first: the device, its checkpoint files, the run's signature
    and, when `last.pt` of the same run exists, the state to resume from."""

    device: torch.device
    last_path: Path
    best_path: Path
    signature: dict
    state: dict | None


def start_run(model: nn.Module, cfg, checkpoint_dir: str | Path) -> RunStart:
    """Seed, move `model` to `cfg.device`, create `checkpoint_dir` and find a resumable `last.pt`.

    `cfg` is the loop's configuration dataclass (with `seed`, `device` and `resume`); every field but
    `resume` and `desc` is part of the signature a checkpoint must match.
    """
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    model.to(device)
    folder = Path(checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    signature = run_signature(model, {k: v for k, v in asdict(cfg).items() if k not in ("resume", "desc")})
    state = load_resumable(folder / "last.pt", signature, device) if cfg.resume else None
    return RunStart(device, folder / "last.pt", folder / "best.pt", signature, state)


def fit(model: nn.Module, loss_fn: nn.Module, train: Dataset, val: Dataset, cfg: TrainConfig,
        checkpoint_dir: str | Path, train_targets: np.ndarray | None = None) -> TrainResult:
    """Train with best-epoch checkpointing on validation loss, early stopping, and resume.

    `checkpoint_dir` receives `last.pt` (everything needed to resume, rewritten atomically after
    every epoch) and `best.pt` (the best model's weights). With `cfg.resume`, a run whose
    `last.pt` exists continues after its last finished epoch.
    """
    run = start_run(model, cfg, checkpoint_dir)
    device, last_path, best_path, signature, state = run.device, run.last_path, run.best_path, run.signature, run.state
    amp = cfg.amp and device.type == "cuda"

    optimizer = OPTIMIZERS[cfg.optimizer](model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.scheduler == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, cfg.epochs))
    elif cfg.scheduler == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    history: list[dict] = []
    start_epoch, best_loss, best_epoch, stale, elapsed = 0, float("inf"), -1, 0, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, best_loss, best_epoch = state["history"], state["best_loss"], state["best_epoch"]
        stale, elapsed, start_epoch = state["stale"], state["seconds"], state["epoch"] + 1
        torch.set_rng_state(state["rng"])

    # Each epoch's order depends only on (seed, epoch), so a resumed run replays the same batches.
    if cfg.sampler_pos_share > 0:
        targets = train_targets if train_targets is not None else train.all_targets
        sampler = balanced_sampler(targets, cfg.sampler_pos_share, cfg.seed)
        generator = sampler.generator
        train_loader = DataLoader(train, cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                                  pin_memory=device.type == "cuda")
    else:
        generator = torch.Generator().manual_seed(cfg.seed)
        train_loader = DataLoader(train, cfg.batch_size, shuffle=True, generator=generator,
                                  num_workers=cfg.num_workers, pin_memory=device.type == "cuda")
    val_loader = DataLoader(val, cfg.batch_size * 2, shuffle=False, num_workers=cfg.num_workers,
                            pin_memory=device.type == "cuda")

    for epoch in range(start_epoch, cfg.epochs):
        if best_epoch >= 0 and stale >= cfg.patience and epoch >= cfg.min_epochs:
            break
        tic = time.perf_counter()
        torch.manual_seed(cfg.seed + epoch)
        generator.manual_seed(cfg.seed + epoch)
        mix_rng = np.random.default_rng([cfg.seed, epoch])
        _set_backbone_frozen(model, epoch < cfg.freeze_backbone_epochs)
        model.train()
        total, count, correct, wait = 0.0, 0, 0, 0.0
        optimizer.zero_grad(set_to_none=True)
        bar = tqdm(train_loader, desc=f"{cfg.desc} epoch {epoch + 1}/{cfg.epochs}", leave=False)
        fetched = time.perf_counter()
        for step, batch in enumerate(bar):
            wait += time.perf_counter() - fetched
            batch = _batch_to(batch, device)
            target = batch["target"]
            if cfg.mixup_alpha > 0:
                batch["image"], target = mixup(batch["image"], target, cfg.mixup_alpha, mix_rng)
            with torch.autocast(device.type, enabled=amp):
                output = _forward(model, batch)
                loss = loss_fn(output, target)
            correct += _correct(output.detach(), batch["target"])
            scaler.scale(loss / cfg.grad_accum).backward()
            if (step + 1) % cfg.grad_accum == 0 or step + 1 == len(train_loader):
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
            total += float(loss.detach()) * len(batch["target"])
            count += len(batch["target"])
            bar.set_postfix(loss=f"{total / count:.4f}")
            fetched = time.perf_counter()
        loop_seconds = time.perf_counter() - tic
        scheduler.step()
        val_loss, val_acc = evaluate_loss(model, loss_fn, val_loader, device, amp)
        seconds = time.perf_counter() - tic
        elapsed += seconds
        history.append({"epoch": epoch + 1, "train_loss": total / max(count, 1), "val_loss": val_loss,
                        "train_acc": correct / max(count, 1), "val_acc": val_acc,
                        "lr": optimizer.param_groups[0]["lr"], "seconds": seconds,
                        "data_wait_share": wait / max(loop_seconds, 1e-9)})  # of the training steps' time
        if val_loss < best_loss:
            best_loss, best_epoch, stale = val_loss, epoch + 1, 0
            _save(best_path, {"model": model.state_dict(), "epoch": epoch + 1, "val_loss": val_loss})
        else:
            stale += 1
        _save(last_path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict(), "history": history, "best_loss": best_loss,
                          "best_epoch": best_epoch, "stale": stale, "seconds": elapsed, "epoch": epoch,
                          "rng": torch.get_rng_state(), "signature": signature})
    if best_epoch >= 1:  # this run's best (a best.pt left by another configuration is never loaded)
        model.load_state_dict(torch.load(best_path, map_location=device, weights_only=True)["model"])
    return TrainResult(pd.DataFrame(history), best_epoch, best_loss, elapsed, best_path, str(device), amp)


def _correct(output: torch.Tensor, target: torch.Tensor) -> int:
    """Correct predictions in a batch: argmax for class scores, logit > 0 for a single logit."""
    pred = output.argmax(dim=1) if output.ndim == 2 else (output > 0).long()
    return int((pred == target.long()).sum())


@torch.no_grad()
def evaluate_loss(model: nn.Module, loss_fn: nn.Module, loader: DataLoader, device: torch.device,
                  amp: bool = False) -> tuple[float, float]:
    """Mean loss and accuracy over a loader."""
    model.eval()
    total, count, correct = 0.0, 0, 0
    for batch in loader:
        batch = _batch_to(batch, device)
        with torch.autocast(device.type, enabled=amp):
            output = _forward(model, batch)
            loss = loss_fn(output, batch["target"])
        total += float(loss) * len(batch["target"])
        count += len(batch["target"])
        correct += _correct(output.float(), batch["target"])
    return total / max(count, 1), correct / max(count, 1)


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, batch_size: int = 128, device: str = "auto",
            activation: Callable[[torch.Tensor], torch.Tensor] | None = torch.sigmoid) -> np.ndarray:
    """Model outputs for every item, in order: sigmoid probabilities by default, softmax for multi-class."""
    dev = pick_device(device)
    model.to(dev).eval()
    outputs = []
    for batch in DataLoader(dataset, batch_size, shuffle=False):
        batch = _batch_to(batch, dev)
        out = _forward(model, batch).float()
        outputs.append((activation(out) if activation else out).cpu())
    return torch.cat(outputs).numpy()
