"""Tiny datasets in the exact on-disk formats of the real sources (columns, order, names, folders)."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def write_image(path: Path, seed: int, size: tuple[int, int] = (48, 36), fmt: str = "JPEG") -> Path:
    """A random-noise picture of `size` (w, h) from `seed`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, format=fmt)
    return path


def write_mask(path: Path, box: tuple[int, int, int, int], size: tuple[int, int] = (48, 36)) -> Path:
    """A 0/255 mask of `size` with the (x0, y0, x1, y1) box set."""
    path.parent.mkdir(parents=True, exist_ok=True)
    m = np.zeros((size[1], size[0]), np.uint8)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = 255
    Image.fromarray(m).save(path)
    return path


def reencode(source: Path, target: Path, quality: int = 92) -> Path:
    """A re-encoded copy of a JPEG: the same picture, different bytes (as ISIC 2020's listed duplicates are)."""
    with Image.open(source) as im:
        im.convert("RGB").save(target, format="JPEG", quality=quality)
    return target


def write_notices(*folders: Path) -> None:
    """The LICENSE.txt and ATTRIBUTION.txt the ISIC archives ship beside their images and ground truths."""
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "LICENSE.txt").write_text("Creative Commons Attribution-NonCommercial 4.0 International\n")
        (folder / "ATTRIBUTION.txt").write_text("ISIC Archive contributors\n")


def isic2020(root: Path) -> Path:
    """train.csv + jpeg/train/*.jpg (Kaggle) and ISIC_2020_Training_Duplicates.csv listing one re-encoded copy."""
    rows = [
        "image_name,patient_id,sex,age_approx,anatom_site_general_challenge,diagnosis,benign_malignant,target",
        "ISIC_2637011,IP_7279968,male,45.0,head/neck,unknown,benign,0",
        "ISIC_0015719,IP_3075186,female,45.0,upper extremity,unknown,benign,0",
        "ISIC_0052212,IP_2842074,female,50.0,lower extremity,nevus,benign,0",
        "ISIC_0068279,IP_6890425,female,45.0,head/neck,unknown,benign,0",
        "ISIC_0074268,IP_8723313,female,55.0,upper extremity,unknown,benign,0",
        "ISIC_0074311,IP_2950485,female,40.0,lower extremity,unknown,benign,0",
        "ISIC_0074542,IP_4698288,male,25.0,lower extremity,unknown,benign,0",
        "ISIC_0075663,IP_6017204,female,35.0,torso,unknown,benign,0",
        "ISIC_0149568,IP_0962375,female,55.0,upper extremity,melanoma,malignant,1",
        "ISIC_0188432,IP_0962375,female,50.0,upper extremity,melanoma,malignant,1",
        "ISIC_0082348,IP_4698288,male,25.0,lower extremity,unknown,benign,0",  # listed duplicate of ISIC_0074542
    ]
    folder = root / "jpeg" / "train"
    folder.mkdir(parents=True, exist_ok=True)
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    for k, line in enumerate(rows[1:-1]):
        write_image(folder / f"{line.split(',')[0]}.jpg", k)
    reencode(folder / f"{ISIC2020_DUPLICATE[0]}.jpg", folder / f"{ISIC2020_DUPLICATE[1]}.jpg")
    (root / "ISIC_2020_Training_Duplicates.csv").write_text("image_name_1,image_name_2\n" + ",".join(ISIC2020_DUPLICATE) + "\n")
    return root


ISIC2020_DUPLICATE = ("ISIC_0074542", "ISIC_0082348")  # (kept, listed second: excluded)


