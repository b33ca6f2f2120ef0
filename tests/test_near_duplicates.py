"""Near-duplicate images: resized and re-encoded copies found, distinct look-alike lesions not, one copy kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageOps

from derm_nb.data import near_duplicates as nd
from derm_nb.data.cache import build_cache, center_crop_square, load_images, naive_cache
from derm_nb.data.errors import LeakageError
from derm_nb.data.quality import QualityReport
from derm_nb.data.sources import check_images, inspect_image
from derm_nb.data.synthetic import SynthConfig, generate


@pytest.fixture(scope="module")
def lesions(tmp_path_factory) -> list[Path]:
    """About 40 distinct synthetic dermoscopy images (a brown blob on skin, all alike), 320x240 JPEG."""
    out = generate(SynthConfig(preset="isic2020", n_patients=4, seed=1, height=240, width=320, duplicate_fraction=0.0,
                               workers=1), tmp_path_factory.mktemp("synth") / "isic2020")
    files = sorted(p for p in out.rglob("*.jpg"))
    assert len(files) >= 30
    return files


def hash_of(path: Path) -> str:
    digest, error, size, image_hash = inspect_image(str(path))
    assert error is None
    return image_hash


def copy(source: Path, target: Path, scale: float | tuple[int, int] = 1.0, **save) -> Path:
    with Image.open(source) as im:
        size = scale if isinstance(scale, tuple) else (round(im.width * scale), round(im.height * scale))
        im.convert("RGB").resize(size, Image.BICUBIC).save(target, **save)
    return target


def pairs_of(paths: list[Path], **kwargs) -> set[tuple[str, str]]:
    pairs = nd.near_duplicate_pairs([p.name for p in paths], [hash_of(p) for p in paths], **kwargs)
    return set(zip(pairs["image_a"], pairs["image_b"]))


def test_resized_copies_are_found(lesions, tmp_path):
    original, other = lesions[0], lesions[1]
    copies = [copy(original, tmp_path / "half.jpg", 0.5, quality=90), copy(original, tmp_path / "big.jpg", 1.5, quality=90),
              copy(original, tmp_path / "square.jpg", (240, 240), quality=90)]
    found = pairs_of([original, other, *copies])
    for c in copies:
        assert (original.name, c.name) in found
    assert not any(other.name in pair for pair in found)


def test_reencoded_copies_are_found(lesions, tmp_path):
    original = lesions[2]
    q70 = copy(original, tmp_path / "q70.jpg", quality=70)
    png = copy(original, tmp_path / "lossless.png")
    png_to_jpeg = copy(png, tmp_path / "from_png.jpg", quality=80)
    found = pairs_of([original, png, q70, png_to_jpeg])
    assert {(original.name, q70.name), (png.name, png_to_jpeg.name), (original.name, png_to_jpeg.name)} <= found


def test_distinct_lookalike_lesions_are_not_paired(lesions):
    assert pairs_of(lesions) == set()
    # and not narrowly: the closest distinct pair is far beyond the threshold (measured minimum: 54 bits)
    assert pairs_of(lesions, max_distance=nd.MAX_DISTANCE + 12) == set()


def test_block_search_equals_brute_force(monkeypatch):
    rng = np.random.default_rng(0)
    bits = rng.random((300, 512)) < 0.5
    for k in range(0, 60, 2):  # plant copies 0..58 phash bits away (their dhash is equal)
        bits[k + 1] = bits[k]
        bits[k + 1, rng.choice(256, size=k, replace=False)] ^= True
    hashes = [np.packbits(row).tobytes().hex() for row in bits]
    monkeypatch.setattr(nd, "BLOCK_CELLS", 1000)  # many blocks, ragged last one
    pairs = nd.near_duplicate_pairs(list(range(300)), hashes, max_distance=20)
    halves = bits.reshape(300, 2, 256)
    dist = (halves[:, None] != halves[None, :]).sum(axis=-1).max(axis=-1)
    i, j = np.nonzero(np.triu(dist <= 20, 1))
    assert sorted(zip(pairs["image_a"], pairs["image_b"], pairs["distance"])) == sorted(zip(i, j, dist[i, j]))
    assert len(pairs) == 11  # the planted pairs 0..20 bits apart


def test_duplicate_groups_are_connected_components():
    pairs = pd.DataFrame({"image_a": ["a", "b", "x"], "image_b": ["b", "c", "y"], "distance": [3, 4, 5]})
    assert sorted(map(sorted, nd.duplicate_groups(pairs))) == [["a", "b", "c"], ["x", "y"]]


def frame_of(paths: list[Path], labels: list[str], splits: list[str] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame({"image_id": [p.stem for p in paths], "path": [str(p) for p in paths], "label": labels,
                          "mask_path": ""})
    return frame if splits is None else frame.assign(official_split=splits)


def test_check_images_keeps_the_original_and_reports_the_copy(lesions, tmp_path):
    half = copy(lesions[0], tmp_path / "half.jpg", 0.5, quality=75)
    report = QualityReport()
    kept = check_images(frame_of([lesions[0], lesions[1], half], ["nevus", "nevus", "nevus"]), report, workers=1)
    assert kept["image_id"].tolist() == [lesions[0].stem, lesions[1].stem]
    entry = report.frame().set_index("image_id").loc["half"]
    assert (entry["check"], entry["action"]) == ("near-duplicate image", "excluded")
    assert entry["detail"].startswith(f"near-duplicate of {lesions[0].stem} (hash distance ")
    assert report.near_duplicates[["image_a", "image_b"]].values.tolist() == [[lesions[0].stem, "half"]]


def test_check_images_excludes_near_duplicates_with_different_labels(lesions, tmp_path):
    q70 = copy(lesions[0], tmp_path / "q70.jpg", quality=70)
    report = QualityReport()
    kept = check_images(frame_of([lesions[0], q70, lesions[1]], ["nevus", "melanoma", "nevus"]), report, workers=1)
    assert kept["image_id"].tolist() == [lesions[1].stem]
    frame = report.frame()
    assert set(frame["image_id"]) == {lesions[0].stem, "q70"}
    assert frame["detail"].str.startswith("near-duplicate images with different labels").all()


def test_the_official_held_out_copies_are_kept_and_the_training_copy_goes(lesions, tmp_path):
    half, square = copy(lesions[0], tmp_path / "half.jpg", 0.5), copy(lesions[0], tmp_path / "square.jpg", (240, 240))
    same = tmp_path / "same.jpg"
    same.write_bytes(half.read_bytes())
    frame = frame_of([lesions[0], half, square, same], ["nevus"] * 4, ["train", "test", "val", "test"])
    report = QualityReport()
    kept = check_images(frame, report, workers=1)
    assert kept["image_id"].tolist() == ["half", "square", "same"]  # the test partition whole, one val copy
    entries = report.frame().set_index("image_id")
    assert entries.at[lesions[0].stem, "action"] == "excluded"
    assert "official test partition stays whole" in entries.at[lesions[0].stem, "detail"] or \
        "official val partition stays whole" in entries.at[lesions[0].stem, "detail"]
    assert (entries.loc[["half", "same"], "check"] == "duplicate image").all()
    assert (entries.loc[["half", "square", "same"], "action"] == "kept").all()
    pairs = report.near_duplicates.set_index(["image_a", "image_b"])
    assert pairs.at[("half", "same"), "same_bytes"] and pairs.at[("half", "same"), "distance"] == 0
    assert pairs.at[(lesions[0].stem, "half"), "kept"] == "b" and pairs.at[("half", "square"), "kept"] == "both"
    # two held-out copies kept as published do not count as leakage; a training copy beside them would
    nd.assert_no_cross_split_pairs(kept.assign(split=kept["official_split"]), report.near_duplicates)


def test_kept_rows_rules():
    group = pd.DataFrame({"label": ["nevus"] * 4, "official_split": ["train", "val", "val", "train"]}, index=[5, 6, 7, 8])
    assert nd.kept_rows(group) == [6]  # one validation copy; the training copies go
    assert nd.kept_rows(group.assign(label=["nevus", "nevus", "melanoma", "nevus"])) == []  # val copies disagree
    assert nd.kept_rows(group.assign(official_split=["", None, "", ""])) == [5]  # no partitions: the first
    assert nd.kept_rows(group.assign(official_split="", label=["a", "a", "b", "a"])) == []
    tested = group.assign(official_split=["test", "train", "test", "val"], label=["a", "b", "c", "a"])
    assert nd.kept_rows(tested) == [5, 7, 8]  # test as published, even where labels differ


def test_cross_split_pairs_raise():
    manifest = pd.DataFrame({"image_id": ["a", "b", "c", "d"], "split": ["train", "test", "train", None]})
    pairs = pd.DataFrame({"image_a": ["a", "c", "x"], "image_b": ["c", "d", "b"], "distance": [5, 6, 7]})
    nd.assert_no_cross_split_pairs(manifest, pairs)  # same split, a null split, an image not in the manifest
    planted = pd.concat([pairs, pd.DataFrame({"image_a": ["a"], "image_b": ["b"], "distance": [9]})], ignore_index=True)
    with pytest.raises(LeakageError, match=r"a \(split=train\) and b \(split=test\)"):
        nd.assert_no_cross_split_pairs(manifest, planted)


def exif_rotated(path: Path) -> Path:
    """A 48x32 JPEG, black left / white right, tagged Orientation=6: displayed 32x48, black on top."""
    pixels = np.zeros((32, 48, 3), np.uint8)
    pixels[:, 24:] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(path, quality=95, exif=exif)
    return path


def test_exif_orientation_is_applied(tmp_path):
    path = exif_rotated(tmp_path / "rot.jpg")
    assert inspect_image(str(path))[2] == (32, 48)
    mask = Image.new("L", (32, 48))
    mask.paste(255, (0, 0, 32, 24))  # masks are stored as displayed: the top half, where the image is black
    mask.save(tmp_path / "rot_mask.png")
    manifest = pd.DataFrame({"image_id": ["rot"], "path": [str(path)], "mask_path": [str(tmp_path / "rot_mask.png")]})
    with Image.open(path) as im:
        expected = np.asarray(center_crop_square(ImageOps.exif_transpose(im)).resize((16, 16)).convert("RGB"), int)
    build_cache(manifest, tmp_path / "ours", size=16, workers=1)
    naive_cache(manifest, tmp_path / "naive", size=16)
    for folder in ("ours", "naive"):
        image, mask_out = load_images(manifest, tmp_path / folder)[0], load_images(manifest, tmp_path / folder, masks=True)[0]
        assert np.abs(image.astype(int) - expected).mean() < 8
        assert image[:6].mean() < 40 and image[-6:].mean() > 215  # black on top, as displayed
        assert mask_out[:8].all() and not mask_out[8:].any()


def test_an_exif_rotated_copy_is_a_near_duplicate(lesions, tmp_path):
    """A copy stored turned by 90 degrees with Orientation=6 (displayed upright) matches; without the tag it does not."""
    exif = Image.Exif()
    exif[0x0112] = 6
    with Image.open(lesions[3]) as im:
        stored = im.transpose(Image.Transpose.ROTATE_90)
        stored.save(tmp_path / "tagged.jpg", quality=90, exif=exif)
        stored.save(tmp_path / "untagged.jpg", quality=90)
    original = hash_of(lesions[3])
    assert nd.hash_distance(original, hash_of(tmp_path / "tagged.jpg")) <= nd.MAX_DISTANCE
    assert nd.hash_distance(original, hash_of(tmp_path / "untagged.jpg")) > nd.MAX_DISTANCE
