"""Study 004 follows its paper (issue #20): original-resolution bags, end-to-end training, the mean over
seeds, the all-ones initialisation, and a card whose settings the full profile runs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from derm_nb.cards import differences
from derm_nb.params import load_profile
from derm_nb.studies import paper_settings
from derm_nb.studies.study004 import CARD, block_width, workload
from derm_nb.studies.study004.end_to_end import EndToEndMIL, PixelBags, flip_and_turn
from derm_nb.studies.study004.experiment import (
    ModelSpec,
    Scoring,
    bags_note,
    prepare_bags,
    run_seeds,
    seed_metrics,
    seed_table,
)
from derm_nb.studies.study004.mil import GCNMIL, MILConfig, bag_layout, build_bags, init_ones, predict_bags
from derm_nb.studies.study004.segmentation import findings, score_maps
from derm_nb.studies.study004.sources import OriginalImages, bag_images, to_cache_frame

CLASSES = ["melanoma", "seborrheic_keratosis", "nevus"]


def pooled_colours() -> nn.Module:
    """A stand-in backbone: each block's mean colour (3 features), no weights to learn."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


def tiny_backbone() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def write_image(path, width: int, height: int) -> str:
    rng = np.random.default_rng(width + height)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return str(path)


# --- Resolution: bags from the original images, 224 px blocks at Eq. 4's stride --------------------


@pytest.mark.parametrize("height, width, stride, rows, cols", [
    (480, 640, 50, 6, 9),        # 0, 50, ... 250 (+224 = 474 <= 480); 0 ... 400 (+224 = 624 <= 640)
    (767, 1022, 50, 11, 16),     # the study's example image
    (1500, 2000, 120, 11, 15),   # 1000 <= h < 2000: 0 ... 1200 (+224 = 1424); 0 ... 1680 (+224 = 1904)
    (2016, 3024, 200, 9, 15),    # h >= 2000: 0 ... 1600 (+224 = 1824); 0 ... 2800 (+224 = 3024)
])
def test_original_resolution_bags_follow_the_stride_rule(height, width, stride, rows, cols):
    corners, edges = bag_layout(height, width, 224, 1.0)
    assert len(corners) == rows * cols
    assert sorted(set(np.diff(np.unique(corners[:, 0])))) == [stride]
    assert corners.max(0).tolist() == [(rows - 1) * stride, (cols - 1) * stride]
    assert edges.shape[0] == 2 and edges.max() < rows * cols


