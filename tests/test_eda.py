"""EDA helpers on images with known answers."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from derm_nb.eda import (
    brightness,
    colour_matrix,
    compare_distributions,
    extremes,
    hair_coverage,
    hair_mask,
    image_stats,
    mean_colour,
)


def skin(colour=(200, 160, 140), size=128) -> np.ndarray:
    return np.full((size, size, 3), colour, np.uint8)


def test_mean_colour_and_brightness_of_uniform_image():
    img = skin((200, 100, 50))
    assert mean_colour(img) == pytest.approx([200, 100, 50])
    assert brightness(mean_colour(img)) == pytest.approx(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    assert brightness([255, 255, 255]) == pytest.approx(255)
    assert brightness(np.zeros((4, 3))).tolist() == [0, 0, 0, 0]


def test_half_black_image_has_half_the_brightness():
    img = skin((200, 200, 200))
    img[:, :64] = 0
    assert brightness(mean_colour(img)) == pytest.approx(100)


def test_hair_is_found_on_a_drawn_line_not_on_plain_skin_or_a_lesion():
    plain = skin()
    assert hair_coverage(plain) == 0
    lesion = skin()
    cv2.circle(lesion, (64, 64), 30, (90, 60, 40), -1)  # a large dark blob is not hair
    assert hair_coverage(lesion) < 0.005
    hairy = lesion.copy()
    cv2.line(hairy, (0, 10), (127, 120), (30, 25, 20), 2)
    mask = hair_mask(hairy)
    assert hair_coverage(hairy) > 0.01
    ys, xs = np.nonzero(mask)
    # flagged pixels lie on the drawn line y = 10 + 110/127 x (the closing also fills a few
    # pixels in the corners where the line meets the lesion)
    on_line = np.abs(ys - (10 + 110 / 127 * xs)) < 4
    assert on_line.mean() > 0.9
    assert on_line.sum() > 0.8 * 128 * 2


def test_colour_matrix_sorts_dark_to_light_and_pads_white():
    colours = np.array([[250, 250, 250], [10, 10, 10], [120, 120, 120]], float)
    grid = colour_matrix(colours, ncols=2)
    assert grid.shape == (2, 2, 3)
    assert grid[0, 0] == pytest.approx([10 / 255] * 3)
    assert grid[0, 1] == pytest.approx([120 / 255] * 3)
    assert grid[1, 0] == pytest.approx([250 / 255] * 3)
    assert grid[1, 1] == pytest.approx([1, 1, 1])


def test_compare_distributions_detects_a_shift():
    rng = np.random.default_rng(0)
    res = compare_distributions(rng.normal(1, 1, 300), rng.normal(0, 1, 300))
    assert res["p_value"] < 1e-6 and res["p_a_greater"] > 0.65
    same = compare_distributions(rng.normal(0, 1, 300), rng.normal(0, 1, 300))
    assert same["p_value"] > 0.001


def test_image_stats_and_extremes(tmp_path):
    from PIL import Image

    paths = []
    for k, level in enumerate([30, 200, 120]):
        p = tmp_path / f"img{k}.jpg"
        Image.fromarray(skin((level,) * 3, 32)).save(p, quality=100)
        m = np.zeros((32, 32), np.uint8)
        m[:16] = 255
        Image.fromarray(m).save(tmp_path / f"img{k}_mask.png")
        paths.append(p)
    frame = pd.DataFrame({"image_id": ["a", "b", "c"]})
    out = image_stats(frame, paths, workers=1)
    assert out["brightness"].round().tolist() == [30, 200, 120]
    assert out["lesion_area"].tolist() == [0.5, 0.5, 0.5]
    dark, light = extremes(out, "brightness", k=1)
    assert dark["image_id"].tolist() == ["a"] and light["image_id"].tolist() == ["b"]
