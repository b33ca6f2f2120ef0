"""The synthetic generator: writes a registered source's real archive layout from its preset.

Each archive's preset (`SynthPreset`: its classes and mix, label model, group shape, layout and
metadata files) is in its own module, `data/archives/<name>.py`; the parts they are built from are in
`data/synth_kit.py`. Every image's true class probabilities go to an oracle file *beside* the dataset
folder, never inside it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from derm_nb.artifacts import write_csv, write_json
from derm_nb.data import registry
from derm_nb.data.synth_kit import (
    LATENTS,
    PARTITIONS,
    SKIN_ATTRS,
    ImageJob,
    SynthConfig,
    SynthPreset,
    assign_partitions,
    class_probabilities,
    copy_duplicate,
    features,
    groups_frame,
    render,
    render_ultrasound,
    write_image,
)
from derm_nb.parallel import parallel_map

__all__ = ["PRESETS", "PRESET_NAMES", "SynthConfig", "class_probabilities", "generate", "oracle_path", "render",
           "render_ultrasound", "sample_metadata"]


class _Presets(Mapping[str, SynthPreset]):
    """The registry's synthetic presets by source name, read when asked (a source registered later is in it)."""

    def _table(self) -> dict[str, SynthPreset]:
        return {s.name: s.synthetic for s in registry.SOURCES.values() if s.synthetic is not None}

    def __getitem__(self, name: str) -> SynthPreset:
        return self._table()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


PRESETS: Mapping[str, SynthPreset] = _Presets()
PRESET_NAMES = tuple(PRESETS)  # the built-in archives' presets


def preset(name: str) -> SynthPreset:
    """A source's synthetic preset; ValueError naming the presets there are when it has none."""
    if name not in PRESETS:
        raise ValueError(f"unknown synthetic preset '{name}' (known: {', '.join(PRESETS)})")
    return PRESETS[name]


def sample_metadata(cfg: SynthConfig) -> pd.DataFrame:
    """One row per image: group, demographics, latent attributes, partition, label and class probabilities."""
    spec = preset(cfg.preset)
    mix = _mix(cfg)
    rng = np.random.default_rng([cfg.seed, 0])
    sizes = spec.group_sizes(rng, cfg)
    df = groups_frame(rng, sizes)
    df = df.join(spec.attributes(rng, df, cfg, mix))
    if spec.groups == "lesion":  # every image of a lesion shows the same lesion at the same site
        shared = [c for c in (*SKIN_ATTRS, "pigment", "site", "age") if c in df]
        df[shared] = df.groupby("patient")[shared].transform("first")
    feats = features(df)
    logits = np.stack([sum(w * feats[k] for k, w in weights.items()) + np.zeros(len(df))
                       for weights in spec.weights], axis=1)
    if spec.allowed is not None:
        logits = np.where(spec.allowed(df), logits, -np.inf)
    probs = class_probabilities(logits, mix)
    u = rng.random(len(sizes))[df["patient"]] if spec.groups == "lesion" else rng.random(len(df))
    df["label"] = (u[:, None] > np.cumsum(probs, axis=1)).sum(axis=1).clip(0, len(spec.classes) - 1)
    for k, name in enumerate(spec.classes):
        df[f"p_{name}"] = probs[:, k]
    df["p_true"] = probs[:, [spec.classes.index(c) for c in spec.positive]].sum(axis=1)
    part = assign_partitions(sizes, spec.partitions, rng)
    df["partition"] = np.asarray(PARTITIONS)[part[df["patient"]]]
    return df


def _mix(cfg: SynthConfig) -> np.ndarray:
    spec = preset(cfg.preset)
    mix = cfg.class_mix or ((1 - cfg.prevalence, cfg.prevalence) if spec.mix_from_prevalence else spec.mix)
    if len(mix) != len(spec.classes):
        raise ValueError(f"class_mix for {cfg.preset} needs {len(spec.classes)} shares ({', '.join(spec.classes)}), "
                         f"got {len(mix)}")
    return np.asarray(mix, float) / float(np.sum(mix))


# ---------------------------------------------------------------------------------------------
# Entry points


