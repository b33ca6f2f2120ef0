"""Study 001's transforms on images with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from derm_nb.studies.study001 import PerImageStandardize, ShadesOfGrey
from derm_nb.transforms import mixup


def test_shades_of_grey_removes_a_known_colour_cast():
    torch.manual_seed(0)
    scene = torch.rand(1, 32, 32).repeat(3, 1, 1) * 0.6 + 0.2         # a grey (achromatic) scene
    cast = torch.tensor([1.2, 1.0, 0.7])[:, None, None]               # warm illuminant
    corrected = ShadesOfGrey(power=6)(scene * cast)
    means = corrected.mean(dim=(1, 2))
    assert means.max() / means.min() == pytest.approx(1.0, abs=0.02)  # the cast is gone
    assert (scene * cast).mean(dim=(1, 2)).max() / (scene * cast).mean(dim=(1, 2)).min() > 1.6


def test_shades_of_grey_leaves_a_neutral_uniform_image_neutral():
    image = torch.full((3, 8, 8), 0.5)
    out = ShadesOfGrey()(image)
    assert torch.allclose(out[0], out[1]) and torch.allclose(out[1], out[2])


def test_per_image_standardize():
    image = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]]).repeat(3, 1, 1)
    out = PerImageStandardize()(image)
    assert float(out.mean()) == pytest.approx(0, abs=1e-6)
    assert float(out.std()) == pytest.approx(1, abs=1e-4)


def test_mixup_mixes_images_and_targets_with_one_lambda():
    images = torch.stack([torch.zeros(3, 2, 2), torch.ones(3, 2, 2)])
    targets = torch.tensor([0, 1])
    mixed, soft = mixup(images, targets, alpha=0.2, rng=np.random.default_rng(3))
    # each mixed image is constant and equals its soft target (0/1 images with 0/1 targets)
    assert torch.allclose(mixed.mean(dim=(1, 2, 3)), soft)
    assert mixup(images, targets, alpha=0, rng=np.random.default_rng(0))[1].tolist() == [0.0, 1.0]
    again, _ = mixup(images, targets, alpha=0.2, rng=np.random.default_rng(3))
    assert torch.equal(mixed, again)
