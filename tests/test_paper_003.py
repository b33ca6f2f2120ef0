"""Study 003 follows its paper: MobileNet v1, the whole image resized (not cropped), the minority
classes oversampled with augmented copies, and the paper's 563 / 100 / 117 split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from PIL import Image
from timm.models._efficientnet_blocks import DepthwiseSeparableConv, InvertedResidual
from torch import nn

from derm_nb.data.cache import build_cache, cache_folder, load_images
from derm_nb.data.splits import group_split
from derm_nb.studies import study003


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_mobilenet_is_v1_depthwise_separable_blocks_without_inverted_residuals():
    model, provenance, title = study003.build_architecture("mobilenet", 3, 64, "resnet101")
    assert provenance.backbone == "mobilenetv1_100" and provenance.weights == "none" and title == "MobileNet"
    blocks = [m for m in model.modules() if isinstance(m, DepthwiseSeparableConv)]
    assert len(blocks) == 13                       # v1: 13 depthwise-separable layers after the stem
    assert not any(isinstance(m, InvertedResidual) for m in model.modules())
    for block in blocks:                           # depthwise 3x3 (one filter per channel), then pointwise 1x1
        assert block.conv_dw.groups == block.conv_dw.in_channels == block.conv_dw.out_channels
        assert block.conv_dw.kernel_size == (3, 3) and block.conv_pw.kernel_size == (1, 1)
        assert not block.has_skip                  # no residual connections in v1
    assert [b.conv_pw.out_channels for b in blocks] == [64, 128, 128, 256, 256, *[512] * 6, 1024, 1024]
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 3)


def test_mobilenet_v1_has_its_published_size():
    """Howard et al. (2017), Table 8: 1.0 MobileNet-224 has 4.2 million parameters at 1000 classes."""
    assert 4.15e6 < _params(timm.create_model(study003.MOBILENET, pretrained=False)) < 4.25e6
    model, _, _ = study003.build_architecture("mobilenet", 3, 224, "resnet101")
    assert 3.2e6 < _params(model) < 3.3e6          # the same network with a 3-class head (v2 would be 2.2M)


def _striped(path, width: int = 200, height: int = 100) -> None:
    """A wide image: red left quarter, green middle, blue right quarter; its mask: the left quarter."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 4] = (255, 0, 0)
    pixels[:, width // 4: 3 * width // 4] = (0, 255, 0)
    pixels[:, 3 * width // 4:] = (0, 0, 255)
    Image.fromarray(pixels).save(path / "wide.png")
    mask = np.zeros((height, width), np.uint8)
    mask[:, : width // 4] = 255
    Image.fromarray(mask).save(path / "wide_mask.png")


@pytest.mark.parametrize("fit", ["resize", "crop"])
def test_the_cache_resizes_the_whole_image_or_crops_its_centre(tmp_path, fit):
    _striped(tmp_path)
    manifest = pd.DataFrame({"image_id": ["wide"], "path": [str(tmp_path / "wide.png")],
                             "mask_path": [str(tmp_path / "wide_mask.png")]})
    build_cache(manifest, tmp_path / "cache", size=40, fit=fit)
    image = load_images(manifest, tmp_path / "cache")[0].astype(int)
    mask = load_images(manifest, tmp_path / "cache", masks=True)[0]
    left, right = image[20, 2], image[20, -3]
    if fit == "resize":   # the whole image squeezed: the outer quarters stay, and the mask follows them
        assert left[0] > 200 and left[1] < 50 and right[2] > 200 and right[1] < 50
        assert mask[:, :8].all() and not mask[:, 12:].any()
    else:                 # the centred 100 x 100 square: only green is left, and so no mask
        assert left[1] > 200 and right[1] > 200 and left[0] < 50 and right[2] < 50
        assert not mask.any()


def test_a_resized_cache_has_its_own_folder_and_an_unknown_fit_fails():
    assert cache_folder(128, "crop") == "128" and cache_folder(128, "resize") == "128-resize"
    with pytest.raises(ValueError, match="unknown cache fit 'pad'"):
        cache_folder(128, "pad")


def test_00_data_caches_busi_whole_by_default(real_declared):
    assert real_declared["00_data"]["cache_fit"].default == {"busi": "resize"}


def test_oversampling_enlarges_each_minority_class_to_the_majority():
    labels = np.array([0] * 10 + [1] * 4 + [2] * 3)
    rows = study003.oversample(labels, (1, 2), 1.0, seed=0)
    assert np.bincount(labels[rows]).tolist() == [10, 10, 10]
    assert rows[: len(labels)].tolist() == list(range(len(labels)))    # every original once, first
    counts = np.bincount(rows, minlength=len(labels))
    assert (counts[:10] == 1).all()                                    # the majority gets no copies
    assert set(counts[10:14]) == {2, 3} and counts[10:14].sum() == 10  # 4 -> 10: two rounds and 2 drawn
    assert set(counts[14:]) == {3, 4} and counts[14:].sum() == 10      # 3 -> 10: three rounds and 1 drawn
    assert rows.tolist() == study003.oversample(labels, (1, 2), 1.0, seed=0).tolist()


@pytest.mark.parametrize("ratio, expected", [(0.0, [10, 4, 3]), (0.5, [10, 5, 5]), (0.35, [10, 4, 4])])
def test_the_oversampling_ratio_sets_the_minority_counts(ratio, expected):
    labels = np.array([0] * 10 + [1] * 4 + [2] * 3)
    assert np.bincount(labels[study003.oversample(labels, (1, 2), ratio, seed=1)]).tolist() == expected
    assert study003.oversampled_counts({0: 10, 1: 4, 2: 3}, (1, 2), ratio) == dict(enumerate(expected))


def test_the_training_set_holds_the_copies_and_augments_only_the_minority():
    labels = pd.Series([0] * 6 + [1] * 3 + [2] * 2)
    frames = {s: pd.DataFrame({"label": labels}) for s in ("train", "val", "test")}
    images = {s: torch.arange(len(labels), dtype=torch.uint8).repeat_interleave(3 * 8 * 8).reshape(-1, 3, 8, 8)
              for s in frames}
    sets = study003.datasets(images, frames, 8, (1, 2), seed=0, oversample_ratio=1.0)
    assert len(sets["train"]) == 18 and len(sets["val"]) == len(sets["test"]) == 11
    assert np.bincount(sets["train"].all_targets).tolist() == [6, 6, 6]
    # each copy carries its own image: the pixel value is the original row's index, whose label it has
    originals = sets["train"].images[:, 0, 0, 0].long()
    assert (labels.to_numpy()[originals.numpy()] == sets["train"].targets.numpy()).all()
    assert sets["train"].augment_classes.tolist() == [1, 2]
    table = study003.class_counts(frames, ["benign", "malignant", "normal"], (1, 2), 1.0)
    assert table["train, oversampled"].tolist() == [6, 6, 6] and table["test"].tolist() == [6, 3, 2]


def test_the_split_gives_the_papers_563_100_117_on_busi():
    """§III.A: 563 / 100 / 117 of 780 images, stratified over 437 benign, 210 malignant, 133 normal."""
    labels = np.repeat([0, 1, 2], [437, 210, 133])
    frame = pd.DataFrame({"label": labels, "group_id": [f"case{i}" for i in range(len(labels))]})
    sizes = group_split(frame, study003.SPLIT, seed=0, stratify="label").value_counts()
    assert abs(sizes["train"] - 563) <= 1 and abs(sizes["val"] - 100) <= 1 and abs(sizes["test"] - 117) <= 1


def test_the_workload_counts_the_oversampled_images():
    p = {"image_size": 32, "epochs": 2, "architectures": ["simple_cnn"], "pretrained_backbone": "resnet101"}
    n = {"train": 563.0, "val": 100.0, "classes_train": {"benign": 315.0, "malignant": 152.0, "normal": 96.0}}
    plain = study003.workload("06_architectures", {**p, "minority_oversample": 0.0}, n)
    balanced = study003.workload("06_architectures", {**p, "minority_oversample": 1.0}, n)
    assert plain[0].images == 2 * 563
    assert balanced[0].images == pytest.approx(2 * 563 * 945 / 563)
    assert balanced[1].images == plain[1].images == 2 * 100       # validation is not oversampled


def test_the_card_sets_the_papers_recipe_and_full_follows_it():
    settings = study003.CARD.settings["06_architectures"]
    assert settings["image_size"] == 224 and settings["batch_size"] == 8 and settings["lr_pretrained"] == 5e-5
    assert settings["minority_oversample"] == 1.0 and settings["pretrained_backbone"] == "resnet101"
    assert "06_architectures" not in study003.CARD.reasons
    assert {d.aspect for d in study003.CARD.methods["06_architectures"]} >= {"minority oversampling"}


def test_a_seeded_architecture_starts_from_the_same_weights_whatever_ran_before_and_leaves_no_reseed():
    first, _, _ = study003.build_architecture("simple_cnn", 3, 64, "resnet101", seed=5)
    torch.rand(1000)  # another variant's draws
    again, _, _ = study003.build_architecture("simple_cnn", 3, 64, "resnet101", seed=5)
    other, _, _ = study003.build_architecture("simple_cnn", 3, 64, "resnet101", seed=6)
    same = [torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values())]
    assert all(same) and len(same) > 2
    assert not all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), other.state_dict().values()))
    torch.manual_seed(11)
    expected = torch.rand(5)
    torch.manual_seed(11)
    study003.build_architecture("simple_cnn", 3, 64, "resnet101", seed=5)
    assert torch.equal(torch.rand(5), expected)   # the global generator goes on as if no model had been built