def isic2019(root: Path) -> Path:
    """ISIC_2019_Training_GroundTruth.csv (one-hot floats), _Metadata.csv and ISIC_2019_Training_Input/."""
    truth = [
        "image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK",
        "ISIC_0000000,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0",
        "ISIC_0000002,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0",
        "ISIC_0000004,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0",
        "ISIC_0010491,0.0,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0",
        "ISIC_0024306,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0",
        "ISIC_0024307,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0",
    ]
    meta = [
        "image,age_approx,anatom_site_general,lesion_id,sex",
        "ISIC_0000000,55.0,anterior torso,,female",
        "ISIC_0000002,60.0,upper extremity,,female",
        "ISIC_0000004,80.0,posterior torso,,male",
        "ISIC_0010491,,lower extremity,BCN_0000019,male",
        "ISIC_0024306,45.0,,HAM_0000550,male",
        "ISIC_0024307,50.0,lower extremity,HAM_0000550,male",
    ]
    write_notices(root / "ISIC_2019_Training_Input")
    (root / "ISIC_2019_Training_GroundTruth.csv").write_text("\n".join(truth) + "\n")
    (root / "ISIC_2019_Training_Metadata.csv").write_text("\n".join(meta) + "\n")
    for k, line in enumerate(truth[1:]):
        write_image(root / "ISIC_2019_Training_Input" / f"{line.split(',')[0]}.jpg", 100 + k)
    return root


ISIC2018_HEADER = "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC"
ISIC2018_ROWS = {  # split -> [(image, class)]; training ids and lesions as in the HAM10000 fixture
    "Training": [("ISIC_0024306", "NV"), ("ISIC_0024307", "NV"), ("ISIC_0024310", "MEL"), ("ISIC_0024318", "DF"),
                 ("ISIC_0024370", "VASC"), ("ISIC_0025030", "BKL"), ("ISIC_0025276", "AKIEC"),
                 ("ISIC_0025837", "BCC"), ("ISIC_0027419", "BKL"), ("ISIC_0029176", "MEL"), ("ISIC_0031633", "NV")],
    "Validation": [("ISIC_0034321", "NV"), ("ISIC_0034322", "NV"), ("ISIC_0034323", "BCC"), ("ISIC_0034324", "MEL")],
    "Test": [("ISIC_0034524", "NV"), ("ISIC_0034525", "NV"), ("ISIC_0034526", "BKL"), ("ISIC_0034527", "MEL"),
             ("ISIC_0034528", "AKIEC")],
}
# ISIC_0031633 is left out of the groupings on purpose (its group falls back to the image id).
ISIC2018_LESIONS = {
    "ISIC_0024306": "HAM_0000550", "ISIC_0024307": "HAM_0000550", "ISIC_0024310": "HAM_0002468",
    "ISIC_0024318": "HAM_0001026", "ISIC_0024370": "HAM_0002162", "ISIC_0025030": "HAM_0000118",
    "ISIC_0025276": "HAM_0001396", "ISIC_0025837": "HAM_0005132", "ISIC_0027419": "HAM_0000118",
    "ISIC_0029176": "HAM_0002761",
}


def onehot_line(image: str, label: str, header: str = ISIC2018_HEADER) -> str:
    """One ground-truth row of one-hot floats ('1.0' under `label`), in `header`'s column order."""
    return ",".join([image, *("1.0" if c == label else "0.0" for c in header.split(",")[1:])])


def isic2018(root: Path) -> Path:
    """ISIC 2018 Task 3: Training / Validation / Test _Input/ and _GroundTruth/ folders (with LICENSE.txt and
    ATTRIBUTION.txt), LesionGroupings.csv, and HAM10000's segmentations for the training images."""
    seed = 500
    for part, rows in ISIC2018_ROWS.items():
        name = f"ISIC2018_Task3_{part}"
        images, truth = root / f"{name}_Input", root / f"{name}_GroundTruth"
        write_notices(images, truth)
        lines = [ISIC2018_HEADER, *(onehot_line(i, c) for i, c in rows)]
        (truth / f"{name}_GroundTruth.csv").write_text("\n".join(lines) + "\n")
        for image, _ in rows:
            write_image(images / f"{image}.jpg", seed)
            seed += 1
    groups = ["image,lesion_id,diagnosis_confirm_type"]
    groups += [f"{i},{lesion},{'histopathology' if c != 'NV' else 'serial imaging showing no change'}"
               for i, c in ISIC2018_ROWS["Training"] if (lesion := ISIC2018_LESIONS.get(i))]
    (root / "ISIC2018_Task3_Training_LesionGroupings.csv").write_text("\n".join(groups) + "\n")
    for image, _ in ISIC2018_ROWS["Training"]:
        write_mask(root / "HAM10000_segmentations_lesion_tschandl" / f"{image}_segmentation.png", (10, 8, 38, 28))
    return root


