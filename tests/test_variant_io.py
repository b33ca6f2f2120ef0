"""Variant results as plain data: every result type the studies return comes back equal from a file that
`torch.load(weights_only=True)` reads, and a file holding anything else is refused without running it."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from derm_nb import variant_io
from derm_nb.metrics import NAN
from derm_nb.results import skipped_variant
from derm_nb.studies import study001
from derm_nb.studies.study002.experiments import scored_variant
from derm_nb.studies.study004.experiment import ModelSpec, SeedRun
from derm_nb.studies.study004.segmentation import recognition, segment
from derm_nb.train import TrainConfig

CLASSES = ["melanoma", "nevus", "seborrheic_keratosis"]


def assert_same(back, original, where: str = "result") -> None:
    """Equal in type and value, exactly: frames by dtype and index, arrays by dtype, models by state and mode."""
    assert type(back) is type(original), where
    if isinstance(original, pd.DataFrame):
        pd.testing.assert_frame_equal(back, original, check_exact=True)
    elif isinstance(original, pd.Series):
        pd.testing.assert_series_equal(back, original, check_exact=True)
    elif isinstance(original, np.ndarray):
        assert back.dtype == original.dtype and back.shape == original.shape, where
        if original.dtype.hasobject:
            for i, (b, o) in enumerate(zip(back.ravel(), original.ravel())):
                assert_same(b, o, f"{where}[{i}]")
        else:
            np.testing.assert_array_equal(back, original, err_msg=where)
    elif isinstance(original, torch.Tensor):
        assert back.dtype == original.dtype and torch.equal(back, original), where
    elif isinstance(original, nn.Module):
        assert_same(dict(back.state_dict()), dict(original.state_dict()), f"{where} state")
        assert [m.training for m in back.modules()] == [m.training for m in original.modules()], where
        assert [(p.requires_grad, p.stride()) for p in back.parameters()] == \
            [(p.requires_grad, p.stride()) for p in original.parameters()]        # channels-last stays so
    elif dataclasses.is_dataclass(original):
        for f in dataclasses.fields(original):
            assert_same(getattr(back, f.name), getattr(original, f.name), f"{where}.{f.name}")
    elif isinstance(original, dict):
        assert list(back) == list(original), where
        for key in original:
            assert_same(back[key], original[key], f"{where}[{key!r}]")
    elif isinstance(original, (list, tuple)):
        assert len(back) == len(original), where
        for i, (b, o) in enumerate(zip(back, original)):
            assert_same(b, o, f"{where}[{i}]")
    elif isinstance(original, float) and np.isnan(original):
        assert np.isnan(back), where
    else:
        assert back == original, where


def round_trip(result, tmp_path: Path, rebuild=None):
    path = variant_io.save_result(tmp_path / "result.pt", result)
    torch.load(path, weights_only=True)            # the file itself is plain data and tensors
    return variant_io.load_result(path, rebuild)


def _frames(n: int = 12) -> dict[str, pd.DataFrame]:
    target = np.arange(n) % 3 == 0
    return {s: pd.DataFrame({"image_id": [f"{s}{i}" for i in range(n)], "target": target.astype(int),
                             "group_id": [f"p{i}" for i in range(n)]}) for s in ("train", "val", "test")}


def _scored_variant():
    """Study 002's scored row, with a history, metrics (NaN, None, NumPy scalars) and provenance."""
    rng = np.random.default_rng(0)
    frames = _frames()
    scores = {s: rng.random(12) for s in ("val", "test")}
    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [0.7, np.float32(0.5)], "val_roc_auc": [NAN, 0.61]})
    record = {"n_params": np.int64(123), "best_epoch_skipped": None, "prototype_separation": np.float64(0.25),
              "device": "cpu"}
    return scored_variant("SDC test", frames, scores, {"backbone": "resnet18", "sha256": None}, 1.5, history, record)


def _sweep_rows() -> list[dict]:
    return [{"method": "SDC COM-Triplet", "majority": 4, "minority": 2, "repeat": 0, "ratio": "4:2",
             "roc_auc": 0.75, "skipped": None},
            {"method": "Classifier", "majority": 4, "minority": 2, "repeat": 0, "ratio": "4:2", "roc_auc": NAN,
             "skipped": "the test split has one class"}]