def test_a_640_by_480_image_read_from_disk_gives_54_blocks_of_224_px(tmp_path):
    frame = pd.DataFrame({"path": [write_image(tmp_path / "a.jpg", 640, 480), write_image(tmp_path / "b.png", 300, 250)]})
    images = bag_images("original", frame, torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
    assert isinstance(images, OriginalImages) and images[0].shape == (3, 480, 640) and images[0].dtype == torch.uint8
    bags = build_bags(pooled_colours(), images, np.array([0, 2]), 224, 1.0, device="cpu")
    assert [b.num_nodes for b in bags] == [54, 2]            # 250 px high: stride 50, rows 0 and ... 1, cols 0, 50
    assert bags[0].image_hw[0].tolist() == [480, 640] and bags[1].image_hw[0].tolist() == [250, 300]
    assert bags[0].x.shape == (54, 3)
    # the first block's feature is the mean colour of the image's top-left 224 px, ImageNet-standardised
    top_left = images[0][:, :224, :224].float().mean((1, 2)) / 255
    expected = (top_left - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(bags[0].x[0], expected, atol=1e-4, rtol=1e-4)
    cached = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    assert bag_images("cache", frame, cached) is cached
    with pytest.raises(ValueError, match="bag_source"):
        bag_images("resized", frame, cached)


def test_original_blocks_map_onto_the_caches_square():
    # 640 x 480 cropped to its centred 480 px square (x from 80), scaled to 240 px: half size.
    corners, block = to_cache_frame(np.array([[0, 80], [100, 0], [256, 416]]), 224, (480, 640), 240)
    assert corners.tolist() == [[0, 0], [50, -40], [128, 168]] and block == (112, 112)
    squeezed, block = to_cache_frame(np.array([[240, 320]]), 224, (480, 640), 240, "resize")
    assert squeezed.tolist() == [[120, 120]] and block == (112, 84)
    same, block = to_cache_frame(np.array([[3, 5]]), 48, (128, 128), 128)
    assert same.tolist() == [[3, 5]] and block == (48, 48)


def test_score_maps_of_an_original_bag_light_its_block_in_the_cache_frame():
    corners, edges = bag_layout(480, 640, 224, 1.0)
    from derm_nb.studies.study004.mil import make_bag

    bag = make_bag(torch.zeros(len(corners), 3), edges, 0, corners, 0, 0, (480, 640))
    attention = np.zeros(len(corners))
    attention[0] = 1.0                      # the top-left block, corner (0, 0): outside the square but for 224 - 80 px
    score = score_maps(np.array([[0.8, 0.1, 0.1]]), [attention], [bag], 224, 240)[0]
    assert score.shape == (240, 240)
    assert score[:112, :72].min() == pytest.approx(0.8) and score[:, 72:].max() == 0 and score[112:].max() == 0


# --- Training end to end, on a CPU, on a tiny case ------------------------------------------------------


def tiny_images(n: int = 9, size: int = 24) -> tuple[torch.Tensor, np.ndarray]:
    labels = np.arange(n) % 3
    rng = np.random.default_rng(0)
    images = rng.integers(0, 60, (n, 3, size, size), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i, label] += 150              # each class lights one channel
    return torch.as_tensor(images), labels


def scoring(labels: np.ndarray, size: int = 24) -> Scoring:
    return Scoring(CLASSES, {"train": labels, "val": labels, "test": labels}, 12, size, None, None)


def test_end_to_end_trains_the_backbone_and_frozen_does_not(tmp_path):
    images, labels = tiny_images()
    split = {s: images for s in ("train", "val", "test")}
    y = {s: labels for s in ("train", "val", "test")}
    backbone = tiny_backbone()
    start = [p.detach().clone() for p in backbone.parameters()]
    bags = prepare_bags(backbone, split, y, 12, 0.1, {0: [0, 90]}, True, "cpu")
    assert isinstance(bags.train, PixelBags) and len(bags.train) == 12 and len(bags.calibration) == 9
    assert bags.train[0].x.dtype == torch.uint8 and bags.train[0].x.shape == (9, 3, 12, 12)  # stride 5: 3 x 3 blocks
    cfg = MILConfig(epochs=2, batch_size=3, lr=0.05, lr_change_epoch=99, device="cpu")
    runs = run_seeds([0], ModelSpec(4, 8, 4, 3, backbone=backbone), bags, cfg, scoring(labels), tmp_path)
    model = runs[0].model
    assert isinstance(model, EndToEndMIL) and len(runs[0].history) == 2
    assert any(not torch.equal(a, b.detach()) for a, b in zip(start, model.backbone.parameters()))
    assert all(torch.equal(a, b.detach()) for a, b in zip(start, backbone.parameters()))  # a copy trained
    assert runs[0].prob.shape == (9, 3) and np.allclose(runs[0].prob.sum(1), 1, atol=1e-5)
    assert all(len(a) == 9 for a in runs[0].attention)
    frozen = prepare_bags(backbone, split, y, 12, 0.1, {0: [0, 90]}, False, "cpu")
    assert isinstance(frozen.train, list) and len(frozen.train) == 12 and frozen.train[0].x.shape == (9, 4)
    plain = run_seeds([0], ModelSpec(4, 8, 4, 3), frozen, cfg, scoring(labels), tmp_path / "frozen")[0].model
    assert type(plain) is GCNMIL and not hasattr(plain, "backbone")


def test_end_to_end_and_frozen_compute_the_same_block_features():
    images, labels = tiny_images(3)
    backbone = tiny_backbone()
    frozen = build_bags(backbone, images, labels, 12, 0.1, device="cpu")
    pixels = PixelBags(images, labels, 12, 0.1)
    model = EndToEndMIL(backbone, 4, 8, 4, 3).eval()
    with torch.no_grad():
        torch.testing.assert_close(model.block_features(pixels[1]), frozen[1].x, atol=1e-5, rtol=1e-4)
    prob, attention = predict_bags(model, pixels, "cpu")
    assert prob.shape == (3, 3) and [len(a) for a in attention] == [9, 9, 9]


def test_augmentation_flips_and_turns_without_changing_the_pixels():
    torch.manual_seed(0)
    image = torch.arange(2 * 3 * 4).reshape(2, 3, 4)
    shapes = set()
    for _ in range(40):
        out = flip_and_turn(image)
        shapes.add(tuple(out.shape))
        assert torch.equal(out.flatten().sort().values, image.flatten().sort().values)
    assert shapes == {(2, 3, 4), (2, 4, 3)}
    images, labels = tiny_images(2)
    bags = PixelBags(images, labels, 12, 0.1, augment=True)
    torch.manual_seed(1)
    seen = {bags[0].x[0].sum().item() for _ in range(12)}  # the top-left block differs between draws
    assert len(seen) > 1


# --- Initialisation ----------------------------------------------------------------------------------------


def test_the_studys_all_ones_init_spares_the_imagenet_backbone():
    backbone = tiny_backbone()
    model = ModelSpec(4, 8, 4, 3, "ones", backbone).build(0, PixelBags(*tiny_images(3), 12, 0.1))
    assert all(torch.equal(a, b) for a, b in zip(backbone.state_dict().values(), model.backbone.state_dict().values()))
    assert torch.all(model.conv1.lin.weight == 1) and torch.all(model.fc.weight == 1) and torch.all(model.fc.bias == 0)
    glorot = ModelSpec(4, 8, 4, 3).build(0, [])
    assert not torch.all(glorot.conv1.lin.weight == 1)
    with pytest.raises(ValueError, match="weight_init"):
        ModelSpec(4, 8, 4, 3, "zeros").build(0, [])
    plain = GCNMIL(4, 8, 4, 3)
    init_ones(plain)
    assert all(torch.all(p == (0 if n.endswith("bias") else 1)) for n, p in plain.named_parameters())


# --- Reporting: the mean of several seeds --------------------------------------------------------------


def test_seeds_are_reported_as_mean_and_sd(tmp_path):
    images, labels = tiny_images()
    split = {s: images for s in ("train", "val", "test")}
    bags = prepare_bags(tiny_backbone(), split, {s: labels for s in split}, 12, 0.1, {}, False, "cpu")
    cfg = MILConfig(epochs=1, batch_size=3, lr=0.05, device="cpu")
    runs = run_seeds([3, 4, 5], ModelSpec(4, 8, 4, 3), bags, cfg, scoring(labels), tmp_path)
    assert [r.seed for r in runs] == [3, 4, 5]
    assert not np.allclose(runs[0].prob, runs[1].prob)        # each seed its own model
    table = seed_table(runs, labels, 0)
    assert list(table.index) == ["seed 3", "seed 4", "seed 5", "mean of 3 seeds", "SD"]
    aucs = [r.scores["melanoma"]["roc_auc"] for r in runs]
    assert table.loc["mean of 3 seeds", "AUC"] == pytest.approx(np.mean(aucs))
    assert table.loc["SD", "AUC"] == pytest.approx(np.std(aucs, ddof=1))
    metrics = seed_metrics(runs, labels, 0)
    assert metrics["seeds"] == 3 and metrics["seed_mean_roc_auc"] == pytest.approx(np.mean(aucs))
    sk = [r.scores["sk"]["roc_auc"] for r in runs]
    assert metrics["sk_roc_auc_seeds"] == sk and metrics["seed_mean_sk_roc_auc"] == pytest.approx(np.nanmean(sk))
    assert math.isnan(metrics["seed_mean_jaccard"])             # no masks here
    paper = CARD.tables["Table 5"].loc["GCN-based MIL"]
    found = findings(runs[0].scores, runs[0].seg, labels, 0, 9, table, paper)
    assert found["mel_auc"] == pytest.approx(np.mean(aucs)) and found["over_seeds"].startswith("the mean of 3 seeds")
    single = seed_table(runs[:1], labels, 0)
    assert math.isnan(single.loc["SD", "AUC"])
    assert findings(runs[0].scores, runs[0].seg, labels, 0, 9, single, paper)["over_seeds"] == "one seed"
    note = bags_note(bags, labels, {0: [0, 90]}, CLASSES, 12, 0.1, "colours")
    assert "24 x 24 px" in note and "stride 5" in note and "**9 blocks" in note and "melanoma 6" in note


def test_the_summary_quotes_the_mean_over_seeds():
    from derm_nb.studies.study004 import verdict

    row = {"roc_auc": 0.6, "sk_roc_auc": 0.7, "jaccard": 0.3, "seeds": 5, "seed_mean_roc_auc": 0.65,
           "seed_mean_sk_roc_auc": 0.75, "seed_mean_jaccard": 0.35}
    text = verdict(pd.DataFrame([row], index=["GCN-MIL"]))
    assert "AUC 0.650" in text and "mean of 5 seeds" in text
    assert "AUC 0.600" in verdict(pd.DataFrame([{**row, "seeds": 1}], index=["GCN-MIL"]))


# --- The card and the profiles ---------------------------------------------------------------------------


def test_the_card_holds_the_papers_settings():
    s = CARD.settings["07_gcn_mil"]
    assert (s["block_size"], s["stride_scale"], s["bag_source"], s["end_to_end"], s["seeds"]) == (224, 1.0, "original",
                                                                                                    True, 5)
    assert (s["epochs"], s["batch_size"], s["lr"], s["lr_after"], s["lr_change_epoch"]) == (400, 1, 1e-5, 1e-4, 200)
    assert s["weight_init"] == "ones" and set(CARD.reasons["07_gcn_mil"]) == {"weight_init"}
    aspects = {d.aspect for d in CARD.methods["07_gcn_mil"]}
    assert {"block features", "training augmentation", "segmentation score (Eq. 3)"} <= aspects


def test_full_runs_the_paper_and_default_says_where_it_does_not(root, real_declared):
    declared = real_declared["07_gcn_mil"]
    cell = {k: d.default for k, d in declared.items()}
    full = {**cell, **load_profile(root, "full", real_declared, paper=paper_settings()).for_notebook("07_gcn_mil",
                                                                                                     declared)}
    assert (full["bag_source"], full["end_to_end"], full["seeds"], full["block_size"]) == ("original", True, 5, 224)
    assert full["weight_init"] == "glorot"
    default = {**cell, **load_profile(root, "default", real_declared).for_notebook("07_gcn_mil", declared)}
    table = differences(CARD, "07_gcn_mil", default, "synthetic", True, "default").set_index("aspect")
    assert {"bag_source", "end_to_end", "block_size", "weight_init", "epochs", "seeds", "feature_stages"} <= set(table.index)
    assert (table.loc["seeds", "paper"], table.loc["seeds", "this run"]) == ("5", "3")  # fewer seeds is stated
    assert table.loc["bag_source", "paper"] == "original" and table.loc["bag_source", "this run"] == "cache"
    assert "image_size" not in table.index  # the synthetic book reads the cache at its own size, as the paper
    real = differences(CARD, "07_gcn_mil", {**default, **load_profile(root, "default", real_declared).for_notebook(
        "07_gcn_mil", declared, real=True)}, "ISIC 2017", False, "default").set_index("aspect")
    assert (real.loc["image_size", "paper"], real.loc["image_size", "this run"]) == ("0", "192")
    paper_run = differences(CARD, "07_gcn_mil", full, "synthetic", True, "full", True).set_index("aspect")
    changed = set(paper_run.index) - {"data", "splits"} - {d.aspect for d in CARD.methods["07_gcn_mil"]}
    assert changed == {"weight_init"}


def test_the_bench_times_the_gcn_on_blocks_as_wide_as_the_chapter_makes_them():
    assert block_width("resnet18") == 512 and block_width("resnet18", 2) == 256 + 512 + 512


def test_the_bench_estimate_follows_original_bags_end_to_end_and_seeds():
    p = {**CARD.settings["07_gcn_mil"]}
    n = {"cache_size": 256, "classes_train": {"melanoma": 374, "seborrheic_keratosis": 254, "nevus": 1372},
         "val": 150, "test": 600}
    passes = {x.what: x for x in workload("07_gcn_mil", p, n)}
    train_bags = 374 * 20 + 254 * 20 + 1372 * 8
    assert passes["backbone training (end to end)"].images == 5 * 400 * train_bags * 176  # 11 x 16 blocks at 767 px
    assert passes["GCN-MIL training steps"].size == 176
    frozen = {x.what: x for x in workload("07_gcn_mil", {**p, "end_to_end": False, "bag_source": "cache", "seeds": 1,
                                                          "block_size": 64, "stride_scale": 0.2857}, n)}
    assert frozen["block features"].images == (train_bags + 750) * 14 * 14 and not frozen["block features"].train


def test_contour_titles_say_why_an_image_has_no_jaccard():
    from derm_nb.studies.study004.segmentation import Segmentation, contour_figure

    maps = [np.full((8, 8), 0.5)] * 3
    masks = [None, np.ones((8, 8), bool), np.ones((8, 8), bool)]
    seg = Segmentation(0.4, pd.DataFrame(), maps, masks, np.array([np.nan, 1.0, np.nan]), np.array([np.nan] * 3))
    fig = contour_figure(torch.zeros(3, 3, 8, 8), np.arange(3), seg, np.zeros(3, int), ["nevus"], "test")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["pred nevus\nno mask to score", "pred nevus\nJA 1.00", "pred nevus\nJA not scored (no η)"]