def ham10000(root: Path) -> Path:
    """HAM10000_metadata.csv with images spread over HAM10000_images_part_1/ and _part_2/."""
    rows = [
        "lesion_id,image_id,dx,dx_type,age,sex,localization",
        "HAM_0000118,ISIC_0027419,bkl,histo,80.0,male,scalp",
        "HAM_0000118,ISIC_0025030,bkl,histo,80.0,male,scalp",
        "HAM_0002730,ISIC_0026769,bkl,histo,80.0,male,scalp",
        "HAM_0001466,ISIC_0031633,nv,follow_up,75.0,male,ear",
        "HAM_0002761,ISIC_0029176,mel,histo,60.0,female,face",
        "HAM_0005132,ISIC_0025837,bcc,histo,70.0,female,back",
        "HAM_0001396,ISIC_0025276,akiec,histo,,unknown,unknown",
    ]
    (root).mkdir(parents=True, exist_ok=True)
    (root / "HAM10000_metadata.csv").write_text("\n".join(rows) + "\n")
    for k, line in enumerate(rows[1:]):
        part = 1 if k % 2 == 0 else 2
        write_image(root / f"HAM10000_images_part_{part}" / f"{line.split(',')[1]}.jpg", 200 + k)
    return root


ISIC2017_TRUTH = {  # partition -> part 3 ground truth rows (melanoma, seborrheic_keratosis; both 0 = nevus)
    "Training": ["ISIC_0000000,0.0,0.0", "ISIC_0000001,0.0,0.0", "ISIC_0000002,1.0,0.0", "ISIC_0000003,0.0,0.0",
                 "ISIC_0012090,0.0,1.0"],
    "Validation": ["ISIC_0001769,0.0,0.0", "ISIC_0001852,0.0,0.0", "ISIC_0001871,1.0,0.0", "ISIC_0003462,0.0,1.0"],
    "Test_v2": ["ISIC_0012086,0.0,1.0", "ISIC_0012092,0.0,0.0", "ISIC_0012095,1.0,0.0", "ISIC_0012134,0.0,0.0",
                "ISIC_0012136,0.0,0.0"],
}
ISIC2017_META = {
    "Training": ["ISIC_0000000,55,female", "ISIC_0000001,30,female", "ISIC_0000002,60,female",
                 "ISIC_0000003,unknown,unknown", "ISIC_0012090,75,male"],
    "Validation": ["ISIC_0001769,15,male", "ISIC_0001852,25,female", "ISIC_0001871,70,male", "ISIC_0003462,65,female"],
    "Test_v2": ["ISIC_0012086,70,male", "ISIC_0012092,unknown,female", "ISIC_0012095,55,male", "ISIC_0012134,35,male",
                "ISIC_0012136,40,unknown"],
}


def isic2017(root: Path, partitions: bool = True) -> Path:
    """ISIC 2017 part 3 ground truth, data folder (images, *_superpixels.png, metadata) and part 1 masks for the
    Training, Validation and Test_v2 partitions (Training only when not `partitions`)."""
    seed = 300
    for part in ISIC2017_TRUTH if partitions else ["Training"]:
        data = root / f"ISIC-2017_{part}_Data"
        data.mkdir(parents=True, exist_ok=True)
        (root / f"ISIC-2017_{part}_Part3_GroundTruth.csv").write_text(
            "\n".join(["image_id,melanoma,seborrheic_keratosis", *ISIC2017_TRUTH[part]]) + "\n")
        (data / f"ISIC-2017_{part}_Data_metadata.csv").write_text(
            "\n".join(["image_id,age_approximate,sex", *ISIC2017_META[part]]) + "\n")
        for line in ISIC2017_TRUTH[part]:
            image_id = line.split(",")[0]
            write_image(data / f"{image_id}.jpg", seed)
            write_image(data / f"{image_id}_superpixels.png", seed + 100, fmt="PNG")  # shipped, never a sample
            write_mask(root / f"ISIC-2017_{part}_Part1_GroundTruth" / f"{image_id}_segmentation.png", (12, 9, 36, 27))
            seed += 1
    return root


