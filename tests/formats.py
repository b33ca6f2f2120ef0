"""Tiny datasets in the exact on-disk formats of the real sources (columns, order, names, folders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, seed: int, size: tuple[int, int] = (48, 36), fmt: str = "JPEG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, format=fmt)
    return path


def write_mask(path: Path, box: tuple[int, int, int, int], size: tuple[int, int] = (48, 36)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    m = np.zeros((size[1], size[0]), np.uint8)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = 255
    Image.fromarray(m).save(path)
    return path


def isic2020(root: Path) -> Path:
    """train.csv + jpeg/train/*.jpg, as in the SIIM-ISIC 2020 Kaggle release."""
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
    ]
    (root / "jpeg" / "train").mkdir(parents=True, exist_ok=True)
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    for k, line in enumerate(rows[1:]):
        write_image(root / "jpeg" / "train" / f"{line.split(',')[0]}.jpg", k)
    return root


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
    (root / "ISIC_2019_Training_GroundTruth.csv").parent.mkdir(parents=True, exist_ok=True)
    (root / "ISIC_2019_Training_GroundTruth.csv").write_text("\n".join(truth) + "\n")
    (root / "ISIC_2019_Training_Metadata.csv").write_text("\n".join(meta) + "\n")
    for k, line in enumerate(truth[1:]):
        write_image(root / "ISIC_2019_Training_Input" / f"{line.split(',')[0]}.jpg", 100 + k)
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


def isic2017(root: Path) -> Path:
    """ISIC 2017 part 3 ground truth, training images + metadata, part 1 segmentation masks."""
    truth = [
        "image_id,melanoma,seborrheic_keratosis",
        "ISIC_0000000,0.0,0.0",
        "ISIC_0000001,0.0,0.0",
        "ISIC_0000002,1.0,0.0",
        "ISIC_0000003,0.0,0.0",
        "ISIC_0012090,0.0,1.0",
    ]
    meta = ["image_id,age_approximate,sex", "ISIC_0000000,55,female", "ISIC_0000001,30,female",
            "ISIC_0000002,60,female", "ISIC_0000003,unknown,unknown", "ISIC_0012090,75,male"]
    data = root / "ISIC-2017_Training_Data"
    data.mkdir(parents=True, exist_ok=True)
    (root / "ISIC-2017_Training_Part3_GroundTruth.csv").write_text("\n".join(truth) + "\n")
    (data / "ISIC-2017_Training_Data_metadata.csv").write_text("\n".join(meta) + "\n")
    for k, line in enumerate(truth[1:]):
        image_id = line.split(",")[0]
        write_image(data / f"{image_id}.jpg", 300 + k)
        write_image(data / f"{image_id}_superpixels.png", 400 + k, fmt="PNG")  # shipped, never a sample
        write_mask(root / "ISIC-2017_Training_Part1_GroundTruth" / f"{image_id}_segmentation.png", (12, 9, 36, 27))
    return root


def busi(root: Path) -> Path:
    """Dataset_BUSI_with_GT/{benign,malignant,normal}/ with '(n)' names and _mask / _mask_1 files."""
    base = root / "Dataset_BUSI_with_GT"
    for cls, n in (("benign", 3), ("malignant", 2), ("normal", 2)):
        for k in range(1, n + 1):
            write_image(base / cls / f"{cls} ({k}).png", hash((cls, k)) % 1000, fmt="PNG")
            box = (0, 0, 0, 0) if cls == "normal" else (4, 4, 20, 16)
            write_mask(base / cls / f"{cls} ({k})_mask.png", box)
    write_mask(base / "benign" / "benign (2)_mask_1.png", (30, 20, 44, 32))  # a second tumour
    return root


FORMATS = {"isic2020": isic2020, "isic2019": isic2019, "ham10000": ham10000, "isic2017": isic2017, "busi": busi}
