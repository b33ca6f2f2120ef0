"""The benchmark's plumbing (no timings are asserted): target checks, run-log reading, tiny measurements."""

from __future__ import annotations

import pandas as pd
import pytest

from derm_nb.artifacts import read_json, write_json, write_parquet
from derm_nb.bench import (
    amp_speedup,
    check_targets,
    estimate,
    estimate_report,
    loader_speed,
    model_speed,
    notebook_times,
    stand_in_lines,
    target_table,
)
from derm_nb.book_workload import passes
from derm_nb.chapters import CHAPTERS, MODEL_CHAPTERS
from derm_nb.runner import resolved_parameters


def _book(seconds: list[float]) -> list[dict]:
    """A whole book's run-log rows: the given seconds for the first chapters, 1 s for the rest."""
    seconds = seconds + [1.0] * (len(CHAPTERS) - len(seconds))
    return [{"notebook": c.stem, "seconds": s, "data_wait_share": 0.9} for c, s in zip(CHAPTERS, seconds)]


def _result(smoke_seconds: list[float], wait: float, speedup: float, aucs: list[float]) -> dict:
    return {"notebooks": {"smoke": _book(smoke_seconds), "default": []},
            "data_wait": [{"num_workers": 0, "data_wait_share": wait / 2}],
            "cache": {"speedup": speedup, "ours_images_per_s": 300.0, "naive_images_per_s": 300.0 / speedup,
                      "with_masks_speedup": speedup / 2},
            "models_default": [{"chapter": "02", "variant": f"v{i}", "roc_auc": a, "roc_auc_ci_low": a - 0.1}
                               for i, a in enumerate(aucs)]}


def test_targets_met_and_missed():
    met = check_targets(_result([100, 120], 0.05, 3.5, [0.7, 0.8])).set_index("target")["met"]
    assert met["smoke book under 5 min"] and met["cache build 3x the naive loop"]
    assert met["data wait under 10 % of step time"] and met["every default model above chance"]
    assert met["default book under 30 min"] is None  # not run: neither met nor missed
    missed = check_targets(_result([200, 120], 0.2, 2.0, [0.7, 0.45])).set_index("target")
    assert not missed["met"]["smoke book under 5 min"] and "00_data" in missed["note"]["smoke book under 5 min"]
    assert not missed["met"]["cache build 3x the naive loop"]
    assert not missed["met"]["data wait under 10 % of step time"]
    chance = "every default model above chance"
    assert not missed["met"][chance] and "v1 0.450" in missed["note"][chance]


def test_notebook_times_read_the_run_log_and_histories(tmp_path):
    write_json(tmp_path / "run_log.json", {"00_data": {"seconds": 12.5, "finished": "t0"},
                                           "02_baseline": {"seconds": 40.0, "finished": "t1"}})
    write_parquet(tmp_path / "02_baseline" / "history.parquet", pd.DataFrame({"data_wait_share": [0.02, 0.04],
                                                                                     "seconds": [10.0, 12.0]}))
    times = notebook_times(tmp_path).set_index("notebook")
    assert times.loc["00_data", "seconds"] == 12.5 and pd.isna(times.loc["00_data", "data_wait_share"])
    assert times.loc["02_baseline", "data_wait_share"] == 0.03 and times.loc["02_baseline", "epoch_seconds"] == 11
    assert notebook_times(tmp_path / "absent").empty


def test_tiny_measurements_run():
    row = model_speed("resnet18", 32, batch_size=2, steps=1, channels_last=True)
    assert row["train_images_per_s"] > 0 and row["inference_images_per_s"] > 0 and row["channels_last"]
    rows = loader_speed(n_images=8, size=16, batch_size=4, workers=(0,))
    assert {r["transform"] for r in rows} == {"augmented", "eval"} and all(r["images_per_s"] > 0 for r in rows)


def test_feature_head_epochs_do_not_count_as_image_pipelines():
    result = _result([100], 0.05, 3.5, [0.7])
    result["notebooks"]["default"] = [
        {"notebook": "04_x", "seconds": 400, "data_wait_share": 0.04, "epoch_seconds": 15.0},
        {"notebook": "05_x", "seconds": 100, "data_wait_share": 0.3, "epoch_seconds": 0.2}]
    row = check_targets(result).set_index("target").loc["data wait under 10 % of step time"]
    assert row["met"] and row["measured"] == "max 4.0%" and "05_x 30%" in row["note"]
    result["notebooks"]["default"][0]["data_wait_share"] = 0.2
    assert not check_targets(result).set_index("target").loc["data wait under 10 % of step time", "met"]


def test_a_budget_is_judged_on_a_whole_book_only():
    result = _result([100, 120], 0.05, 3.5, [0.7])
    result["notebooks"]["default"] = _book([300, 200, 100])[:3]
    result["calibration"] = {"seconds_per_unit": 10.0}
    row = target_table(result).set_index("target").loc["default book under 30 min"]
    assert row["met"] == "incomplete" and row["measured"] == "incomplete: 3 of 11 notebooks"
    assert "10_speed" in row["note"] and "60 calibration units" in row["note"]
    smoke = target_table(result).set_index("target").loc["smoke book under 5 min"]
    assert smoke["met"] == "yes" and "calibration units" in smoke["note"]


