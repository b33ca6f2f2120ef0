"""Study 002: the COM-Triplet losses, centre updates, inference and the training loops, on hand-computed cases."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, roc_auc_score

from derm_nb.metrics import class_weighted_metrics
from derm_nb.studies.study002.baselines import (
    UNSUPERVISED_BASELINES,
    CAEConfig,
    ConvAutoencoder,
    cae_scores,
    corrupt,
    train_autoencoder,
    unsupervised_baseline,
)
from derm_nb.studies.study002.inputs import Embedder, FeatureSet
from derm_nb.studies.study002.losses import (
    Prototypes,
    batch_centres,
    centre_loss,
    com_triplet_loss,
    cosine_distance,
    malignancy_score,
    select_features,
    triplet_loss,
)
from derm_nb.studies.study002.training import ClusterConfig, gmm_pseudo_labels, sample_triplets, train_clustering


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_cosine_distance_known_values():
    assert cosine_distance(t([1, 0]), t([1, 0])).item() == pytest.approx(0.0)
    assert cosine_distance(t([1, 0]), t([0, 1])).item() == pytest.approx(1.0)
    assert cosine_distance(t([1, 0]), t([-2, 0])).item() == pytest.approx(2.0)
    assert cosine_distance(t([0, 0]), t([1, 1])).item() == pytest.approx(1.0)  # zero vector


def test_triplet_loss_hand_computed():
    a, p, n = t([1, 0]), t([1, 1]), t([0, 1])
    # d(A,P) = 1 - 1/sqrt2 = 0.2929, d(A,N) = 1
    assert triplet_loss(a, p, n, 0.2).item() == pytest.approx(0.0)
    assert triplet_loss(a, p, n, 0.8).item() == pytest.approx(1 - 1 / math.sqrt(2) - 1 + 0.8, abs=1e-6)
    # Identical points: d = 0 everywhere, the loss is the margin.
    same = t([0.3, 0.4])
    assert triplet_loss(same, same, same, 0.6).item() == pytest.approx(0.6)


def test_com_triplet_identical_and_orthogonal_points():
    same = t([0.3, 0.4])
    # Identical: Dist_wa = 0, adaptive margin 1 - 0 = 1.
    assert com_triplet_loss(same, same, same).item() == pytest.approx(1.0)
    # A = P, N orthogonal: Dist_wa = 0 - (1 + 1) / 2 = -1, margin 1 - 1 = 0 -> 0.
    assert com_triplet_loss(t([1, 0]), t([1, 0]), t([0, 1])).item() == pytest.approx(0.0)
    # A = P, N opposite: Dist_wa = -(2 + 2) / 2 = -2, margin 1 - 2 = -1 -> max(0, -3) = 0.
    assert com_triplet_loss(t([1, 0]), t([1, 0]), t([-1, 0])).item() == pytest.approx(0.0)


def test_com_triplet_hand_computed_and_batch_mean():
    a, p, n = t([1, 0]), t([1, 1]), t([0, 1])
    d_ap, d_an, d_pn = 1 - 1 / math.sqrt(2), 1.0, 1 - 1 / math.sqrt(2)
    expected = max(0.0, d_ap - 0.5 * (d_an + d_pn) + 1 - d_pn)
    assert com_triplet_loss(a, p, n).item() == pytest.approx(expected, abs=1e-6)
    # The loss is a batch mean over triplets.
    batch = com_triplet_loss(torch.cat([a, t([1, 0])]), torch.cat([p, t([1, 0])]), torch.cat([n, t([0, 1])]))
    assert batch.item() == pytest.approx(expected / 2, abs=1e-6)
    # Unlike the triplet loss, it also pulls P away from N: moving P towards N raises it.
    assert com_triplet_loss(a, t([1, 2]), n).item() > com_triplet_loss(a, p, n).item()


def test_centre_loss_eq12_13():
    mu_min, mu_maj = t([0, 1])[0], t([1, 0])[0]
    e = t([1, 0], [0, 1], [1, 1])
    is_min = torch.tensor([False, True, False])
    # Rows 0-1 sit on their own centre: own 0, other 1, d(mu) 1 -> 0 - (1 + 1)/2 + 0 < 0 -> 0.
    # Row 2 (majority): own = other = 1 - 1/sqrt2 = q -> q - (q + 1)/2 + 0 = (q - 1)/2 < 0 -> 0.
    assert centre_loss(e, is_min, mu_min, mu_maj).item() == pytest.approx(0.0)
    # Centres at 45 degrees: adaptive margin 1 - q > 0.
    q = 1 - 1 / math.sqrt(2)
    mu_min2 = t([1, 1])[0]
    got = centre_loss(t([1, 0]), torch.tensor([False]), mu_min2, mu_maj).item()
    assert got == pytest.approx(max(0.0, 0 - 0.5 * (q + q) + 1 - q), abs=1e-6)
    # Constant margin: the plain triplet against the centres, d(A, own) - d(A, other) + m.
    assert centre_loss(t([1, 0]), torch.tensor([False]), mu_min2, mu_maj, margin=0.6).item() == pytest.approx(0.6 - q)


def test_batch_centres_reduce_to_eq6_for_majority_anchors():
    e_a, e_p, e_n = torch.randn(4, 3), torch.randn(4, 3), torch.randn(4, 3)
    e = torch.cat([e_a, e_p, e_n])
    y = torch.tensor([0] * 8 + [1] * 4)
    cl_min, cl_maj = batch_centres(e, y)
    torch.testing.assert_close(cl_maj, (e_a + e_p).sum(0) / 8)
    torch.testing.assert_close(cl_min, e_n.mean(0))


def test_prototypes_keep_only_growing_separation():
    protos = Prototypes()
    assert protos.offer(t([1, 0])[0], t([1, 1])[0])       # first offer always kept
    assert not protos.offer(t([1, 0])[0], t([1, 0.5])[0])  # closer: rejected (Eq. 7)
    assert protos.majority.tolist() == [1, 1]
    assert protos.offer(t([1, 0])[0], t([0, 1])[0])       # further apart: kept
    assert protos.separation == pytest.approx(1.0) and protos.updates == 2 and protos.offers == 3
    assert not protos.offer(t([float("nan"), 0])[0], t([-1, 0])[0])


def test_nearest_prototype_inference_eq14():
    protos = Prototypes(t([0, 1])[0], t([1, 0])[0])
    score = malignancy_score(t([0.1, 1], [1, 0.1], [1, 1]), protos)
    assert score[0] > 0.5 > score[1]          # nearer the minority -> melanoma
    assert score[2] == pytest.approx(0.5)     # equidistant: the boundary
    assert ((score >= 0) & (score <= 1)).all()


def test_feature_selection_drops_similar_features():
    cl_min, cl_maj = t([1.0, 0.5, 0.0, 2.0])[0], t([1.0, 0.4, 1.0, 0.0])[0]
    # |diff| = 0, 0.1, 1, 2 -> tau = 0 + (2 - 0) / 2 = 1 -> keep features 2 and 3.
    assert select_features(cl_min, cl_maj).tolist() == [False, False, True, True]
    keep = torch.tensor([False, True])
    protos = Prototypes(t([5, 1])[0], t([-5, 0])[0])
    # On feature 1 alone, [0, 1] is at the minority prototype although feature 0 points to the majority.
    assert malignancy_score(t([-5, 1]), protos, keep)[0] == pytest.approx(0.75)


def test_sample_triplets_classes():
    labels = np.array([0] * 10 + [1] * 2)
    a, p, n = sample_triplets(labels, 200, np.random.default_rng(0))
    assert (labels[a] == labels[p]).all() and (labels[a] != labels[n]).all() and (a != p).all()
    with pytest.raises(ValueError, match="both classes"):
        sample_triplets(np.zeros(5), 3, np.random.default_rng(0))


def test_gmm_minority_is_the_smaller_component():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.1, (40, 4)), rng.normal(3, 0.1, (5, 4))])
    is_min, mu_min, mu_maj = gmm_pseudo_labels(x, ClusterConfig(), 0)
    assert is_min.sum() == 5 and is_min[-5:].all()
    assert mu_min.mean() == pytest.approx(3, abs=0.1) and mu_maj.mean() == pytest.approx(0, abs=0.1)


def blobs(n_maj=120, n_min=24, dim=8, seed=0, shift=1.5):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(0, 1, (n_maj, dim)), rng.normal(0, 1, (n_min, dim)) + shift])
    y = np.r_[np.zeros(n_maj, int), np.ones(n_min, int)]
    return x.astype(np.float32), y


@pytest.mark.parametrize("mode,loss", [("supervised", "com"), ("supervised", "triplet"), ("unsupervised", "com")])
def test_training_learns_separable_blobs_and_resumes(tmp_path, mode, loss):
    shift = 1.5 if mode == "supervised" else 3.0  # UDC has no labels: it needs clusters a GMM can see
    x, y = blobs(shift=shift)
    xv, yv = blobs(seed=1, shift=shift)
    cfg = ClusterConfig(mode=mode, loss=loss, margin=0.2 if loss == "triplet" else None, epochs=4, batch_size=15,
                        lr=1e-2, device="cpu", seed=0)
    torch.manual_seed(0)
    model = Embedder(None, 8, dim=4)
    result = train_clustering(model, FeatureSet(x, y), FeatureSet(xv, yv), cfg, tmp_path / "run")
    assert len(result.history) == 4 and result.prototypes.updates >= 1
    from derm_nb.studies.study002.training import embed
    auc = roc_auc_score(yv, malignancy_score(embed(model, FeatureSet(xv, yv)), result.prototypes))
    assert auc > 0.8, auc
    # A finished run resumes from last.pt without training again and gives the same prototypes.
    again = train_clustering(Embedder(None, 8, dim=4), FeatureSet(x, y), FeatureSet(xv, yv), cfg, tmp_path / "run")
    torch.testing.assert_close(again.prototypes.minority, result.prototypes.minority)
    assert again.history.equals(result.history)


def test_same_seed_same_prototypes(tmp_path):
    x, y = blobs()
    cfg = ClusterConfig(epochs=2, lr=1e-2, device="cpu", seed=3, resume=False)
    runs = []
    for k in range(2):
        torch.manual_seed(3)
        runs.append(train_clustering(Embedder(None, 8, 4), FeatureSet(x, y), FeatureSet(x, y), cfg, tmp_path / str(k)))
    torch.testing.assert_close(runs[0].prototypes.majority, runs[1].prototypes.majority)


def test_feature_set_views():
    feats = np.stack([np.zeros((3, 2)), np.ones((3, 2))])
    ds = FeatureSet(feats, [0, 1, 0])
    torch.manual_seed(0)
    seen = {float(ds[0]["image"][0]) for _ in range(30)}
    assert seen == {0.0, 1.0} and len(ds) == 3
    with pytest.raises(ValueError, match="feature rows"):
        FeatureSet(np.zeros((4, 2)), [0, 1])


@pytest.mark.parametrize("name", UNSUPERVISED_BASELINES)
def test_unsupervised_baselines_find_a_clear_minority(name):
    x, y = blobs(200, 30, 6, shift=4.0)
    xt, yt = blobs(100, 20, 6, seed=1, shift=4.0)
    score = unsupervised_baseline(name, x, xt, seed=0)
    assert score.shape == (len(xt),) and np.isfinite(score).all()
    assert roc_auc_score(yt, score) > 0.9, name


def test_unknown_baseline():
    with pytest.raises(KeyError, match="unknown unsupervised baseline 'PCB'"):
        unsupervised_baseline("PCB", np.zeros((4, 2)), np.zeros((2, 2)))


def test_autoencoder_learns_and_scores(tmp_path):
    from derm_nb.datasets import CachedImages

    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (24, 3, 16, 16), dtype=torch.uint8, generator=gen)
    data = CachedImages(images, np.r_[np.zeros(20), np.ones(4)].astype(int), lambda im: im.float() / 255)
    model = ConvAutoencoder((4, 8, 8))
    history = train_autoencoder(model, data, CAEConfig(epochs=3, batch_size=8, lr=1e-2, device="cpu"), tmp_path)
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    scores = cae_scores(model, data, data, device="cpu")
    assert scores.shape == (24,) and np.ptp(scores) > 0  # not collapsed: the features tell the images apart
    noisy = corrupt(torch.ones(2, 3, 10, 10), 0.0, 0.5, gen)
    assert noisy[0].sum() == 3 * 5 * 5


def test_class_weighted_metrics_match_sklearn():
    y = np.array([0, 0, 0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.6, 0.2, 0.3, 0.9, 0.4, 0.2, 0.8])
    m = class_weighted_metrics(y, p)
    pred = (p >= 0.5).astype(int)
    assert m["recall"] == pytest.approx(accuracy_score(y, pred))   # weighted recall is accuracy
    # specificity: class 0 -> recall of class 1 (2/3), class 1 -> recall of class 0 (4/5), weights 5/8, 3/8.
    assert m["specificity"] == pytest.approx(5 / 8 * 2 / 3 + 3 / 8 * 4 / 5)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))


def test_the_cae_row_starts_from_its_seed_whatever_ran_before(tmp_path):
    """Its first weights once came from whatever the kernel's last training left in torch's generator."""
    from types import SimpleNamespace

    import pandas as pd

    from derm_nb.studies.study002.experiments import cae_variant

    gen = torch.Generator().manual_seed(0)
    targets = {s: np.r_[np.zeros(12, int), np.ones(4, int)] for s in ("train", "val", "test")}
    images = {s: torch.randint(0, 255, (16, 3, 16, 16), dtype=torch.uint8, generator=gen) for s in targets}
    inputs = SimpleNamespace(images=images, targets=targets, size=16)
    frames = {s: pd.DataFrame({"image_id": [f"{s}{i}" for i in range(16)], "target": t}) for s, t in targets.items()}
    cfg = CAEConfig(epochs=1, batch_size=8, device="cpu", seed=3)
    runs = []
    for before in (0, 1):
        torch.manual_seed(before)  # another run's draws
        runs.append(cae_variant(inputs, frames, cfg, tmp_path / f"cae{before}").predictions["prob"].to_numpy())
    assert len(runs[0]) == 32 and np.array_equal(runs[0], runs[1])