def busi(root: Path) -> Path:
    """Dataset_BUSI_with_GT/{benign,malignant,normal}/ with '(n)' names and _mask / _mask_1 files."""
    base = root / "Dataset_BUSI_with_GT"
    for c, (cls, n) in enumerate((("benign", 3), ("malignant", 2), ("normal", 2))):
        for k in range(1, n + 1):
            write_image(base / cls / f"{cls} ({k}).png", 600 + 10 * c + k, fmt="PNG")
            box = (0, 0, 0, 0) if cls == "normal" else (4, 4, 20, 16)
            write_mask(base / cls / f"{cls} ({k})_mask.png", box)
    write_mask(base / "benign" / "benign (2)_mask_1.png", (30, 20, 44, 32))  # a second tumour
    return root


FORMATS: dict[str, Callable[[Path], Path]] = {
    "isic2020": isic2020, "isic2019": isic2019, "isic2018": isic2018, "ham10000": ham10000,
    "isic2017": isic2017, "busi": busi,
}


# --- populate: larger datasets in the same layouts, for the end-to-end smoke test of the book -------------------

FLAT_COLOURS = [(196, 142, 120), (70, 52, 44), (232, 222, 210)]
# One flat picture per source: perceptual hashes ignore colour, so any two flat pictures are near-duplicates
# (distance 0) and the quality check would exclude all but one.
FLATS = 1


