"""Study 002's training: Algorithm 1 (SDC, triplets from labels) and its GMM variant (UDC), on the
package's one training engine, with the embeddings and validation AUC of nearest-prototype scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.mixture import GaussianMixture
from torch import nn
from torch.utils.data import Dataset

from derm_nb.datasets import gather
from derm_nb.studies.study002.losses import (
    Prototypes,
    batch_centres,
    centre_loss,
    com_triplet_loss,
    malignancy_score,
    triplet_loss,
)
from derm_nb.train import Epoch, StepOutput, Task, data_fingerprint, pick_device, run_epochs

ADAM_BETAS, ADAM_EPS = (0.9, 0.99), 1e-7   # §IV: the study's Adam, for every model it trains


@dataclass
class ClusterConfig:
    """SDC / UDC training: the study's Adam (0.9, 0.99, 1e-7), 1e-5, batch 15, 15 epochs by default."""

    mode: str = "supervised"         # supervised (SDC, triplets from labels) | unsupervised (UDC, GMM)
    loss: str = "com"                # com (COM-Triplet) | triplet (the traditional triplet loss)
    margin: float | None = None      # None: COM-Triplet's adaptive margin; a number: a constant margin
    epochs: int = 15
    batch_size: int = 15             # M: triplets per iteration (SDC) or 3M images (UDC)
    lr: float = 1e-5
    betas: tuple[float, float] = ADAM_BETAS
    eps: float = ADAM_EPS
    gmm_covariance: str = "full"     # the study's (Eq. 9); diag is cheaper on a CPU
    gmm_tol: float = 1e-3
    gmm_reg: float = 1e-6
    device: str = "auto"
    seed: int = 0
    resume: bool = True
    desc: str = "clustering"


@dataclass
class ClusterResult:
    history: pd.DataFrame
    prototypes: Prototypes
    best_epoch: int
    seconds: float
    device: str


def collate(dataset: Dataset, index: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Items `index` of `dataset` as one (images, targets) batch on `device`, as the model sees them."""
    batch = gather(dataset, index, device)
    return batch["image"], batch["target"]


def sample_triplets(labels: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """Algorithm 1: M random anchors, each with a random positive of its class and a negative of the other.

    Returns an (3, M) index array (A, P, N); P differs from A whenever the class has two images.
    """
    labels = np.asarray(labels).astype(int)
    by_class = {c: np.flatnonzero(labels == c) for c in (0, 1)}
    if min(len(v) for v in by_class.values()) == 0:
        raise ValueError("triplets need both classes in the training set")
    anchors = rng.choice(len(labels), m, replace=True)
    positives, negatives = np.empty(m, int), np.empty(m, int)
    for k, a in enumerate(anchors):
        same, other = by_class[labels[a]], by_class[1 - labels[a]]
        choices = same[same != a] if len(same) > 1 else same
        positives[k], negatives[k] = rng.choice(choices), rng.choice(other)
    return np.stack([anchors, positives, negatives])


def gmm_pseudo_labels(embeddings: np.ndarray, cfg: ClusterConfig, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eq. 8-11: a 2-component GMM (k-means init) on the batch's embeddings.

    Our stated rule for which component is the minority: the one with fewer members in the batch
    (the study's premise that melanoma is rare). Returns (is_minority per row, mu_min, mu_maj).
    """
    gmm = GaussianMixture(2, covariance_type=cfg.gmm_covariance, tol=cfg.gmm_tol, reg_covar=cfg.gmm_reg,
                          init_params="kmeans", random_state=seed).fit(embeddings)
    component = gmm.predict(embeddings)
    counts = np.bincount(component, minlength=2)
    minority = int(np.argmin(counts)) if counts.min() > 0 else int(np.argmin(gmm.weights_))
    return component == minority, gmm.means_[minority], gmm.means_[1 - minority]


@torch.no_grad()
def embed(model: nn.Module, dataset: Dataset, batch_size: int = 256, device: str = "auto") -> torch.Tensor:
    """Embeddings of every item, in order, with dropout off (on the CPU)."""
    dev = pick_device(device)
    model.to(dev).eval()
    out = []
    for start in range(0, len(dataset), batch_size):
        x, _ = collate(dataset, np.arange(start, min(start + batch_size, len(dataset))), dev)
        out.append(model(x).float().cpu())
    return torch.cat(out)


def validation_auc(model: nn.Module, prototypes: Prototypes, val: Dataset, device: str) -> float:
    """AUC of the nearest-prototype score on `val`; NaN before there are prototypes or with one class."""
    from sklearn.metrics import roc_auc_score

    labels = val.targets.numpy() if hasattr(val, "targets") else np.asarray([val[i]["target"] for i in range(len(val))])
    if prototypes.minority is None or len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels, malignancy_score(embed(model, val, device=device), prototypes)))


