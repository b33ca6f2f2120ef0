"""The synthetic generator's parts: the label model, group and latent samplers, the renderers and file
helpers that an archive's preset (`SynthPreset`, in its `data/archives/<name>.py`) is built from.

Labels come from a known model of latent attributes (the lesion's asymmetry, border, colour
variegation, diameter, waxiness, vessels, scale, fibrosis; for ultrasound the mass's shape,
margin, orientation and shadowing) plus age, sex x site and a per-patient effect: a softmax
whose intercepts are fitted to the source's class mix. Images are drawn from those attributes
only, never from the label, so every image's true class probabilities are the best any model
can reach. `data/synthetic.py` runs a preset (`generate`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import cv2
import numpy as np
import pandas as pd
from scipy.special import softmax

from derm_nb.artifacts import write_atomic

PARTITIONS = ("train", "val", "test")
SITES = ["torso", "lower extremity", "upper extremity", "head/neck", "palms/soles", "oral/genital"]
SITE_P = [0.52, 0.26, 0.15, 0.055, 0.011, 0.004]
SKIN_ATTRS = ("asymmetry", "border", "variegation", "diameter", "waxiness", "vascular", "scale", "fibrosis",
              "arborizing")
US_ATTRS = ("irregularity", "margin", "orientation", "shadowing", "echo", "size")


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines a synthetic dataset; same config, same bytes.

    `n_patients` counts patients (isic2020, isic2017), lesions (isic2018, isic2019) or cases (busi).
    """

    preset: str = "isic2020"  # a registered source with a synthetic preset
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
# The dermoscopy label model per ISIC class code (nevus and unknown: the reference class, weight 0).
SKIN_WEIGHTS = {"MEL": MEL_W, "NV": {}, "BCC": BCC_W, "AK": AK_W, "AKIEC": AK_W, "BKL": SK_W, "DF": DF_W,
                "VASC": VASC_W, "SCC": SCC_W, "UNK": {}}


def _standardise(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-9)


def features(df: pd.DataFrame) -> dict[str, np.ndarray]:
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


def patient_sizes(rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """Images per patient: log-normal, 1 to `max_images_per_patient` (as in ISIC 2020)."""
    raw = rng.lognormal(np.log(cfg.mean_images_per_patient), 1.0, cfg.n_patients).astype(int)
    return np.clip(raw, 1, cfg.max_images_per_patient)


def lesion_sizes(rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """Images per lesion: 1 to 6, mean 1.34 (HAM10000: 10015 images of 7470 lesions)."""
    return np.minimum(rng.geometric(1 / 1.34, cfg.n_patients), 6)


def case_sizes(rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """One image per case (BUSI)."""
    return np.ones(cfg.n_patients, int)


def skin_attributes(rng: np.random.Generator, df: pd.DataFrame, cfg: SynthConfig, mix: np.ndarray) -> pd.DataFrame:
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


def groups_frame(rng: np.random.Generator, sizes: np.ndarray) -> pd.DataFrame:
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


def assign_partitions(sizes: np.ndarray, shares: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
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


class ImageJob(NamedTuple):
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


def write_image(job: ImageJob) -> None:
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


def copy_duplicate(source: str, target: str, reencode: bool, rng: np.random.Generator) -> None:
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


def random_ids(rng: np.random.Generator, n: int, prefix: str, digits: int) -> list[str]:
    numbers = rng.choice(10**digits, size=n, replace=False)
    return [f"{prefix}{k:0{digits}d}" for k in numbers]


def sequential_ids(meta: pd.DataFrame, start: int) -> list[str]:
    """ISIC_xxxxxxx numbered from `start` in partition order (train, val, test), duplicates last."""
    rank = meta["partition"].map({p: k for k, p in enumerate(PARTITIONS)}) + 3 * (meta["dup_of"] >= 0)
    numbers = np.empty(len(meta), int)
    numbers[np.argsort(rank.to_numpy(), kind="stable")] = np.arange(start, start + len(meta))
    return [f"ISIC_{k:07d}" for k in numbers]


def image_files(meta: pd.DataFrame, images: dict[str, Path], masks: dict[str, Path], suffix: str = ".jpg") -> pd.DataFrame:
    """Image path per row from its partition's folder; a `<id>_segmentation.png` where `masks` has the partition."""
    meta["path"] = [str(images[p] / f"{i}{suffix}") for p, i in zip(meta["partition"], meta["image"])]
    meta["masks"] = [(str(masks[p] / f"{i}_segmentation.png"),) if p in masks else ()
                     for p, i in zip(meta["partition"], meta["image"])]
    meta["superpixels"] = ""
    meta["image_id"] = meta["image"]
    return meta


def with_nans(rng: np.random.Generator, values: pd.Series, fraction: float) -> pd.Series:
    values = values.astype(object).copy()
    values[rng.random(len(values)) < fraction] = np.nan
    return values


def one_hot(rows: pd.DataFrame, classes: tuple[str, ...]) -> pd.DataFrame:
    """`image` plus one float 0.0/1.0 column per class, in the archive's class order."""
    onehot = pd.DataFrame(np.eye(len(classes))[rows["label"].to_numpy()], columns=list(classes), index=rows.index)
    return pd.concat([rows[["image"]], onehot], axis=1)


@dataclass(frozen=True)
class SynthPreset:
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
    duplicates: bool = False  # copies of some training images (byte-identical)
    reencoded_duplicates: bool = False  # `reencoded_duplicate_share` of those copies resized and re-encoded
    mix_from_prevalence: bool = False  # a two-class mix from `SynthConfig.prevalence` (positive share)
    look: Literal["dermoscopy", "ultrasound"] = "dermoscopy"
    allowed: Callable[[pd.DataFrame], np.ndarray] | None = None


def shares(counts: tuple[int, ...]) -> tuple[float, ...]:
    """Counts as shares of their sum (a class mix or partition shares from an archive's counts)."""
    return tuple(c / sum(counts) for c in counts)


LATENTS = {"dermoscopy": ("age", "sex", "site", "skin_tone", "hair", *SKIN_ATTRS, "pigment", "patient_effect"),
           "ultrasound": (*US_ATTRS, "mass", "multi")}
