"""Grad-CAM heat maps (pytorch-grad-cam) and where their mass falls: lesion, corners, elsewhere."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def last_conv_layer(model: nn.Module) -> nn.Module:
    """The last Conv2d of a model: the usual Grad-CAM target layer for a CNN classifier."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(model).__name__} has no Conv2d layer for Grad-CAM")
    return convs[-1]


def conv_layer_at_resolution(model: nn.Module, image_size: int, min_size: int = 7) -> tuple[str, nn.Module, int]:
    """The last Conv2d whose output is at least `min_size` pixels wide for a square input of `image_size`.

    At 224 px this is an ImageNet CNN's last convolution (7 x 7 maps); at small input sizes the last
    layer's maps shrink to 1-2 px, which makes Grad-CAM meaningless, so an earlier stage is used.
    """
    sizes: dict[str, int] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, o, n=n: sizes.__setitem__(n, o.shape[-1]))
             for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, image_size, image_size))
    model.train(was_training)
    for h in hooks:
        h.remove()
    eligible = [n for n, w in sizes.items() if w >= min_size] or list(sizes)[:1]
    name = eligible[-1]
    return name, model.get_submodule(name), sizes[name]


def gradcam_maps(model: nn.Module, images: torch.Tensor, classes: np.ndarray, layer: nn.Module | None = None,
                 batch_size: int = 16) -> np.ndarray:
    """Grad-CAM maps (N, H, W) in [0, 1] for a single-logit binary model, for the given class of each image.

    Class 1 explains the malignant logit, class 0 its negation (pytorch-grad-cam's BinaryClassifierOutputTarget).
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget

    model.eval()
    maps = []
    with GradCAM(model=model, target_layers=[layer or last_conv_layer(model)]) as cam:
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            targets = [BinaryClassifierOutputTarget(int(c)) for c in classes[start:start + batch_size]]
            maps.append(cam(input_tensor=chunk, targets=targets))
    return np.concatenate(maps) if maps else np.zeros((0, *images.shape[-2:]))


def corner_mask(size: int) -> np.ndarray:
    """Pixels outside the inscribed circle of a square image: where dermoscope dark corners sit."""
    yy, xx = np.mgrid[0:size, 0:size]
    centre = (size - 1) / 2
    return np.hypot(yy - centre, xx - centre) > size / 2


def heatmap_mass(cam: np.ndarray, lesion: np.ndarray | None) -> dict[str, float]:
    """Share of a heat map's mass inside the lesion mask and inside the corners, with their area shares.

    An enrichment above 1 means the map concentrates on that region more than a uniform map would.
    Without a mask (`lesion` None) the lesion shares are NaN and the corners are the whole outer ring.
    """
    cam = np.clip(np.asarray(cam, dtype=float), 0, None)
    known = lesion is not None
    lesion = np.asarray(lesion, dtype=bool) if known else np.zeros(cam.shape[-2:], dtype=bool)
    corners = corner_mask(cam.shape[-1]) & ~lesion
    total = cam.sum()
    lesion_area = float(lesion.mean()) if known else float("nan")
    if total <= 0:
        return {"lesion_mass": float("nan"), "corner_mass": float("nan"), "lesion_area": lesion_area,
                "corner_area": float(corners.mean()), "lesion_enrichment": float("nan")}
    corner_mass = float(cam[corners].sum() / total)
    if not known:
        return {"lesion_mass": float("nan"), "corner_mass": corner_mass, "lesion_area": lesion_area,
                "corner_area": float(corners.mean()), "lesion_enrichment": float("nan")}
    lesion_mass = float(cam[lesion].sum() / total)
    return {"lesion_mass": lesion_mass, "corner_mass": corner_mass, "lesion_area": float(lesion.mean()),
            "corner_area": float(corners.mean()),
            "lesion_enrichment": lesion_mass / lesion.mean() if lesion.any() else float("nan")}
