"""Chapter 05's trained rows as `train_variant` jobs, the inputs they share, and the imbalance sweep's cells.

`rows(p)` lists every row of the chapter's tables (SDC by backbone, margin and learning strategy, the
direct classifiers, UDC, the shallow baselines and the CAE) as plain `Row` records; `chapter_inputs`
builds what they train on (each backbone's `ModelInputs`, the splits, both configurations);
`train_row` trains any one of them. The sweep has the same shape: `sweep_cells`, `sweep_inputs`,
`experiments.sweep_cell`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from derm_nb.results import Variant
from derm_nb.studies.study002.baselines import UNSUPERVISED_BASELINES, CAEConfig
from derm_nb.studies.study002.experiments import (
    TRIPLET_MARGIN,
    SweepGrid,
    cae_variant,
    classifier_settings,
    distinct_backbones,
    imbalance_ratios,
    resolve,
    run_clustering_variant,
    run_direct_classifier,
    shallow_variant,
)
from derm_nb.studies.study002.inputs import ModelInputs
from derm_nb.studies.study002.training import ClusterConfig
from derm_nb.train import TrainConfig

MAIN, SCRATCH, STRATEGY, STRATEGY_SCRATCH = "(main)", "(scratch)", "(strategy)", "(strategy scratch)"
TABLES = ("SDC backbone", "SDC margin", "SDC strategy", "Classifier", "UDC", "Shallow")


@dataclass(frozen=True)
class Row:
    """One trained row of the chapter: its name, its group of the tables (`TABLES`), the inputs it trains on
    (a key of `ChapterInputs.backbones`), its checkpoint folder and how it trains."""

    name: str
    table: str
    backbone: str = MAIN
    folder: str = ""
    mode: str = "supervised"         # SDC (supervised) or UDC (unsupervised)
    loss: str = "com"                # com (COM-Triplet) | triplet
    margin: float | None = None      # None: COM-Triplet's adaptive margin
    augment: bool = False
    loss_weighting: bool = False


def _margin_rows(prefix: str, table: str, margins: tuple[float, ...]) -> list[Row]:
    """COM-Triplet with each constant margin, then the traditional triplet loss with the study's 0.2 (Tables
    I-II for SDC, IV-V for UDC; the triplet rows are Tables III and VI's baselines)."""
    mode, low = ("supervised" if prefix == "SDC" else "unsupervised"), prefix.lower()
    com = [Row(f"{prefix} COM-Triplet α={m}", table, folder=f"{low}_com_{m}", mode=mode, margin=m) for m in margins]
    return com + [Row(f"{prefix} triplet α={TRIPLET_MARGIN}", table, folder=f"{low}_triplet", mode=mode,
                      loss="triplet", margin=TRIPLET_MARGIN)]


def rows(backbone: str, backbones: tuple[str, ...], margins: tuple[float, ...]) -> dict[str, Row]:
    """Every trained row of the chapter's tables in their order, {checkpoint folder: Row}: SDC by backbone
    (the main one first), by margin, NP and TL+DA; the direct classifiers by backbone, then NP, TL+DA, TL+LW on
    the classifier backbone; UDC COM-Triplet and its margin rows; the shallow baselines and the CAE."""
    names = list(dict.fromkeys([backbone, *backbones]))
    out = [Row(f"SDC {b}", "SDC backbone", b, f"sdc_{b}") for b in names]
    out += _margin_rows("SDC", "SDC margin", margins)
    out += [Row("SDC NP", "SDC strategy", SCRATCH, "sdc_np"),
            Row("SDC TL+DA", "SDC strategy", MAIN, "sdc_tlda", augment=True)]
    out += [Row(f"Classifier {b}", "Classifier", b, f"clf_{b}") for b in names]
    out += [Row("Classifier NP", "Classifier", STRATEGY_SCRATCH, "clf_np"),
            Row("Classifier TL+DA", "Classifier", STRATEGY, "clf_tlda", augment=True),
            Row("Classifier TL+LW", "Classifier", STRATEGY, "clf_tllw", loss_weighting=True)]
    out += [Row("UDC COM-Triplet", "UDC", MAIN, "udc", mode="unsupervised"), *_margin_rows("UDC", "UDC", margins)]
    out += [Row(name, "Shallow", MAIN, f"shallow_{name.lower().replace(' ', '_')}") for name in UNSUPERVISED_BASELINES]
    out.append(Row("CAE", "Shallow", MAIN, "cae"))
    return {row.folder: row for row in out}


@dataclass
class ChapterInputs:
    """What every row shares: each backbone's inputs by name (and `MAIN`, `SCRATCH`, `STRATEGY`,
    `STRATEGY_SCRATCH`; one pickle, so their images travel once), the backbones left out as repeats
    ({name: its twin}), the splits, both configurations and where checkpoints go."""

    backbones: dict[str, ModelInputs]
    repeats: dict[str, str]
    frames: dict[str, pd.DataFrame]
    cluster: dict
    classifier: dict
    cae: CAEConfig
    checkpoints: Path
    dim: int
    feature_selection: bool
    gmm_covariance: str
    seed: int

    @property
    def main(self) -> ModelInputs:
        """The main backbone's inputs (every margin, strategy and unsupervised row trains on them)."""
        return self.backbones[MAIN]

    def distinct(self, jobs: Mapping[str, Row]) -> dict[str, Row]:
        """`jobs` without the rows of backbones left out as repeats of an earlier one (`repeats`)."""
        return {key: row for key, row in jobs.items() if row.backbone not in self.repeats}


