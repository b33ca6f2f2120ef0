"""Study 004's multi-instance learning: an image as a bag of k x k blocks (Eq. 1, Eq. 4), rotation
balancing, the model of Table 2 (torch-geometric's GCNConv and attentional aggregation) and its
training on the package's engine."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from torch_geometric.nn import AttentionalAggregation, GCNConv
from torch_geometric.utils import softmax as segment_softmax

from derm_nb.progress import bar
from derm_nb.train import Epoch, StepOutput, Task, data_fingerprint, pick_device, run_epochs

STUDY_STRIDES = ((1000, 50), (2000, 120), (math.inf, 200))  # Eq. 4: (height below, stride) at 224 px blocks


def stride_for_height(height: int, scale: float = 1.0) -> int:
    """Eq. 4: stride 50 below 1000 px of height, 120 below 2000, else 200; `scale` shrinks both the
    height bands and the strides for images (and blocks) `scale` times the study's size."""
    for limit, stride in STUDY_STRIDES:
        if height < limit * scale:
            return max(1, round(stride * scale))
    raise AssertionError("unreachable")


def block_grid(height: int, width: int, block: int, stride: int) -> np.ndarray:
    """Top-left corners (y, x) of the k x k sliding-window blocks that fit inside the image."""
    if block > min(height, width):
        raise ValueError(f"block size {block} exceeds the image ({height} x {width})")
    ys = np.arange(0, height - block + 1, stride)
    xs = np.arange(0, width - block + 1, stride)
    return np.array([(y, x) for y in ys for x in xs], dtype=int)


def block_adjacency(corners: np.ndarray, block: int) -> torch.Tensor:
    """Eq. 1: an edge between blocks m != n whose centres lie within sqrt(2) * k; (2, E) edge index."""
    centres = torch.as_tensor(corners, dtype=torch.float32) + block / 2
    near = torch.cdist(centres, centres) <= math.sqrt(2) * block + 1e-6
    near.fill_diagonal_(False)
    return near.nonzero().T.contiguous()


def extract_blocks(image: torch.Tensor, corners: np.ndarray, block: int) -> torch.Tensor:
    """(C, H, W) image -> (n_blocks, C, k, k) blocks at the given corners."""
    return torch.stack([image[:, y:y + block, x:x + block] for y, x in corners])


class GCNMIL(nn.Module):
    """Table 2: block features -> GCN(in, 512) -> GCN(512, 512) -> attention pooling (L = 128) -> FC(512, 3).

    Its bags carry the blocks' features as `x`; a subclass may compute them from the blocks' pixels
    (`block_features`). `eval_batch` is how many bags one prediction batch holds."""

    eval_batch = 64

    def __init__(self, in_features: int = 512, hidden: int = 512, attention: int = 128, n_classes: int = 3,
                 dropout: float = 0.0):
        super().__init__()
        self.conv1, self.conv2 = GCNConv(in_features, hidden), GCNConv(hidden, hidden)
        self.gate = nn.Sequential(nn.Linear(hidden, attention), nn.Tanh(), nn.Linear(attention, 1))
        self.pool = AttentionalAggregation(self.gate)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden, n_classes)

    def block_features(self, data: Data) -> torch.Tensor:
        return data.x

    def embed(self, data: Data) -> torch.Tensor:
        h = F.relu(self.conv1(self.block_features(data), data.edge_index))
        return F.relu(self.conv2(h, data.edge_index))

    def forward(self, data: Data) -> torch.Tensor:
        return self.fc(self.dropout(self.pool(self.embed(data), data.batch)))

    @torch.no_grad()
    def attention(self, data: Data) -> torch.Tensor:
        """Each block's attention weight within its bag (they sum to 1 per bag)."""
        return self.predict(data)[1]

    @torch.no_grad()
    def predict(self, data: Data) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits per bag and each block's attention weight, from one pass over the blocks."""
        h = self.embed(data)
        return self.fc(self.pool(h, data.batch)), segment_softmax(self.gate(h), data.batch).squeeze(-1)


def init_ones(model: nn.Module) -> None:
    """The study's stated initialisation of the layers after ResNet-18: every weight 1, every bias 0
    (makes all hidden units identical); a `backbone` keeps its ImageNet weights."""
    for name, param in model.named_parameters():
        if not name.startswith("backbone."):
            nn.init.zeros_(param) if name.endswith("bias") else nn.init.ones_(param)


