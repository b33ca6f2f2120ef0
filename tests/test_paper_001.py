"""Study 001 follows its paper: the full profile's epochs and checkpoint, the cache that holds the 300 px
ablation, the colour jitter, the milestone-1 baseline and the two readings of "Shades of Grey"."""

from __future__ import annotations

import kornia.augmentation as K
import pytest
import torch
from torch import nn

from derm_nb.book_workload import passes
from derm_nb.datasets import CachedImages
from derm_nb.losses import FocalBCE
from derm_nb.runner import resolved_parameters
from derm_nb.studies import study001
from derm_nb.train import TrainConfig, _scheduler, fit

STEM = study001.CHAPTER


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4, 1)

    def forward(self, image, **_):
        return self.head(self.backbone(image))


def data(seed: int = 0) -> CachedImages:
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(64, generator=g) < 0.4).long()
    images = (torch.rand(64, 3, 8, 8, generator=g) * 120).to(torch.uint8)
    images[y == 1] += 100
    return CachedImages(images, y.numpy(), transform=lambda x: x.float() / 255)


def _variants(**kw) -> dict[str, study001.Ablation]:
    sizes = {"image_size": 224, "ablation_size": 300, "mixup_alpha": 0.2, "epochs": 20, "ablation_epochs": 15,
             "baseline_focal_alpha": 0.75, **kw}
    return {k: study001.variant(k, **sizes) for k in study001.VARIANTS}


@pytest.fixture(scope="module")
def full(root):
    return resolved_parameters(root, "full")


def test_full_runs_the_papers_epochs_and_keeps_the_last(full):
    p = full[STEM]
    assert (p["epochs"], p["ablation_epochs"], p["keep_epoch"], p["cosine_epochs"]) == (20, 15, "last", 30)
    assert (p["image_size"], p["ablation_size"], p["focal_alpha"], p["baseline_focal_alpha"]) == (224, 300, 0.6, 0.75)
    assert {"milestone1", "shades_of_grey", "greyscale"} <= set(p["variants"])


def test_full_caches_the_largest_size_any_chapter_asks_for(full):
    asked = [v for stem, p in full.items() for k, v in p.items() if k in ("image_size", "ablation_size")]
    assert full["00_data"]["cache_size"] >= max(asked) == 300


def test_the_recipe_and_baseline_run_epochs_and_the_ablations_ablation_epochs():
    v = _variants()
    assert v["recipe"].epochs == v["milestone1"].epochs == 20
    assert {v[k].epochs for k in study001.VARIANTS if k not in ("recipe", "milestone1")} == {15}
    assert v["ablation_size"].size == 300 and v["recipe"].size == 224


def test_the_workload_follows_the_ablation_epochs(full):
    def images(**kw):
        return sum(w.images for w in passes({**full, STEM: {**full[STEM], **kw}})[STEM] if w.train)

    assert images(ablation_epochs=30) > images()
    assert images(ablation_epochs=30, epochs=40) == pytest.approx(2 * images())


def test_keep_last_trains_every_epoch_and_keeps_the_last_weights(tmp_path):
    model = Tiny()
    result = fit(model, FocalBCE(0.6, 2.0), data(), data(seed=1),
                 TrainConfig(epochs=6, batch_size=16, lr=0.0, patience=1, device="cpu", keep="last"), tmp_path)
    assert len(result.history) == 6 and result.best_epoch == 1   # lr 0: no gain after epoch 1, yet no stop
    model = Tiny()
    fit(model, FocalBCE(0.6, 2.0), data(), data(seed=1),
        TrainConfig(epochs=4, batch_size=16, lr=0.05, patience=9, device="cpu", keep="last"), tmp_path / "b")
    last = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(v, last[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="keep"):
        fit(Tiny(), FocalBCE(0.6, 2.0), data(), data(seed=1), TrainConfig(epochs=1, keep="first"), tmp_path / "c")


def test_the_cosine_schedule_runs_over_its_own_length():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    assert _scheduler(opt, TrainConfig(epochs=20, cosine_epochs=30)).T_max == 30
    assert _scheduler(opt, TrainConfig(epochs=20)).T_max == 20


def test_a_variant_larger_than_the_cache_is_refused_not_upsampled():
    v = _variants()
    kept, notes = study001.within_cache(list(v.values()), cache_px=256)
    assert "ablation_size" not in {a.key for a in kept} and len(kept) == len(v) - 1
    assert len(notes) == 1 and "300 px" in notes[0] and "256 px" in notes[0]
    assert study001.within_cache(list(v.values()), cache_px=300) == (list(v.values()), [])
    with pytest.raises(ValueError, match="recipe"):
        study001.within_cache([v["recipe"]], cache_px=128)
    with pytest.raises(ValueError, match="must include 'recipe'"):
        study001.within_cache([v["mixup"]], cache_px=300)


def test_colour_jitter_is_brightness_contrast_saturation_without_hue():
    jitters = [m for m in study001.transform(32, train=True).augment.children() if isinstance(m, K.ColorJitter)]
    assert len(jitters) == 1
    j = jitters[0]
    strengths = [float(torch.as_tensor(getattr(j, a)).max()) for a in ("brightness", "contrast", "saturation")]
    assert strengths == pytest.approx([0.1, 0.1, 0.1])
    assert float(torch.as_tensor(j.hue).abs().max()) == 0


def test_the_milestone1_baseline_drops_what_the_recipe_added():
    recipe = TrainConfig(epochs=20, sampler_pos_share=0.4, freeze_backbone_epochs=1, amp=True, grad_accum=2)
    base = _variants()["milestone1"]
    cfg = study001.train_config(base, recipe)
    assert (cfg.sampler_pos_share, cfg.freeze_backbone_epochs, cfg.amp, cfg.grad_accum) == (0.0, 0, False, 1)
    assert study001.loss(base, 0.6, 2.0).alpha == 0.75
    same = study001.train_config(_variants()["recipe"], recipe)
    assert same == recipe and study001.loss(_variants()["recipe"], 0.6, 2.0).alpha == 0.6


def test_the_papers_claim_against_milestone1_is_quoted_from_the_card():
    claim = study001.CARD.tables["Claim"].iloc[0]
    assert (claim["from"], claim["to"]) == (0.02, 0.03)
    results = study001.CARD.tables["Results"]["AUROC"]
    assert study001.milestone_gain({"Recipe": results["Recipe (20 epochs)"],
                                    "Milestone 1 baseline": results["Milestone 1 baseline"]}).count("within") == 1
    assert "outside" in study001.milestone_gain({"Recipe": 0.80, "Milestone 1 baseline": 0.81})
    assert "not run" in study001.milestone_gain({"Recipe": 0.8})
    assert "could not be scored" in study001.milestone_gain({"Recipe": None, "Milestone 1 baseline": 0.8})


def test_shades_of_grey_and_greyscale_are_two_different_steps():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 16, 16, generator=g) * torch.tensor([1.0, 0.6, 0.3])[:, None, None]
    grey = study001.Greyscale()(image)
    assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 1], grey[:, 2])
    constancy = study001.ShadesOfGrey()(image[0])
    assert not torch.allclose(constancy[0], constancy[2])   # colour constancy keeps colour
    titles = {k: a.title for k, a in _variants().items()}
    assert "colour constancy" in titles["shades_of_grey"] and "text" in titles["greyscale"]
    with pytest.raises(KeyError, match="colour"):
        study001.transform(32, train=False, colour="sepia")
