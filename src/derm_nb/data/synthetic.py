"""A synthetic dermoscopy generator that writes the real ISIC 2020 or ISIC 2017 layouts.

Labels come from a known model of latent lesion attributes (asymmetry, border irregularity,
colour variegation, diameter) plus age, sex x site and a per-patient effect, so every image's
true probability is known. That probability is written to an oracle file *beside* the
dataset folder (never inside it), giving the best AUC any model could reach.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import pandas as pd
from scipy.special import expit, softmax

from derm_nb.artifacts import write_atomic, write_csv, write_json
from derm_nb.parallel import parallel_map

Preset = Literal["isic2020", "isic2017"]

SITES = ["torso", "lower extremity", "upper extremity", "head/neck", "palms/soles", "oral/genital"]
SITE_P = [0.52, 0.26, 0.15, 0.055, 0.011, 0.004]
BENIGN_DX = ["unknown", "nevus", "seborrheic keratosis", "lentigo NOS", "lichenoid keratosis", "solar lentigo"]
BENIGN_DX_P = [0.88, 0.095, 0.006, 0.008, 0.006, 0.005]
CLASSES_2017 = ("nevus", "melanoma", "seborrheic_keratosis")
CLASS_MIX_2017 = (0.686, 0.187, 0.127)  # ISIC 2017 training set: 1372 / 374 / 254 of 2000


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines a synthetic dataset; same config, same bytes."""

    preset: Preset = "isic2020"
    n_patients: int = 100
    seed: int = 0
    prevalence: float = 0.0176
    height: int = 240
    width: int = 320
    mean_images_per_patient: float = 8.0
    max_images_per_patient: int = 100
    nan_fraction: float = 0.005
    duplicate_fraction: float = 0.004
    hair_p_male: float = 0.25
    hair_p_female: float = 0.07
    class_mix: tuple[float, float, float] = CLASS_MIX_2017
    workers: int = field(default=0, compare=False)


# Weights of the label model on standardised latent attributes (the "ABCD" of dermoscopy).
WEIGHTS = {"asymmetry": 1.3, "border": 1.2, "variegation": 1.6, "diameter": 1.1, "age": 0.35, "site": 0.9}
SK_WEIGHTS = {"waxiness": 2.2, "variegation": -0.8, "border": -0.6, "age": 0.9}


def _calibrate_intercept(logit_wo: np.ndarray, prevalence: float) -> float:
    """Intercept b with mean(sigmoid(logit_wo + b)) == prevalence (bisection)."""
    lo, hi = -30.0, 30.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if expit(logit_wo + mid).mean() > prevalence:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


def _standardise(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-9)