def make_bag(features: torch.Tensor, edge_index: torch.Tensor, label: int, corners: np.ndarray, index: int,
             rotation: int = 0, shape: tuple[int, int] | None = None) -> Data:
    """A bag: block features (or uint8 block pixels) as nodes, the block corners, the image's row `index`,
    its rotation and its (height, width) (unknown: None)."""
    x = features if features.dtype == torch.uint8 else features.float()
    bag = Data(x=x, edge_index=edge_index, y=torch.tensor([label]), corners=torch.as_tensor(corners),
               index=torch.tensor([index]), rotation=torch.tensor([rotation]), num_nodes=len(corners))
    if shape is not None:
        bag.image_hw = torch.tensor([shape])
    return bag


@dataclass
class MILConfig:
    """The study: SGD momentum 0.9, lr 1e-5 (changed to 1e-4 at epoch 200), 400 epochs, batch 1."""

    epochs: int = 400
    batch_size: int = 1
    lr: float = 1e-5
    momentum: float = 0.9
    lr_change_epoch: int = 200
    lr_after: float = 1e-4
    patience: int = 400
    device: str = "auto"
    seed: int = 0
    bags: str = ""      # what the bags are cut from and how: a checkpoint of other bags is not resumed
    resume: bool = True
    desc: str = "GCN-MIL"


def _evaluate(model: GCNMIL, loader: DataLoader, device: torch.device) -> dict[str, float]:
    model.eval()
    total, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for batch in loader:
            batch = batch.to(device)
            out = model(batch)
            total += float(F.cross_entropy(out, batch.y, reduction="sum"))
            correct += int((out.argmax(1) == batch.y).sum())
            count += len(batch.y)
    return {"val_loss": total / max(count, 1), "val_acc": correct / max(count, 1)}