def test_amp_speedup_pairs_float32_with_bf16_channels_last():
    rows = [{"model": "resnet18", "size": 224, "device": "cuda", "channels_last": cl, "amp": amp,
             "train_images_per_s": 1000.0 * (1 + cl + 2 * amp)} for cl in (False, True) for amp in (False, True)]
    speedup = amp_speedup(rows)
    assert speedup["speedup"].tolist() == [4.0]
    assert amp_speedup([{**r, "device": "cpu"} for r in rows]).empty


@pytest.fixture(scope="module")
def full_params(root):
    return resolved_parameters(root, "full")


def test_every_model_chapter_has_a_workload_that_follows_its_parameters(full_params):
    work = passes(full_params)
    assert set(work) == set(MODEL_CHAPTERS)
    assert all(w.images > 0 for items in work.values() for w in items)
    images = {stem: sum(w.images for w in items) for stem, items in work.items()}
    own = full_params["04_efficientnet"]
    doubled = {**full_params, "04_efficientnet": {**own, "epochs": 2 * own["epochs"],
                                                  "ablation_epochs": 2 * own["ablation_epochs"]}}
    assert sum(w.images for w in passes(doubled)["04_efficientnet"]) == pytest.approx(2 * images["04_efficientnet"],
                                                                                        rel=0.01)
    fewer = {**full_params, "05_deep_clustering": {**full_params["05_deep_clustering"], "backbones": ["vgg16"]}}
    assert sum(w.images for w in passes(fewer)["05_deep_clustering"]) < images["05_deep_clustering"]
    sizes = {w.size for w in work["04_efficientnet"]}
    assert sizes == {224, 300}  # the 300 px ablation at its own size


@pytest.mark.parametrize("at_hand", [False, True])
def test_estimate_times_the_backbone_that_would_run_here(full_params, monkeypatch, at_hand):
    import derm_nb.models.backbones as backbones

    monkeypatch.setattr(backbones, "imagenet_at_hand", lambda name: at_hand or name == "efficientnet_lite0")
    work = passes(full_params)
    pretrained = [w for w in work["06_architectures"] if w.what.startswith("pretrained")]
    assert pretrained and {(w.backbone, w.stands_in_for) for w in pretrained} == (
        {("resnet101", "")} if at_hand else {("efficientnet_lite0", "resnet101")})
    scratch = [w for w in work["06_architectures"] if w.what.startswith("mobilenet")]
    assert {(w.backbone, w.stands_in_for) for w in scratch} == {("mobilenetv1_100", "")}  # no ImageNet weights asked
    blocks = [w for w in work["07_gcn_mil"] if w.probe is None]
    assert {w.backbone for w in blocks} == {"resnet18" if at_hand else "efficientnet_lite0"}
    rows = pd.DataFrame([{"chapter": stem, "backbone": w.backbone, "stands_in_for": w.stands_in_for}
                         for stem, items in work.items() for w in items] + [{"chapter": "00_data", "backbone": ""}])
    lines = stand_in_lines(rows)
    assert (lines == []) if at_hand else (
        len(lines) == 1 and "efficientnet_lite0 standing in for" in lines[0] and "resnet101 (06_architectures)" in lines[0])


def test_estimate_sums_passes_into_chapter_hours(root, monkeypatch):
    import derm_nb.bench as bench

    monkeypatch.setattr(bench, "cache_speed", lambda **_: {"ours_images_per_s": 100.0})
    result = estimate(root, "full", "cpu", seconds=lambda work, device, measured: 0.01)
    frame = pd.DataFrame(result["passes"])
    assert set(result["chapters"]) == {"00_data", *MODEL_CHAPTERS}
    assert result["total_hours"] == pytest.approx(sum(result["chapters"].values()))
    assert result["chapters"]["04_efficientnet"] == pytest.approx(
        frame.loc[frame["chapter"] == "04_efficientnet", "images"].sum() * 0.01 / 3600)
    text = estimate_report(result)
    assert "07_gcn_mil" in text and "total" in text and " h " in text


def test_bench_estimate_on_the_command_line(root, tmp_path, monkeypatch, capsys):
    import derm_nb.bench as bench
    from derm_nb.cli import main

    monkeypatch.setattr(bench, "cache_speed", lambda **_: {"ours_images_per_s": 100.0})
    monkeypatch.setattr(bench, "pass_seconds", lambda work, device, measured: 0.001)
    out = tmp_path / "bench.json"
    write_json(out, {"machine": {"earlier": True}})
    assert main(["bench", "--estimate", "full", "--device", "cpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "05_deep_clustering" in printed and "goal on one H100-class GPU" in printed
    saved = read_json(out)
    assert saved["machine"] == {"earlier": True} and saved["estimates"]["full"]["total_hours"] > 0


def test_full_scale_data_preparation_is_extrapolated_and_judged():
    from derm_nb.bench import data_scale

    scale = data_scale(patients=3)
    per_image = scale["seconds_per_image_worker"]
    assert scale["measured_images"] > 0 and per_image["generator"] > 0 and per_image["prepare"] > 0
    assert scale["full_seconds"] == pytest.approx(33_126 * sum(per_image.values()) / 16)
    target = "full 00_data (33k images, 640x480) within 3 min on 16 cores"
    fast = {**scale, "full_seconds": 120.0}
    slow = {**scale, "full_seconds": 240.0}
    assert check_targets({"notebooks": {}, "data_scale": fast}).set_index("target").loc[target, "met"]
    assert not check_targets({"notebooks": {}, "data_scale": slow}).set_index("target").loc[target, "met"]
