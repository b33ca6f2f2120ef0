"""CUDA-only checks (marker `gpu`): skipped where there is no GPU, as on CI."""

from __future__ import annotations

import pytest
import torch

from derm_nb.studies.study002.losses import Prototypes, malignancy_score

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_prototypes_restored_from_a_checkpoint_live_on_the_cpu():
    """Runs everywhere: a checkpoint loaded onto any device gives CPU prototypes (the 05 crash on CUDA)."""
    protos = Prototypes()
    protos.load_state_dict({"minority": torch.ones(4), "majority": -torch.ones(4), "separation": 2.0,
                            "updates": 1, "offers": 1})
    assert protos.minority.device.type == "cpu"
    scores = malignancy_score(torch.ones(3, 4), protos, keep=torch.tensor([True, True, False, True]))
    assert scores.shape == (3,) and (scores > 0.5).all()


@pytest.mark.gpu
@cuda
def test_score_with_cuda_prototypes_and_mask():
    protos = Prototypes(torch.ones(4, device="cuda"), -torch.ones(4, device="cuda"))
    keep = torch.tensor([True, False, True, True], device="cuda")
    scores = malignancy_score(torch.ones(3, 4, device="cuda"), protos, keep)
    assert (scores > 0.5).all()


@pytest.mark.gpu
@cuda
def test_batch_views_and_training_on_cuda(tmp_path):
    """The engine on CUDA: uint8 batches pinned and copied, augmented there, bf16 + channels-last."""
    import numpy as np
    from torch import nn

    from derm_nb.datasets import CachedImages
    from derm_nb.losses import BCE
    from derm_nb.train import TrainConfig, fit
    from derm_nb.transforms import augment_transform, eval_transform

    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    targets = (np.arange(64) % 2).astype(np.float32)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 1))
    result = fit(model, BCE(), CachedImages(images, targets, augment_transform(32, hflip=0.5, degrees=10)),
                 CachedImages(images, targets, eval_transform(32)), TrainConfig(epochs=2, batch_size=16, device="cuda"),
                 tmp_path)
    assert result.device.startswith("cuda") and result.amp_used and len(result.history) == 2


@pytest.mark.gpu
@cuda
def test_smoke_book_on_cuda(tmp_path):
    """Every chapter under `device: cuda` (05 once crashed there on a device mismatch)."""
    from derm_nb.artifacts import read_json
    from derm_nb.chapters import MODEL_CHAPTERS
    from derm_nb.cli import main

    user = tmp_path / "cuda.yaml"
    user.write_text("common:\n  device: cuda\n")
    assert main(["run", "--profile", "smoke", "--run-dir", str(tmp_path / "run"), "--params", str(user)]) == 0
    for stem in ("02_baseline", "04_efficientnet", "06_architectures"):
        variants = read_json(tmp_path / "run" / stem / "metrics.json")["variants"]
        assert all(v["device"].startswith("cuda") for v in variants.values()), stem   # every variant records it
    assert all((tmp_path / "run" / stem / "metrics.json").is_file() for stem in MODEL_CHAPTERS)
