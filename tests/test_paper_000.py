"""Study 000 follows its paper (issue #20): NA rows dropped or imputed, experts on the small sets,
per-epoch metrics at 0.5, the paper's settings in the full profile, and prose quoted from the card."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from derm_nb.cards import differences
from derm_nb.datasets import CachedImages
from derm_nb.losses import BCE
from derm_nb.metrics import binary_metrics, epoch_scores
from derm_nb.params import load_profile
from derm_nb.studies import paper_settings, study000
from derm_nb.studies.study000 import CARD
from derm_nb.train import TrainConfig, fit, predict

PARAMETERS = {"seed": 0, "device": "cpu", "backbone": "resnet18", "weights": "none", "weights_fallback": "",
              "image_size": 32, "epochs": 1, "batch_size": 8, "lr": 1e-3, "patience": 1, "small_per_patient": 1,
              "missing_metadata": "impute", "num_workers": 0, "aug_copies": [3], "profile": "smoke"}


def _splits() -> dict[str, pd.DataFrame]:
    ids = [f"ISIC_{k:07d}" for k in range(10)]
    frame = pd.DataFrame({"image_id": ids, "group_id": [f"P{k // 2}" for k in range(10)],
                          "target": [1, 0, 0, 0, 1, 0, 0, 0, 0, 0]})
    return {"train": frame.iloc[:6].reset_index(drop=True), "val": frame.iloc[6:].reset_index(drop=True)}


QUALITY = pd.DataFrame({
    "file": "train.csv", "row": [2, 3, 3, 9, 5],
    "image_id": ["ISIC_0000000", "ISIC_0000001", "ISIC_0000001", "ISIC_0000007", "ISIC_0000004"],
    "check": ["missing sex", "missing age", "missing site", "missing sex", "near duplicate"],
    "action": ["imputed", "imputed", "imputed", "imputed", "excluded"],
    "detail": ""})


def test_drop_removes_exactly_the_rows_with_imputed_metadata_and_reports_them(tmp_path):
    kept, dropped = study000.missing_metadata(_splits(), QUALITY, "drop")
    assert list(kept["train"]["image_id"]) == ["ISIC_0000002", "ISIC_0000003", "ISIC_0000004", "ISIC_0000005"]
    assert list(kept["val"]["image_id"]) == ["ISIC_0000006", "ISIC_0000008", "ISIC_0000009"]
    assert dropped.to_dict("list") == {"split": ["train", "train", "val"],
                                       "image_id": ["ISIC_0000000", "ISIC_0000001", "ISIC_0000007"],
                                       "target": [1, 0, 0], "missing": ["sex", "age, site", "sex"]}
    text = study000.report_dropped(dropped, "drop", tmp_path)
    assert "3 rows (2 train, 1 val; 1 melanomas)" in text and "ISIC_0000007" in text
    assert pd.read_csv(tmp_path / "missing_metadata.csv")["image_id"].tolist() == list(dropped["image_id"])


def test_impute_keeps_every_row_and_says_so(tmp_path):
    kept, dropped = study000.missing_metadata(_splits(), QUALITY, "impute")
    assert [len(f) for f in kept.values()] == [6, 4] and dropped.empty
    assert "imputed" in study000.report_dropped(dropped, "impute", tmp_path)
    assert (tmp_path / "missing_metadata.csv").is_file()
    with pytest.raises(ValueError, match="impute, drop"):
        study000.missing_metadata(_splits(), QUALITY, "ignore")


def test_expert_training_sets_by_name():
    train = _splits()["train"]
    p = study000.params("03_experts", {**PARAMETERS, "training_sets": ["all", "small", "small+3aug"]})
    runs = study000.variants(p)
    assert list(runs) == [f"{g} ({s})" for g in ("Sex experts", "Brightness experts") for s in ("all", "small", "small+3aug")]
    sets = study000.training_sets(train, runs, per_group=1, seed=0)
    assert sets["Sex experts (all)"][0] is train and sets["Sex experts (all)"][1] == 0
    assert sets["Sex experts (small+3aug)"][1] == 3
    assert sets["Sex experts (small+3aug)"][0].equals(sets["Brightness experts (small)"][0])
    assert len(sets["Sex experts (small)"][0]) < len(train)
    for bad in ("all+3aug", "small+aug", "big", "small+3"):
        with pytest.raises(ValueError, match="unknown training set"):
            study000.expert_set_spec(bad)


def test_expert_workload_counts_augmented_copies():
    p = {"small_per_patient": 2, "backbone": "resnet18", "image_size": 64, "epochs": 1}
    n = {"train": 1000, "val": 100, "positives_train": 10, "groups_train": 100}
    passes = {w.what: w.images for w in study000.workload("03_experts", {**p, "training_sets": ["small+3aug"]}, n)}
    assert passes["Sex experts on small+3aug"] == 210 * 2 * 4


class _Linear(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 1))

    def forward(self, image: torch.Tensor, **_: torch.Tensor) -> torch.Tensor:
        return self.net(image)


def _images(n: int, seed: int) -> CachedImages:
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, generator=g) < 0.3).long()
    images = (torch.rand(n, 3, 4, 4, generator=g) * 150).to(torch.uint8)
    images[y == 1] += 60
    return CachedImages(images, y.numpy(), transform=lambda x: x.float() / 255)


def test_history_records_the_papers_metrics_at_the_threshold_every_epoch(tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=8, lr=0.05, patience=9, device="cpu", seed=0,
                      epoch_threshold=study000.EPOCH_THRESHOLD)
    val = _images(40, seed=1)
    result = fit(_Linear(), BCE(), _images(48, seed=0), val, cfg, tmp_path / "on")
    history = result.history
    assert len(history) == 3
    for key in ("val_f1", "val_precision", "val_recall", "val_roc_auc", "val_tp", "val_fp", "val_tn", "val_fn"):
        assert history[key].notna().all(), key
    assert (history[["val_tp", "val_fp", "val_tn", "val_fn"]].sum(axis=1) == 40).all()
    best = history.set_index("epoch").loc[result.best_epoch]
    expected = binary_metrics(val.all_targets, predict(_best(tmp_path / "on"), val, device="cpu"),
                              study000.EPOCH_THRESHOLD)
    for key in ("f1", "precision", "recall", "roc_auc", "tp", "fn"):
        assert best[f"val_{key}"] == pytest.approx(expected[key], abs=1e-6), key
    off = fit(_Linear(), BCE(), _images(48, seed=0), val, TrainConfig(epochs=1, batch_size=8, device="cpu"),
              tmp_path / "off")
    assert "val_f1" not in off.history  # other studies' histories are unchanged


def _best(folder) -> nn.Module:
    model = _Linear()
    model.load_state_dict(torch.load(folder / "best.pt", weights_only=True)["model"])
    return model


def test_epoch_scores_of_a_diverged_epoch_are_nan_not_an_error():
    scores = epoch_scores(np.array([0, 1, 1]), np.array([0.2, np.nan, 0.9]))
    assert all(math.isnan(v) for v in scores.values())
    good = epoch_scores(np.array([0, 1, 1, 0]), np.array([0.2, 0.6, 0.4, 0.7]))
    assert (good["tp"], good["fp"], good["fn"], good["tn"]) == (1, 1, 1, 1) and good["roc_auc"] == 0.5


def test_the_card_holds_the_papers_settings():
    base = CARD.settings["02_baseline"]
    assert (base["lr"], base["batch_size"], base["epochs"], base["patience"], base["image_size"]) == (1e-5, 64, 10, 3, 256)
    assert base["missing_metadata"] == "drop" and base["aug_copies"] == [3, 5] and base["small_per_patient"] == 2
    assert CARD.settings["03_experts"]["training_sets"] == ["all", "small", "small+3aug", "small+5aug"]
    assert CARD.settings["01_eda"]["brightness_sample"] == 2500
    assert {d.aspect for d in CARD.methods["03_experts"]} >= {"unknown sex", "brightness split", "experts"}


def test_full_runs_the_paper_and_default_trains_experts_on_a_small_set(root, real_declared):
    full = load_profile(root, "full", real_declared, paper=paper_settings())
    experts = full.for_notebook("03_experts", real_declared["03_experts"])
    assert experts["training_sets"] == ["all", "small", "small+3aug", "small+5aug"]
    assert experts["missing_metadata"] == "drop" == full.for_notebook("02_baseline", real_declared["02_baseline"])[
        "missing_metadata"]
    default = load_profile(root, "default", real_declared).for_notebook("03_experts", real_declared["03_experts"])
    assert any(study000.expert_set_spec(name)[0] == "small" for name in default["training_sets"])


def test_the_default_differences_table_names_the_imputation_against_the_paper():
    params = {**CARD.settings["02_baseline"], "missing_metadata": "impute", "image_size": 64}
    table = differences(CARD, "02_baseline", params, "synthetic", True, "default").set_index("aspect")
    assert table.loc["missing_metadata", "paper"] == "drop" and table.loc["missing_metadata", "this run"] == "impute"
    assert "lr" not in table.index and "test set" in table.index


def test_the_baseline_prose_quotes_the_papers_timings_from_the_card(root):
    text = (root / "notebooks" / "02_baseline.py").read_text()
    assert "sixth" not in text and "{glue:text}`published_time`" in text
    note = CARD.notes["training_time"]
    assert "30 minutes" in note and "five hours" in note


def test_one_brightness_split_from_the_training_melanomas_only():
    stats = pd.DataFrame({"image_id": list("abcde"), "target": [1, 1, 1, 0, 1],
                          "brightness": [10.0, 30.0, 200.0, 5.0, 90.0]})
    split = study000.brightness_split(stats, ["a", "b", "d", "e"])   # c is a validation melanoma
    assert split["brightness_split"] == 30.0 and split["n_melanomas"] == 3
    assert study000.brightness_band([29.9, 30.0, 30.1], 30.0).tolist() == ["dark", "dark", "light"]
    assert study000.brightness_gate(pd.Series([29.9, 30.1]), 30.0).tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_base_small_is_skipped_not_retrained_when_the_small_set_is_every_image(tmp_path):
    """ISIC 2017 has no patient ids (one image per patient): its small set is every training image, so
    Base Small would train Base All a second time; it is skipped, saying why."""
    p = study000.params("02_baseline", PARAMETERS)
    train = pd.DataFrame({"image_id": [f"ISIC_{k:07d}" for k in range(6)], "group_id": [f"P{k}" for k in range(6)],
                          "target": [1, 0, 0, 1, 0, 0]})
    small = study000.small_dataset(train, per_group=p.small_per_patient)
    assert len(small) == len(train)
    images = torch.zeros(6, 3, 32, 32, dtype=torch.uint8)
    inputs = study000.Inputs(p, train, small, images, np.zeros((6, 2), np.float32), train, images,
                             np.zeros((6, 2), np.float32), tmp_path)
    result = study000.train_variant(study000.variants(p)["Base Small"], inputs)
    assert result.skipped == study000.SMALL_IS_ALL.format(n=6, k=1) and result.predictions.empty
    assert not (tmp_path / "Base Small").exists()
    fewer = study000.Inputs(p, train, small.iloc[:4], images, inputs.tabular, train, images, inputs.val_tabular,
                            tmp_path)
    assert study000.train_variant(study000.variants(p)["Base Small"], fewer).skipped is None


def test_the_summary_says_why_base_small_was_not_compared():
    rows = pd.DataFrame({"roc_auc": [0.75, np.nan], "skipped": [np.nan, "its small set is all 6 training images"]},
                        index=["Base All", "Base Small"])
    assert study000.verdict(rows).endswith("(Base Small: its small set is all 6 training images).")
    both = pd.DataFrame({"roc_auc": [0.75, 0.70]}, index=["Base All", "Base Small"])
    assert study000.verdict(both).startswith("* **Study 000**: small set 0.700 vs all images 0.750")