def _picture(rng: np.random.Generator, flat: tuple[int, int, int] | None = None) -> Image.Image:
    """A 48x36..96x72 picture: white noise or a smooth random field (or one flat colour), from its own seed."""
    w = int(rng.integers(48, 97))
    h = int(np.clip(round(w * rng.uniform(0.65, 0.85)), 36, 72))
    if flat is not None:
        return Image.new("RGB", (w, h), flat)
    if rng.random() < 0.5:
        return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    grid = rng.integers(0, 256, (int(rng.integers(4, 9)), int(rng.integers(4, 9)), 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(grid).resize((w, h), Image.BICUBIC), dtype=np.int16)
    return Image.fromarray(np.clip(smooth + rng.integers(-12, 13, smooth.shape), 0, 255).astype(np.uint8))


def _write_pictures(paths: list[Path], rng: np.random.Generator, plain: list[bool], flats: int = 0,
                    exif: bool = False, grey: bool = False) -> list[tuple[int, int]]:
    """Write one picture per path; the first `flats` rows marked `plain` are flat, the next one (if `exif`) carries
    EXIF Orientation 6. Returns the (width, height) of each."""
    special = [i for i, p in enumerate(plain) if p]
    flat_rows = dict(zip(special[:flats], FLAT_COLOURS))
    exif_row = special[flats] if exif and len(special) > flats else -1
    sizes = []
    for i, path in enumerate(paths):
        picture = _picture(np.random.default_rng(rng.integers(2**63)), flat_rows.get(i))
        picture = picture.convert("L").convert("RGB") if grey else picture
        path.parent.mkdir(parents=True, exist_ok=True)
        if i == exif_row:
            tags = Image.Exif()
            tags[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
            picture.save(path, format="JPEG", exif=tags.tobytes())
        else:
            picture.save(path, format="PNG" if path.suffix == ".png" else "JPEG")
        sizes.append(picture.size)
    return sizes


def _random_mask(path: Path, size: tuple[int, int], rng: np.random.Generator, empty: bool = False) -> None:
    """A 0/255 PNG of `size`: one random ellipse (nothing when `empty`)."""
    w, h = size
    yy, xx = np.mgrid[:h, :w]
    cx, cy, rx, ry = rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.65) * h, rng.uniform(0.15, 0.3) * w, \
        rng.uniform(0.15, 0.3) * h
    inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1 if not empty else np.zeros((h, w), bool)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((inside * 255).astype(np.uint8)).save(path)


def _labels(m: int, positives: list[str], negatives: list[str], rng: np.random.Generator,
            share: float = 0.25) -> list[str]:
    """`m` shuffled labels: ceil(share * m) (at least one) cycle through `positives`, the rest through `negatives`."""
    n_pos = min(m - 1, max(1, int(np.ceil(share * m))))
    labels = [positives[k % len(positives)] for k in range(n_pos)]
    labels += [negatives[k % len(negatives)] for k in range(m - n_pos)]
    return [labels[i] for i in rng.permutation(m)]


def _ids(rng: np.random.Generator, m: int, low: int, high: int, prefix: str = "ISIC_") -> list[str]:
    """`m` distinct sorted archive-style ids, e.g. ISIC_0024306, from the range [low, high)."""
    return [f"{prefix}{low + k:07d}" for k in sorted(rng.choice(high - low, m, replace=False))]


def _groups(labels: list[str], rng: np.random.Generator, prefix: str, largest: int) -> list[str]:
    """A group id per row: rows with the same label share ids in runs of 1..`largest` (lesions, patients)."""
    numbers = _ids(rng, len(labels), 1, 10**7, prefix)
    out, k = [""] * len(labels), 0
    for label in sorted(set(labels)):
        rows = [i for i, x in enumerate(labels) if x == label]
        while rows:
            size = int(rng.integers(1, largest + 1))
            for i in rows[:size]:
                out[i] = numbers[k]
            rows, k = rows[size:], k + 1
    return out


def _partition_sizes(n: int) -> dict[str, int]:
    return {"train": n, "val": max(2, round(n / 8)), "test": max(2, round(n / 4))}


def _people(groups: list[str], rng: np.random.Generator, unknown: object = np.nan) -> tuple[list, list]:
    """(sex, age) per row, constant within a group; a few missing, as `unknown`."""
    people = {}
    for g in sorted(set(groups)):
        sex = rng.choice(["male", "female"]) if rng.random() > 0.05 else unknown
        age = float(5 * rng.integers(4, 18)) if rng.random() > 0.05 else unknown
        people[g] = (sex, age)
    return [people[g][0] for g in groups], [people[g][1] for g in groups]


def _choices(rng: np.random.Generator, options: list[str], m: int, missing: float = 0.0) -> list[object]:
    return [rng.choice(options) if rng.random() >= missing else np.nan for _ in range(m)]


def _populate_isic2020(root: Path, n: int, rng: np.random.Generator) -> None:
    labels = _labels(n, ["malignant"], ["benign"], rng, share=0.2)
    ids = _ids(rng, n + 1, 10000, 100000)
    copy_id = ids.pop(int(rng.integers(n + 1)))
    patients = _groups(["patient"] * n, rng, "IP_", 6)
    patients = [patients[i] for i in rng.permutation(n)]
    sex, age = _people(patients, rng)
    benign_dx = ["unknown"] * 6 + ["nevus", "seborrheic keratosis", "lentigo NOS", "lichenoid keratosis"]
    frame = pd.DataFrame({
        "image_name": ids, "patient_id": patients, "sex": sex, "age_approx": age,
        "anatom_site_general_challenge": _choices(rng, ["torso", "lower extremity", "upper extremity", "head/neck",
                                                        "palms/soles", "oral/genital"], n, missing=0.03),
        "diagnosis": ["melanoma" if y == "malignant" else rng.choice(benign_dx) for y in labels],
        "benign_malignant": labels, "target": [int(y == "malignant") for y in labels],
    })
    folder = root / "jpeg" / "train"
    _write_pictures([folder / f"{i}.jpg" for i in ids], rng, [y == "benign" for y in labels], flats=FLATS, exif=True)
    original = max(i for i, y in enumerate(labels) if y == "benign")  # a noise / smooth picture, never flat
    reencode(folder / f"{ids[original]}.jpg", folder / f"{copy_id}.jpg")
    frame = pd.concat([frame, frame.iloc[[original]].assign(image_name=copy_id)]).sort_values("image_name")
    frame.to_csv(root / "train.csv", index=False)
    (root / "ISIC_2020_Training_Duplicates.csv").write_text(f"image_name_1,image_name_2\n{ids[original]},{copy_id}\n")


def _populate_isic2019(root: Path, n: int, rng: np.random.Generator) -> None:
    labels = _labels(n, ["MEL"], ["NV", "BCC", "NV", "AK", "BKL", "NV", "DF", "VASC", "NV", "SCC"], rng, share=0.2)
    ids = _ids(rng, n, 0, 73255)
    lesions = _groups(labels, rng, "HAM_", 3)
    kind = {g: rng.choice(["HAM_", "HAM_", "BCN_", ""]) for g in sorted(set(lesions))}  # '': no lesion id
    lesions = [kind[g] + g[4:] if kind[g] else "" for g in lesions]
    sex, age = _people([g or i for g, i in zip(lesions, ids)], rng)
    header = "image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK"  # UNK: no training image has it
    (root / "ISIC_2019_Training_GroundTruth.csv").write_text(
        "\n".join([header, *(onehot_line(i, y, header) for i, y in zip(ids, labels))]) + "\n")
    pd.DataFrame({"image": ids, "age_approx": age, "lesion_id": lesions, "sex": sex,
                  "anatom_site_general": _choices(rng, ["anterior torso", "posterior torso", "lower extremity",
                                                        "upper extremity", "head/neck", "lateral torso"], n, 0.05)},
                 columns=["image", "age_approx", "anatom_site_general", "lesion_id", "sex"]
                 ).to_csv(root / "ISIC_2019_Training_Metadata.csv", index=False)
    folder = root / "ISIC_2019_Training_Input"
    write_notices(folder)
    _write_pictures([folder / f"{i}.jpg" for i in ids], rng, [y == "NV" for y in labels], flats=FLATS)


def _populate_ham10000(root: Path, n: int, rng: np.random.Generator) -> None:
    labels = _labels(n, ["mel"], ["nv", "nv", "bkl", "nv", "bcc", "akiec", "nv", "vasc", "df"], rng, share=0.2)
    ids = _ids(rng, n, 24306, 34321)
    lesions = _groups(labels, rng, "HAM_", 3)
    sex, age = _people(lesions, rng, unknown="unknown")
    where = {g: rng.choice(["back", "lower extremity", "trunk", "upper extremity", "abdomen", "face", "chest",
                            "foot", "neck", "scalp", "unknown"]) for g in sorted(set(lesions))}
    dx_type = {"nv": ["follow_up", "histo", "consensus"], "bkl": ["histo", "consensus", "confocal"],
               "df": ["histo", "consensus"], "vasc": ["histo", "consensus"]}
    pd.DataFrame({"lesion_id": lesions, "image_id": ids, "dx": labels,
                  "dx_type": [rng.choice(dx_type.get(y, ["histo"])) for y in labels],
                  "age": [np.nan if a == "unknown" else a for a in age], "sex": sex,
                  "localization": [where[g] for g in lesions]}).to_csv(root / "HAM10000_metadata.csv", index=False)
    paths = [root / f"HAM10000_images_part_{1 if i < 'ISIC_0029306' else 2}" / f"{i}.jpg" for i in ids]
    _write_pictures(paths, rng, [y == "nv" for y in labels], flats=FLATS)


def _populate_isic2018(root: Path, n: int, rng: np.random.Generator) -> None:
    ranges = {"Training": (24306, 34321), "Validation": (34321, 34514), "Test": (34524, 36065)}
    for (part, (low, high)), m in zip(ranges.items(), _partition_sizes(n).values()):
        name = f"ISIC2018_Task3_{part}"
        labels = _labels(m, ["MEL", "BCC", "AKIEC"], ["NV", "BKL", "NV", "DF", "NV", "VASC", "NV"], rng)
        ids = _ids(rng, m, low, high)
        images, truth = root / f"{name}_Input", root / f"{name}_GroundTruth"
        write_notices(images, truth)
        (truth / f"{name}_GroundTruth.csv").write_text(
            "\n".join([ISIC2018_HEADER, *(onehot_line(i, y) for i, y in zip(ids, labels))]) + "\n")
        training = part == "Training"
        _write_pictures([images / f"{i}.jpg" for i in ids], rng, [y == "NV" for y in labels],
                        flats=FLATS if training else 0, exif=training)
        if training:
            lesions = _groups(labels, rng, "HAM_", 3)
            confirm = ["histopathology" if y != "NV" else rng.choice(["serial imaging showing no change",
                       "single image expert consensus", "histopathology"]) for y in labels]
            pd.DataFrame({"image": ids, "lesion_id": lesions, "diagnosis_confirm_type": confirm}).to_csv(
                root / f"{name}_LesionGroupings.csv", index=False)


def _populate_isic2017(root: Path, n: int, rng: np.random.Generator) -> None:
    sizes = dict(zip(["Training", "Validation", "Test_v2"], _partition_sizes(n).values()))
    pool = list(rng.permutation(_ids(rng, sum(sizes.values()), 0, 16000)))
    for part, m in sizes.items():
        ids, pool = sorted(pool[:m]), pool[m:]
        labels = _labels(m, ["melanoma"], ["nevus", "seborrheic_keratosis", "nevus"], rng)
        data = root / f"ISIC-2017_{part}_Data"
        data.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"image_id": ids, "melanoma": [float(y == "melanoma") for y in labels],
                      "seborrheic_keratosis": [float(y == "seborrheic_keratosis") for y in labels]}).to_csv(
            root / f"ISIC-2017_{part}_Part3_GroundTruth.csv", index=False)
        sex, age = _people(ids, rng, unknown="unknown")
        pd.DataFrame({"image_id": ids, "age_approximate": [a if a == "unknown" else int(a) for a in age], "sex": sex}
                     ).to_csv(data / f"ISIC-2017_{part}_Data_metadata.csv", index=False)
        sizes_px = _write_pictures([data / f"{i}.jpg" for i in ids], rng, [y == "nevus" for y in labels],
                                   flats=FLATS if part == "Training" else 0)
        for image_id, size in zip(ids, sizes_px):
            superpixels = rng.integers(0, 4, (size[1], size[0], 3), dtype=np.uint8)  # shipped, never a sample
            Image.fromarray(superpixels).save(data / f"{image_id}_superpixels.png")
            _random_mask(root / f"ISIC-2017_{part}_Part1_GroundTruth" / f"{image_id}_segmentation.png", size, rng)


