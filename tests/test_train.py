"""The train loop: early stopping, best checkpoint, resume, atomic saves, determinism, sampler, freeze."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from derm_nb import datasets
from derm_nb.datasets import CachedImages
from derm_nb.losses import BCE, FocalBCE
from derm_nb.studies.study000 import FusionNet, GatedExperts, augment, encode_tabular, sex_gate
from derm_nb.train import TrainConfig, balanced_sampler, fit, predict
from derm_nb.transforms import eval_transform


class Tiny(nn.Module):
    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)  # the same initial weights every time, as a notebook seeds before building
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4, 1)

    def forward(self, image, **_):
        return self.head(self.backbone(image))


def data(n=64, seed=0, noise=False, size=None):
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, generator=g) < 0.4).long()
    images = (torch.rand(n, 3, 8, 8, generator=g) * 120).to(torch.uint8)
    if not noise:
        images[y == 1] += 100  # positives are brighter: learnable
    return CachedImages(images, y.numpy(), transform=(lambda x: x.float() / 255) if size is None else eval_transform(size))


def cfg(**kw):
    base = dict(epochs=6, batch_size=16, lr=0.05, optimizer="adam", patience=2, device="cpu", seed=0)
    base.update(kw)
    return TrainConfig(**base)


def test_training_learns_and_keeps_the_best_epoch(tmp_path):
    result = fit(Tiny(), BCE(), data(), data(seed=1), cfg(), tmp_path)
    h = result.history
    assert h["val_loss"].min() == pytest.approx(result.best_monitor)
    assert result.best_epoch == int(h.loc[h["val_loss"].idxmin(), "epoch"])
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]
    assert torch.load(tmp_path / "best.pt", weights_only=True)["epoch"] == result.best_epoch


def test_early_stopping_after_patience(tmp_path):
    # lr 0: the validation loss never improves after epoch 1, so training stops after 1 + patience epochs
    result = fit(Tiny(), BCE(), data(), data(seed=1), cfg(lr=0.0, patience=2, epochs=10), tmp_path)
    assert len(result.history) == 3 and result.best_epoch == 1


def test_min_epochs_delays_early_stopping(tmp_path):
    result = fit(Tiny(), BCE(), data(), data(seed=1), cfg(lr=0.0, patience=1, epochs=10, min_epochs=5), tmp_path)
    assert len(result.history) == 5


def test_same_seed_same_numbers(tmp_path):
    a = fit(Tiny(), BCE(), data(), data(seed=1), cfg(epochs=3), tmp_path / "a")
    b = fit(Tiny(), BCE(), data(), data(seed=1), cfg(epochs=3), tmp_path / "b")
    pd.testing.assert_frame_equal(a.history.drop(columns=["seconds", "data_wait_share"]),
                                  b.history.drop(columns=["seconds", "data_wait_share"]))


def test_resume_continues_where_it_stopped(tmp_path, monkeypatch):
    import derm_nb.train as train_module

    full = fit(Tiny(), BCE(), data(), data(seed=1), cfg(epochs=4, patience=99), tmp_path / "full")
    real_eval, calls = train_module.evaluate_outputs, {"n": 0}

    def killed_in_epoch_3(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_eval(*args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate_outputs", killed_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        fit(Tiny(), BCE(), data(), data(seed=1), cfg(epochs=4, patience=99), tmp_path / "part")
    monkeypatch.setattr(train_module, "evaluate_outputs", real_eval)
    assert torch.load(tmp_path / "part" / "last.pt", weights_only=True)["epoch"] == 1  # epochs 1-2 saved
    resumed = fit(Tiny(), BCE(), data(), data(seed=1), cfg(epochs=4, patience=99), tmp_path / "part")
    assert resumed.history["epoch"].tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(resumed.history["val_loss"], full.history["val_loss"], rtol=1e-5)


def test_interrupted_save_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    fit(Tiny(), BCE(), data(), data(seed=1), cfg(epochs=2, patience=99), tmp_path)
    before = torch.load(tmp_path / "last.pt", weights_only=True)["epoch"]
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        raise KeyboardInterrupt  # killed after writing the temporary file, before the rename

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        fit(Tiny(), BCE(), data(), data(seed=1), cfg(epochs=4, patience=99), tmp_path)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_backbone_freeze_keeps_weights(tmp_path):
    model = Tiny()
    before = model.backbone[0].weight.detach().clone()
    fit(model, BCE(), data(), data(seed=1), cfg(epochs=1, freeze_backbone_epochs=1), tmp_path)
    assert torch.equal(model.backbone[0].weight.detach().cpu(), before)
    fit(model, BCE(), data(), data(seed=1), cfg(epochs=2, freeze_backbone_epochs=1, resume=False), tmp_path / "b")
    assert not torch.equal(model.backbone[0].weight.detach().cpu(), before)


def test_balanced_sampler_hits_the_share():
    targets = np.array([1] * 10 + [0] * 990)
    sampler = balanced_sampler(targets, 0.4, seed=0)
    drawn = targets[list(sampler)]
    assert drawn.mean() == pytest.approx(0.4, abs=0.05)


def test_predict_returns_probabilities():
    ds = data()
    p = predict(Tiny(), ds, device="cpu")
    assert p.shape == (64,) and ((p > 0) & (p < 1)).all()


def test_focal_loss_known_values():
    focal = FocalBCE(alpha=0.6, gamma=2.0)
    logit = torch.tensor([0.0])
    # p = 0.5: loss = alpha * 0.25 * ln 2 for a positive, (1 - alpha) * 0.25 * ln 2 for a negative
    assert float(focal(logit, torch.tensor([1.0]))) == pytest.approx(0.6 * 0.25 * np.log(2))
    assert float(focal(logit, torch.tensor([0.0]))) == pytest.approx(0.4 * 0.25 * np.log(2))
    # gamma 0 and alpha 0.5 is half the BCE
    half = FocalBCE(alpha=0.5, gamma=0.0)
    x, t = torch.tensor([2.0, -1.0, 0.3]), torch.tensor([1.0, 0.0, 1.0])
    assert float(half(x, t)) == pytest.approx(0.5 * float(nn.functional.binary_cross_entropy_with_logits(x, t)))
    # a confident correct prediction costs far less than under BCE
    assert float(focal(torch.tensor([4.0]), torch.tensor([1.0]))) < 1e-3 * float(BCE()(torch.tensor([4.0]), torch.tensor([1.0])))


def test_fusion_and_experts_shapes_and_gates():
    train = pd.DataFrame({"sex": ["male", "female", "unknown"], "site": ["torso", "head/neck", "unknown"],
                          "age": [50.0, 30.0, 40.0]})
    (tab,) = encode_tabular(train)
    assert tab.shape == (3, 3 + 3 + 1)
    gate = sex_gate(train["sex"])
    assert gate.tolist() == [[1, 0], [0, 1], [0.5, 0.5]]
    backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    net = FusionNet(backbone, 4, tab.shape[1]).eval()
    assert net(torch.zeros(3, 3, 8, 8), torch.as_tensor(tab)).shape == (3, 1)
    experts = GatedExperts([backbone, nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())],
                           4, tab.shape[1]).eval()
    assert experts(torch.zeros(3, 3, 8, 8), torch.as_tensor(tab), torch.as_tensor(gate)).shape == (3, 1)


def test_mixup_training_runs_and_resumes_exactly(tmp_path):
    a = fit(Tiny(), BCE(), data(), data(seed=1), cfg(epochs=2, mixup_alpha=0.2), tmp_path / "a")
    b = fit(Tiny(), BCE(), data(), data(seed=1), cfg(epochs=2, mixup_alpha=0.2), tmp_path / "b")
    np.testing.assert_allclose(a.history["train_loss"], b.history["train_loss"])
    plain = fit(Tiny(), BCE(), data(), data(seed=1), cfg(epochs=2), tmp_path / "c")
    assert not np.allclose(a.history["train_loss"], plain.history["train_loss"])


def test_checkpoint_of_another_configuration_is_not_resumed(tmp_path, capsys):
    fit(Tiny(), BCE(), data(), data(seed=1), cfg(epochs=2, patience=99), tmp_path)
    changed = fit(Tiny(), BCE(), data(), data(seed=1), cfg(epochs=2, patience=99, lr=0.5), tmp_path)
    assert "starting over" in capsys.readouterr().out
    assert changed.history["epoch"].tolist() == [1, 2]
    again = fit(Tiny(), BCE(), data(), data(seed=1), cfg(epochs=2, patience=99, lr=0.5), tmp_path)
    pd.testing.assert_frame_equal(again.history, changed.history)  # same configuration: resumed, not retrained


def test_augmented_copies_are_fixed_and_computed_once(monkeypatch):
    images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    calls = []
    draw = datasets._fixed_copies
    monkeypatch.setattr(datasets, "_fixed_copies", lambda *a, **k: calls.append(1) or draw(*a, **k))
    ds = CachedImages(images, np.zeros(3), transform=lambda x: x, copies=2, augment=augment(16), seed=3)
    first = ds.__getitems__(range(len(ds)))["image"]
    second = ds.__getitems__(range(len(ds)))["image"]
    assert len(calls) == 1 and torch.equal(first, second) and first.dtype == torch.uint8
    fresh = CachedImages(images, np.zeros(3), transform=lambda x: x, copies=2, augment=augment(16), seed=3)
    assert torch.equal(first, fresh.__getitems__(range(len(fresh)))["image"])  # the same copies in a new run
    assert torch.equal(first[0], images[0]) and torch.equal(first[3], images[1])  # item 0 of each image: itself
    assert not torch.equal(first[1], first[2])  # copies differ from each other


def test_copies_beyond_the_memory_bound_go_to_a_mapped_file_with_the_same_pixels(monkeypatch):
    images = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    in_ram = CachedImages(images, np.zeros(5), transform=lambda x: x, copies=2, augment=augment(16), seed=3)
    expected = in_ram.__getitems__(range(len(in_ram)))["image"]
    mapped = []
    open_memmap = np.lib.format.open_memmap
    monkeypatch.setattr(datasets, "COPIES_IN_MEMORY", 100)
    monkeypatch.setattr(np.lib.format, "open_memmap", lambda *a, **k: mapped.append(k["shape"]) or open_memmap(*a, **k))
    on_disk = CachedImages(images, np.zeros(5), transform=lambda x: x, copies=2, augment=augment(16), seed=3)
    assert torch.equal(on_disk.__getitems__(range(len(on_disk)))["image"], expected)
    assert mapped == [(5, 2, 3, 16, 16)]


def test_a_lone_last_batch_does_not_break_batchnorm(tmp_path):
    """17 images at batch 16 leave one image; BatchNorm refuses a batch of one in training mode."""

    class WithBatchNorm(Tiny):
        def __init__(self):
            super().__init__()
            self.head = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))

    result = fit(WithBatchNorm(), BCE(), data(n=17), data(seed=1), cfg(epochs=1), tmp_path)
    assert len(result.history) == 1


def test_training_bars_refresh_at_their_own_pace_off_a_terminal(tmp_path, monkeypatch):
    """Each refresh in a notebook is a message the client handles and keeps: a bar that refreshed on every step
    (the loss postfix) cost 05 about 15 s of message handling and 1.4 MB of output in one cell."""
    import io

    from derm_nb import progress

    monkeypatch.setattr(progress, "NOTEBOOK_INTERVAL", 3600.0)
    out = io.StringIO()  # not a terminal, as a kernel's stdout
    monkeypatch.setattr("sys.stdout", out)
    fit(Tiny(), BCE(), data(n=256), data(seed=1), cfg(epochs=1, batch_size=4, patience=5), tmp_path)
    assert out.getvalue().count("\r") <= 4  # the bar's first and last states, not one per step of 64
    assert progress.bar(range(3)).mininterval == 3600.0
    assert progress.bar(range(3), mininterval=0.5).mininterval == 0.5


def test_seeded_draws_from_its_seed_and_leaves_the_global_generators_as_they_were():
    import random

    from derm_nb.train import seeded

    with seeded(4):
        first = (torch.rand(3), np.random.rand(), random.random())
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = (torch.rand(3), np.random.rand(), random.random())
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    with seeded(4):
        again = (torch.rand(3), np.random.rand(), random.random())
    after = (torch.rand(3), np.random.rand(), random.random())
    assert torch.equal(first[0], again[0]) and first[1:] == again[1:]
    assert torch.equal(after[0], expected[0]) and after[1:] == expected[1:]


def test_a_checkpoint_trained_on_other_data_is_not_resumed(tmp_path, capsys):
    """Same model and configuration, but another image size or other images: training starts over."""
    fit(Tiny(), BCE(), data(), data(seed=1), cfg(epochs=2, patience=99), tmp_path)
    capsys.readouterr()
    fit(Tiny(), BCE(), data(), data(seed=1), cfg(epochs=2, patience=99), tmp_path)
    assert "starting over" not in capsys.readouterr().out        # the same data: resumed
    fit(Tiny(), BCE(), data(size=8), data(seed=1), cfg(epochs=2, patience=99), tmp_path)
    capsys.readouterr()
    fit(Tiny(), BCE(), data(size=16), data(seed=1), cfg(epochs=2, patience=99), tmp_path)
    assert "starting over" in capsys.readouterr().out
    fit(Tiny(), BCE(), data(seed=2), data(seed=1), cfg(epochs=2, patience=99), tmp_path)
    assert "starting over" in capsys.readouterr().out