def _trained(model: nn.Module, seed: int = 1) -> nn.Module:
    """`model` with weights no fresh build has, part of it frozen, channels-last, in eval mode: what a trained
    variant returns."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator))
    first = next(model.parameters())
    first.requires_grad_(False)
    return model.to(memory_format=torch.channels_last).eval()     # as the engine leaves a trained CNN


def _ablation_grid(folder: Path) -> study001.AblationGrid:
    recipe = TrainConfig(epochs=1, batch_size=4, device="cpu")
    return study001.AblationGrid({}, {}, "resnet18", "none", False, recipe, 0.25, 2.0, folder)


@pytest.mark.parametrize("make", [_scored_variant, lambda: skipped_variant("CAE", "nothing to split", {"a": None}),
                                  _sweep_rows], ids=["scored", "skipped", "sweep"])
def test_study002_results_come_back_equal(make, tmp_path):
    result = make()
    assert_same(round_trip(result, tmp_path), result)


def test_study001_variant_and_its_trained_model_come_back_equal(tmp_path):
    grid = _ablation_grid(tmp_path)
    ablation = study001.variant("recipe", 24, 24, 0.2, 1, 1, 0.75)
    model = _trained(study001.rebuild_classifier(ablation, grid))
    result = (_scored_variant(), model)

    back = round_trip(result, tmp_path, lambda: study001.rebuild_classifier(ablation, grid))
    assert_same(back, result)
    images = torch.rand(2, 3, 24, 24)
    assert torch.equal(back[1](images), model(images))


def _seed_run(masks: bool) -> SeedRun:
    rng = np.random.default_rng(4)
    model = _trained(ModelSpec(8, 16, 4, 3).build(7, []))
    y = np.array([0, 1, 2, 0, 1, 2, 0, 0])
    prob = rng.dirichlet([1, 1, 1], len(y))
    maps = [rng.random((4, 4)) for _ in y]
    truth = [rng.random((4, 4)) > 0.5 for _ in y] if masks else None
    truth = truth if truth is None else [None, *truth[1:]]           # an image kept without its mask
    seg = segment(maps[:3], truth[:3] if masks else None, maps, truth)
    history = pd.DataFrame({"epoch": [1], "train_loss": [1.1], "val_acc": [0.5]}).assign(model="seed 7")
    return SeedRun(7, model, history, prob, [rng.random(9).astype(np.float32) for _ in y],
                   recognition(prob, y, CLASSES, seed=7), seg)


@pytest.mark.parametrize("masks", [True, False], ids=["masks", "no-masks"])
def test_study004_seed_run_comes_back_equal(masks, tmp_path):
    run = _seed_run(masks)
    assert_same(round_trip(run, tmp_path, lambda: ModelSpec(8, 16, 4, 3).build(7, [])), run)


def test_builtins_containers_arrays_and_paths_come_back_equal(tmp_path):
    value = {"ints": (1, np.int32(-2), np.uint8(3)), 4: {"nested": [np.float32(0.5), np.bool_(True)]},
             ("a", 1): frozenset({1, 2}), "set": {"x"}, variant_io.TAG: "a key that looks like a tag",
             "array": np.arange(6, dtype=np.float16).reshape(2, 3), "empty": np.zeros((0, 4)),
             "strings": np.array(["a", "bcd"]), "objects": np.array([None, np.ones(2), "x"], dtype=object),
             "series": pd.Series([1.0, NAN], index=["a", "b"], name="auc"), "tensor": torch.arange(3.0),
             "path": Path("runs/smoke"), "frozen": study001.variant("recipe", 24, 24, 0.2, 1, 1, 0.75)}
    assert_same(round_trip(value, tmp_path), value)


class Trap:
    """Pickles as a call of `_spring`: a file holding it runs code when unpickled without `weights_only`."""

    def __reduce__(self):
        return _spring, ()


SPRUNG: list[str] = []


def _spring() -> str:
    SPRUNG.append("ran")
    return "ran"


def test_a_file_holding_a_pickled_object_is_refused_unrun(tmp_path):
    path = tmp_path / "seed_0.pt"
    torch.save({"name": "seed_0", "scores": Trap()}, path)
    assert torch.load(path, weights_only=False)["scores"] == "ran" and SPRUNG == ["ran"]   # lenient: it runs
    with pytest.raises(variant_io.VariantIOError, match="seed_0.pt: not a variant result"):
        variant_io.load_result(path)
    assert SPRUNG == ["ran"]


@pytest.mark.parametrize("name, message", [("subprocess:Popen", "only derm_nb"), ("os:system", "only derm_nb"),
                                           ("derm_nb.cluster:run_variants", "names no dataclass")])
def test_a_file_naming_a_class_outside_the_package_dataclasses_is_refused(name, message, tmp_path):
    path = tmp_path / "forged.pt"
    torch.save({"run": {variant_io.TAG: "dataclass", "type": name, "fields": {}}}, path)
    with pytest.raises(variant_io.VariantIOError, match=message):
        variant_io.load_result(path)


@pytest.mark.parametrize("value, where", [({"a": [object()]}, r"result\['a'\]\[0\]"),
                                          ({"counts": Counter("aab")}, r"result\['counts'\]: a collections.Counter"),
                                          ({"frame": pd.DataFrame({"mixed": [1, "x"]})}, r"result\['frame'\]"),
                                          ([pd.DataFrame({"n": pd.Series([1, 2.5], dtype=object)})], r"result\[0\]")])
def test_what_cannot_be_plain_data_is_named_and_nothing_is_written(value, where, tmp_path):
    with pytest.raises(TypeError, match=where):
        variant_io.save_result(tmp_path / "r.pt", value)
    assert not list(tmp_path.iterdir())


def test_a_model_needs_a_rebuild_of_its_own_class(tmp_path):
    path = variant_io.save_result(tmp_path / "r.pt", {"model": nn.Linear(2, 1)})
    with pytest.raises(variant_io.VariantIOError, match=r"\['model'\].*no `rebuild`"):
        variant_io.load_result(path)
    with pytest.raises(variant_io.VariantIOError, match="built a torch.nn.modules.conv:Conv1d"):
        variant_io.load_result(path, lambda: nn.Conv1d(2, 1, 1))
    assert isinstance(variant_io.load_result(path, lambda: nn.Linear(2, 1))["model"], nn.Linear)
