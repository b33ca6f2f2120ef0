"""Study 002's unsupervised baselines (§IV): GMM, k-means, kernel PCA, FastICA, LLE, online
dictionary learning on frozen backbone embeddings, and a convolutional autoencoder (CAE)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.mixture import GaussianMixture
from torch import nn
from torch.utils.data import Dataset

from derm_nb.studies.study002.losses import Prototypes, malignancy_score
from derm_nb.studies.study002.training import collate, embed
from derm_nb.train import Epoch, StepOutput, Task, run_epochs


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


@dataclass
class CAEConfig:
    """The convolutional autoencoder's training: MSE from noisy, cropped inputs to clean images."""

    epochs: int = 15
    batch_size: int = 32
    lr: float = 1e-3
    noise: float = 0.1
    crop: float = 0.8
    device: str = "auto"
    seed: int = 0
    resume: bool = True
    desc: str = "CAE"


def train_autoencoder(model: ConvAutoencoder, images: Dataset, cfg: CAEConfig,
                      checkpoint_dir: str | Path) -> pd.DataFrame:
    """Train the CAE to reconstruct clean images from noisy, cropped ones (MSE); returns the loss history."""

    def batches(epoch: Epoch) -> list[np.ndarray]:
        order = torch.randperm(len(images), generator=epoch.generator).numpy()
        return [order[start:start + cfg.batch_size] for start in range(0, len(order), cfg.batch_size)]

    def step(index: np.ndarray, epoch: Epoch, _: int) -> StepOutput:
        x, _y = collate(images, index, epoch.device)
        return StepOutput(F.mse_loss(model(corrupt(x, cfg.noise, cfg.crop, epoch.generator)), x), len(x))

    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    task = Task(optimizer, batches, step, monitor=None)
    return run_epochs(model, task, cfg, checkpoint_dir).history


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
