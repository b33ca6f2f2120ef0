"""A synthetic data generator that writes the real archive layouts of ISIC 2017-2020 and BUSI.

Labels come from a known model of latent attributes (the lesion's asymmetry, border, colour
variegation, diameter, waxiness, vessels, scale, fibrosis; for ultrasound the mass's shape,
margin, orientation and shadowing) plus age, sex x site and a per-patient effect: a softmax
whose intercepts are fitted to the source's class mix. Images are drawn from those attributes
only, never from the label, so every image's true class probabilities are the best any model
can reach. They are written to an oracle file *beside* the dataset folder, never inside it.

| preset   | layout written                                                                  | groups   |
|----------|---------------------------------------------------------------------------------|----------|
| isic2020 | train.csv, jpeg/train/, ISIC_2020_Training_Duplicates.csv                       | patients |
| isic2017 | Training / Validation / Test_v2: Part3 ground truth, Data/, Part1 masks         | patients |
| isic2018 | Task 3 Training / Validation / Test Input + GroundTruth, LesionGroupings, masks | lesions  |
| isic2019 | ISIC_2019_Training_GroundTruth.csv, _Metadata.csv, _Input/                      | lesions  |
| busi     | Dataset_BUSI_with_GT/{benign,malignant,normal}/ with *_mask.png                 | cases    |
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import cv2
import numpy as np
import pandas as pd
from scipy.special import softmax

from derm_nb.artifacts import write_atomic, write_csv, write_json
from derm_nb.parallel import parallel_map

Preset = Literal["isic2020", "isic2017", "isic2018", "isic2019", "busi"]
PRESET_NAMES = ("isic2020", "isic2017", "isic2018", "isic2019", "busi")
PARTITIONS = ("train", "val", "test")

SITES = ["torso", "lower extremity", "upper extremity", "head/neck", "palms/soles", "oral/genital"]
SITE_P = [0.52, 0.26, 0.15, 0.055, 0.011, 0.004]
TORSO_2019 = ["anterior torso", "posterior torso", "lateral torso"]
BENIGN_DX = ["unknown", "nevus", "seborrheic keratosis", "lentigo NOS", "lichenoid keratosis", "solar lentigo"]
BENIGN_DX_P = [0.88, 0.095, 0.006, 0.008, 0.006, 0.005]
CLASSES_2017 = ("nevus", "melanoma", "seborrheic_keratosis")
CLASS_MIX_2017 = (0.686, 0.187, 0.127)  # ISIC 2017 training set: 1372 / 374 / 254 of 2000
CLASSES_2018 = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
COUNTS_2018 = (1113, 6705, 514, 327, 1099, 115, 142)  # HAM10000, 10015 images
CLASSES_2019 = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
COUNTS_2019 = (4522, 12875, 3323, 867, 2624, 239, 253, 628, 0)  # ISIC 2019 training, 25331 images
CLASSES_BUSI = ("benign", "malignant", "normal")
COUNTS_BUSI = (437, 210, 133)  # BUSI, 780 images
CONFIRM_TYPES = ("histopathology", "serial imaging showing no change", "single image expert consensus",
                 "confocal microscopy with consensus dermoscopy")
SKIN_ATTRS = ("asymmetry", "border", "variegation", "diameter", "waxiness", "vascular", "scale", "fibrosis",
              "arborizing")
US_ATTRS = ("irregularity", "margin", "orientation", "shadowing", "echo", "size")


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines a synthetic dataset; same config, same bytes.

    `n_patients` counts patients (isic2020, isic2017), lesions (isic2018, isic2019) or cases (busi).
    """

    preset: Preset = "isic2020"
    n_patients: int = 100
    seed: int = 0
    prevalence: float = 0.0176  # isic2020's malignant share
    height: int = 240
    width: int = 320
    mean_images_per_patient: float = 8.0  # patients' presets; lesions have 1-6 images as in HAM10000
    max_images_per_patient: int = 100
    nan_fraction: float = 0.005
    duplicate_fraction: float = 0.004  # isic2020 and isic2017 (training)
    reencoded_duplicate_share: float = 0.5  # isic2020: duplicates re-encoded / resized, not byte-identical
    superpixel_fraction: float = 0.02  # isic2017: images that also get a <id>_superpixels.png
    multi_mass_fraction: float = 0.025  # busi: tumour cases with a second mask (<name>_mask_1.png)
    hair_p_male: float = 0.25
    hair_p_female: float = 0.07
    class_mix: tuple[float, ...] | None = None  # None: the source's real mix (isic2020: from prevalence)
    workers: int = field(default=0, compare=False)


# Label-model weights on standardised latent attributes; a class's logit is their weighted sum.
MEL_W = {"asymmetry": 1.3, "border": 1.2, "variegation": 1.6, "diameter": 1.1, "age": 0.35, "site": 0.9,
         "patient_effect": 1.0}
SK_W = {"waxiness": 2.2, "variegation": -0.8, "border": -0.6, "age": 0.9}
BCC_W = {"arborizing": 2.4, "vascular": 0.5, "age": 1.0, "head_neck": 0.8, "patient_effect": 1.0}
AK_W = {"scale": 2.4, "age": 1.2, "head_neck": 1.0, "patient_effect": 1.0}
SCC_W = {"scale": 1.8, "arborizing": 0.8, "diameter": 0.6, "age": 1.4, "patient_effect": 1.0}
DF_W = {"fibrosis": 2.8, "diameter": -0.6, "age": -0.4}
VASC_W = {"vascular": 2.8}
BUSI_MALIGNANT_W = {"irregularity": 1.4, "margin": 1.6, "orientation": 1.0, "shadowing": 1.0, "echo": 0.5,
                    "size": 0.4}


def _standardise(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-9)


