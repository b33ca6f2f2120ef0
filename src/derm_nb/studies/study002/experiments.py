"""Study 002's variants end to end: SDC / UDC embedders, the direct classifiers and the unsupervised
baselines, scored in the study's table form; the imbalance sweep (Fig. 4) and the chapter's closing numbers."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from derm_nb.data.errors import DataError
from derm_nb.datasets import CachedImages
from derm_nb.losses import BCE
from derm_nb.metrics import NAN, Skipped, class_weighted_metrics, groups_of, missing_class_reason
from derm_nb.models.backbones import Provenance
from derm_nb.results import Variant, count_parameters, results_table, skipped_variant, train_and_predict
from derm_nb.studies.study002.baselines import (
    CAEConfig,
    ConvAutoencoder,
    cae_scores,
    fitted_baseline,
    train_autoencoder,
)
from derm_nb.studies.study002.inputs import ModelInputs
from derm_nb.studies.study002.losses import BatchBalancedBCE, malignancy_score, select_features
from derm_nb.studies.study002.training import ADAM_BETAS, ADAM_EPS, ClusterConfig, embed, train_clustering
from derm_nb.train import TrainConfig, predict, seeded
from derm_nb.transforms import eval_transform


def scored_variant(name: str, frames: dict[str, pd.DataFrame], scores: dict[str, np.ndarray], provenance: dict,
                   seconds: float = 0.0, history: pd.DataFrame | None = None, record: dict | None = None,
                   seed: int = 0, threshold: float = 0.5) -> Variant:
    """A variant from malignancy scores in [0, 1] per split, scored on `test` in study 002's table form
    (class-weighted metrics at `threshold`, the study's nearest-prototype / argmax boundary); skipped
    when a score is not finite."""
    test = frames["test"]["target"].to_numpy()
    record = {"n_params": 0, **(record or {}), "train_seconds": round(seconds, 3)}  # 0: scores with no fitted model
    try:
        metrics = {**record, **class_weighted_metrics(test, scores["test"], threshold, seed=seed,  # n_eval: the test split
                                                      groups=groups_of(frames["test"]))}
    except Skipped as error:
        return skipped_variant(name, str(error), provenance, history, record, seconds)
    predictions = pd.concat([pd.DataFrame({"image_id": frames[s]["image_id"].to_numpy(), "split": s, "model": name,
                                           "label": frames[s]["target"].to_numpy(), "prob": np.asarray(p, float)})
                             for s, p in scores.items()], ignore_index=True)
    predictions["pred"] = (predictions["prob"] >= threshold).astype(int)
    history = pd.DataFrame() if history is None else history.assign(model=name)
    return Variant(name, history, predictions, metrics, seconds, provenance, int(metrics["n_params"]))


def run_clustering_variant(name: str, inputs: ModelInputs, cfg: ClusterConfig, frames: dict[str, pd.DataFrame],
                           checkpoint_dir: Path, dim: int = 128, augment: bool = False, feature_selection: bool = True,
                           train_rows: np.ndarray | None = None) -> Variant:
    """Train an SDC / UDC embedder on `inputs` (a features.ModelInputs), score val and test by the
    nearest prototype (Eq. 14), with the study's prototype feature selection when asked. Skipped when SDC's
    training rows lack a class (no triplets) or training never produced prototypes."""
    cfg.desc = name
    if cfg.mode == "supervised" and (reason := _training_class_reason(inputs, train_rows)):
        return skipped_variant(name, f"SDC's triplets: the training split {reason}", inputs.provenance.as_dict())
    model = inputs.embedder(dim)
    result = train_clustering(model, inputs.dataset("train", augment, train_rows), inputs.dataset("val"), cfg,
                              checkpoint_dir)
    protos = result.prototypes
    if protos.minority is None:
        return skipped_variant(name, "training never produced two finite prototypes", inputs.provenance.as_dict(),
                               result.history, {"n_params": count_parameters(model)}, result.seconds)
    keep = select_features(protos.minority, protos.majority) if feature_selection else None
    embeddings = {s: embed(model, inputs.dataset(s), device=cfg.device) for s in ("val", "test")}
    scores = {s: malignancy_score(e, protos, keep) for s, e in embeddings.items()}
    all_features = malignancy_score(embeddings["test"], protos)
    test_y = frames["test"]["target"].to_numpy()
    record = {"best_epoch": result.best_epoch, "epochs_run": len(result.history), "device": result.device,
              "n_params": count_parameters(model), "prototype_updates": protos.updates,
              "prototype_separation": protos.separation, "features_kept": int(keep.sum()) if keep is not None else dim,
              "roc_auc_all_features": NAN if missing_class_reason(test_y) else float(roc_auc_score(test_y, all_features)),
              "n_train": len(train_rows) if train_rows is not None else len(frames["train"]),
              "best_epoch_skipped": None if result.best_epoch >= 1 else
              f"validation AUC {missing_class_reason(inputs.targets['val']) or 'never finite'}; the last epoch was kept"}
    return scored_variant(name, frames, scores, inputs.provenance.as_dict(), result.seconds, result.history,
                          record, seed=cfg.seed)


TRIPLET_MARGIN = 0.2  # §IV: the traditional triplet loss's baselines (SDC/UDC Triplet) prescribe 0.2 [23]


def classifier_settings(epochs: int, batch_size: int, lr: float, device: str = "auto", seed: int = 0) -> dict:
    """The direct classifiers' TrainConfig fields: the study's Adam (betas 0.9/0.99, eps 1e-7) at a constant
    rate, every epoch run, and the epoch kept by validation AUC as for SDC and UDC."""
    return dict(epochs=epochs, batch_size=batch_size, lr=lr, optimizer="adam", betas=ADAM_BETAS, eps=ADAM_EPS,
                scheduler="none", patience=epochs, epoch_threshold=0.5, monitor="val_roc_auc", device=device,
                seed=seed)


def run_direct_classifier(name: str, inputs: ModelInputs, cfg: TrainConfig, frames: dict[str, pd.DataFrame], checkpoint_dir: Path,
                          augment: bool = False, loss_weighting: bool = False,
                          train_rows: np.ndarray | None = None) -> Variant:
    """Study 002's direct classifier (BCE, argmax boundary 0.5), optionally with augmentation or loss
    weighting (Eq. 1's class weights recomputed from each batch's class counts, [56]), scored in the study's
    table form; skipped when the training rows lack a class."""
    if reason := _training_class_reason(inputs, train_rows):
        return skipped_variant(name, f"a classifier: the training split {reason}", inputs.provenance.as_dict())
    train = inputs.dataset("train", augment, train_rows)
    model = inputs.classifier()
    loss = BatchBalancedBCE() if loss_weighting else BCE()
    result, val_prob, record = train_and_predict(name, model, loss, train, inputs.dataset("val"), cfg,
                                                  checkpoint_dir, torch.sigmoid, None)
    scores = {"val": val_prob,
              "test": predict(model, inputs.dataset("test"), batch_size=cfg.batch_size * 2, device=cfg.device)}
    record = {**record, "n_train": len(train), "loss_weighting": "per batch" if loss_weighting else None,
              "epoch_selection": cfg.monitor}
    return scored_variant(name, frames, scores, inputs.provenance.as_dict(), result.seconds, result.history,
                          record, seed=cfg.seed)


def _training_class_reason(inputs: ModelInputs, train_rows: np.ndarray | None) -> str | None:
    """Why the training rows cannot train a model that needs both classes; None when they can."""
    targets = inputs.targets["train"]
    return missing_class_reason(targets if train_rows is None else targets[np.asarray(train_rows)])


STUDY002_COLUMNS = {"recall": "Recall", "precision": "Precision", "specificity": "Specificity",
                    "accuracy": "Accuracy", "f1_weighted": "F1-score", "roc_auc": "AUC",
                    "melanoma_recall": "melanoma recall"}


def table(variants: list[Variant]):
    """Study 002's table form, in percent like the study, with the AUC's CI and the weights each row used."""
    table = results_table(variants, {**STUDY002_COLUMNS, "roc_auc_ci_low": "AUC CI low",
                                     "roc_auc_ci_high": "AUC CI high"})
    numeric = [c for c in table.columns if c not in ("weights", "skipped")]
    table[numeric] = table[numeric].astype(float) * 100
    return table.style.format(dict.fromkeys(numeric, "{:.2f}"))


def imbalance_subset(frame: pd.DataFrame, majority: int, minority: int, seed: int = 0) -> pd.DataFrame:
    """The majority:minority subsets (benign:malignant), sampled without replacement."""
    neg, pos = frame[frame["target"] == 0], frame[frame["target"] == 1]
    if majority > len(neg) or minority > len(pos):
        raise DataError(f"imbalance subset {majority}:{minority} needs more images than the pool has "
                        f"({len(neg)} benign, {len(pos)} malignant); lower the scale parameter")
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.choice(neg.index.to_numpy(), majority, replace=False),
                             rng.choice(pos.index.to_numpy(), minority, replace=False)])
    return frame.loc[np.sort(chosen)]


def imbalance_ratios(majority: int, minorities: list[int], scale: float, pool: pd.DataFrame) -> list[tuple[int, int]]:
    """Scale the study's 4500:{...} sizes by `scale`, keeping at least 2 of each class. A pair `pool` cannot
    supply is kept: `sweep_cell` reports it as skipped, with the reason."""
    return [(max(2, round(majority * scale)), max(2, round(m * scale))) for m in minorities]


def split_table(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Images, melanomas, melanoma share and patients of each split, with the patients behind its melanomas and
    the largest patient's share of its images: a split of few patients scores few independent cases."""
    def row(f: pd.DataFrame) -> dict:
        per_patient = f.groupby("group_id")["target"].agg(["size", "sum"])
        return {"images": len(f), "melanomas": int(f["target"].sum()), "melanoma share": f["target"].mean(),
                "patients": len(per_patient), "patients with a melanoma": int((per_patient["sum"] > 0).sum()),
                "largest patient's share": per_patient["size"].max() / len(f) if len(f) else float("nan")}

    return pd.DataFrame.from_dict({s: row(f) for s, f in frames.items()}, orient="index")  # counts stay integers


def distinct_backbones(names: list[str], main_name: str, main: ModelInputs,
                       inputs_for: Callable[[str], ModelInputs]) -> tuple[dict[str, ModelInputs], dict[str, str]]:
    """The inputs of each asked-for backbone (the main one first), by the name asked for, and the backbones left
    out because the weights they really got are an earlier one's (offline, every backbone's stand-in is the
    same Lite0): {name: the backbone whose row it would repeat}. Rows are named by the asked-for backbone, so
    two stand-ins never share a name (nor overwrite each other in metrics.json)."""
    used, repeats = {main_name: main}, {}
    for name in names:
        inputs = used.get(name) or inputs_for(name)
        twin = next((n for n, u in used.items() if n != name and same_weights(u.provenance, inputs.provenance)), None)
        if twin is not None:
            repeats[name] = twin
        else:
            used[name] = inputs
    return used, repeats


def same_weights(a: Provenance, b: Provenance) -> bool:
    """Whether two backbones really are the same network with the same starting weights (whatever was asked)."""
    return replace(a, substituted_for=None) == replace(b, substituted_for=None)


def resolve(name: str, used: dict[str, ModelInputs], inputs_for: Callable[[str], ModelInputs]) -> ModelInputs:
    """The inputs for backbone `name`: those already built for it; or, where its real weights are an earlier
    backbone's, that one's inputs (features computed once) labelled with `name`'s provenance; else new ones."""
    if name in used:
        return used[name]
    inputs = inputs_for(name)
    twin = next((u for u in used.values() if same_weights(u.provenance, inputs.provenance)), None)
    if twin is None:
        return inputs
    shared = copy.copy(twin)
    shared.provenance = inputs.provenance
    return shared


def repeat_notes(repeats: dict[str, str], used: dict[str, ModelInputs]) -> list[str]:
    """One markdown line per backbone left out by `distinct_backbones`, naming what it would have repeated."""
    return [f"`{name}`: its ImageNet weights are not available here and its stand-in "
            f"({used[twin].provenance.label()}) is the one `{twin}` already ran, so its rows would repeat "
            f"`{twin}`'s; left out." for name, twin in repeats.items()]


def shallow_variant(name: str, frozen: dict[str, np.ndarray], frames: dict[str, pd.DataFrame], provenance: dict,
                    seed: int = 0, gmm_covariance: str = "full") -> Variant:
    """One shallow unsupervised baseline (§IV, `UNSUPERVISED_BASELINES`) fitted on the frozen backbone's training
    features `frozen["train"]` and scored on the test split; skipped where the features leave nothing to split."""
    tic = time.perf_counter()
    try:
        score, n_params = fitted_baseline(name, frozen["train"], seed, gmm_covariance)
        scores = {s: score(frozen[s]) for s in ("val", "test")}
    except Skipped as error:
        return skipped_variant(name, str(error), provenance)
    return scored_variant(name, frames, scores, provenance, time.perf_counter() - tic, record={"n_params": n_params},
                          seed=seed)


def cae_variant(inputs: ModelInputs, frames: dict[str, pd.DataFrame], cfg: CAEConfig, checkpoint_dir: Path) -> Variant:
    """The convolutional autoencoder baseline: trained on the training images, its encoder's features split by
    k-means with two centres, scored by the nearest centre; skipped when those features leave nothing to split."""
    images = {s: CachedImages(inputs.images[s], inputs.targets[s], eval_transform(inputs.size)) for s in frames}
    with seeded(cfg.seed):  # its first weights from the seed, whatever ran before
        model = ConvAutoencoder()
    history = train_autoencoder(model, images["train"], cfg, checkpoint_dir)
    provenance = {"backbone": "conv autoencoder", "weights": "none", "source": "random init", "sha256": None,
                  "substituted_for": None}
    seconds = float(history["seconds"].sum())
    try:
        scores = {s: cae_scores(model, images["train"], images[s], cfg.seed, cfg.device) for s in ("val", "test")}
    except Skipped as error:
        return skipped_variant("CAE", str(error), provenance, history, {"train_seconds": round(seconds, 1)}, seconds)
    return scored_variant("CAE", frames, scores, provenance, seconds, history, {"n_params": count_parameters(model)},
                          seed=cfg.seed)


@dataclass(frozen=True)
class SweepGrid:
    """What every cell of the imbalance sweep shares: the sweep's inputs and splits, both configurations,
    the embedding size, the feature selection and where checkpoints go."""

    inputs: ModelInputs
    frames: dict[str, pd.DataFrame]
    cluster_cfg: dict
    classifier_cfg: dict
    checkpoints: Path
    dim: int
    feature_selection: bool = True


def sweep_cell(cell: tuple[int, int, int], grid: SweepGrid) -> list[dict]:
    """One majority:minority subset, one repeat (seed `seed + repeat`): SDC and the direct classifier
    trained on it and scored by test AUC; NaN with a `skipped` reason where the subset or the AUC fails."""
    maj, mino, rep = cell
    seed = grid.cluster_cfg["seed"]
    tag, row = f"{maj}_{mino}_{rep}", {"majority": maj, "minority": mino, "repeat": rep, "ratio": f"{maj}:{mino}"}
    try:
        positions = imbalance_subset(grid.frames["train"], maj, mino, seed + rep).index.to_numpy()
    except DataError as error:
        return [{"method": m, **row, "roc_auc": NAN, "skipped": str(error)} for m in SWEEP_METHODS]
    sdc = run_clustering_variant(f"sweep SDC {tag}", grid.inputs, ClusterConfig(**{**grid.cluster_cfg, "seed": seed + rep}),
                                 grid.frames, grid.checkpoints / f"sweep_sdc_{tag}", grid.dim,
                                 feature_selection=grid.feature_selection, train_rows=positions)
    clf = run_direct_classifier(f"sweep classifier {tag}", grid.inputs,
                                TrainConfig(**{**grid.classifier_cfg, "seed": seed + rep}), grid.frames,
                                grid.checkpoints / f"sweep_clf_{tag}", train_rows=positions)
    return [{"method": m, **row, "roc_auc": auc_of(v), "skipped": v.skipped or v.metrics.get("auc_skipped")}
            for m, v in zip(SWEEP_METHODS, (sdc, clf))]


SWEEP_METHODS = ("SDC COM-Triplet", "Classifier")


def auc_of(variant: Variant) -> float:
    """The variant's test ROC-AUC; NaN when it was skipped or the AUC could not be computed."""
    value = variant.metrics.get("roc_auc")
    return NAN if value is None else float(value)


def validation_auc_of(variant: Variant) -> float:
    """The variant's ROC-AUC on the validation split, from its predictions; NaN when it was skipped, has no
    validation rows, one class there, or a score that is not finite."""
    val = variant.predictions[variant.predictions["split"] == "val"]
    prob = pd.to_numeric(val["prob"], errors="coerce").to_numpy(float)
    if missing_class_reason(val["label"]) or not np.isfinite(prob).all():
        return NAN
    return float(roc_auc_score(val["label"].to_numpy(int), prob))


def chosen_sdc(candidates: list[Variant]) -> Variant:
    """The study's rule (§IV, §V.A): the validation set picks the configuration used thereafter. So the main
    SDC is the COM-Triplet candidate (a backbone or a learning strategy) with the best validation AUC; the
    first candidate when none has one."""
    aucs = [validation_auc_of(v) for v in candidates]
    scored = [i for i, auc in enumerate(aucs) if np.isfinite(auc)]
    return candidates[max(scored, key=aucs.__getitem__) if scored else 0]


def sweep_summary(sweep: pd.DataFrame) -> pd.DataFrame:
    """Mean test AUC by ratio and method, in the sweep's order, with SDC's lead over the classifier; NaN for a
    ratio that was skipped, and then a `skipped` column with the reasons."""
    summary = sweep.pivot_table(index="ratio", columns="method", values="roc_auc", aggfunc="mean", sort=False,
                                dropna=False)
    summary["SDC - Classifier"] = summary["SDC COM-Triplet"] - summary["Classifier"]
    reasons = sweep.dropna(subset=["skipped"]).groupby("ratio", sort=False)["skipped"].agg(lambda r: "; ".join(r.unique()))
    if len(reasons):
        summary["skipped"] = reasons.reindex(summary.index).fillna("")
    return summary


def findings(sdc_main: Variant, direct: list[Variant], udc: list[Variant], shallow: list[Variant],
             summary: pd.DataFrame, ceiling: float | None, paper: pd.Series) -> dict[str, float | str]:
    """The chapter's closing numbers (for glue): SDC against the best direct classifier, UDC (`udc`: COM-Triplet
    first, the traditional triplet loss last) and the shallow baselines, and SDC's lead at the most imbalanced
    ratio that ran, beside the study's (`paper`: the card's sweep column). Skipped variants and ratios are left
    out; a number that none could give is NaN (a name "none")."""
    scored = [v for v in direct if np.isfinite(auc_of(v))]
    best = max(scored, key=auc_of) if scored else None
    shallow_aucs = np.array([a for a in map(auc_of, shallow) if np.isfinite(a)])
    gaps = summary["SDC - Classifier"].dropna()
    return {**_auc_and_ci("sdc", sdc_main), "best_direct": best.name if best else "none",
            **_auc_and_ci("best_direct", best), "oracle_clause": f"; the oracle ceiling is {ceiling:.3f}" if ceiling else "",
            "udc_auc": auc_of(udc[0]), "udc_triplet_auc": auc_of(udc[-1]),
            "shallow_min_auc": float(shallow_aucs.min()) if len(shallow_aucs) else NAN,
            "shallow_max_auc": float(shallow_aucs.max()) if len(shallow_aucs) else NAN,
            "extreme_ratio": str(gaps.index[-1]) if len(gaps) else "none",
            "extreme_gap": float(gaps.iloc[-1]) if len(gaps) else NAN,
            "paper_gap": float(paper.iloc[-1]) / 100, "paper_ratio": str(paper.index[-1])}


def _auc_and_ci(prefix: str, variant: Variant | None) -> dict[str, float]:
    metrics = variant.metrics if variant is not None else {}
    return {f"{prefix}_auc": NAN if variant is None else auc_of(variant),
            **{f"{prefix}_{k}": NAN if metrics.get(f"roc_auc_{k}") is None else float(metrics[f"roc_auc_{k}"])
               for k in ("ci_low", "ci_high")}}
