"""Batch views: what a model sees of a uint8 batch, augmented per sample on the batch's device (kornia)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from derm_nb.datasets import CachedImages, gather
from derm_nb.models.backbones import IMAGENET_MEAN
from derm_nb.studies import study001
from derm_nb.transforms import BatchView, augment_transform, eval_transform

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def ramp(n: int = 16, size: int = 24) -> torch.Tensor:
    """n copies of one asymmetric image (a horizontal ramp): a flip changes it, identity does not."""
    row = torch.linspace(0, 255, size).round().to(torch.uint8)
    return row.expand(n, 3, size, size).contiguous()


def test_eval_view_resizes_and_normalises_a_batch_and_a_single_image():
    images = torch.full((4, 3, 32, 32), 255, dtype=torch.uint8)
    out = eval_transform(16)(images)
    assert out.shape == (4, 3, 16, 16) and out.dtype == torch.float32
    assert out[:, 0].mean().item() == pytest.approx((1 - IMAGENET_MEAN[0]) / 0.229, abs=1e-3)
    assert torch.equal(eval_transform(16)(images[0]), out[0])


@pytest.mark.parametrize("device", DEVICES)
def test_augmentation_draws_its_parameters_per_image_and_from_the_seed(device):
    view = augment_transform(24, hflip=0.5)
    images = ramp().to(device)
    torch.manual_seed(0)
    first = view(images)
    flipped = (first[:, 0, 0, 0] > first[:, 0, 0, -1]).cpu()
    assert 0 < int(flipped.sum()) < len(images)  # some images flipped, some not: one draw per image
    torch.manual_seed(0)
    assert torch.equal(view(images), first)   # same seed, same batch
    assert first.device.type == device        # augmented where the batch is


def test_study001_views_standardise_each_image_of_a_batch():
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    for train, colour in ((False, "shades_of_grey"), (True, "shades_of_grey"), (True, "greyscale")):
        out = study001.transform(24, train, colour)(images)
        assert out.shape == (5, 3, 24, 24)
        assert torch.allclose(out.mean(dim=(1, 2, 3)), torch.zeros(5), atol=1e-4)
        assert torch.allclose(out.std(dim=(1, 2, 3)), torch.ones(5), atol=1e-3)


def test_minority_classes_alone_are_augmented_in_a_batch():
    images, targets = ramp(8), np.array([0, 1, 0, 1, 0, 1, 0, 1])
    flip = BatchView(24, augment_transform(24, hflip=1.0).augment)
    ds = CachedImages(images, targets, eval_transform(24), augment=flip, augment_classes=(1,))
    shown = gather(ds, range(8))["image"]
    plain = eval_transform(24)(images)
    assert torch.equal(shown[targets == 0], plain[targets == 0])
    assert torch.allclose(shown[targets == 1], plain[targets == 1].flip(-1), atol=1e-5)


def test_a_dataloader_batch_is_gathered_whole_and_presented_once():
    from derm_nb.datasets import present
    from derm_nb.train import loader

    ds = CachedImages(ramp(10), np.arange(10) % 2, eval_transform(12), tabular=np.ones((10, 2)))
    batch = next(iter(loader(ds, 4, torch.device("cpu"), shuffle=False)))
    assert batch["image"].dtype == torch.uint8 and batch["index"].tolist() == [0, 1, 2, 3]
    assert batch["tabular"].shape == (4, 2)
    assert present(ds, batch)["image"].shape == (4, 3, 12, 12)