def _features(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Standardised latent attributes plus age, sex-specific site risk, head/neck and the patient effect."""
    feats = {c: _standardise(df[c].to_numpy(float)) for c in (*SKIN_ATTRS, *US_ATTRS) if c in df}
    male = df["sex"].eq("male").to_numpy()
    site = df["site"].to_numpy()
    feats["age"] = (df["age"].to_numpy(float) - 50) / 14
    # Sex-specific sites (study 000: palms/soles melanomas in men, oral/genital in women).
    feats["site"] = np.where(male, site == "palms/soles", site == "oral/genital").astype(float)
    feats["head_neck"] = (site == "head/neck").astype(float)
    feats["patient_effect"] = df["patient_effect"].to_numpy(float)
    return feats


def class_probabilities(logits: np.ndarray, mix: np.ndarray) -> np.ndarray:
    """Softmax of `logits` with per-class intercepts fitted so each class's mean probability is its share."""
    bias = np.where(mix > 0, 0.0, -np.inf)
    for _ in range(300):
        mean = softmax(logits + bias, axis=1).mean(axis=0)
        fit = (mix > 0) & (mean > 0)
        bias[fit] += np.log(mix[fit] / mean[fit])
    return softmax(logits + bias, axis=1)


# ---------------------------------------------------------------------------------------------
# Groups and latent attributes


def _patient_sizes(rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """Images per patient: log-normal, 1 to `max_images_per_patient` (as in ISIC 2020)."""
    raw = rng.lognormal(np.log(cfg.mean_images_per_patient), 1.0, cfg.n_patients).astype(int)
    return np.clip(raw, 1, cfg.max_images_per_patient)


def _lesion_sizes(rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """Images per lesion: 1 to 6, mean 1.34 (HAM10000: 10015 images of 7470 lesions)."""
    return np.minimum(rng.geometric(1 / 1.34, cfg.n_patients), 6)


def _case_sizes(rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """One image per case (BUSI)."""
    return np.ones(cfg.n_patients, int)


def _skin_attributes(rng: np.random.Generator, df: pd.DataFrame, cfg: SynthConfig, mix: np.ndarray) -> pd.DataFrame:
    """Dermoscopy latents: skin tone, hair (more on men), the ABCD and the non-melanocytic signs."""
    n = len(df)
    hair_p = np.where(df["sex"].eq("male"), cfg.hair_p_male, cfg.hair_p_female)
    return pd.DataFrame({
        "skin_tone": np.clip(df["skin"].to_numpy() + rng.normal(0, 0.05, n), 0, 1),
        "hair": rng.random(n) < hair_p,
        "asymmetry": rng.beta(2, 5, n), "border": rng.beta(2, 5, n), "variegation": rng.beta(2, 5, n),
        "diameter": rng.beta(2.5, 4, n), "waxiness": rng.beta(2, 6, n), "pigment": rng.beta(3, 3, n),
        "vascular": rng.beta(1.5, 8, n), "scale": rng.beta(1.5, 8, n), "fibrosis": rng.beta(1.5, 8, n),
        "arborizing": rng.beta(1.5, 8, n),
    }, index=df.index)


def _ultrasound_attributes(rng: np.random.Generator, df: pd.DataFrame, cfg: SynthConfig,
                           mix: np.ndarray) -> pd.DataFrame:
    """Ultrasound latents: whether there is a mass (exactly the normal share has none), its shape and echo."""
    n = len(df)
    mass = np.ones(n, bool)
    mass[rng.permutation(n)[: int(round(mix[CLASSES_BUSI.index("normal")] * n))]] = False
    multi = np.zeros(n, bool)
    tumours = np.flatnonzero(mass)
    if len(tumours) >= 2 and cfg.multi_mass_fraction > 0:
        multi[rng.choice(tumours, max(1, int(round(cfg.multi_mass_fraction * len(tumours)))), replace=False)] = True
    return pd.DataFrame({
        "irregularity": rng.beta(2, 4, n), "margin": rng.beta(2, 4, n), "orientation": rng.beta(2, 5, n),
        "shadowing": rng.beta(2, 4, n), "echo": rng.beta(2, 4, n), "size": rng.beta(2.5, 3, n),
        "mass": mass, "multi": multi,
    }, index=df.index)


def _groups_frame(rng: np.random.Generator, sizes: np.ndarray) -> pd.DataFrame:
    """One row per image with its group's (patient's) sex, age, skin tone and random effect."""
    g = len(sizes)
    patient = np.repeat(np.arange(g), sizes)
    male = (rng.random(g) < 0.52)[patient]
    age = np.clip(np.round(rng.normal(50, 14, g) / 5) * 5, 10, 90)[patient]
    return pd.DataFrame({
        "patient": patient,
        "sex": np.where(male, "male", "female"),
        "age": np.clip(age + rng.choice([-5, 0, 0, 0, 5], len(patient)), 0, 90),
        "site": rng.choice(SITES, len(patient), p=np.array(SITE_P) / sum(SITE_P)),
        "skin": rng.beta(2.2, 3.0, g)[patient],  # 0 light .. 1 dark
        "patient_effect": rng.normal(0, 0.6, g)[patient],
    })


def _assign_partitions(sizes: np.ndarray, shares: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Partition index per group: groups in random order fill each partition's share of the images."""
    target = np.asarray(shares, float) / sum(shares)
    part = np.zeros(len(sizes), int)
    filled = np.zeros(len(target))
    for g in rng.permutation(len(sizes)):
        part[g] = int(np.argmax(target * (filled.sum() + sizes[g]) - filled))
        filled[part[g]] += sizes[g]
    for k in range(len(target)):  # every partition gets at least one group when there are enough
        counts = np.bincount(part, minlength=len(target))
        if counts[k] == 0 and counts.max() > 1:
            donors = np.flatnonzero(part == int(np.argmax(counts)))
            part[donors[np.argmin(sizes[donors])]] = k
    return part


def sample_metadata(cfg: SynthConfig) -> pd.DataFrame:
    """One row per image: group, demographics, latent attributes, partition, label and class probabilities."""
    spec = PRESETS[cfg.preset]
    mix = _mix(cfg)
    rng = np.random.default_rng([cfg.seed, 0])
    sizes = spec.group_sizes(rng, cfg)
    df = _groups_frame(rng, sizes)
    df = df.join(spec.attributes(rng, df, cfg, mix))
    if spec.groups == "lesion":  # every image of a lesion shows the same lesion at the same site
        shared = [c for c in (*SKIN_ATTRS, "pigment", "site", "age") if c in df]
        df[shared] = df.groupby("patient")[shared].transform("first")
    feats = _features(df)
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
    part = _assign_partitions(sizes, spec.partitions, rng)
    df["partition"] = np.asarray(PARTITIONS)[part[df["patient"]]]
    return df


def _mix(cfg: SynthConfig) -> np.ndarray:
    spec = PRESETS[cfg.preset]
    mix = cfg.class_mix or ((1 - cfg.prevalence, cfg.prevalence) if cfg.preset == "isic2020" else spec.mix)
    if len(mix) != len(spec.classes):
        raise ValueError(f"class_mix for {cfg.preset} needs {len(spec.classes)} shares ({', '.join(spec.classes)}), "
                         f"got {len(mix)}")
    return np.asarray(mix, float) / float(np.sum(mix))


# ---------------------------------------------------------------------------------------------
# Rendering


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int, channels: int = 1) -> np.ndarray:
    small = rng.normal(0, 1, (max(2, h // cells), max(2, w // cells), channels)).astype(np.float32)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return big.reshape(h, w, channels)


def _ramp(x: float, start: float = 0.25, width: float = 0.35) -> float:
    """0 below `start`, rising to 1 over `width`: how visible a latent sign is."""
    return float(np.clip((x - start) / width, 0, 1))


def _outline(attrs: dict, rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, float, float, float]:
    """Lesion mask (uint8 0/255) from a polar radius with an asymmetric stretch and irregular harmonics."""
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
    return mask, cy, cx, radius


def _lesion_colour(attrs: dict, rng: np.random.Generator, h: int, w: int, cy: float, cx: float,
                   radius: float) -> np.ndarray:
    """Lesion colour: brown (pigment) to tan (waxy) or pink (non-pigmented), network and variegated blobs."""
    pig, wax = attrs["pigment"], _ramp(attrs["waxiness"], 0.2, 0.4)
    pink = max(_ramp(attrs["scale"]), _ramp(attrs["arborizing"]), _ramp(attrs["vascular"]))
    brown = np.array([160, 105, 70], np.float32) * (1 - 0.55 * pig) + 10
    tan = np.array([175, 130, 95], np.float32) * (1 - 0.4 * pig)
    base = (brown * (1 - wax) + tan * wax) * (1 - 0.8 * pink) + np.array([205, 125, 120], np.float32) * 0.8 * pink
    lesion = base[None, None, :] * (1 + 0.12 * _smooth_noise(rng, h, w, 4))
    palette = np.array([[35, 25, 25], [95, 105, 130], [175, 80, 80], [200, 160, 120]], np.float32)
    for _ in range(int(round(1 + 7 * attrs["variegation"]))):
        color = palette[rng.choice(4, p=[0.4, 0.3, 0.15, 0.15])]
        by, bx = cy + rng.normal(0, radius * 0.4), cx + rng.normal(0, radius * 0.4)
        br = radius * rng.uniform(0.15, 0.45)
        strength = attrs["variegation"] * rng.uniform(0.5, 1.0)
        rows = slice(max(0, int(by - 3 * br)), max(0, min(h, int(by + 3 * br) + 1)))
        cols = slice(max(0, int(bx - 3 * br)), max(0, min(w, int(bx + 3 * br) + 1)))
        yy, xx = np.ogrid[rows, cols]
        blob = (strength * np.exp(-((yy - by) ** 2 + (xx - bx) ** 2) / (2 * br**2)))[..., None].astype(np.float32)
        lesion[rows, cols] = lesion[rows, cols] * (1 - blob) + color * blob
    return lesion


def _lesion_signs(lesion: np.ndarray, attrs: dict, rng: np.random.Generator, cy: float, cx: float,
                  radius: float) -> np.ndarray:
    """Class signs drawn from latents: milia cysts, red lacunae, arborizing vessels, scale, a white scar."""
    h, w = lesion.shape[:2]
    spot = lambda spread: (int(cx + spread * radius * rng.normal(0, 0.45)), int(cy + spread * radius * rng.normal(0, 0.45)))
    for _ in range(int(30 * max(0.0, attrs["waxiness"] - 0.3))):  # seborrheic keratosis: milia-like cysts
        cv2.circle(lesion, spot(1.0), int(rng.integers(1, 3)), (235, 225, 200), -1, cv2.LINE_AA)
    for _ in range(int(40 * max(0.0, attrs["vascular"] - 0.25))):  # angioma: red-purple lacunae
        cv2.circle(lesion, spot(1.0), max(1, int(radius * rng.uniform(0.06, 0.16))),
                   (float(rng.uniform(110, 170)), 25, float(rng.uniform(45, 80))), -1, cv2.LINE_AA)
    for _ in range(int(25 * max(0.0, attrs["arborizing"] - 0.25))):  # BCC: branching vessels, blue-grey nests
        pts = np.cumsum(rng.normal(0, radius * 0.12, (8, 2)), axis=0) + spot(0.8)
        cv2.polylines(lesion, [np.round(pts).astype(np.int32)], False, (190, 35, 45), 1, cv2.LINE_AA)
        if rng.random() < 0.3:
            cv2.ellipse(lesion, spot(0.8), (max(1, int(radius * 0.12)), max(1, int(radius * 0.07))),
                        float(rng.uniform(0, 180)), 0, 360, (90, 100, 125), -1, cv2.LINE_AA)
    scale = _ramp(attrs["scale"])
    if scale > 0:  # actinic keratosis / SCC: white-yellow scale
        flakes = (_smooth_noise(rng, h, w, 6) > 0.6).astype(np.float32) * scale * 0.8
        lesion = lesion * (1 - flakes) + np.array([235, 228, 210], np.float32) * flakes
    scar = _ramp(attrs["fibrosis"])
    if scar > 0:  # dermatofibroma: central white scar-like patch
        patch = np.zeros((h, w), np.float32)
        cv2.ellipse(patch, (int(cx), int(cy)), (max(1, int(radius * 0.45)), max(1, int(radius * 0.3))),
                    float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        patch = cv2.GaussianBlur(patch, (0, 0), max(1.0, radius * 0.12))[..., None] * scar * 0.85
        lesion = lesion * (1 - patch) + np.array([240, 230, 225], np.float32) * patch
    return lesion


def _hair_and_lens(img: np.ndarray, attrs: dict, rng: np.random.Generator) -> np.ndarray:
    """Hair (dark quadratic curves), uneven illumination, vignetting and often dark corners outside the lens."""
    h, w = img.shape[:2]
    if attrs["hair"]:
        for _ in range(int(rng.integers(6, 26))):
            p0, p1, p2 = rng.uniform([0, 0], [w, h], (3, 2))
            t = np.linspace(0, 1, 24)[:, None]
            curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
            shade = float(rng.uniform(20, 60))
            cv2.polylines(img, [np.round(curve).astype(np.int32)], False, (shade, shade * 0.85, shade * 0.75),
                          int(rng.integers(1, 3)), cv2.LINE_AA)
    dist, falloff = _lens_distance(h, w)
    strength, gain = rng.uniform(0.05, 0.3), rng.normal(1.0, 0.07)
    img *= (1 - strength * falloff) * np.float32(gain)
    if rng.random() < 0.6:
        edge = np.clip((np.float32(rng.uniform(1.0, 1.35)) - dist) / np.float32(0.08), 0, 1)[..., None]
        img *= edge
        img += 8 * (1 - edge)
    oy, ox = rng.integers(0, _NOISE_PAD, 2)
    img += _sensor_noise(h, w)[oy:oy + h, ox:ox + w]
    return img


_NOISE_PAD = 64


@functools.lru_cache(maxsize=4)
def _sensor_noise(h: int, w: int) -> np.ndarray:
    """A fixed field of Gaussian sensor noise (sd 3), a little larger than the frame: each image adds a window at
    a random offset, which costs a slice instead of drawing a million normals per image."""
    return 3 * np.random.default_rng(0).standard_normal((h + _NOISE_PAD, w + _NOISE_PAD, 3), dtype=np.float32)


@functools.lru_cache(maxsize=4)
def _lens_distance(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's elliptic distance from the centre (1 at the frame's edge midpoints), and the vignette's
    falloff (distance^2.5, HxWx1), per frame size."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dist = np.sqrt(((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2)
    return dist, (dist**2.5)[..., None].astype(np.float32)


def _window(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    """The lesion's bounding box grown by `margin` px (clipped to the image): all the lesion layer can touch."""
    x, y, bw, bh = cv2.boundingRect(mask)
    h, w = mask.shape
    return slice(max(0, y - margin), min(h, y + bh + margin)), slice(max(0, x - margin), min(w, x + bw + margin))


def render(attrs: dict, seed: tuple[int, int], h: int, w: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Draw one dermoscopy-like RGB image (uint8, HxWx3) and its lesion mask (uint8 0/255) from latents only.

    The lesion layer is drawn only inside the lesion's box (plus its soft edge), not over the whole frame. Skin,
    lesion and lens draw from their own streams, so two latents differ in the lesion only."""
    rng, lesion_rng, lens_rng = np.random.default_rng(list(seed)).spawn(3)
    s = attrs["skin_tone"]
    skin = np.array([236, 198, 176], np.float32) * (1 - s) + np.array([120, 78, 56], np.float32) * s
    img = skin[None, None, :] * (1 + 0.05 * _smooth_noise(rng, h, w, 12) + 0.02 * _smooth_noise(rng, h, w, 3))
    mask, cy, cx, radius = _outline(attrs, rng, h, w)
    sigma = 1.0 + 3.0 * (1 - attrs["border"])
    rows, cols = _window(mask, int(np.ceil(4 * sigma)) + 2)
    soft = cv2.GaussianBlur(mask[rows, cols].astype(np.float32) / 255, (0, 0), sigma)
    wh, ww = soft.shape
    cy, cx = cy - rows.start, cx - cols.start
    lesion = _lesion_colour(attrs, lesion_rng, wh, ww, cy, cx, radius)
    lesion = _lesion_signs(np.ascontiguousarray(lesion), attrs, lesion_rng, cy, cx, radius)
    alpha = (soft * (0.75 + 0.25 * attrs["pigment"]))[..., None]
    img[rows, cols] = img[rows, cols] * (1 - alpha) + lesion * alpha
    img = _hair_and_lens(img, attrs, lens_rng)
    return np.clip(img, 0, 255, out=img).astype(np.uint8), [mask]


def _mass(attrs: dict, rng: np.random.Generator, h: int, w: int, cy: float, cx: float, scale: float) -> np.ndarray:
    """One hypoechoic mass outline: oval and smooth (benign-like) to irregular, spiculated, taller than wide."""
    a = w * (0.05 + 0.12 * attrs["size"]) * scale
    b = a * (0.55 + 0.8 * attrs["orientation"])
    theta = np.linspace(0, 2 * np.pi, 240, endpoint=False)
    r = np.ones_like(theta)
    for k in range(2, 7):
        r += attrs["irregularity"] * rng.normal(0, 0.28 / np.sqrt(k)) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    for _ in range(int(round(2 + 10 * attrs["margin"]))):  # spicules
        r += attrs["margin"] * rng.uniform(0.2, 0.6) * np.maximum(0, np.cos(theta - rng.uniform(0, 2 * np.pi))) ** 60
    pts = np.stack([cx + a * np.clip(r, 0.4, None) * np.cos(theta), cy + b * np.clip(r, 0.4, None) * np.sin(theta)], 1)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255)
    return mask


def render_ultrasound(attrs: dict, seed: tuple[int, int], h: int, w: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Draw one breast-ultrasound-like image (RGB uint8, grey) in a speckled sector, and its mass masks."""
    rng = np.random.default_rng(list(seed))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ax, ay = w / 2 + rng.normal(0, w * 0.02), -0.3 * h
    r, ang = np.hypot(xx - ax, yy - ay), np.arctan2(xx - ax, yy - ay)
    r0 = -ay + 0.02 * h
    depth = np.clip((r - r0) / (0.95 * h) + 0.04 * _smooth_noise(rng, h, w, 8)[..., 0], 0, 1)
    sector = (np.abs(ang) < np.deg2rad(rng.uniform(32, 40))) & (r > r0) & (r < r0 + 0.95 * h)
    # Layers: bright skin line, lobulated fat, brighter fibroglandular tissue, striated muscle.
    tissue = np.select([depth < 0.04, depth < 0.3, depth < 0.78], [0.9, 0.35, 0.62], 0.45).astype(np.float32)
    tissue += 0.12 * _smooth_noise(rng, h, w, 10)[..., 0] + 0.05 * np.sin(yy / max(2.0, h / 60)) * (depth > 0.78)
    masks = []
    if attrs["mass"]:
        side = float(rng.choice([-1, 1]))
        for k in range(1 + int(attrs["multi"])):
            offset = w * (rng.uniform(0.0, 0.15) if not attrs["multi"] else rng.uniform(0.12, 0.22))
            cx, cy = w / 2 + side * offset * (1 if k == 0 else -1), h * rng.uniform(0.35, 0.55)
            masks.append(_mass(attrs, rng, h, w, cy, cx, 1.0 if k == 0 else 0.6))
        union = np.maximum.reduce(masks).astype(np.float32) / 255
        core = cv2.erode(union, np.ones((1, max(3, w // 25)), np.uint8))  # the shadow is narrower than the mass
        below = cv2.GaussianBlur((np.cumsum(core, axis=0) > 0).astype(np.float32), (0, 0), max(1.0, w / 60))
        tissue *= 1 + (0.3 - 0.9 * attrs["shadowing"]) * below  # posterior enhancement or acoustic shadow
        soft = cv2.GaussianBlur(union, (0, 0), 0.8 + 2.0 * attrs["margin"])
        inner = 0.05 + 0.06 * attrs["echo"] * (1 + _smooth_noise(rng, h, w, 5)[..., 0])
        tissue = tissue * (1 - soft) + inner * soft
    else:
        masks.append(np.zeros((h, w), np.uint8))
    speckle = cv2.GaussianBlur(rng.rayleigh(0.8, (h, w)).astype(np.float32), (0, 0), 0.7)
    img = np.clip(0.7 * tissue * speckle * (1 - 0.35 * depth), 0, 1) * sector * 245 + rng.normal(0, 2, (h, w))
    grey = np.clip(img, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2), masks


RENDERERS: dict[str, Callable[[dict, tuple[int, int], int, int], tuple[np.ndarray, list[np.ndarray]]]] = {
    "dermoscopy": render, "ultrasound": render_ultrasound,
}


# ---------------------------------------------------------------------------------------------
# Files


class _Job(NamedTuple):
    attrs: dict
    look: str
    seed: tuple[int, int]
    h: int
    w: int
    image: str
    masks: tuple[str, ...]
    superpixels: str


def _encode(path: str, rgb: np.ndarray, quality: int = 92) -> bytes:
    """JPEG (quality `quality`) or PNG bytes of an RGB image or a single-channel mask, by the path's suffix."""
    arr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    if path.lower().endswith((".jpg", ".jpeg")):
        return cv2.imencode(".jpg", arr, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
    return cv2.imencode(".png", arr)[1].tobytes()


def _superpixels(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """An ISIC 2017-style superpixel map: jittered grid cells, the index coded as R + 256 G."""
    step = max(4, min(h, w) // 12)
    gy, gx = np.mgrid[0:h, 0:w]
    warp = (_smooth_noise(rng, h, w, step, 2) * step * 0.3).astype(int)
    cols = -(-w // step)
    index = np.clip((gy + warp[..., 0]) // step, 0, h // step) * cols + np.clip((gx + warp[..., 1]) // step, 0, cols - 1)
    return np.stack([index % 256, index // 256, np.zeros_like(index)], axis=2).astype(np.uint8)


def _write_image(job: _Job) -> None:
    """Render and write one image with its masks (and superpixels); skip what a finished earlier run wrote."""
    outputs = [job.image, *job.masks] + ([job.superpixels] if job.superpixels else [])
    if all(Path(p).exists() for p in outputs):
        return
    rgb, masks = RENDERERS[job.look](job.attrs, job.seed, job.h, job.w)
    for path, mask in zip(job.masks, masks):
        data = _encode(path, mask)
        write_atomic(path, lambda p, d=data: p.write_bytes(d))
    if job.superpixels:
        data = _encode(job.superpixels, _superpixels(job.h, job.w, np.random.default_rng(list(job.seed))))
        write_atomic(job.superpixels, lambda p, d=data: p.write_bytes(d))
    data = _encode(job.image, rgb)
    write_atomic(job.image, lambda p: p.write_bytes(data))


def _copy_duplicate(source: str, target: str, reencode: bool, rng: np.random.Generator) -> None:
    """A duplicate under a new name: the same bytes, or the image resized and re-encoded (as in ISIC 2020)."""
    if not reencode:
        data = Path(source).read_bytes()
    else:
        img = cv2.imread(source, cv2.IMREAD_COLOR)
        scale = float(rng.uniform(0.6, 0.9))
        img = cv2.resize(img, (max(8, round(img.shape[1] * scale)), max(8, round(img.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA)
        data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(80, 90))])[1].tobytes()
    write_atomic(target, lambda p: p.write_bytes(data))


def _ids(rng: np.random.Generator, n: int, prefix: str, digits: int) -> list[str]:
    numbers = rng.choice(10**digits, size=n, replace=False)
    return [f"{prefix}{k:0{digits}d}" for k in numbers]


def _sequential_ids(meta: pd.DataFrame, start: int) -> list[str]:
    """ISIC_xxxxxxx numbered from `start` in partition order (train, val, test), duplicates last."""
    rank = meta["partition"].map({p: k for k, p in enumerate(PARTITIONS)}) + 3 * (meta["dup_of"] >= 0)
    numbers = np.empty(len(meta), int)
    numbers[np.argsort(rank.to_numpy(), kind="stable")] = np.arange(start, start + len(meta))
    return [f"ISIC_{k:07d}" for k in numbers]


def _add_duplicates(meta: pd.DataFrame, cfg: SynthConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Append duplicate rows of training images (same patient and label); `dup_of` names the source row."""
    meta = meta.assign(dup_of=-1, reencode=False)
    train = np.flatnonzero(meta["partition"].eq("train").to_numpy())
    n_dup = min(len(train), int(round(cfg.duplicate_fraction * len(meta))))
    if not PRESETS[cfg.preset].duplicates or n_dup == 0:
        return meta
    source = np.sort(rng.choice(train, size=n_dup, replace=False))
    dups = meta.iloc[source].copy()
    dups["dup_of"] = source
    share = cfg.reencoded_duplicate_share if cfg.preset == "isic2020" else 0.0
    k = int(round(share * n_dup))
    if n_dup >= 2 and 0 < share < 1:  # both kinds whenever there are two duplicates
        k = min(max(k, 1), n_dup - 1)
    dups["reencode"] = rng.permutation(n_dup) < k
    return pd.concat([meta, dups], ignore_index=True)


# ---------------------------------------------------------------------------------------------
# Layouts: ids and file paths per preset, then the metadata files


def _files(meta: pd.DataFrame, images: dict[str, Path], masks: dict[str, Path], suffix: str = ".jpg") -> pd.DataFrame:
    """Image path per row from its partition's folder; a `<id>_segmentation.png` where `masks` has the partition."""
    meta["path"] = [str(images[p] / f"{i}{suffix}") for p, i in zip(meta["partition"], meta["image"])]
    meta["masks"] = [(str(masks[p] / f"{i}_segmentation.png"),) if p in masks else ()
                     for p, i in zip(meta["partition"], meta["image"])]
    meta["superpixels"] = ""
    meta["image_id"] = meta["image"]
    return meta


def _layout_isic2020(meta: pd.DataFrame, out: Path, cfg: SynthConfig, rng: np.random.Generator) -> pd.DataFrame:
    """jpeg/train/<ISIC_xxxxxxx>.jpg with random ids; no masks (ISIC 2020 has none)."""
    meta["image"] = _ids(rng, len(meta), "ISIC_", 7)
    return _files(meta, {"train": out / "jpeg" / "train"}, {})


NAMES_2017 = {"train": "Training", "val": "Validation", "test": "Test_v2"}


def _layout_isic2017(meta: pd.DataFrame, out: Path, cfg: SynthConfig, rng: np.random.Generator) -> pd.DataFrame:
    """ISIC-2017_<Part>_Data/<id>.jpg and _Part1_GroundTruth/<id>_segmentation.png; a few superpixel maps."""
    meta["image"] = _sequential_ids(meta, 0)
    meta = _files(meta, {p: out / f"ISIC-2017_{n}_Data" for p, n in NAMES_2017.items()},
                  {p: out / f"ISIC-2017_{n}_Part1_GroundTruth" for p, n in NAMES_2017.items()})
    for part, name in NAMES_2017.items():
        rows = np.flatnonzero(meta["partition"].eq(part).to_numpy() & meta["dup_of"].lt(0).to_numpy())
        if cfg.superpixel_fraction > 0 and len(rows):
            pick = rng.choice(rows, max(1, int(round(cfg.superpixel_fraction * len(rows)))), replace=False)
            meta.loc[pick, "superpixels"] = [str(out / f"ISIC-2017_{name}_Data" / f"{i}_superpixels.png")
                                             for i in meta.loc[pick, "image"]]
    return meta


NAMES_2018 = {"train": "Training", "val": "Validation", "test": "Test"}
HAM_MASKS = "HAM10000_segmentations_lesion_tschandl"


def _layout_isic2018(meta: pd.DataFrame, out: Path, cfg: SynthConfig, rng: np.random.Generator) -> pd.DataFrame:
    """ISIC2018_Task3_<Part>_Input/<id>.jpg numbered from ISIC_0024306; HAM10000 masks for training images."""
    meta["image"] = _sequential_ids(meta, 24306)
    lesions = _ids(rng, int(meta["patient"].max()) + 1, "HAM_", 7)
    meta["lesion_id"] = [lesions[g] for g in meta["patient"]]
    return _files(meta, {p: out / f"ISIC2018_Task3_{n}_Input" for p, n in NAMES_2018.items()},
                  {"train": out / HAM_MASKS})


def _layout_isic2019(meta: pd.DataFrame, out: Path, cfg: SynthConfig, rng: np.random.Generator) -> pd.DataFrame:
    """ISIC_2019_Training_Input/<id>.jpg; HAM and BCN lesions carry lesion ids, the MSK part none."""
    groups = int(meta["patient"].max()) + 1
    part = rng.choice(3, groups, p=[0.40, 0.49, 0.11])  # HAM10000, BCN_20000, MSK (2084 of 25331 rows lack ids)
    names = [_ids(rng, groups, "HAM_", 7), _ids(rng, groups, "BCN_", 7)]
    meta["lesion_id"] = [names[part[g]][g] if part[g] < 2 else "" for g in meta["patient"]]
    source = part[meta["patient"]]
    numbers = np.zeros(len(meta), int)
    for k, start in enumerate((24306, 53000, 0)):  # the archive's id ranges of the three parts
        numbers[source == k] = start + np.arange(int((source == k).sum()))
    meta["image"] = [f"ISIC_{k:07d}" for k in numbers]
    return _files(meta, {"train": out / "ISIC_2019_Training_Input"}, {})


def _layout_busi(meta: pd.DataFrame, out: Path, cfg: SynthConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Dataset_BUSI_with_GT/<class>/<class> (k).png with `_mask.png` (and `_mask_1.png` for a second mass)."""
    base = out / "Dataset_BUSI_with_GT"
    cls = pd.Series([CLASSES_BUSI[k] for k in meta["label"]], index=meta.index)
    num = cls.groupby(cls).cumcount() + 1
    meta["image"] = [f"{c} ({k})" for c, k in zip(cls, num)]
    meta["image_id"] = [f"{c}_{k:04d}" for c, k in zip(cls, num)]  # the loader's id for `benign (1).png`
    meta["path"] = [str(base / c / f"{name}.png") for c, name in zip(cls, meta["image"])]
    meta["masks"] = [tuple(str(base / c / f"{name}_mask{suffix}.png") for suffix in ("", "_1")[: 1 + int(multi)])
                     for c, name, multi in zip(cls, meta["image"], meta["multi"])]
    meta["superpixels"] = ""
    for c in CLASSES_BUSI:  # the loader needs every class folder, even an empty one
        (base / c).mkdir(parents=True, exist_ok=True)
    return meta


def _with_nans(rng: np.random.Generator, values: pd.Series, fraction: float) -> pd.Series:
    values = values.astype(object).copy()
    values[rng.random(len(values)) < fraction] = np.nan
    return values


def _write_isic2020(meta: pd.DataFrame, out: Path, cfg: SynthConfig, rng: np.random.Generator) -> None:
    """train.csv (ISIC 2020 columns, some NaNs) and ISIC_2020_Training_Duplicates.csv listing every copy."""
    dx = rng.choice(BENIGN_DX, len(meta), p=np.array(BENIGN_DX_P) / sum(BENIGN_DX_P))
    dup_of = meta["dup_of"].to_numpy()
    dx = np.where(dup_of >= 0, dx[np.maximum(dup_of, 0)], dx)  # a copy keeps its source's diagnosis
    frame = pd.DataFrame({
        "image_name": meta["image"],
        "patient_id": [f"IP_{1000000 + 7919 * p % 8999999:07d}" for p in meta["patient"]],
        "sex": _with_nans(rng, meta["sex"], cfg.nan_fraction),
        "age_approx": _with_nans(rng, meta["age"].astype(float), cfg.nan_fraction),
        "anatom_site_general_challenge": _with_nans(rng, meta["site"], 3 * cfg.nan_fraction),
        "diagnosis": np.where(meta["label"] == 1, "melanoma", dx),
        "benign_malignant": np.where(meta["label"] == 1, "malignant", "benign"),
        "target": meta["label"].astype(int),
    })
    write_csv(out / "train.csv", frame)
    copies = dup_of >= 0
    pairs = pd.DataFrame({"image_name_1": meta["image"].to_numpy()[dup_of[copies]],
                          "image_name_2": meta["image"].to_numpy()[copies]})
    write_csv(out / "ISIC_2020_Training_Duplicates.csv", pairs)


def _write_isic2017(meta: pd.DataFrame, out: Path, cfg: SynthConfig, rng: np.random.Generator) -> None:
    """Per partition: Part 3 ground truth (nevus = both columns 0) and the Data folder's metadata CSV."""
    for part, name in NAMES_2017.items():
        rows = meta[meta["partition"] == part].sort_values("image")
        truth = pd.DataFrame({"image_id": rows["image"], "melanoma": (rows["label"] == 1).astype(float),
                              "seborrheic_keratosis": (rows["label"] == 2).astype(float)})
        write_csv(out / f"ISIC-2017_{name}_Part3_GroundTruth.csv", truth)
        age = rows["age"].astype(int).astype(str).where(rng.random(len(rows)) >= cfg.nan_fraction, "unknown")
        sex = rows["sex"].where(rng.random(len(rows)) >= cfg.nan_fraction, "unknown")
        write_csv(out / f"ISIC-2017_{name}_Data" / f"ISIC-2017_{name}_Data_metadata.csv",
                  pd.DataFrame({"image_id": rows["image"], "age_approximate": age, "sex": sex}))


def _one_hot(rows: pd.DataFrame, classes: tuple[str, ...]) -> pd.DataFrame:
    """`image` plus one float 0.0/1.0 column per class, in the archive's class order."""
    onehot = pd.DataFrame(np.eye(len(classes))[rows["label"].to_numpy()], columns=list(classes), index=rows.index)
    return pd.concat([rows[["image"]], onehot], axis=1)


LICENSE_2018 = ("Synthetic images written by derm_nb.data.synthetic in the layout of the ISIC 2018 Task 3 archive.\n"
                "The real archive's images are licensed CC BY-NC 4.0; these are generated and carry no patient data.\n")
ATTRIBUTION_2018 = ("Layout after: Tschandl P., Rosendahl C., Kittler H. The HAM10000 dataset. Sci. Data 5, 180161 (2018);\n"
                    "Codella N. et al. Skin Lesion Analysis Toward Melanoma Detection 2018, arXiv:1902.03368.\n"
                    "No image here comes from those datasets.\n")


def _write_isic2018(meta: pd.DataFrame, out: Path, cfg: SynthConfig, rng: np.random.Generator) -> None:
    """Task 3 ground truth per partition, LICENSE/ATTRIBUTION files, and the training lesion groupings."""
    for part, name in NAMES_2018.items():
        rows = meta[meta["partition"] == part].sort_values("image")
        truth = out / f"ISIC2018_Task3_{name}_GroundTruth"
        write_csv(truth / f"ISIC2018_Task3_{name}_GroundTruth.csv", _one_hot(rows, CLASSES_2018))
        for folder in (truth, out / f"ISIC2018_Task3_{name}_Input"):
            for file, text in (("LICENSE.txt", LICENSE_2018), ("ATTRIBUTION.txt", ATTRIBUTION_2018)):
                write_atomic(folder / file, lambda p, t=text: p.write_text(t, encoding="utf-8"))
    train = meta[meta["partition"] == "train"].sort_values("image")
    # Malignant lesions are all histopathology-confirmed; nevi mostly by follow-up, as in HAM10000.
    confirm_p = {"MEL": [1, 0, 0, 0], "BCC": [1, 0, 0, 0], "AKIEC": [1, 0, 0, 0], "NV": [0.35, 0.55, 0.09, 0.01]}
    u = rng.random(int(meta["patient"].max()) + 1)
    confirm = [CONFIRM_TYPES[int(np.searchsorted(np.cumsum(confirm_p.get(CLASSES_2018[y], [0.55, 0.05, 0.35, 0.05])),
                                                 u[g] * 0.999999))] for g, y in zip(train["patient"], train["label"])]
    write_csv(out / "ISIC2018_Task3_Training_LesionGroupings.csv",
              pd.DataFrame({"image": train["image"], "lesion_id": train["lesion_id"], "diagnosis_confirm_type": confirm}))


def _write_isic2019(meta: pd.DataFrame, out: Path, cfg: SynthConfig, rng: np.random.Generator) -> None:
    """ISIC_2019_Training_GroundTruth.csv (one-hot, UNK always 0) and _Metadata.csv (some blanks)."""
    rows = meta.sort_values("image")
    write_csv(out / "ISIC_2019_Training_GroundTruth.csv", _one_hot(rows, CLASSES_2019))
    torso = np.asarray(TORSO_2019)[rng.choice(3, int(meta["patient"].max()) + 1, p=[0.45, 0.45, 0.10])]
    site = np.where(rows["site"].eq("torso"), torso[rows["patient"]], rows["site"])
    write_csv(out / "ISIC_2019_Training_Metadata.csv", pd.DataFrame({
        "image": rows["image"],
        "age_approx": _with_nans(rng, rows["age"].astype(float), cfg.nan_fraction),
        "anatom_site_general": _with_nans(rng, pd.Series(site, index=rows.index), 3 * cfg.nan_fraction),
        "lesion_id": rows["lesion_id"],
        "sex": _with_nans(rng, rows["sex"], cfg.nan_fraction),
    }))


def _write_nothing(meta: pd.DataFrame, out: Path, cfg: SynthConfig, rng: np.random.Generator) -> None:
    """BUSI has no metadata file: the class is the folder."""


def _busi_allowed(df: pd.DataFrame) -> np.ndarray:
    """A case with a mass is benign or malignant; one without is normal."""
    mass = df["mass"].to_numpy(bool)
    return np.stack([mass, mass, ~mass], axis=1)


@dataclass(frozen=True)
class _Spec:
    """How one preset draws its data and writes its archive layout."""

    classes: tuple[str, ...]  # in the archive's CSV order (the loader's label names)
    mix: tuple[float, ...]
    positive: tuple[str, ...]  # classes whose probabilities sum to p_true
    weights: tuple[dict[str, float], ...]  # label-model weights per class
    groups: Literal["patient", "lesion", "case"]
    group_sizes: Callable[[np.random.Generator, SynthConfig], np.ndarray]
    attributes: Callable[[np.random.Generator, pd.DataFrame, SynthConfig, np.ndarray], pd.DataFrame]
    layout: Callable[[pd.DataFrame, Path, SynthConfig, np.random.Generator], pd.DataFrame]
    write: Callable[[pd.DataFrame, Path, SynthConfig, np.random.Generator], None]
    partitions: tuple[float, ...] = (1.0,)  # image shares of train, val, test
    duplicates: bool = False
    look: Literal["dermoscopy", "ultrasound"] = "dermoscopy"
    allowed: Callable[[pd.DataFrame], np.ndarray] | None = None


def _shares(counts: tuple[int, ...]) -> tuple[float, ...]:
    return tuple(c / sum(counts) for c in counts)


_SKIN = {"group_sizes": _patient_sizes, "attributes": _skin_attributes}
PRESETS: dict[str, _Spec] = {
    "isic2020": _Spec(("benign", "malignant"), (0.9824, 0.0176), ("malignant",), ({}, MEL_W), "patient",
                      layout=_layout_isic2020, write=_write_isic2020, duplicates=True, **_SKIN),
    "isic2017": _Spec(CLASSES_2017, CLASS_MIX_2017, ("melanoma",), ({}, MEL_W, SK_W), "patient",
                      layout=_layout_isic2017, write=_write_isic2017, partitions=_shares((2000, 150, 600)),
                      duplicates=True, **_SKIN),
    "isic2018": _Spec(CLASSES_2018, _shares(COUNTS_2018), ("MEL", "BCC", "AKIEC"),
                      (MEL_W, {}, BCC_W, AK_W, SK_W, DF_W, VASC_W), "lesion", _lesion_sizes, _skin_attributes,
                      _layout_isic2018, _write_isic2018, partitions=_shares((10015, 193, 1512))),
    "isic2019": _Spec(CLASSES_2019, _shares(COUNTS_2019), ("MEL",),
                      (MEL_W, {}, BCC_W, AK_W, SK_W, DF_W, VASC_W, SCC_W, {}), "lesion", _lesion_sizes,
                      _skin_attributes, _layout_isic2019, _write_isic2019),
    "busi": _Spec(CLASSES_BUSI, _shares(COUNTS_BUSI), ("malignant",), ({}, BUSI_MALIGNANT_W, {}), "case",
                  _case_sizes, _ultrasound_attributes, _layout_busi, _write_nothing, look="ultrasound",
                  allowed=_busi_allowed),
}
LATENTS = {"dermoscopy": ("age", "sex", "site", "skin_tone", "hair", *SKIN_ATTRS, "pigment", "patient_effect"),
           "ultrasound": (*US_ATTRS, "mass", "multi")}


# ---------------------------------------------------------------------------------------------
# Entry points


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


def _write_files(meta: pd.DataFrame, spec: _Spec, cfg: SynthConfig, rng: np.random.Generator) -> None:
    """Render every original image in parallel, then write the duplicates from their sources."""
    originals = meta[meta["dup_of"] < 0]
    attrs = originals[[c for c in LATENTS[spec.look] if c not in ("age", "sex", "site")]].to_dict("records")
    jobs = [_Job(a, spec.look, (cfg.seed, int(i)), cfg.height, cfg.width, path, tuple(masks), sp)
            for a, i, path, masks, sp in zip(attrs, originals.index, originals["path"], originals["masks"],
                                             originals["superpixels"])]
    parallel_map(_write_image, jobs, cfg.workers, f"synth {cfg.preset}", min_items=0)
    for _, row in meta[meta["dup_of"] >= 0].iterrows():
        source = meta.loc[row["dup_of"]]
        _copy_duplicate(source["path"], row["path"], bool(row["reencode"]), rng)
        for src, dst in zip(source["masks"], row["masks"]):
            _copy_duplicate(src, dst, False, rng)


def generate(cfg: SynthConfig, out: str | os.PathLike[str]) -> Path:
    """Write a synthetic dataset in the preset's real layout under `out` and its oracle beside it; return `out`.

    Re-running with the same config reuses finished images (safe to interrupt).
    """
    out = Path(out)
    if cfg.preset not in PRESETS:
        raise ValueError(f"unknown synthetic preset '{cfg.preset}' (known: {', '.join(PRESETS)})")
    if _resume(out, _config_record(cfg)):
        return out
    spec = PRESETS[cfg.preset]
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