def train_mil(model: GCNMIL, train: Sequence[Data], val: Sequence[Data], cfg: MILConfig,
              checkpoint_dir: str | Path) -> pd.DataFrame:
    """Cross-entropy training with the study's schedule on the package's engine; keeps the best
    validation-loss epoch and resumes an interrupted run of the same configuration."""
    device = pick_device(cfg.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    generator = torch.Generator()
    loader = DataLoader(train, batch_size=cfg.batch_size, shuffle=True, generator=generator)
    val_loader = DataLoader(val, batch_size=model.eval_batch)

    def before_epoch(epoch: Epoch) -> None:
        generator.manual_seed(cfg.seed + epoch.index)
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr if epoch.index < cfg.lr_change_epoch else cfg.lr_after

    def step(batch: Data, epoch: Epoch, _: int) -> StepOutput:
        batch = batch.to(epoch.device)
        out = model(batch)
        return StepOutput(F.cross_entropy(out, batch.y), len(batch.y), int((out.argmax(1) == batch.y).sum()))

    task = Task(optimizer, batches=lambda _: loader, step=step, evaluate=lambda: _evaluate(model, val_loader, device),
                patience=cfg.patience, before_epoch=before_epoch, amp=False)
    return run_epochs(model, task, cfg, checkpoint_dir, data_fingerprint(train, val)).history


def train_step(device: torch.device, blocks: int, hidden: int, attention: int, batch_size: int = 1,
               in_features: int = 512) -> Callable[[], None]:
    """One training step (collate, forward, backward, SGD) on random bags of `blocks` blocks in a square
    grid, for `bench --estimate` to time."""
    from torch_geometric.data import Batch

    side = max(1, round(math.sqrt(blocks)))
    corners = block_grid(side, side, 1, 1)
    edges = block_adjacency(corners, 1)
    bags = [make_bag(torch.randn(len(corners), in_features), edges, k % 3, corners, k) for k in range(batch_size)]
    model = GCNMIL(in_features, hidden, attention).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.9)

    def step() -> None:
        batch = Batch.from_data_list(bags).to(device)
        loss = F.cross_entropy(model(batch), batch.y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


@torch.no_grad()
def predict_bags(model: GCNMIL, bags: Sequence[Data], device: str = "auto") -> tuple[np.ndarray, list[np.ndarray]]:
    """Class probabilities per bag and each bag's block attention weights (empty for no bags)."""
    if not len(bags):
        return np.zeros((0, model.fc.out_features), np.float32), []
    dev = pick_device(device)
    model.to(dev).eval()
    probs, attention = [], []
    for batch in DataLoader(bags, batch_size=model.eval_batch):
        batch = batch.to(dev)
        logits, weights = model.predict(batch)
        probs.append(torch.softmax(logits, dim=1).cpu())
        weights = weights.cpu()
        attention += [weights[batch.batch.cpu() == b].numpy() for b in range(batch.num_graphs)]
    return torch.cat(probs).numpy(), attention


def rotations(steps: dict[str, int], classes: list[str]) -> dict[int, list[int]]:
    """The DR set's rotation angles per class index: a step of 18 gives 0, 18, ..., 342; 0 gives no copy."""
    unknown = set(steps) - set(classes)
    if unknown:
        raise KeyError(f"rotation_steps names unknown classes {sorted(unknown)} (classes: {', '.join(classes)})")
    return {k: (list(range(0, 360, steps[c])) if steps.get(c, 0) > 0 else [0]) for k, c in enumerate(classes)}


def rotate(image: torch.Tensor, angle: int) -> torch.Tensor:
    """Rotate a (C, H, W) image; multiples of 90 degrees exactly, others with torchvision (black corners)."""
    if angle % 90 == 0:
        return torch.rot90(image, angle // 90, dims=(1, 2))
    from torchvision.transforms.v2 import functional as TF

    return TF.rotate(image, angle)


@functools.lru_cache(maxsize=64)
def bag_layout(height: int, width: int, block: int, stride_scale: float) -> tuple[np.ndarray, torch.Tensor]:
    """The blocks' corners and Eq. 1's edges for an image of this size, at Eq. 4's stride for its height."""
    corners = block_grid(height, width, block, stride_for_height(height, stride_scale))
    return corners, block_adjacency(corners, block)


def bag_jobs(labels: np.ndarray, angles: dict[int, list[int]] | None = None) -> list[tuple[int, int]]:
    """(image row, rotation angle) of every bag: one per image and per rotation angle of its class."""
    return [(i, a) for i in range(len(labels)) for a in (angles or {}).get(int(labels[i]), [0])]


def normalise_pixels(blocks: torch.Tensor) -> torch.Tensor:
    """uint8 blocks (..., 3, k, k) -> ImageNet-standardised floats."""
    from derm_nb.models.backbones import IMAGENET_MEAN, IMAGENET_STD

    mean = torch.tensor(IMAGENET_MEAN, device=blocks.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=blocks.device).view(3, 1, 1)
    return (blocks.float() / 255 - mean) / std


@torch.no_grad()
def build_bags(backbone: nn.Module, images: Sequence[torch.Tensor], labels: np.ndarray, block: int,
               stride_scale: float, angles: dict[int, list[int]] | None = None, device: str = "auto",
               batch_blocks: int = 1024, desc: str = "bags") -> list[Data]:
    """One bag per image (and per rotation angle of its class): the frozen backbone's features of every
    k x k block as nodes, Eq. 1's adjacency as edges. Images are uint8 (3, H, W) of any size, each cut
    at Eq. 4's stride for its height (scaled by `stride_scale`)."""
    dev = pick_device(device)
    backbone.to(dev, memory_format=torch.channels_last).eval()  # 1.5-3x faster for small blocks on CPU
    bags, pending, blocks = [], [], []

    def flush():
        feats = backbone(torch.cat(blocks).to(dev, memory_format=torch.channels_last)).float().cpu()
        start = 0
        for i, angle, shape in pending:
            corners, edges = bag_layout(*shape, block, stride_scale)
            bags.append(make_bag(feats[start:start + len(corners)], edges, int(labels[i]), corners, i, angle, shape))
            start += len(corners)
        pending.clear()
        blocks.clear()

    loaded = (-1, None)
    for i, angle in bar(bag_jobs(labels, angles), desc=desc, leave=False):
        loaded = loaded if loaded[0] == i else (i, images[i])  # each image read once for all its angles
        image = rotate(loaded[1], angle)
        corners, _ = bag_layout(*image.shape[1:], block, stride_scale)
        blocks.append(normalise_pixels(extract_blocks(image, corners, block)))
        pending.append((i, angle, tuple(image.shape[1:])))
        if sum(len(b) for b in blocks) >= batch_blocks:
            flush()
    if pending:
        flush()
    return bags


def standardise_bags(bags: dict[str, list[Data]], reference: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Scale every block feature by the mean and SD of the `reference` split's blocks, in place.

    Frozen-backbone features are small and sparse (most post-ReLU channels are 0); unscaled, the GCN's
    outputs barely differ between bags and SGD stays at the class prior. Returns (mean, sd); a feature
    with no spread (constant, or a single block) gets SD 1e-6, so it becomes 0 everywhere.
    """
    if not bags[reference]:
        raise ValueError(f"no '{reference}' bags to standardise by")
    x = torch.cat([b.x for b in bags[reference]])
    sd = x.std(0) if len(x) > 1 else torch.zeros(x.shape[1])
    mean, sd = x.mean(0), sd.clamp_min(1e-6)
    for split in bags.values():
        for bag in split:
            bag.x = (bag.x - mean) / sd
    return mean, sd
