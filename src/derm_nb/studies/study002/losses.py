"""Study 002's equations (§III): cosine distances, the triplet and COM-Triplet losses, the UDC
centre loss, batch centres, the prototypes kept while their separation grows, prototype feature
selection, the nearest-prototype score, and the direct classifiers' per-batch class weights (Eq. 1). Each function
names the equation it implements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """d(a, b) = 1 - cos(a, b), row-wise; a zero vector is at distance 1 from everything."""
    return 1.0 - F.cosine_similarity(a, b, dim=-1, eps=1e-8)


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                 margin: float) -> torch.Tensor:
    """Eq. 2: mean of max(0, d(A, P) - d(A, N) + margin)."""
    return F.relu(cosine_distance(anchor, positive) - cosine_distance(anchor, negative) + margin).mean()


def com_triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                     margin: float | None = None) -> torch.Tensor:
    """Eq. 3-5: mean of max(0, Dist_wa + alpha), Dist_wa = d(A,P) - (d(A,N) + d(P,N)) / 2, alpha = 1 - d(P,N).

    A number for `margin` is the constant alpha of Tables I-II's margin rows (COM-Triplet, fixed margin).
    """
    d_pn = cosine_distance(positive, negative)
    dist_wa = cosine_distance(anchor, positive) - 0.5 * (cosine_distance(anchor, negative) + d_pn)
    return F.relu(dist_wa + (1.0 - d_pn if margin is None else margin)).mean()


def centre_loss(embeddings: torch.Tensor, is_minority: torch.Tensor, mu_min: torch.Tensor, mu_maj: torch.Tensor,
                margin: float | None = None, com: bool = True) -> torch.Tensor:
    """Eq. 12-13 (UDC): P and N replaced by the two cluster centres.

    With `com` (COM-Triplet), the distance of Eq. 13 and the adaptive margin 1 - d(mu_min, mu_maj) of
    Eq. 12, or the constant `margin` when one is given; without, the traditional triplet loss against
    the centres, d(A, own) - d(A, other) + margin.
    """
    d_min = cosine_distance(embeddings, mu_min.expand_as(embeddings))
    d_maj = cosine_distance(embeddings, mu_maj.expand_as(embeddings))
    own, other = torch.where(is_minority, d_min, d_maj), torch.where(is_minority, d_maj, d_min)
    if not com:
        if margin is None:
            raise ValueError("the traditional triplet loss needs a constant margin")
        return F.relu(own - other + margin).mean()
    d_centres = cosine_distance(mu_min, mu_maj)
    alpha = 1.0 - d_centres if margin is None else margin
    return F.relu(own - 0.5 * (other + d_centres) + alpha).mean()


class BatchBalancedBCE(nn.Module):
    """Eq. 1 with loss-term weighting recomputed in each iteration ([56], §IV): w = B / (K n_class) for the batch's
    B images and its K classes present (scikit-learn's "balanced"), so a batch of one class is weighted 1."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.float()
        positive = target > 0.5
        n_pos = positive.sum()
        n_neg = target.numel() - n_pos
        share = target.numel() / ((n_pos > 0).float() + (n_neg > 0).float())
        weight = torch.where(positive, share / n_pos.clamp(min=1), share / n_neg.clamp(min=1))
        return F.binary_cross_entropy_with_logits(logits, target, weight=weight)


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

    def state_dict(self) -> dict:
        return {"minority": self.minority, "majority": self.majority, "separation": self.separation,
                "updates": self.updates, "offers": self.offers}

    def load_state_dict(self, state: dict) -> None:
        """Restore from a checkpoint; the prototypes always live on the CPU, wherever training ran."""
        for name, value in state.items():
            setattr(self, name, value.cpu() if isinstance(value, torch.Tensor) else value)


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
    mask = torch.ones_like(prototypes.minority, dtype=torch.bool) if keep is None else keep.cpu()
    e = embeddings.float().cpu()[:, mask]
    minority, majority = prototypes.minority.cpu(), prototypes.majority.cpu()
    d_min = cosine_distance(e, minority[mask].expand_as(e))
    d_maj = cosine_distance(e, majority[mask].expand_as(e))
    return ((2.0 + d_maj - d_min) / 4.0).numpy()


