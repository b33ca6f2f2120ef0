"""The floor every study chapter is held against: a linear probe on frozen ImageNet features.

The chapter's own backbone (or the stand-in `create_backbone` substitutes offline, recorded in its
`Provenance`) embeds every image once at the chapter's resolution, without augmentation; a
logistic regression on those features, with C chosen on the validation split (or by cross-validation
on train where the chapter scores validation itself), is scored on the chapter's split with its
metrics and added to its `metrics.json` marked `floor: true`. It is never a study's main model.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from derm_nb.artifacts import read_json, write_atomic, write_json, write_parquet
from derm_nb.metrics import Skipped, class_weighted_metrics, evaluate_binary, groups_of, missing_class_reason, multiclass_report
from derm_nb.models.backbones import Provenance, create_backbone
from derm_nb.progress import bar
from derm_nb.results import PREDICTION_COLUMNS, Variant, count_parameters, json_ready, skipped_variant
from derm_nb.train import pick_device
from derm_nb.transforms import eval_transform

FLOOR_NAME = "Linear probe"
C_GRID = (0.0001, 0.001, 0.01, 0.1, 1.0)  # 07 on real ISIC 2017 chose 0.001 at the edge of (0.001-10)
KINDS = ("binary", "class_weighted", "multiclass")


@dataclass
class ProbeFeatures:
    """Frozen features of every split (rows in the split's order), what produced them and their cost."""

    features: dict[str, np.ndarray]
    provenance: Provenance
    seconds: float
    n_params: int
    size: int


@torch.no_grad()
def embed(module: nn.Module, images: torch.Tensor, size: int, batch_size: int = 32, device: str = "auto",
          desc: str = "floor features") -> np.ndarray:
    """Pooled features of uint8 `images` (N, 3, H, W) resized to `size` and ImageNet-normalised, in order."""
    dev = pick_device(device)
    module.to(dev).eval()
    view = eval_transform(size).to(dev)
    outputs = [module(view(images[start:start + batch_size].to(dev))).float().flatten(1).cpu()
               for start in bar(range(0, len(images), batch_size), desc=desc, unit="batch")]
    return torch.cat(outputs).numpy()


def _cache_file(cache_dir: Path, provenance: Provenance, size: int, ids: list[str]) -> Path:
    key = hashlib.sha256("\n".join([provenance.label(), str(provenance.sha256), str(size), *ids]).encode())
    return cache_dir / f"{key.hexdigest()[:20]}.npy"


def _save_rows(path: Path, rows: np.ndarray) -> None:
    with path.open("wb") as handle:
        np.save(handle, rows)


def frozen_features(images: dict[str, torch.Tensor], frames: dict[str, pd.DataFrame], size: int,
                    backbone: str = "", weights: str = "imagenet", fallback: str = "", *,
                    module: nn.Module | None = None, provenance: Provenance | None = None,
                    batch_size: int = 64, device: str = "auto", cache_dir: Path | None = None) -> ProbeFeatures:
    """Features of every split from `backbone` (built by `create_backbone` with the chapter's weights and
    fallback) or an already built `module` with its `provenance`. With `cache_dir`, a split whose images,
    backbone and size were embedded before (another chapter on the same data) is read back, not recomputed."""
    start = time.perf_counter()
    if module is None:
        module, _, provenance = create_backbone(backbone, weights, fallback)
    if provenance is None:
        raise ValueError("a prebuilt module needs its provenance: the floor's row must say which weights it used")
    features = {}
    for split, pixels in images.items():
        ids = frames[split]["image_id"].astype(str).tolist()
        path = _cache_file(cache_dir, provenance, size, ids) if cache_dir else None
        if path is not None and path.is_file():
            features[split] = np.load(path)
            continue
        features[split] = embed(module, pixels, size, batch_size, device, f"floor features ({split})")
        if path is not None:
            write_atomic(path, lambda target, rows=features[split]: _save_rows(target, rows))
    return ProbeFeatures(features, provenance, time.perf_counter() - start, count_parameters(module), size)


def _probe(c: float, seed: int):
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed))


