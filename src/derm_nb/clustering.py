"""Study 002: deep clustering with the COM-Triplet loss, supervised (SDC) and unsupervised (UDC).

The equations of the study (§III) are the specification; each function names the one it implements.
A model is an embedder (backbone -> dropout 0.3 -> embedding layer). Training keeps two cluster
prototypes, updated only when their separation grows (Eq. 7); inference assigns a test image to
the nearest prototype (Eq. 14). Distances are cosine distances throughout.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.mixture import GaussianMixture
from torch import nn
from torch.utils.data import Dataset, default_collate
from tqdm.auto import tqdm

from derm_nb.artifacts import write_atomic
from derm_nb.train import pick_device, seed_everything, start_run


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """d(a, b) = 1 - cos(a, b), row-wise; a zero vector is at distance 1 from everything."""
    return 1.0 - F.cosine_similarity(a, b, dim=-1, eps=1e-8)


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                 margin: float) -> torch.Tensor:
    """Eq. 2: mean of max(0, d(A, P) - d(A, N) + margin)."""
    return F.relu(cosine_distance(anchor, positive) - cosine_distance(anchor, negative) + margin).mean()


def com_triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Eq. 3-5: mean of max(0, Dist_wa + alpha), Dist_wa = d(A,P) - (d(A,N) + d(P,N)) / 2, alpha = 1 - d(P,N)."""
    d_pn = cosine_distance(positive, negative)
    dist_wa = cosine_distance(anchor, positive) - 0.5 * (cosine_distance(anchor, negative) + d_pn)
    return F.relu(dist_wa + (1.0 - d_pn)).mean()


def centre_loss(embeddings: torch.Tensor, is_minority: torch.Tensor, mu_min: torch.Tensor, mu_maj: torch.Tensor,
                margin: float | None = None) -> torch.Tensor:
    """Eq. 12-13 (UDC): P and N replaced by the two cluster centres.

    `margin=None` is the adaptive margin 1 - d(mu_min, mu_maj) with the COM distance of Eq. 13; a number
    gives the traditional triplet loss against the centres, d(A, own) - d(A, other) + margin.
    """
    d_min = cosine_distance(embeddings, mu_min.expand_as(embeddings))
    d_maj = cosine_distance(embeddings, mu_maj.expand_as(embeddings))
    own, other = torch.where(is_minority, d_min, d_maj), torch.where(is_minority, d_maj, d_min)
    if margin is not None:
        return F.relu(own - other + margin).mean()
    d_centres = cosine_distance(mu_min, mu_maj)
    return F.relu(own - 0.5 * (other + d_centres) + (1.0 - d_centres)).mean()


