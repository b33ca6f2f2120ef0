"""Study 004: bag builder (block count, adjacency), model, segmentation scorer, on known answers."""

import math

import numpy as np
import pytest
import torch

from derm_nb.studies.study004.mil import (
    GCNMIL,
    MILConfig,
    block_adjacency,
    block_grid,
    extract_blocks,
    init_ones,
    make_bag,
    predict_bags,
    stride_for_height,
    train_mil,
)
from derm_nb.studies.study004.segmentation import jaccard, pixel_scores, sweep_eta


def test_stride_bands_eq4():
    assert stride_for_height(767) == 50
    assert stride_for_height(1000) == 120
    assert stride_for_height(1999) == 120
    assert stride_for_height(4439) == 200
    # Scaled: 32 px blocks are 1/7 of 224, so the bands are 143 / 286 px and the strides 7 / 17 / 29.
    assert stride_for_height(128, 1 / 7) == 7
    assert stride_for_height(200, 1 / 7) == 17


def test_block_count_and_corners():
    corners = block_grid(767, 1022, 224, 50)
    # floor((767 - 224) / 50) + 1 = 11 rows, floor((1022 - 224) / 50) + 1 = 16 columns.
    assert len(corners) == 11 * 16
    assert corners.min(0).tolist() == [0, 0] and (corners.max(0) + 224 <= [767, 1022]).all()
    assert len(block_grid(128, 128, 32, 24)) == 25
    with pytest.raises(ValueError, match="exceeds the image"):
        block_grid(20, 40, 32, 8)


def test_adjacency_eq1():
    # A 3 x 3 grid with stride = k: centre distances k (sides) and sqrt(2) k (diagonals) are edges, 2k is not.
    corners = block_grid(30, 30, 10, 10)
    edges = block_adjacency(corners, 10)
    pairs = {tuple(e) for e in edges.T.tolist()}
    centre = 4
    assert {n for m, n in pairs if m == centre} == {0, 1, 2, 3, 5, 6, 7, 8}
    assert {n for m, n in pairs if m == 0} == {1, 3, 4}
    assert (0, 0) not in pairs and all((n, m) in pairs for m, n in pairs)  # no self loops, symmetric
    # Stride k/2: neighbours up to sqrt(2) k away (Eq. 1 cuts only beyond it), so the 5 x 5 block around a
    # middle block, including the (2, 2) diagonal at exactly sqrt(2) k: 24 neighbours.
    dense = block_adjacency(block_grid(30, 30, 10, 5), 10)
    degree = torch.bincount(dense[0])
    grid = block_grid(30, 30, 10, 5)
    middle = int(np.flatnonzero((grid == [10, 10]).all(1))[0])
    expected = sum(1 for dy in range(-2, 3) for dx in range(-2, 3)
                   if (dy, dx) != (0, 0) and math.hypot(dy * 5, dx * 5) <= math.sqrt(2) * 10 + 1e-9)
    assert degree[middle] == expected == 24


def test_extract_blocks():
    image = torch.arange(3 * 6 * 6).reshape(3, 6, 6)
    blocks = extract_blocks(image, np.array([[0, 0], [2, 4]]), 2)
    assert blocks.shape == (2, 3, 2, 2)
    assert torch.equal(blocks[1], image[:, 2:4, 4:6])


def bag(label, n=9, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    corners = block_grid(30, 30, 10, 10)
    x = torch.as_tensor(rng.normal(label * 1.5, 1, (n, dim)), dtype=torch.float32)
    return make_bag(x, block_adjacency(corners, 10), label, corners, seed)


def test_model_shapes_and_attention_sums_to_one():
    torch.manual_seed(0)
    model = GCNMIL(8, 16, 4, 3)
    from torch_geometric.loader import DataLoader

    batch = next(iter(DataLoader([bag(0), bag(1, seed=1), bag(2, seed=2)], batch_size=3)))
    assert model(batch).shape == (3, 3)
    weights = model.attention(batch)
    for b in range(3):
        assert weights[batch.batch == b].sum().item() == pytest.approx(1.0)


def test_all_ones_init_makes_hidden_units_identical():
    model = GCNMIL(8, 16, 4, 3)
    init_ones(model)
    h = model.embed(bag(1))
    assert torch.allclose(h, h[:, :1].expand_as(h))


def test_training_learns_toy_bags(tmp_path):
    torch.manual_seed(0)
    train = [bag(k % 3, seed=k) for k in range(60)]
    val = [bag(k % 3, seed=100 + k) for k in range(30)]
    model = GCNMIL(8, 16, 4, 3)
    cfg = MILConfig(epochs=8, batch_size=4, lr=0.05, lr_change_epoch=99, device="cpu")
    history = train_mil(model, train, val, cfg, tmp_path)
    assert history["val_acc"].max() > 0.8
    probs, attention = predict_bags(model, val, "cpu")
    assert probs.shape == (30, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert len(attention) == 30 and all(len(a) == 9 for a in attention)


def test_known_attention_gives_known_mask_and_jaccard():
    corners = block_grid(4, 4, 2, 2)  # four 2 x 2 blocks: (0,0) (0,2) (2,0) (2,2)
    attention = np.array([0.1, 0.2, 0.3, 0.4])
    scores = pixel_scores(attention, 0.8, corners, 2, (4, 4))
    # (alpha / max alpha) x p: 0.2, 0.4, 0.6, 0.8 per quadrant.
    expected = np.array([[0.2, 0.2, 0.4, 0.4], [0.2, 0.2, 0.4, 0.4], [0.6, 0.6, 0.8, 0.8], [0.6, 0.6, 0.8, 0.8]])
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    mask = scores >= 0.5
    assert mask.sum() == 8 and mask[2:].all()
    truth = np.zeros((4, 4), bool)
    truth[2:, 2:] = True
    assert jaccard(mask, truth) == pytest.approx(4 / 8)
    sweep = sweep_eta([scores], [truth])
    assert sweep.loc[sweep["jaccard"].idxmax(), "eta"] == pytest.approx(0.65)  # only the bottom-right quadrant
    assert sweep["jaccard"].max() == pytest.approx(1.0) and len(sweep) == 21


def test_overlapping_blocks_take_the_maximum():
    corners = np.array([[0, 0], [0, 1]])
    scores = pixel_scores(np.array([1.0, 0.5]), 1.0, corners, 2, (2, 3))
    np.testing.assert_allclose(scores, [[1.0, 1.0, 0.5], [1.0, 1.0, 0.5]])


def test_jaccard_edge_cases():
    empty = np.zeros((3, 3), bool)
    full = np.ones((3, 3), bool)
    assert jaccard(empty, empty) == 1.0 and jaccard(full, empty) == 0.0 and jaccard(full, full) == 1.0


def test_standardise_bags_uses_training_statistics():
    from derm_nb.studies.study004.mil import standardise_bags

    bags = {"train": [bag(0), bag(1, seed=1)], "test": [bag(2, seed=2)]}
    raw_test = bags["test"][0].x.clone()
    mean, sd = standardise_bags(bags)
    x = torch.cat([b.x for b in bags["train"]])
    assert torch.allclose(x.mean(0), torch.zeros(8), atol=1e-5) and torch.allclose(x.std(0), torch.ones(8), atol=1e-4)
    torch.testing.assert_close(bags["test"][0].x, (raw_test - mean) / sd)