def backbone_inputs(p: Any, images: dict[str, torch.Tensor], frames: dict[str, pd.DataFrame], name: str,
                    weights: str | None = None) -> ModelInputs:
    """Backbone `name`'s inputs for the splits `frames` (their images `images`), with the parameters `p`
    (a `ClusteringParams`); `weights` replaces `p.weights` (\"none\": a random start)."""
    targets = {s: f["target"].to_numpy() for s, f in frames.items()}
    return ModelInputs(p.finetune, name, p.weights if weights is None else weights, p.weights_fallback, images,
                       targets, p.image_size, p.aug_views, p.seed, p.device, feature_stages=p.feature_stages)


def chapter_inputs(p: Any, images: dict[str, torch.Tensor], frames: dict[str, pd.DataFrame],
                   checkpoints: Path) -> ChapterInputs:
    """The inputs of every row: the distinct backbones (an offline stand-in repeating an earlier one is left
    out), the main one from random weights (NP), the classifier backbone and its random start."""
    def build(name: str, weights: str | None = None) -> ModelInputs:
        return backbone_inputs(p, images, frames, name, weights)

    main = build(p.backbone)
    used, repeats = distinct_backbones(list(p.backbones), p.backbone, main, build)
    scratch = build(main.provenance.backbone, "none")  # the architecture TL really used, from random weights
    strategy = resolve(p.classifier_backbone, used, build)
    same_net = strategy.provenance.backbone == main.provenance.backbone
    strategy_scratch = scratch if same_net else build(strategy.provenance.backbone, "none")
    cae = CAEConfig(epochs=p.cae_epochs, batch_size=p.cae_batch_size, lr=1e-3, device=p.device, seed=p.seed)
    return ChapterInputs({**used, MAIN: main, SCRATCH: scratch, STRATEGY: strategy, STRATEGY_SCRATCH: strategy_scratch},
                         repeats, frames, p.cluster_settings(),
                         classifier_settings(p.epochs, p.batch_size, p.classifier_lr, p.device, p.seed), cae,
                         checkpoints, p.embedding_dim, p.feature_selection, p.gmm_covariance, p.seed)


def train_row(row: Row, inputs: ChapterInputs) -> Variant:
    """Train and score one row on `inputs` (a shallow baseline fits the main backbone's frozen features)."""
    model_inputs, folder = inputs.backbones[row.backbone], inputs.checkpoints / row.folder
    if row.table == "Shallow":
        if row.name == "CAE":
            return cae_variant(model_inputs, inputs.frames, inputs.cae, folder)
        frozen = {s: model_inputs.features(s) for s in ("train", "val", "test")}
        return shallow_variant(row.name, frozen, inputs.frames, model_inputs.provenance.as_dict(), inputs.seed,
                               inputs.gmm_covariance)
    if row.table == "Classifier":
        return run_direct_classifier(row.name, model_inputs, TrainConfig(**inputs.classifier), inputs.frames, folder,
                                     augment=row.augment, loss_weighting=row.loss_weighting)
    cfg = ClusterConfig(mode=row.mode, loss=row.loss, margin=row.margin, **inputs.cluster)
    return run_clustering_variant(row.name, model_inputs, cfg, inputs.frames, folder, inputs.dim, augment=row.augment,
                                  feature_selection=inputs.feature_selection)


def by_table(results: Mapping[str, Variant], jobs: Mapping[str, Row]) -> dict[str, list[Variant]]:
    """The trained rows grouped as the chapter shows them, each group in `jobs`' order: {`TABLES` entry: rows}."""
    return {table: [results[key] for key, row in jobs.items() if row.table == table and key in results]
            for table in TABLES}


def sweep_cells(p: Any, train: pd.DataFrame) -> dict[str, tuple[int, int, int]]:
    """The imbalance sweep's jobs (Fig. 4), {tag: (majority, minority, repeat)}: the study's counts scaled by
    `p.sweep_scale` against the sweep's training split `train`, `p.sweep_repeats` subsets each."""
    pairs = imbalance_ratios(p.sweep_majority, list(p.sweep_minorities), p.sweep_scale, train)
    return {f"{maj}_{mino}_{rep}": (maj, mino, rep) for maj, mino in pairs for rep in range(p.sweep_repeats)}


def sweep_inputs(p: Any, images: dict[str, torch.Tensor], frames: dict[str, pd.DataFrame],
                 checkpoints: Path) -> SweepGrid:
    """What every sweep cell shares: the main backbone's inputs on the sweep's dataset and both configurations."""
    return SweepGrid(backbone_inputs(p, images, frames, p.backbone), frames, p.cluster_settings(),
                     classifier_settings(p.epochs, p.batch_size, p.classifier_lr, p.device, p.seed), checkpoints,
                     p.embedding_dim, p.feature_selection)


def sweep_rows(done: Mapping[str, list[dict]]) -> pd.DataFrame:
    """The sweep's cells as one frame, a row per method and cell (`experiments.sweep_cell`'s rows)."""
    return pd.DataFrame([row for rows_ in done.values() for row in rows_])