def _supervised_step(model: nn.Module, train: Dataset, labels: np.ndarray, cfg: ClusterConfig,
                     prototypes: Prototypes):
    def step(_: int, epoch: Epoch, __: int) -> StepOutput:
        index = sample_triplets(labels, cfg.batch_size, epoch.rng)
        x, y = collate(train, index.reshape(-1), epoch.device)
        e = model(x)
        a, p, n = e.split(cfg.batch_size)
        loss = com_triplet_loss(a, p, n, cfg.margin) if cfg.loss == "com" else triplet_loss(a, p, n, cfg.margin)
        prototypes.offer(*batch_centres(e.detach().float(), y))
        return StepOutput(loss)
    return step


def _unsupervised_step(model: nn.Module, train: Dataset, cfg: ClusterConfig, prototypes: Prototypes):
    def step(_: int, epoch: Epoch, i: int) -> StepOutput:
        index = epoch.rng.choice(len(train), 3 * cfg.batch_size, replace=len(train) < 3 * cfg.batch_size)
        x, _y = collate(train, index, epoch.device)
        e = model(x)
        step_seed = cfg.seed * 100_003 + epoch.index * 1_009 + i
        is_min, mu_min, mu_maj = gmm_pseudo_labels(e.detach().float().cpu().numpy(), cfg, step_seed)
        mu_min_t = torch.as_tensor(mu_min, dtype=e.dtype, device=e.device)
        mu_maj_t = torch.as_tensor(mu_maj, dtype=e.dtype, device=e.device)
        prototypes.offer(mu_min_t, mu_maj_t)
        is_min_t = torch.as_tensor(is_min, device=e.device)
        return StepOutput(centre_loss(e, is_min_t, mu_min_t, mu_maj_t, cfg.margin, com=cfg.loss == "com"))
    return step


def train_clustering(model: nn.Module, train: Dataset, val: Dataset, cfg: ClusterConfig,
                     checkpoint_dir: str | Path) -> ClusterResult:
    """Algorithm 1 (SDC) or its GMM variant (UDC): train the embedder and the prototypes.

    An epoch is len(train) / M iterations. After each epoch the validation AUC of nearest-prototype
    scores is recorded; the epoch with the best one (model and prototypes) is kept. UDC never sees
    training labels; validation labels only pick the epoch.
    """
    if cfg.loss not in ("com", "triplet") or (cfg.loss == "triplet" and cfg.margin is None):
        raise ValueError(f"loss '{cfg.loss}' with margin {cfg.margin}: com (margin None or a number) or triplet "
                         "(with a number)")
    prototypes = Prototypes()
    steps = range(max(1, len(train) // cfg.batch_size))
    step = (_supervised_step(model, train, train.all_targets, cfg, prototypes) if cfg.mode == "supervised"
            else _unsupervised_step(model, train, cfg, prototypes))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    task = Task(optimizer, batches=lambda _: steps, step=step, monitor="val_auc", mode="max",
                evaluate=lambda: {"val_auc": validation_auc(model, prototypes, val, cfg.device),
                                  "separation": prototypes.separation, "prototype_updates": prototypes.updates},
                state={"prototypes": prototypes})
    result = run_epochs(model, task, cfg, checkpoint_dir, data_fingerprint(train, val))
    return ClusterResult(result.history, prototypes, result.best_epoch, result.seconds, result.device)
