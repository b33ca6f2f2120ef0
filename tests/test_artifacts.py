"""Atomic writes: a failure while writing leaves the previous file untouched and no temp file."""

from __future__ import annotations

import pandas as pd
import pytest

from derm_nb.artifacts import read_json, write_atomic, write_json, write_parquet


def test_failed_write_keeps_old_file(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"auc": 0.8})

    def broken(path):
        path.write_text('{"auc": 0.')
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_atomic(target, broken)
    assert read_json(target) == {"auc": 0.8}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_parquet_round_trip(tmp_path):
    frame = pd.DataFrame({"image_id": ["a", "b"], "p": [0.1, 0.9]})
    write_parquet(tmp_path / "p.parquet", frame)
    assert pd.read_parquet(tmp_path / "p.parquet").equals(frame)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_new_artifacts_honour_the_umask(tmp_path, umask, mode):
    import os

    import torch

    old = os.umask(umask)
    try:
        written = [write_json(tmp_path / "a.json", {"x": 1}), write_parquet(tmp_path / "b.parquet", pd.DataFrame({"x": [1]})),
                   write_atomic(tmp_path / "c.pt", lambda p: torch.save({"w": torch.ones(1)}, p))]
    finally:
        os.umask(old)
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {oct(mode)}