def batch_centres(embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 6: the mean embedding of each class in this iteration's triplets, (minority, majority).

    With majority anchors (A, P majority, N minority) this is exactly Cl_maj = mean(E_A + E_P) / 2 and
    Cl_min = mean(E_N); anchors of the minority class add to the minority centre the same way.
    """
    labels = labels.bool()
    return embeddings[labels].mean(dim=0), embeddings[~labels].mean(dim=0)


@dataclass
class Prototypes:
    """The two cluster prototypes Cl*_min, Cl*_maj and their separation (Eq. 7)."""

    minority: torch.Tensor | None = None
    majority: torch.Tensor | None = None
    separation: float = -math.inf
    updates: int = 0
    offers: int = 0

    def offer(self, cl_min: torch.Tensor, cl_maj: torch.Tensor) -> bool:
        """Eq. 7: keep the new centres only if they are further apart than the current ones."""
        self.offers += 1
        if not (torch.isfinite(cl_min).all() and torch.isfinite(cl_maj).all()):
            return False
        separation = float(cosine_distance(cl_min, cl_maj))
        if separation <= self.separation:
            return False
        self.minority, self.majority = cl_min.detach().cpu().clone(), cl_maj.detach().cpu().clone()
        self.separation, self.updates = separation, self.updates + 1
        return True

    def state(self) -> dict:
        return {"minority": self.minority, "majority": self.majority, "separation": self.separation,
                "updates": self.updates, "offers": self.offers}


def select_features(cl_min: torch.Tensor, cl_maj: torch.Tensor) -> torch.Tensor:
    """§IV prototype feature selection: drop features whose prototype weights are similar.

    A feature is similar when |Cl_min - Cl_maj| is below the threshold. The study gives the threshold
    as "the difference between maximum and minimum feature weight averaged across prototypes"; we read
    it as half the spread of the per-feature differences, tau = (max_j d_j - min_j d_j) / 2 + min_j d_j,
    i.e. the midpoint between the least and the most different feature. Returns a boolean keep-mask.
    """
    diff = (cl_min - cl_maj).abs()
    tau = diff.min() + 0.5 * (diff.max() - diff.min())
    keep = diff >= tau
    return keep if keep.any() else torch.ones_like(keep)


def malignancy_score(embeddings: torch.Tensor, prototypes: Prototypes, keep: torch.Tensor | None = None) -> np.ndarray:
    """Eq. 14 as a continuous score: (2 + d_maj - d_min) / 4 in [0, 1]; above 0.5 means nearer the minority.

    The rank order (and so the AUC) is that of d_maj - d_min; 0.5 is the study's assignment boundary.
    """
    if prototypes.minority is None:
        raise RuntimeError("no prototypes: the model was never trained with both classes in a batch")
    mask = torch.ones_like(prototypes.minority, dtype=torch.bool) if keep is None else keep
    e = embeddings.float().cpu()[:, mask]
    d_min = cosine_distance(e, prototypes.minority[mask].expand_as(e))
    d_maj = cosine_distance(e, prototypes.majority[mask].expand_as(e))
    return ((2.0 + d_maj - d_min) / 4.0).numpy()


class Embedder(nn.Module):
    """Backbone (or none, on precomputed features) -> dropout 0.3 -> embedding layer of width `dim`."""

    def __init__(self, backbone: nn.Module | None, width: int, dim: int = 128, dropout: float = 0.3):
        super().__init__()
        self.backbone = backbone if backbone is not None else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.embedding = nn.Linear(width, dim)

    def forward(self, image: torch.Tensor, **_: torch.Tensor) -> torch.Tensor:
        return self.embedding(self.dropout(self.backbone(image)))


class FeatureSet(Dataset):
    """Precomputed backbone features as a dataset of {"image": features, "target"}.

    `features` is (N, D), or (V, N, D) for V views of each image (the original plus augmented
    copies): an item then draws one view at random (torch's seeded RNG), like on-the-fly augmentation.
    """

    def __init__(self, features: np.ndarray | torch.Tensor, targets: np.ndarray):
        feats = torch.as_tensor(np.asarray(features), dtype=torch.float32)
        self.features = feats if feats.ndim == 3 else feats.unsqueeze(0)
        self.targets = torch.as_tensor(np.array(targets)).long()
        if self.features.shape[1] != len(self.targets):
            raise ValueError(f"{self.features.shape[1]} feature rows for {len(self.targets)} targets")

    def __len__(self) -> int:
        return self.features.shape[1]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        view = int(torch.randint(self.features.shape[0], ())) if self.features.shape[0] > 1 else 0
        return {"image": self.features[view, index], "target": self.targets[index]}

    @property
    def all_targets(self) -> np.ndarray:
        return self.targets.numpy()


@dataclass
class ClusterConfig:
    """SDC / UDC training: the study's Adam (0.9, 0.99, 1e-7), 1e-5, batch 15, 15 epochs by default."""

    mode: str = "supervised"         # supervised (SDC, triplets from labels) | unsupervised (UDC, GMM)
    loss: str = "com"                # com (COM-Triplet, adaptive margin) | triplet (constant margin)
    margin: float = 0.2              # the triplet loss's constant margin
    epochs: int = 15
    batch_size: int = 15             # M: triplets per iteration (SDC) or 3M images (UDC)
    lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-7
    gmm_covariance: str = "diag"     # a full covariance from 3M = 45 points in S dimensions is singular
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
    extra: dict = field(default_factory=dict)


def _collate(dataset: Dataset, index: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    batch = default_collate([dataset[int(i)] for i in index])
    return batch["image"].to(device), batch["target"].to(device)


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
    """Embeddings of every item, in order, with dropout off."""
    dev = pick_device(device)
    model.to(dev).eval()
    out = []
    for start in range(0, len(dataset), batch_size):
        x, _ = _collate(dataset, np.arange(start, min(start + batch_size, len(dataset))), dev)
        out.append(model(x).float().cpu())
    return torch.cat(out)


def validation_auc(model: nn.Module, prototypes: Prototypes, val: Dataset, device: str) -> float:
    from sklearn.metrics import roc_auc_score

    labels = val.targets.numpy() if hasattr(val, "targets") else np.asarray([val[i]["target"] for i in range(len(val))])
    if prototypes.minority is None or len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels, malignancy_score(embed(model, val, device=device), prototypes)))


def _step_supervised(model, train, labels, cfg, rng, device, prototypes):
    index = sample_triplets(labels, cfg.batch_size, rng)
    x, y = _collate(train, index.reshape(-1), device)
    e = model(x)
    a, p, n = e.split(cfg.batch_size)
    loss = com_triplet_loss(a, p, n) if cfg.loss == "com" else triplet_loss(a, p, n, cfg.margin)
    prototypes.offer(*batch_centres(e.detach(), y))
    return loss


def _step_unsupervised(model, train, labels, cfg, rng, device, prototypes, step_seed):
    index = rng.choice(len(train), 3 * cfg.batch_size, replace=len(train) < 3 * cfg.batch_size)
    x, _ = _collate(train, index, device)
    e = model(x)
    is_min, mu_min, mu_maj = gmm_pseudo_labels(e.detach().cpu().numpy(), cfg, step_seed)
    mu_min_t = torch.as_tensor(mu_min, dtype=e.dtype, device=device)
    mu_maj_t = torch.as_tensor(mu_maj, dtype=e.dtype, device=device)
    prototypes.offer(mu_min_t, mu_maj_t)
    margin = None if cfg.loss == "com" else cfg.margin
    return centre_loss(e, torch.as_tensor(is_min, device=device), mu_min_t, mu_maj_t, margin)


def train_clustering(model: nn.Module, train: Dataset, val: Dataset, cfg: ClusterConfig,
                     checkpoint_dir: str | Path) -> ClusterResult:
    """Algorithm 1 (SDC) or its GMM variant (UDC): train the embedder and the prototypes.

    An epoch is len(train) / M iterations. After each epoch the validation AUC of nearest-prototype
    scores is recorded; the epoch with the best one (model and prototypes) is kept, like the other
    chapters keep their best validation epoch. UDC never sees training labels; validation labels only
    pick the epoch. `last.pt` (rewritten atomically each epoch) lets an interrupted run resume.
    """
    run = start_run(model, cfg, checkpoint_dir)
    device, last_path, best_path, signature, state = run.device, run.last_path, run.best_path, run.signature, run.state
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    labels = train.all_targets if cfg.mode == "supervised" else None
    prototypes = Prototypes()
    history, best_auc, best_epoch, elapsed, start = [], -math.inf, -1, 0.0, 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        prototypes = Prototypes(**state["prototypes"])
        history, best_auc, best_epoch = state["history"], state["best_auc"], state["best_epoch"]
        elapsed, start = state["seconds"], state["epoch"] + 1
    steps = max(1, len(train) // cfg.batch_size)
    for epoch in range(start, cfg.epochs):
        tic = time.perf_counter()
        torch.manual_seed(cfg.seed + epoch)
        rng = np.random.default_rng([cfg.seed, epoch])
        model.train()
        total = 0.0
        bar = tqdm(range(steps), desc=f"{cfg.desc} epoch {epoch + 1}/{cfg.epochs}", leave=False)
        for step in bar:
            if cfg.mode == "supervised":
                loss = _step_supervised(model, train, labels, cfg, rng, device, prototypes)
            else:
                loss = _step_unsupervised(model, train, None, cfg, rng, device, prototypes,
                                          cfg.seed * 100_003 + epoch * 1_009 + step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            bar.set_postfix(loss=f"{total / (step + 1):.4f}")
        auc = validation_auc(model, prototypes, val, cfg.device)
        seconds = time.perf_counter() - tic
        elapsed += seconds
        history.append({"epoch": epoch + 1, "train_loss": total / steps, "val_auc": auc,
                        "separation": prototypes.separation, "prototype_updates": prototypes.updates,
                        "seconds": seconds})
        if not math.isnan(auc) and auc > best_auc:
            best_auc, best_epoch = auc, epoch + 1
            write_atomic(best_path, lambda p: torch.save({"model": model.state_dict(),
                                                           "prototypes": prototypes.state(), "epoch": epoch + 1}, p))
        write_atomic(last_path, lambda p: torch.save(
            {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "prototypes": prototypes.state(),
             "history": history, "best_auc": best_auc, "best_epoch": best_epoch, "seconds": elapsed,
             "epoch": epoch, "signature": signature}, p))
    if best_epoch >= 1:
        best = torch.load(best_path, map_location=device, weights_only=False)
        model.load_state_dict(best["model"])
        prototypes = Prototypes(**best["prototypes"])
    return ClusterResult(pd.DataFrame(history), prototypes, best_epoch, elapsed, str(device))


def _nearest_centre_score(train: np.ndarray, test: np.ndarray, centres: np.ndarray,
                          assignment: np.ndarray) -> np.ndarray:
    """Score test rows by cosine distance to two centres; the smaller training cluster is the minority."""
    counts = np.bincount(assignment, minlength=2)
    minority = int(np.argmin(counts))
    protos = Prototypes(torch.as_tensor(centres[minority], dtype=torch.float32),
                        torch.as_tensor(centres[1 - minority], dtype=torch.float32))
    return malignancy_score(torch.as_tensor(test, dtype=torch.float32), protos)


def _projection_score(train_1d: np.ndarray, test_1d: np.ndarray, seed: int) -> np.ndarray:
    """A threshold learned without labels on a 1-D projection: 2-means on the training values, the
    smaller cluster is the minority; the score rises towards the minority centre (0.5 at the midpoint)."""
    from sklearn.cluster import KMeans

    km = KMeans(2, n_init=10, random_state=seed).fit(train_1d.reshape(-1, 1))
    counts = np.bincount(km.labels_, minlength=2)
    c_min, c_maj = km.cluster_centers_[int(np.argmin(counts)), 0], km.cluster_centers_[int(np.argmax(counts)), 0]
    if counts.min() == counts.max():
        c_min, c_maj = max(c_min, c_maj), min(c_min, c_maj)
    scale = abs(c_min - c_maj) or 1.0
    return 1.0 / (1.0 + np.exp(-(np.abs(test_1d - c_maj) - np.abs(test_1d - c_min)) / scale))


UNSUPERVISED_BASELINES = ("GMM", "K-Means", "PCA", "Fast ICA", "LLE", "ODL")


def unsupervised_baseline(name: str, train: np.ndarray, test: np.ndarray, seed: int = 0) -> np.ndarray:
    """Study 002's unsupervised baselines on backbone embeddings (§IV), scored on `test` in [0, 1].

    GMM (2 components, tol 1e-3, reg 1e-6, 100 EM iterations, k-means init) and k-means (10 starts,
    3000 iterations) use their centres as UDC uses its prototypes. Kernel PCA (cubic polynomial
    kernel), FastICA (200 iterations, whitened), LLE (5 neighbours, reg 1e-3) and online dictionary
    learning (OMP, sparsity 1, 1000 iterations) project onto one dimension, where a threshold is learned.
    """
    from sklearn import cluster, decomposition, manifold

    if name == "GMM":
        gmm = GaussianMixture(2, tol=1e-3, reg_covar=1e-6, max_iter=100, init_params="kmeans",
                              covariance_type="diag", random_state=seed).fit(train)
        return _nearest_centre_score(train, test, gmm.means_, gmm.predict(train))
    if name == "K-Means":
        km = cluster.KMeans(2, n_init=10, max_iter=3000, random_state=seed).fit(train)
        return _nearest_centre_score(train, test, km.cluster_centers_, km.labels_)
    reducers = {
        "PCA": lambda: decomposition.KernelPCA(1, kernel="poly", degree=3, random_state=seed),
        "Fast ICA": lambda: decomposition.FastICA(1, max_iter=200, whiten="unit-variance", random_state=seed),
        # ARPACK fails on the singular weight matrices of small sets; the dense solver is exact there.
        "LLE": lambda: manifold.LocallyLinearEmbedding(n_neighbors=5, n_components=1, reg=1e-3, random_state=seed,
                                                       eigen_solver="dense" if len(train) <= 3000 else "arpack"),
        "ODL": lambda: decomposition.MiniBatchDictionaryLearning(1, transform_algorithm="omp",
                                                                 transform_n_nonzero_coefs=1, max_iter=1000,
                                                                 random_state=seed),
    }
    if name not in reducers:
        raise KeyError(f"unknown unsupervised baseline '{name}' (known: {', '.join(UNSUPERVISED_BASELINES)})")
    reducer = reducers[name]().fit(train)
    return _projection_score(reducer.transform(train)[:, 0], reducer.transform(test)[:, 0], seed)


class ConvAutoencoder(nn.Module):
    """A small convolutional autoencoder (the CAE baseline): 3 strided conv layers down, 3 up."""

    def __init__(self, channels: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        c1, c2, c3 = channels
        self.encoder = nn.Sequential(nn.Conv2d(3, c1, 3, 2, 1), nn.ReLU(), nn.Conv2d(c1, c2, 3, 2, 1), nn.ReLU(),
                                     nn.Conv2d(c2, c3, 3, 2, 1), nn.ReLU())
        self.decoder = nn.Sequential(nn.ConvTranspose2d(c3, c2, 4, 2, 1), nn.ReLU(),
                                     nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(c1, 3, 4, 2, 1))

    def features(self, image: torch.Tensor) -> torch.Tensor:
        return self.encoder(image).mean(dim=(2, 3))

    def forward(self, image: torch.Tensor, **_: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(image))


def corrupt(images: torch.Tensor, noise: float, crop: float, generator: torch.Generator) -> torch.Tensor:
    """The CAE's input: Gaussian noise and a random crop (the rest zeroed), the target stays clean."""
    out = images + noise * torch.randn(images.shape, generator=generator).to(images.device)
    n, _, h, w = images.shape
    ch, cw = max(1, int(h * crop)), max(1, int(w * crop))
    keep = torch.zeros((n, 1, h, w), device=images.device)
    for i in range(n):
        top = int(torch.randint(h - ch + 1, (), generator=generator))
        left = int(torch.randint(w - cw + 1, (), generator=generator))
        keep[i, :, top:top + ch, left:left + cw] = 1
    return out * keep


def train_autoencoder(model: ConvAutoencoder, images: Dataset, epochs: int, batch_size: int, lr: float,
                      seed: int = 0, device: str = "auto", noise: float = 0.1, crop: float = 0.8) -> pd.DataFrame:
    """Train the CAE to reconstruct clean images from noisy, cropped ones (MSE); returns the loss history."""
    seed_everything(seed)
    dev = pick_device(device)
    model.to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(images), generator=generator).numpy()
        total, count = 0.0, 0
        for start in tqdm(range(0, len(order), batch_size), desc=f"CAE epoch {epoch + 1}/{epochs}", leave=False):
            x, _ = _collate(images, order[start:start + batch_size], dev)
            loss = F.mse_loss(model(corrupt(x, noise, crop, generator)), x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(x), count + len(x)
        history.append({"epoch": epoch + 1, "train_loss": total / count})
    return pd.DataFrame(history)


def cae_scores(model: ConvAutoencoder, train: Dataset, test: Dataset, seed: int = 0,
               device: str = "auto") -> np.ndarray:
    """Encoder features -> k-means with two centres -> nearest-centre score, as UDC (the CAE baseline)."""
    from sklearn.cluster import KMeans

    encoder = _FeatureHead(model)
    train_f, test_f = embed(encoder, train, device=device).numpy(), embed(encoder, test, device=device).numpy()
    km = KMeans(2, n_init=10, random_state=seed).fit(train_f)
    return _nearest_centre_score(train_f, test_f, km.cluster_centers_, km.labels_)


class _FeatureHead(nn.Module):
    def __init__(self, cae: ConvAutoencoder):
        super().__init__()
        self.cae = cae

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.cae.features(image)