def _populate_busi(root: Path, n: int, rng: np.random.Generator) -> None:
    base = root / "Dataset_BUSI_with_GT"
    counts = {"benign": n // 2, "malignant": n // 4, "normal": n - n // 2 - n // 4}
    for cls, m in counts.items():
        paths = [base / cls / f"{cls} ({k})" for k in range(1, m + 1)]
        sizes = _write_pictures([p.with_name(p.name + ".png") for p in paths], rng, [cls == "benign"] * m,
                                flats=FLATS if cls == "benign" else 0, grey=True)
        for path, size in zip(paths, sizes):
            _random_mask(path.with_name(path.name + "_mask.png"), size, rng, empty=cls == "normal")
        if cls == "benign":
            _random_mask(paths[-1].with_name(paths[-1].name + "_mask_1.png"), sizes[-1], rng)  # a second tumour


POPULATE: dict[str, Callable[[Path, int, np.random.Generator], None]] = {
    "isic2020": _populate_isic2020, "isic2019": _populate_isic2019, "isic2018": _populate_isic2018,
    "ham10000": _populate_ham10000, "isic2017": _populate_isic2017, "busi": _populate_busi,
}


def populate(source: str, root: Path, n: int, seed: int = 0) -> Path:
    """Write about `n` training images of `source` under `root` in the archive's exact layout; returns `root`.

    isic2017 / isic2018 add ~n/8 validation and ~n/4 test images; busi splits n over its three class folders;
    isic2020 writes n + 1 rows, one a re-encoded copy listed in ISIC_2020_Training_Duplicates.csv (so n load).
    Every class is present (n >= 16; ISIC 2019's UNK never is, as in the archive) and every partition holds both
    target classes with >= 12 % positives. Pictures are noise or smooth random fields of 48x36..96x72 px, each from
    its own seed, plus FLATS flat ones per source and (isic2020, isic2018) one JPEG with EXIF Orientation 6; masks
    only where the archive has them (isic2017, busi). Deterministic for a given seed.
    """
    if source not in POPULATE:
        raise KeyError(f"unknown source {source!r} (known: {', '.join(POPULATE)})")
    if n < 16:
        raise ValueError(f"populate needs n >= 16 for every class to be present, got {n}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    POPULATE[source](root, n, np.random.default_rng([seed, zlib.crc32(source.encode())]))
    return root
