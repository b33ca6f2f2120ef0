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