def sample_metadata(cfg: SynthConfig) -> pd.DataFrame:
    """One row per image: patient, demographics, latent lesion attributes, label and its true probability."""
    rng = np.random.default_rng([cfg.seed, 0])
    n_per = np.clip(1 + rng.lognormal(np.log(cfg.mean_images_per_patient), 1.0, cfg.n_patients).astype(int) - 1,
                    1, cfg.max_images_per_patient)
    n = int(n_per.sum())
    patient = np.repeat(np.arange(cfg.n_patients), n_per)
    p_sex = rng.random(cfg.n_patients) < 0.52
    p_age = np.clip(np.round(rng.normal(50, 14, cfg.n_patients) / 5) * 5, 10, 90)
    p_skin = rng.beta(2.2, 3.0, cfg.n_patients)  # 0 light .. 1 dark
    p_effect = rng.normal(0, 0.6, cfg.n_patients)
    male = p_sex[patient]
    hair_p = np.where(male, cfg.hair_p_male, cfg.hair_p_female)
    df = pd.DataFrame({
        "patient": patient,
        "sex": np.where(male, "male", "female"),
        "age": p_age[patient] + rng.choice([-5, 0, 0, 0, 5], n),
        "site": rng.choice(SITES, n, p=np.array(SITE_P) / sum(SITE_P)),
        "skin_tone": np.clip(p_skin[patient] + rng.normal(0, 0.05, n), 0, 1),
        "hair": rng.random(n) < hair_p,
        "asymmetry": rng.beta(2, 5, n),
        "border": rng.beta(2, 5, n),
        "variegation": rng.beta(2, 5, n),
        "diameter": rng.beta(2.5, 4, n),
        "waxiness": rng.beta(2, 6, n),
        "pigment": rng.beta(3, 3, n),
        "patient_effect": p_effect[patient],
    })
    df["age"] = df["age"].clip(0, 90)
    # Sex-specific sites (study 000: palms/soles melanomas in men, oral/genital in women).
    site_risk = np.where(male, df["site"].eq("palms/soles"), df["site"].eq("oral/genital")).astype(float)
    base = (WEIGHTS["asymmetry"] * _standardise(df["asymmetry"].to_numpy())
            + WEIGHTS["border"] * _standardise(df["border"].to_numpy())
            + WEIGHTS["variegation"] * _standardise(df["variegation"].to_numpy())
            + WEIGHTS["diameter"] * _standardise(df["diameter"].to_numpy())
            + WEIGHTS["age"] * (df["age"].to_numpy() - 50) / 14
            + WEIGHTS["site"] * site_risk + df["patient_effect"].to_numpy())
    if cfg.preset == "isic2020":
        p = expit(base + _calibrate_intercept(base, cfg.prevalence))
        df["p_true"] = p
        df["label"] = (rng.random(n) < p).astype(int)
    else:
        sk = (SK_WEIGHTS["waxiness"] * _standardise(df["waxiness"].to_numpy())
              + SK_WEIGHTS["variegation"] * _standardise(df["variegation"].to_numpy())
              + SK_WEIGHTS["border"] * _standardise(df["border"].to_numpy())
              + SK_WEIGHTS["age"] * (df["age"].to_numpy() - 50) / 14)
        logits = np.stack([np.zeros(n), base, sk], axis=1)
        bias = np.zeros(3)
        for _ in range(200):  # fit the intercepts to the class mix
            probs = softmax(logits + bias, axis=1)
            bias += np.log(np.asarray(cfg.class_mix) / probs.mean(axis=0))
        probs = softmax(logits + bias, axis=1)
        draw = rng.random(n)[:, None] > np.cumsum(probs, axis=1)
        df["label"] = draw.sum(axis=1).clip(0, 2)
        for k, name in enumerate(CLASSES_2017):
            df[f"p_{name}"] = probs[:, k]
        df["p_true"] = df["p_melanoma"]
    return df


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int, channels: int = 1) -> np.ndarray:
    small = rng.normal(0, 1, (max(2, h // cells), max(2, w // cells), channels)).astype(np.float32)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return big.reshape(h, w, channels)


def render(attrs: dict, cls: str, seed: tuple[int, int], h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one dermoscopy-like RGB image (uint8, HxWx3) and its lesion mask (uint8 0/255)."""
    rng = np.random.default_rng(list(seed))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    s = attrs["skin_tone"]
    skin = np.array([236, 198, 176], np.float32) * (1 - s) + np.array([120, 78, 56], np.float32) * s
    img = skin[None, None, :] * (1 + 0.05 * _smooth_noise(rng, h, w, 12) + 0.02 * _smooth_noise(rng, h, w, 3))

    # Lesion outline: polar radius with an asymmetric stretch and irregular harmonics.
    cy, cx = h / 2 + rng.normal(0, h * 0.05), w / 2 + rng.normal(0, w * 0.05)
    radius = min(h, w) * (0.10 + 0.30 * attrs["diameter"])
    theta = np.linspace(0, 2 * np.pi, 180, endpoint=False)
    r = 1 + 0.45 * attrs["asymmetry"] * np.cos(theta - rng.uniform(0, 2 * np.pi)) * rng.uniform(0.6, 1)
    for k in range(3, 11):
        r += attrs["border"] * rng.normal(0, 0.22 / np.sqrt(k)) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r = radius * np.clip(r, 0.35, None)
    aspect = 1 + 0.5 * attrs["asymmetry"] * rng.random()
    pts = np.stack([cx + r * np.cos(theta) * aspect, cy + r * np.sin(theta)], axis=1)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255)
    soft = cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), 1.0 + 3.0 * (1 - attrs["border"]))

    # Lesion colour: a base pigment, a pigment network, and variegated blobs (black, blue-grey, red, tan).
    pig = attrs["pigment"]
    if cls == "seborrheic_keratosis":
        base = np.array([175, 130, 95], np.float32) * (1 - 0.4 * pig)
    else:
        base = np.array([160, 105, 70], np.float32) * (1 - 0.55 * pig) + 10
    lesion = base[None, None, :] * (1 + 0.12 * _smooth_noise(rng, h, w, 4))
    palette = np.array([[35, 25, 25], [95, 105, 130], [175, 80, 80], [200, 160, 120]], np.float32)
    for _ in range(int(round(1 + 7 * attrs["variegation"]))):
        color = palette[rng.choice(4, p=[0.4, 0.3, 0.15, 0.15])]
        by, bx = cy + rng.normal(0, radius * 0.4), cx + rng.normal(0, radius * 0.4)
        br = radius * rng.uniform(0.15, 0.45)
        blob = np.exp(-((yy - by) ** 2 + (xx - bx) ** 2) / (2 * br**2))[..., None]
        strength = attrs["variegation"] * rng.uniform(0.5, 1.0)
        lesion = lesion * (1 - strength * blob) + color * strength * blob
    if cls == "seborrheic_keratosis":  # milia-like cysts: small bright dots
        for _ in range(int(3 + 12 * attrs["waxiness"])):
            ang, rad = rng.uniform(0, 2 * np.pi), radius * 0.7 * np.sqrt(rng.random())
            cv2.circle(lesion, (int(cx + rad * np.cos(ang)), int(cy + rad * np.sin(ang))),
                       int(rng.integers(1, 3)), (235, 225, 200), -1, cv2.LINE_AA)
    alpha = (soft * (0.75 + 0.25 * pig))[..., None]
    img = img * (1 - alpha) + lesion * alpha

    # Hair: dark quadratic curves across the field.
    if attrs["hair"]:
        for _ in range(int(rng.integers(6, 26))):
            p0, p1, p2 = rng.uniform([0, 0], [w, h], (3, 2))
            t = np.linspace(0, 1, 24)[:, None]
            curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
            shade = float(rng.uniform(20, 60))
            cv2.polylines(img, [np.round(curve).astype(np.int32)], False, (shade, shade * 0.85, shade * 0.75),
                          int(rng.integers(1, 3)), cv2.LINE_AA)

    # Dermoscope: uneven illumination, vignetting and (often) dark corners outside the lens.
    dist = np.sqrt(((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2)
    img = img * (1 - rng.uniform(0.05, 0.3) * dist[..., None] ** 2.5) * rng.normal(1.0, 0.07)
    if rng.random() < 0.6:
        lens = rng.uniform(1.0, 1.35)
        edge = np.clip((lens - dist) / 0.08, 0, 1)[..., None]
        img = img * edge + 8 * (1 - edge)
    img = img + rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), mask


def _ids(rng: np.random.Generator, n: int, prefix: str, digits: int) -> list[str]:
    numbers = rng.choice(10**digits, size=n, replace=False)
    return [f"{prefix}{k:0{digits}d}" for k in numbers]


def _write_image(job: tuple) -> None:
    attrs, cls, seed, h, w, image_path, mask_path = job
    if Path(image_path).exists() and Path(mask_path).exists():
        return
    rgb, mask = render(attrs, cls, seed, h, w)
    _, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    _, png = cv2.imencode(".png", mask)
    write_atomic(mask_path, lambda p: p.write_bytes(png.tobytes()))
    write_atomic(image_path, lambda p: p.write_bytes(jpeg.tobytes()))


def oracle_path(out: Path) -> Path:
    """The oracle file for a dataset folder: a sibling, never inside the folder training reads."""
    return out.parent / f"{out.name}.oracle.csv"


def generate(cfg: SynthConfig, out: str | os.PathLike[str]) -> Path:
    """Write a synthetic dataset in the preset's real layout under `out`; return `out`.

    Re-running with the same config reuses finished images (safe to interrupt).
    """
    out = Path(out)
    marker = out / ".synth_config.json"
    if marker.is_file() and json.loads(marker.read_text()) == _config_record(cfg):
        return out
    meta = sample_metadata(cfg)
    rng = np.random.default_rng([cfg.seed, 1])
    n = len(meta)
    attrs = meta[["skin_tone", "hair", "asymmetry", "border", "variegation", "diameter", "waxiness", "pigment"]]
    records = attrs.to_dict("records")
    if cfg.preset == "isic2020":
        meta["image"] = _ids(rng, n, "ISIC_", 7)
        images, masks = out / "jpeg" / "train", out / "masks" / "train"
        classes = ["melanoma" if y else "nevus" for y in meta["label"]]
    else:
        meta["image"] = [f"ISIC_{k:07d}" for k in range(n)]
        images, masks = out / "ISIC-2017_Training_Data", out / "ISIC-2017_Training_Part1_GroundTruth"
        classes = [CLASSES_2017[y] for y in meta["label"]]
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    jobs = [(rec, cls, (cfg.seed, i), cfg.height, cfg.width, images / f"{name}.jpg",
             masks / f"{name}_segmentation.png") for i, (rec, cls, name) in enumerate(zip(records, classes, meta["image"]))]
    parallel_map(_write_image, jobs, cfg.workers, f"synth {cfg.preset}", min_items=0)

    # Exact duplicates: byte-identical copies under a new name, same patient and label (as in ISIC 2020).
    n_dup = int(round(cfg.duplicate_fraction * n))
    dup_src = rng.choice(n, size=n_dup, replace=False) if n_dup else np.array([], int)
    dup_rows = meta.iloc[dup_src].copy()
    if n_dup:
        new_ids = (_ids(rng, n_dup, "ISIC_", 7) if cfg.preset == "isic2020"
                   else [f"ISIC_{n + k:07d}" for k in range(n_dup)])
        for (_, row), new in zip(dup_rows.iterrows(), new_ids):
            for folder, suffix in ((images, ".jpg"), (masks, "_segmentation.png")):
                data = (folder / f"{row['image']}{suffix}").read_bytes()
                write_atomic(folder / f"{new}{suffix}", lambda p, d=data: p.write_bytes(d))
        dup_rows["image"] = new_ids
        meta = pd.concat([meta, dup_rows], ignore_index=True)

    (_write_isic2020 if cfg.preset == "isic2020" else _write_isic2017)(meta, out, cfg, rng)
    oracle = meta[["image", "label", "p_true"] + [c for c in meta if c.startswith("p_") and c != "p_true"]
                  + list(attrs.columns) + ["patient_effect"]]
    write_csv(oracle_path(out), oracle.rename(columns={"image": "image_id"}))
    write_json(marker, _config_record(cfg))
    return out


def _config_record(cfg: SynthConfig) -> dict:
    record = asdict(cfg)
    record.pop("workers")
    record["class_mix"] = list(record["class_mix"])
    return record


def _with_nans(rng: np.random.Generator, values: pd.Series, fraction: float) -> pd.Series:
    values = values.astype(object).copy()
    values[rng.random(len(values)) < fraction] = np.nan
    return values


def _write_isic2020(meta: pd.DataFrame, out: Path, cfg: SynthConfig, rng: np.random.Generator) -> None:
    benign_dx = rng.choice(BENIGN_DX, len(meta), p=np.array(BENIGN_DX_P) / sum(BENIGN_DX_P))
    frame = pd.DataFrame({
        "image_name": meta["image"],
        "patient_id": [f"IP_{1000000 + 7919 * p % 8999999:07d}" for p in meta["patient"]],
        "sex": _with_nans(rng, meta["sex"], cfg.nan_fraction),
        "age_approx": _with_nans(rng, meta["age"].astype(float), cfg.nan_fraction),
        "anatom_site_general_challenge": _with_nans(rng, meta["site"], 3 * cfg.nan_fraction),
        "diagnosis": np.where(meta["label"] == 1, "melanoma", benign_dx),
        "benign_malignant": np.where(meta["label"] == 1, "malignant", "benign"),
        "target": meta["label"].astype(int),
    })
    write_csv(out / "train.csv", frame)


def _write_isic2017(meta: pd.DataFrame, out: Path, cfg: SynthConfig, rng: np.random.Generator) -> None:
    truth = pd.DataFrame({
        "image_id": meta["image"],
        "melanoma": (meta["label"] == 1).astype(float),
        "seborrheic_keratosis": (meta["label"] == 2).astype(float),
    })
    write_csv(out / "ISIC-2017_Training_Part3_GroundTruth.csv", truth)
    age = meta["age"].astype(int).astype(str).where(rng.random(len(meta)) >= cfg.nan_fraction, "unknown")
    sex = meta["sex"].where(rng.random(len(meta)) >= cfg.nan_fraction, "unknown")
    write_csv(out / "ISIC-2017_Training_Data" / "ISIC-2017_Training_Data_metadata.csv",
              pd.DataFrame({"image_id": meta["image"], "age_approximate": age, "sex": sex}))

