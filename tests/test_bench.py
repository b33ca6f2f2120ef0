"""The benchmark's plumbing (no timings are asserted): target checks, run-log reading, tiny measurements."""

from __future__ import annotations

import pandas as pd

from derm_nb.artifacts import write_json, write_parquet
from derm_nb.bench import check_targets, loader_speed, model_speed, notebook_times


def _result(smoke_seconds: list[float], wait: float, speedup: float, aucs: list[float]) -> dict:
    return {"notebooks": {"smoke": [{"notebook": f"{i:02d}_x", "seconds": s, "data_wait_share": 0.9}
                                    for i, s in enumerate(smoke_seconds)], "default": []},
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
    assert not missed["met"]["smoke book under 5 min"] and "00_x" in missed["note"]["smoke book under 5 min"]
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
