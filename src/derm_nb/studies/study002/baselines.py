"""Study 002's unsupervised baselines (§IV): GMM, k-means, kernel PCA, FastICA, LLE, online
dictionary learning on frozen backbone embeddings, and a convolutional autoencoder (CAE).

A baseline that cannot run on the features it is given (too few or identical rows, a constant
projection, centres every image is equidistant from) raises `derm_nb.metrics.Skipped` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.mixture import GaussianMixture
from torch import nn
from torch.utils.data import Dataset

from derm_nb.metrics import Skipped, require_finite
from derm_nb.studies.study002.losses import Prototypes, malignancy_score
from derm_nb.studies.study002.training import collate, embed
from derm_nb.train import Epoch, StepOutput, Task, data_fingerprint, run_epochs


def _constant(values: np.ndarray, rtol: float = 1e-6) -> bool:
    """Whether every row of `values` is the same up to float rounding (relative to its largest entry)."""
    values = np.asarray(values, dtype=float)
    return float(np.ptp(values, axis=0).max()) <= rtol * float(np.abs(values).max())


def check_features(features: np.ndarray, name: str, min_rows: int = 2) -> None:
    """Raise `Skipped` unless `name` can split these training features: finite, at least `min_rows` rows,
    and not all identical (as when a backbone's features collapse to zero: nothing to split)."""
    require_finite(features, f"{name}'s training features")
    if len(features) < min_rows:
        raise Skipped(f"{name} needs at least {min_rows} training images; there are {len(features)}")
    if _constant(features):
        raise Skipped(f"{name}: all {len(features)} training feature vectors are identical: nothing to cluster")


def _nearest_centre_score(train: np.ndarray, test: np.ndarray, centres: np.ndarray, assignment: np.ndarray,
                          name: str) -> np.ndarray:
    """Score test rows by cosine distance to two centres; the smaller training cluster is the minority."""
    counts = np.bincount(assignment, minlength=2)
    minority = int(np.argmin(counts))
    protos = Prototypes(torch.as_tensor(centres[minority], dtype=torch.float32),
                        torch.as_tensor(centres[1 - minority], dtype=torch.float32))
    if _constant(malignancy_score(torch.as_tensor(train, dtype=torch.float32), protos)):
        raise Skipped(f"{name}: every training image is equally far (cosine) from both centres")
    return malignancy_score(torch.as_tensor(test, dtype=torch.float32), protos)


def _projection_score(train_1d: np.ndarray, test_1d: np.ndarray, seed: int, name: str) -> np.ndarray:
    """A threshold learned without labels on a 1-D projection: 2-means on the training values, the
    smaller cluster is the minority (the higher centre on a tie); the score rises towards the minority
    centre (0.5 at the midpoint)."""
    from sklearn.cluster import KMeans

    require_finite(np.r_[train_1d, test_1d], f"{name}'s projections")
    if _constant(train_1d):
        raise Skipped(f"{name}: the one-dimensional projection of the training features is constant")
    km = KMeans(2, n_init=10, random_state=seed).fit(train_1d.reshape(-1, 1))
    counts, centres = np.bincount(km.labels_, minlength=2), km.cluster_centers_[:, 0]
    minority = int(np.argmin(counts)) if counts[0] != counts[1] else int(np.argmax(centres))
    c_min, c_maj = centres[minority], centres[1 - minority]
    scale = abs(c_min - c_maj) or 1.0
    return 1.0 / (1.0 + np.exp(-(np.abs(test_1d - c_maj) - np.abs(test_1d - c_min)) / scale))


UNSUPERVISED_BASELINES = ("GMM", "K-Means", "PCA", "Fast ICA", "LLE", "ODL")
LLE_NEIGHBOURS = 5


def fitted_size(estimator: object) -> int:
    """A fitted scikit-learn estimator's learned numbers: the sizes of its float arrays named with a
    trailing underscore (centres, covariances, components; kernel PCA's stored training rows)."""
    return int(sum(np.size(v) for k, v in vars(estimator).items()
                   if k.endswith("_") and not k.startswith("_") and isinstance(v, np.ndarray) and v.dtype.kind == "f"))


def fitted_baseline(name: str, train: np.ndarray, seed: int = 0,
                    gmm_covariance: str = "full") -> tuple[Callable[[np.ndarray], np.ndarray], int]:
    """Study 002's unsupervised baselines on backbone embeddings (§IV), fitted once on `train`: a scorer of any
    split (in [0, 1]) and the estimator's learned numbers.

    GMM (2 components, tol 1e-3, reg 1e-6, 100 EM iterations, k-means init, `gmm_covariance`) and k-means (10 starts,
    3000 iterations) use their centres as UDC uses its prototypes. Kernel PCA (cubic polynomial
    kernel), FastICA (200 iterations, whitened), LLE (5 neighbours, reg 1e-3) and online dictionary
    learning (OMP, sparsity 1, 1000 iterations) project onto one dimension, where a threshold is learned.
    Raises `Skipped` when the training features leave the method nothing to split.
    """
    from sklearn import cluster, decomposition, manifold

    if name not in UNSUPERVISED_BASELINES:
        raise KeyError(f"unknown unsupervised baseline '{name}' (known: {', '.join(UNSUPERVISED_BASELINES)})")
    check_features(train, name, min_rows=LLE_NEIGHBOURS + 1 if name == "LLE" else 2)
    if name == "GMM":
        gmm = GaussianMixture(2, tol=1e-3, reg_covar=1e-6, max_iter=100, init_params="kmeans",
                              covariance_type=gmm_covariance, random_state=seed).fit(train)
        labels = gmm.predict(train)
        return (lambda x: _nearest_centre_score(train, x, gmm.means_, labels, name)), fitted_size(gmm)
    if name == "K-Means":
        km = cluster.KMeans(2, n_init=10, max_iter=3000, random_state=seed).fit(train)
        return (lambda x: _nearest_centre_score(train, x, km.cluster_centers_, km.labels_, name)), fitted_size(km)
    reducers = {
        "PCA": lambda: decomposition.KernelPCA(1, kernel="poly", degree=3, random_state=seed),
        "Fast ICA": lambda: decomposition.FastICA(1, max_iter=200, whiten="unit-variance", random_state=seed),
        # ARPACK fails on the singular weight matrices of small sets; the dense solver is exact there.
        "LLE": lambda: manifold.LocallyLinearEmbedding(n_neighbors=LLE_NEIGHBOURS, n_components=1, reg=1e-3,
                                                       random_state=seed,
                                                       eigen_solver="dense" if len(train) <= 3000 else "arpack"),
        "ODL": lambda: decomposition.MiniBatchDictionaryLearning(1, transform_algorithm="omp",
                                                                 transform_n_nonzero_coefs=1, max_iter=1000,
                                                                 random_state=seed),
    }
    reducer = reducers[name]().fit(train)
    projected = reducer.transform(train)[:, 0]
    return (lambda x: _projection_score(projected, reducer.transform(x)[:, 0], seed, name)), fitted_size(reducer)


def unsupervised_baseline(name: str, train: np.ndarray, test: np.ndarray, seed: int = 0,
                          gmm_covariance: str = "full") -> np.ndarray:
    """One baseline (see `fitted_baseline`) fitted on `train` and scored on `test`."""
    return fitted_baseline(name, train, seed, gmm_covariance)[0](test)


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
    return run_epochs(model, task, cfg, checkpoint_dir, data_fingerprint(images)).history


def cae_scores(model: ConvAutoencoder, train: Dataset, test: Dataset, seed: int = 0,
               device: str = "auto") -> np.ndarray:
    """Encoder features -> k-means with two centres -> nearest-centre score, as UDC (the CAE baseline);
    raises `Skipped` when the encoder's training features leave nothing to split."""
    from sklearn.cluster import KMeans

    encoder = _FeatureHead(model)
    train_f, test_f = embed(encoder, train, device=device).numpy(), embed(encoder, test, device=device).numpy()
    check_features(train_f, "CAE")
    km = KMeans(2, n_init=10, random_state=seed).fit(train_f)
    return _nearest_centre_score(train_f, test_f, km.cluster_centers_, km.labels_, "CAE")


class _FeatureHead(nn.Module):
    def __init__(self, cae: ConvAutoencoder):
        super().__init__()
        self.cae = cae

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.cae.features(image)
