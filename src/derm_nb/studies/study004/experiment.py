"""One study-004 run over several seeds, as the paper reports (the mean of five): the bags (frozen
features or, end to end, block pixels), each seed's model, training and scores, and the summary
over seeds."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch_geometric.data import Data

from derm_nb.chapters import ChapterContext
from derm_nb.cluster import run_variants
from derm_nb.models.backbones import StagePooled
from derm_nb.studies.study004.end_to_end import PixelBags, end_to_end_model
from derm_nb.studies.study004.mil import (
    GCNMIL,
    MILConfig,
    bag_jobs,
    build_bags,
    init_ones,
    predict_bags,
    standardise_bags,
    stride_for_height,
    train_mil,
)
from derm_nb.studies.study004.segmentation import (
    Segmentation,
    mean_or_nan,
    melanoma_maps,
    recognition,
    score_maps,
    segment,
    table_row,
)
from derm_nb.train import seeded

WEIGHT_INITS = ("glorot", "ones")


@dataclass
class BagSets:
    """A run's bags: `train` (rotation-balanced, what the model learns from), `val`, `test`, and
    `calibration` (one unrotated bag per training image, in order: where η is calibrated)."""

    train: Sequence[Data]
    val: Sequence[Data]
    test: Sequence[Data]
    calibration: Sequence[Data]
    key: str = ""  # how they were made (for checkpoint signatures)


def prepare_bags(feature_net: nn.Module, images: dict[str, Sequence[torch.Tensor]], labels: dict[str, np.ndarray],
                 block: int, stride_scale: float, angles: dict[int, list[int]], end_to_end: bool,
                 device: str = "auto") -> BagSets:
    """Frozen: every block's features computed once and standardised by the training blocks'. End to
    end: bags of block pixels cut on access (training bags flipped and turned at random, as the study)."""
    key = (f"{'pixels' if end_to_end else 'features'} of {block} px blocks, stride scale {stride_scale}, "
           f"rotations {angles}, first image {tuple(images['train'][0].shape)}"
           + (f", pooled stages {feature_net.stages}" if isinstance(feature_net, StagePooled) else ""))
    if end_to_end:
        def pixels(split: str, **kw) -> PixelBags:
            return PixelBags(images[split], labels[split], block, stride_scale, **kw)

        return BagSets(pixels("train", angles=angles, augment=True), pixels("val"), pixels("test"), pixels("train"),
                       key)
    bags = {s: build_bags(feature_net, images[s], labels[s], block, stride_scale, angles if s == "train" else None,
                          device, desc=f"{s} bags") for s in ("train", "val", "test")}
    standardise_bags(bags)  # block features scaled by the training blocks' mean and SD
    return BagSets(bags["train"], bags["val"], bags["test"], [b for b in bags["train"] if int(b.rotation) == 0], key)


@dataclass
class ModelSpec:
    """How each seed's model is made: Table 2's sizes, the initialisation, and the backbone to train
    with it (end to end) or None (frozen features)."""

    width: int
    hidden: int
    attention: int
    n_classes: int
    weight_init: str = "glorot"
    backbone: nn.Module | None = None

    def build(self, seed: int, calibration: Sequence[Data]) -> GCNMIL:
        """A fresh model for `seed` (glorot: torch-geometric's initialisation; ones: the study's)."""
        if self.weight_init not in WEIGHT_INITS:
            raise ValueError(f"weight_init must be one of {', '.join(WEIGHT_INITS)}, not '{self.weight_init}'")
        with seeded(seed):
            model = (GCNMIL(self.width, self.hidden, self.attention, self.n_classes) if self.backbone is None else
                     end_to_end_model(self.backbone, self.width, self.hidden, self.attention, self.n_classes,
                                      calibration))
        if self.weight_init == "ones":
            init_ones(model)
        return model


@dataclass
class Scoring:
    """What every seed is scored against: the classes, each split's labels, the block size, the cache's
    size, the lesion masks (the training melanomas' and the test images'; None without masks) and how
    the cache was fitted to a square (`crop` or `resize`)."""

    classes: list[str]
    labels: dict[str, np.ndarray]
    block: int
    size: int
    train_masks: list[np.ndarray | None] | None
    test_masks: list[np.ndarray | None] | None
    fit: str = "crop"


def scoring_for(ctx: ChapterContext, frames: dict[str, pd.DataFrame], labels: dict[str, np.ndarray], block: int,
                size: int) -> Scoring:
    """The chapter's `Scoring`: its classes, labels and the cached masks at `size` px where the data has them."""
    classes, masks = ctx.data.classes, ctx.data.has_masks
    melanomas = frames["train"].iloc[np.flatnonzero(labels["train"] == classes.index("melanoma"))]
    return Scoring(classes, labels, block, size, ctx.masks(melanomas, size) if masks else None,
                   ctx.masks(frames["test"], size) if masks else None, ctx.data.summary.get("cache_fit", "crop"))