def _loss(model, x: np.ndarray, y: np.ndarray, classes: np.ndarray) -> float:
    return float(log_loss(y, model.predict_proba(x), labels=classes))


def choose_c(x_train: np.ndarray, y_train: np.ndarray, validation: tuple[np.ndarray, np.ndarray] | None,
             grid: tuple[float, ...] = C_GRID, seed: int = 0, folds: int = 3) -> tuple[float, dict[float, float], str]:
    """(C, log-loss per C, where it was measured): on `validation` when given, else by stratified
    `folds`-fold cross-validation on train. The lowest loss wins; a tie goes to the smaller C."""
    classes = np.unique(y_train)
    if validation is not None:
        x_val, y_val = validation
        scores = {c: _loss(_probe(c, seed).fit(x_train, y_train), x_val, y_val, classes) for c in grid}
        where = "the validation split"
    else:
        k = min(folds, int(np.bincount(np.searchsorted(classes, y_train)).min()))
        if k < 2:
            raise Skipped(f"cross-validation on train needs 2 images of each class; a class has {k}")
        splits = list(StratifiedKFold(k, shuffle=True, random_state=seed).split(x_train, y_train))
        scores = {c: float(np.mean([_loss(_probe(c, seed).fit(x_train[a], y_train[a]), x_train[b], y_train[b], classes)
                                    for a, b in splits])) for c in grid}
        where = f"{k}-fold cross-validation on train (the chapter scores validation itself)"
    best = min(grid, key=lambda c: (scores[c], c))
    return best, scores, where


def _labels(frame: pd.DataFrame, kind: str) -> np.ndarray:
    return frame["target" if kind in ("binary", "class_weighted") else "label"].to_numpy().astype(int)


def _scores(kind: str, y: np.ndarray, prob: np.ndarray, frame: pd.DataFrame, classes: list[str], target: int,
            threshold_rule: str, threshold_from: tuple[np.ndarray, np.ndarray] | None, seed: int) -> dict:
    """The chapter's metrics for the probe's probabilities (N, classes) on the scored split."""
    positive = (y == target).astype(int)
    if kind == "class_weighted":
        return class_weighted_metrics(positive, prob[:, target], 0.5, seed=seed, groups=groups_of(frame))
    if kind == "binary":
        return evaluate_binary(positive, prob[:, target], threshold_rule, seed=seed, threshold_from=threshold_from,
                               groups=groups_of(frame))
    one_vs_rest = evaluate_binary(positive, prob[:, target], "youden", seed=seed, groups=groups_of(frame))
    pred = prob.argmax(1)
    report = multiclass_report(y, pred, classes)
    return {**{k: one_vs_rest[k] for k in ("roc_auc", "roc_auc_ci_low", "roc_auc_ci_high", "pauc_80",
                                           "sens_at_spec90", "auc_skipped")},
            "accuracy": float((pred == y).mean()), "f1_weighted": float(report.loc["weighted avg", "f1-score"]),
            "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
            "precision_weighted": float(report.loc["weighted avg", "precision"]),
            "recall_weighted": float(report.loc["weighted avg", "recall"]),
            "target_class": classes[target]}


