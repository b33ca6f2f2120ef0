"""The default profile's promise, checked end to end (slow: about 10 minutes on 2 CPU cores).

Run with `make test-slow`; the default `make test` deselects it.
"""

from __future__ import annotations

import pytest

from derm_nb.artifacts import read_json
from derm_nb.runner import run_notebooks


@pytest.mark.slow
def test_default_base_model_is_clearly_above_chance(root, tmp_path):
    run_dir = tmp_path / "default"
    run_notebooks(root, "default", only=["00_data", "01_eda", "02_baseline"], run_dir=run_dir)
    record = read_json(run_dir / "02_baseline" / "metrics.json")
    lows = {name: m["roc_auc_ci_low"] for name, m in record["variants"].items()}
    assert max(lows.values()) > 0.55, f"no base model's 95 % CI clears chance: {lows}"
    assert record["oracle_auc"] > max(m["roc_auc"] for m in record["variants"].values())