def bags_note(bags: BagSets, labels: np.ndarray, angles: dict[int, list[int]], classes: list[str], block: int,
              stride_scale: float, features: str) -> str:
    """What the bags are (for the chapter): the example test bag's size, blocks and edges, and the
    training bags per class after rotation balancing."""
    example = bags.test[0]
    height, width = (int(v) for v in example.image_hw[0])
    counts = pd.Series(labels[[i for i, _ in bag_jobs(labels, angles)]]).map(dict(enumerate(classes))).value_counts()
    return (f"The first test image, {width} x {height} px: blocks of {block} px at stride "
            f"{stride_for_height(height, stride_scale)} give **{example.num_nodes} blocks and {example.num_edges} "
            f"directed edges**. Block features: {features}.\n\nTraining bags after rotation balancing: "
            + ", ".join(f"{c} {n}" for c, n in counts.items()) + ".")


@dataclass
class SeedRun:
    """One seed's trained model, history, test probabilities and attention, scores and segmentation."""

    seed: int
    model: GCNMIL
    history: pd.DataFrame
    prob: np.ndarray
    attention: list[np.ndarray]
    scores: dict
    seg: Segmentation


def run_seed(model: GCNMIL, bags: BagSets, cfg: MILConfig, scoring: Scoring, checkpoint_dir: str | Path) -> SeedRun:
    """Train `model` with `cfg`, then score its test recognition and its attention masks (η calibrated
    on the training melanomas)."""
    history = train_mil(model, bags.train, bags.val, cfg, checkpoint_dir).assign(model=f"seed {cfg.seed}")
    prob, attention = predict_bags(model, bags.test, cfg.device)
    mel = scoring.classes.index("melanoma")
    train_maps, _ = melanoma_maps(model, bags.calibration, scoring.labels["train"], mel, scoring.block, scoring.size,
                                  cfg.device, scoring.fit)
    test_maps = score_maps(prob, attention, bags.test, scoring.block, scoring.size, scoring.fit)
    seg = segment(train_maps, scoring.train_masks, test_maps, scoring.test_masks)
    scores = recognition(prob, scoring.labels["test"], scoring.classes, cfg.seed)
    return SeedRun(cfg.seed, model, history, prob, attention, scores, seg)


@dataclass(frozen=True)
class SeedGrid:
    """What every seed of a run shares: the model spec, the bags, the configuration, the scoring and where
    checkpoints go."""

    spec: ModelSpec
    bags: BagSets
    cfg: MILConfig
    scoring: Scoring
    checkpoint_dir: Path


def seed_model(seed: int, grid: SeedGrid) -> GCNMIL:
    """A fresh model for `seed`: what `one_seed` trains, and what `run_variants` loads a trained state into."""
    return grid.spec.build(seed, grid.bags.calibration)


def one_seed(seed: int, grid: SeedGrid) -> SeedRun:
    """`run_seed` for one seed, with a fresh model and its own checkpoints (`seed_<n>/`)."""
    return run_seed(seed_model(seed, grid), grid.bags, replace(grid.cfg, seed=seed, bags=grid.bags.key), grid.scoring,
                    grid.checkpoint_dir / f"seed_{seed}")


def run_seeds(seeds: Iterable[int], spec: ModelSpec, bags: BagSets, cfg: MILConfig, scoring: Scoring,
              checkpoint_dir: str | Path, client: Any | None = None) -> list[SeedRun]:
    """`one_seed` for each seed: Dask tasks on `client` (the chapter's), serially without one."""
    grid = SeedGrid(spec, bags, cfg, scoring, Path(checkpoint_dir))
    runs = run_variants(one_seed, {f"seed_{s}": s for s in seeds}, grid, grid.checkpoint_dir / "results", cfg.seed,
                        client, rebuild=seed_model)
    return list(runs.values())


SEED_METRICS = {"roc_auc": "AUC", "sk_roc_auc": "Seborrheic Keratosis-AUC", "accuracy": "Accuracy",
                "recall": "Recall", "jaccard": "JA", "jaccard_melanoma": "JA (melanomas)"}


def seed_table(runs: Sequence[SeedRun], y: np.ndarray, mel: int) -> pd.DataFrame:
    """Table 5's columns for every seed, then their mean (the study's figure) and SD over seeds."""
    rows = pd.concat([table_row(r.scores, r.seg, y, mel, f"seed {r.seed}") for r in runs])[list(SEED_METRICS.values())]
    summary = pd.DataFrame({"mean": rows.apply(mean_or_nan), "SD": rows.std(ddof=1) if len(rows) > 1 else np.nan}).T
    return pd.concat([rows, summary.rename(index={"mean": f"mean of {len(runs)} seeds"})])


def seed_metrics(runs: Sequence[SeedRun], y: np.ndarray, mel: int) -> dict[str, float | int]:
    """The mean and SD over seeds of Table 5's columns, for metrics.json (`seed_mean_roc_auc`, ...), and each
    seed's melanoma and SK AUCs (`roc_auc_seeds`, `sk_roc_auc_seeds`)."""
    table = seed_table(runs, y, mel)
    mean, sd = table.iloc[-2], table.iloc[-1]
    return {"seeds": len(runs), "roc_auc_seeds": [float(r.scores["melanoma"]["roc_auc"]) for r in runs],
            "sk_roc_auc_seeds": [float(r.scores["sk"]["roc_auc"]) for r in runs],
            **{f"seed_mean_{k}": float(mean[c]) for k, c in SEED_METRICS.items()},
            **{f"seed_sd_{k}": float(sd[c]) for k, c in SEED_METRICS.items()}}