def _probabilities(model, x: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, n_classes) probabilities; a class the training split lacked gets 0."""
    full = np.zeros((len(x), n_classes))
    full[:, model.classes_] = model.predict_proba(x)
    return full


@dataclass
class FloorSpec:
    """How a chapter scores its models, so the floor is scored the same way.

    `kind`: `binary` (evaluate_binary at `threshold_rule`, chosen on validation when `score_split` is
    another split), `class_weighted` (study 002's table form at 0.5) or `multiclass` (study 003's);
    `scorer(labels, probabilities)`, when given, is the chapter's own metrics function and replaces the
    kind's. `select_on`: `val`, or `cv` where the chapter scores validation itself.
    """

    kind: str = "binary"
    score_split: str = "test"
    select_on: str = "val"
    classes: tuple[str, ...] = ("negative", "positive")
    target_class: int = 1
    threshold_rule: str = "youden"
    name: str = FLOOR_NAME
    seed: int = 0
    scorer: Callable[[np.ndarray, np.ndarray], dict] | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise KeyError(f"unknown floor kind '{self.kind}' (known: {', '.join(KINDS)})")
        if self.select_on not in ("val", "cv"):
            raise KeyError(f"select_on must be 'val' or 'cv', not '{self.select_on}'")


def linear_probe(probe: ProbeFeatures, frames: dict[str, pd.DataFrame], spec: FloorSpec,
                 grid: tuple[float, ...] = C_GRID) -> Variant:
    """The floor as a variant: logistic regression on `probe`'s train features, C chosen per `spec.select_on`,
    scored on `spec.score_split` with the chapter's metrics; skipped, with the reason, when a split it needs
    lacks a class. Its record says `floor: true`, the C grid and where C was chosen."""
    start = time.perf_counter()
    x = probe.features
    y = {split: _labels(frames[split], spec.kind) for split in x}
    scored = spec.score_split
    record = {"n_train": len(y["train"]), "n_eval": len(y[scored]), "n_params": probe.n_params, "image_size": probe.size}
    info: dict = {"grid": list(grid), "features": int(x["train"].shape[1])}
    try:
        for split in {"train", scored} | ({"val"} if spec.select_on == "val" else set()):
            if reason := missing_class_reason((y[split] == spec.target_class).astype(int)):
                raise Skipped(f"the {split} split {reason.removeprefix('needs both classes: ')}; a probe needs both")
        validation = (x["val"], y["val"]) if spec.select_on == "val" else None
        c, losses, where = choose_c(x["train"], y["train"], validation, grid, spec.seed)
        info.update(C=c, selected_on=where, log_loss={str(k): v for k, v in losses.items()})
        model = _probe(c, spec.seed).fit(x["train"], y["train"])
        n_classes = len(spec.classes)
        prob = {split: _probabilities(model, x[split], n_classes) for split in {scored, "val"} & set(x)}
        threshold_from = None
        if spec.kind == "binary" and scored != "val":
            threshold_from = ((y["val"] == spec.target_class).astype(int), prob["val"][:, spec.target_class])
        metrics = (spec.scorer(y[scored], prob[scored]) if spec.scorer else
                   _scores(spec.kind, y[scored], prob[scored], frames[scored], list(spec.classes), spec.target_class,
                           spec.threshold_rule, threshold_from, spec.seed))
    except Skipped as error:
        seconds = probe.seconds + time.perf_counter() - start
        variant = skipped_variant(spec.name, str(error), probe.provenance.as_dict(),
                                  record={**record, "train_seconds": round(seconds, 3)}, seconds=seconds)
        variant.extra.update(floor=True, probe=info)
        return variant
    seconds = probe.seconds + time.perf_counter() - start
    metrics = {**metrics, **record, "train_seconds": round(seconds, 3), "feature_seconds": round(probe.seconds, 3)}
    predictions = _predictions(spec, frames[scored], y[scored], prob[scored], metrics)
    return Variant(spec.name, pd.DataFrame(), predictions, metrics, seconds, probe.provenance.as_dict(),
                   probe.n_params, {"floor": True, "probe": info})


def _predictions(spec: FloorSpec, frame: pd.DataFrame, y: np.ndarray, prob: np.ndarray, metrics: dict) -> pd.DataFrame:
    target = prob[:, spec.target_class]
    if spec.kind in ("binary", "class_weighted"):
        pred = (target >= metrics["threshold"]).astype(int)
        extra = {}
    else:
        pred = prob.argmax(1)
        extra = {f"prob_{c}": prob[:, k] for k, c in enumerate(spec.classes)}
    return pd.DataFrame({"image_id": frame["image_id"].to_numpy(), "split": spec.score_split, "model": spec.name,
                         "label": y, "prob": target, "pred": pred, **extra})


def add_to_artifacts(out: Path, variant: Variant) -> dict:
    """Add the floor to the chapter's `metrics.json` and `predictions.parquet` (written by
    `write_model_artifacts` before it), replacing an earlier floor; returns the updated record."""
    path = out / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: add the floor after the chapter's write_model_artifacts")
    record = read_json(path)
    if variant.name == record.get("main_model"):
        raise ValueError(f"the floor '{variant.name}' cannot be the chapter's main model")
    earlier = [n for n, m in record["variants"].items() if m.get("floor")]
    if clash := [n for n in record["variants"] if n == variant.name and n not in earlier]:
        raise ValueError(f"{path}: a model is already named '{clash[0]}'; give the floor another name")
    entry = {**variant.metrics, "weights": variant.provenance, **({"skipped": variant.skipped} if variant.skipped else {}),
             **variant.extra}
    record["variants"] = {**{n: m for n, m in record["variants"].items() if n not in earlier}, variant.name: entry}
    predictions = pd.read_parquet(out / "predictions.parquet")
    predictions = pd.concat([predictions[~predictions["model"].isin(earlier)], variant.predictions], ignore_index=True)
    write_parquet(out / "predictions.parquet", predictions[[*PREDICTION_COLUMNS, *predictions.columns.difference(
        PREDICTION_COLUMNS, sort=False)]] if len(predictions) else predictions)
    write_json(path, json_ready(record))
    return record


def floor_table(record: dict, columns: dict[str, str]) -> pd.DataFrame:
    """The chapter's main model and its floor side by side (metric -> column title), with each one's weights."""
    chosen = [record.get("main_model"), *[n for n, m in record["variants"].items() if m.get("floor")]]
    rows = {}
    for name in filter(None, chosen):
        m = record["variants"][name]
        rows[name] = {"role": "floor" if m.get("floor") else "main model",
                      **{title: m.get(key) for key, title in columns.items()},
                      "weights": Provenance(**m["weights"]).label(), "skipped": m.get("skipped") or ""}
    table = pd.DataFrame(rows).T
    return table if table["skipped"].astype(bool).any() else table.drop(columns="skipped")


VERDICT_METRICS = ("roc_auc", "sk_roc_auc", "f1_weighted")  # the figures a main model is held to its floor on


def floor_verdict(record: dict, columns: dict[str, str]) -> str:
    """One sentence: whether the main model reaches its floor, on the chapter's AUCs and weighted F1 among
    `columns`, with both figures; '' where either is missing or skipped."""
    main = record["variants"].get(record.get("main_model") or "")
    floor = next((m for m in record["variants"].values() if m.get("floor")), None)
    if not main or not floor or main.get("skipped") or floor.get("skipped"):
        return ""
    pairs = [(title, float(main[key]), float(floor[key])) for key, title in columns.items()
             if key in VERDICT_METRICS and pd.notna(main.get(key)) and pd.notna(floor.get(key))]
    if not pairs:
        return ""
    below = [title for title, ours, theirs in pairs if ours < theirs]
    where = ("at or above its floor" if not below else "below its floor" if len(below) == len(pairs)
             else f"below its floor on {' and '.join(below)}")
    figures = "; ".join(f"{title} {ours:.3f} against the floor's {theirs:.3f}" for title, ours, theirs in pairs)
    return f"**The main model, {record['main_model']}, is {where}**: {figures}."


def floor_caption(variant: Variant) -> str:
    """One line saying what the floor is, which weights it used and where its C was chosen."""
    what = (f"The floor, not a study model: logistic regression on frozen features of "
            f"{Provenance(**variant.provenance).label()} at {variant.metrics.get('image_size')} px")
    if variant.skipped:
        return f"{what}: skipped: {variant.skipped}."
    probe = variant.extra["probe"]
    return (f"{what}, no augmentation; C = {probe['C']:g} of {', '.join(f'{c:g}' for c in probe['grid'])} "
            f"(lowest log-loss on {probe['selected_on']}); {variant.metrics['train_seconds']:.1f} s.")


def chapter_floor(ctx, frames: dict[str, pd.DataFrame], spec: FloorSpec, columns: dict[str, str], *,
                  images: dict[str, torch.Tensor] | None = None, size: int = 0, backbone: str = "",
                  weights: str = "imagenet", fallback: str = "", module: nn.Module | None = None,
                  provenance: Provenance | None = None, probe: ProbeFeatures | None = None,
                  device: str = "auto", batch_size: int = 64):
    """A chapter's one floor call: embed the splits it needs (or take `probe`, features the chapter already
    computed), fit and score the probe, add it to the chapter's artifacts, and show it beside the main model."""
    needed = ["train", "val", spec.score_split]
    frames = {split: frames[split] for split in dict.fromkeys(needed)}
    if probe is None:
        if images is None:
            raise ValueError("the floor needs the chapter's images or its precomputed features (probe=)")
        probe = frozen_features({s: images[s] for s in frames}, frames, size, backbone, weights, fallback,
                                module=module, provenance=provenance, batch_size=batch_size, device=device,
                                cache_dir=ctx.run_dir / "floor_features")
    variant = linear_probe(probe, frames, spec)
    record = add_to_artifacts(ctx.out, variant)
    if verdict := floor_verdict(record, columns):
        from IPython.display import Markdown, display

        display(Markdown(verdict))
    return floor_table(record, columns).style.format(precision=3, na_rep="–").set_caption(floor_caption(variant))


