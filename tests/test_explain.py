"""Heat-map mass on known maps, and Grad-CAM from the library on a model with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from derm_nb.explain import corner_mask, gradcam_maps, heatmap_mass, last_conv_layer


def disk(size=32, radius=8):
    yy, xx = np.mgrid[0:size, 0:size]
    return np.hypot(yy - 15.5, xx - 15.5) < radius


def test_corner_mask_area():
    assert corner_mask(200).mean() == pytest.approx(1 - np.pi / 4, abs=0.01)


def test_uniform_map_spreads_mass_by_area():
    lesion = disk()
    out = heatmap_mass(np.ones((32, 32)), lesion)
    assert out["lesion_mass"] == pytest.approx(lesion.mean())
    assert out["corner_mass"] == pytest.approx(out["corner_area"])
    assert out["lesion_enrichment"] == pytest.approx(1.0)


def test_map_on_the_lesion_and_map_in_a_corner():
    lesion = disk()
    on = heatmap_mass(lesion.astype(float), lesion)
    assert on["lesion_mass"] == 1 and on["corner_mass"] == 0 and on["lesion_enrichment"] > 4
    corner = np.zeros((32, 32))
    corner[:3, :3] = 1
    off = heatmap_mass(corner, lesion)
    assert off["lesion_mass"] == 0 and off["corner_mass"] == 1


class Spot(nn.Module):
    """Its logit is the mean activation of channel 0; only the top-left quadrant of the input is non-zero,
    so the activation (and hence Grad-CAM: pooled gradient x activation) lives only there."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0, 0] = 1.0

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))


def test_gradcam_from_the_library_finds_the_region_that_drives_the_logit():
    model = Spot()
    assert last_conv_layer(model) is model.conv
    images = torch.zeros(2, 3, 16, 16)
    images[:, :, :8, :8] = torch.rand(2, 3, 8, 8) + 0.1
    maps = gradcam_maps(model, images, np.array([1, 1]))
    assert maps.shape == (2, 16, 16)
    quadrant = np.zeros((16, 16), bool)
    quadrant[:8, :8] = True
    for m in maps:
        assert m[quadrant].sum() / m.sum() > 0.95


def test_target_layer_keeps_enough_resolution():
    from derm_nb.explain import conv_layer_at_resolution
    from derm_nb.models.backbones import create_backbone

    backbone, _, _ = create_backbone("resnet18", "none")
    name, _, width = conv_layer_at_resolution(backbone, 224)
    assert name.startswith("layer4") and width == 7
    name, _, width = conv_layer_at_resolution(backbone, 64)
    assert width == 8 and name.startswith("layer2")