def _add_duplicates(meta: pd.DataFrame, cfg: SynthConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Append duplicate rows of training images (same patient and label); `dup_of` names the source row."""
    meta = meta.assign(dup_of=-1, reencode=False)
    train = np.flatnonzero(meta["partition"].eq("train").to_numpy())
    n_dup = min(len(train), int(round(cfg.duplicate_fraction * len(meta))))
    spec = preset(cfg.preset)
    if not spec.duplicates or n_dup == 0:
        return meta
    source = np.sort(rng.choice(train, size=n_dup, replace=False))
    dups = meta.iloc[source].copy()
    dups["dup_of"] = source
    share = cfg.reencoded_duplicate_share if spec.reencoded_duplicates else 0.0
    k = int(round(share * n_dup))
    if n_dup >= 2 and 0 < share < 1:  # both kinds whenever there are two duplicates
        k = min(max(k, 1), n_dup - 1)
    dups["reencode"] = rng.permutation(n_dup) < k
    return pd.concat([meta, dups], ignore_index=True)


def oracle_path(out: Path) -> Path:
    """The oracle file for a dataset folder: a sibling, never inside the folder training reads."""
    return out.parent / f"{out.name}.oracle.csv"


MARKER = ".synth_config.json"


def _config_record(cfg: SynthConfig) -> dict:
    record = asdict(cfg)
    record.pop("workers")
    record["class_mix"] = None if cfg.class_mix is None else list(cfg.class_mix)
    return record


def _resume(out: Path, record: dict) -> bool:
    """True if `out` already holds this dataset; otherwise clear a different synthetic dataset there and mark the start."""
    marker = out / MARKER
    if marker.is_file():
        state = json.loads(marker.read_text())
        if state == {"config": record, "complete": True}:
            return True
        if state.get("config") != record:  # an earlier synthetic dataset with another config (or an older format)
            shutil.rmtree(out)
    write_json(marker, {"config": record, "complete": False})
    return False


def _write_files(meta: pd.DataFrame, spec: SynthPreset, cfg: SynthConfig, rng: np.random.Generator) -> None:
    """Render every original image in parallel, then write the duplicates from their sources."""
    originals = meta[meta["dup_of"] < 0]
    attrs = originals[[c for c in LATENTS[spec.look] if c not in ("age", "sex", "site")]].to_dict("records")
    jobs = [ImageJob(a, spec.look, (cfg.seed, int(i)), cfg.height, cfg.width, path, tuple(masks), sp)
            for a, i, path, masks, sp in zip(attrs, originals.index, originals["path"], originals["masks"],
                                             originals["superpixels"])]
    parallel_map(write_image, jobs, cfg.workers, f"synth {cfg.preset}", min_items=0)
    for _, row in meta[meta["dup_of"] >= 0].iterrows():
        source = meta.loc[row["dup_of"]]
        copy_duplicate(source["path"], row["path"], bool(row["reencode"]), rng)
        for src, dst in zip(source["masks"], row["masks"]):
            copy_duplicate(src, dst, False, rng)


def generate(cfg: SynthConfig, out: str | os.PathLike[str]) -> Path:
    """Write a synthetic dataset in the preset's real layout under `out` and its oracle beside it; return `out`.

    Re-running with the same config reuses finished images (safe to interrupt).
    """
    out = Path(out)
    spec = preset(cfg.preset)
    if _resume(out, _config_record(cfg)):
        return out
    rng = np.random.default_rng([cfg.seed, 1])
    meta = spec.layout(_add_duplicates(sample_metadata(cfg), cfg, rng), out, cfg, rng)
    _write_files(meta, spec, cfg, rng)
    spec.write(meta, out, cfg, rng)
    meta["duplicate_of"] = [meta.at[k, "image_id"] if k >= 0 else "" for k in meta["dup_of"]]
    columns = ["image_id", "label", "p_true", *[f"p_{c}" for c in spec.classes], "patient", "partition",
               "duplicate_of", *LATENTS[spec.look]]
    write_csv(oracle_path(out), meta[columns])
    write_json(out / MARKER, {"config": _config_record(cfg), "complete": True})
    return out