def reused_features(features: dict[str, np.ndarray], provenance: Provenance, module: nn.Module, size: int) -> ProbeFeatures:
    """Features a chapter already computed with its frozen backbone (`module`), as the probe's input: no cost."""
    return ProbeFeatures(features, provenance, 0.0, count_parameters(module), size)


def _figure(row: pd.Series | None, key: str) -> float:
    value = None if row is None else row.get(key)
    return float(value) if value is not None and pd.notna(value) else float("nan")


def study_floors(metrics: pd.DataFrame, cards) -> pd.DataFrame:
    """Per chapter with a floor (`load_model_runs` rows): its main model beside the floor (ROC-AUC of the
    study's positive class and weighted F1 where scored), the paper's headline figures and the best public
    figures on the study's data (from the cards, quoted with their sources; "none quoted" where none)."""
    from derm_nb.cards import NONE_QUOTED

    if "floor" not in metrics:
        return pd.DataFrame()
    by_study = {card.study: card for card in cards}
    rows = []
    for chapter, part in metrics.groupby("chapter", sort=True):
        floors, mains = part[part["floor"].eq(True)], part[part["main"]]
        if floors.empty:
            continue
        floor, main = floors.iloc[0], (mains.iloc[0] if len(mains) else None)
        card = by_study.get(floor["study"])
        rows.append({
            "study": floor["study"], "chapter": chapter, "split": floor["evaluation"],
            "main model": main["variant"] if main is not None else "–",
            "main ROC-AUC": _figure(main, "roc_auc"), "floor ROC-AUC": _figure(floor, "roc_auc"),
            "main weighted F1": _figure(main, "f1_weighted"), "floor weighted F1": _figure(floor, "f1_weighted"),
            "floor weights": Provenance(**floor["weights"]).label(), "floor skipped": floor.get("skipped") or "",
            "paper (quoted)": "; ".join(f"{v:g} {metric}, {model}" for model, metric, v, _ in card.headlines)
            if card else "",
            "best public figure (quoted)": "; ".join(f"{b.figure} {b.metric} on {b.data} ({b.source})"
                                                     for b in card.benchmarks) if card and card.benchmarks
            else NONE_QUOTED})
    table = pd.DataFrame(rows)
    if len(table):
        table.insert(6, "main - floor (AUC)", table["main ROC-AUC"] - table["floor ROC-AUC"])
    return table
