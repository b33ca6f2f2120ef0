"""Study 002 follows its paper (issue #20): the dense-free embedder, COM-Triplet with a fixed margin, the direct
classifiers' optimiser, epoch selection and per-batch loss weighting, the full-covariance GMM, and backbones
that fall back to one stand-in offline."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from derm_nb.models.backbones import Provenance
from derm_nb.results import skipped_variant, write_model_artifacts
from derm_nb.studies.study002 import CARD
from derm_nb.studies.study002.experiments import (
    chosen_sdc,
    classifier_settings,
    distinct_backbones,
    repeat_notes,
    resolve,
    scored_variant,
    split_table,
    validation_auc_of,
)
from derm_nb.studies.study002.inputs import Embedder, FeatureSet, ModelInputs, embedding_backbone
from derm_nb.studies.study002.losses import BatchBalancedBCE, centre_loss, com_triplet_loss, triplet_loss
from derm_nb.studies.study002.training import ClusterConfig, gmm_pseudo_labels, train_clustering
from derm_nb.train import TrainConfig, fit, make_optimizer

VGG16_CONV_PARAMETERS = 14_714_688  # VGG16's 13 convolutions (torchvision); fc6 + fc7 would add 119,545,856


def cosine_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 1 - (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_the_vgg16_embedder_replaces_every_dense_layer_by_the_embedding_layer():
    module, width, _ = embedding_backbone("vgg16", "none")
    model = Embedder(module, width, dim=128)
    assert width == 512
    assert sum(p.numel() for p in model.parameters()) == VGG16_CONV_PARAMETERS + 512 * 128 + 128
    assert [n for n, m in model.named_modules() if isinstance(m, nn.Linear)] == ["embedding"]
    assert model.eval()(torch.zeros(2, 3, 64, 64)).shape == (2, 128)


def test_the_direct_classifier_is_the_same_backbone_with_one_output_layer():
    images = {s: torch.zeros(4, 3, 32, 32, dtype=torch.uint8) for s in ("train", "val", "test")}
    inputs = ModelInputs("all", "vgg16", "none", "", images, {s: np.array([0, 1, 0, 1]) for s in images}, 32)
    classifier = inputs.classifier()
    assert sum(p.numel() for p in classifier.parameters()) == VGG16_CONV_PARAMETERS + 512 + 1
    assert not any(isinstance(m, nn.Dropout) for m in classifier.modules())


def test_head_mode_features_carry_the_pooled_stages_when_asked():
    images = {s: torch.randint(0, 255, (4, 3, 32, 32), dtype=torch.uint8) for s in ("train", "val", "test")}
    targets = {s: np.array([0, 1, 0, 1]) for s in images}
    plain = ModelInputs("head", "vgg16", "none", "", images, targets, 32, aug_views=0)
    staged = ModelInputs("head", "vgg16", "none", "", images, targets, 32, aug_views=0, feature_stages=2)
    assert (plain.width, staged.width) == (512, 512 + 512 + 512)   # VGG's last two pools, then its own output
    assert staged.features("val").shape == (4, 1536) and "last 2 stages pooled" in staged.describe()
    assert np.allclose(staged.features("val")[:, -512:], plain.features("val"), atol=1e-5)


def test_the_efficientnet_b3_embedder_has_only_the_studys_dropout():
    module, width, _ = embedding_backbone("efficientnet_b3", "none")
    model = Embedder(module, width)
    dropouts = [(n, m.p) for n, m in model.named_modules() if isinstance(m, nn.Dropout)]
    assert dropouts == [("dropout", 0.3)] and width == 1536


@pytest.mark.parametrize("alpha", [0.2, 0.6])
def test_fixed_margin_com_triplet_is_eq3_with_a_constant_alpha(alpha):
    rng = np.random.default_rng(0)
    a, p, n = (rng.normal(size=(7, 5)) for _ in range(3))
    dist_wa = cosine_np(a, p) - 0.5 * (cosine_np(a, n) + cosine_np(p, n))
    expected = np.maximum(0, dist_wa + alpha).mean()
    got = com_triplet_loss(*(torch.as_tensor(v, dtype=torch.float64) for v in (a, p, n)), margin=alpha)
    assert got.item() == pytest.approx(expected, rel=1e-9)
    adaptive = np.maximum(0, dist_wa + 1 - cosine_np(p, n)).mean()
    assert com_triplet_loss(*(torch.as_tensor(v) for v in (a, p, n))).item() == pytest.approx(adaptive, rel=1e-9)
    # Hand-computed: A = (1, 0), P = (1, 1), N = (0, 1): d(A,P) = d(P,N) = q, d(A,N) = 1.
    q = 1 - 1 / math.sqrt(2)
    one = com_triplet_loss(torch.tensor([[1.0, 0]]), torch.tensor([[1.0, 1]]), torch.tensor([[0.0, 1]]), alpha)
    assert one.item() == pytest.approx(max(0.0, q - 0.5 * (1 + q) + alpha), abs=1e-6)
    plain = np.maximum(0, cosine_np(a, p) - cosine_np(a, n) + alpha).mean()   # Eq. 2: a different loss
    assert triplet_loss(*(torch.as_tensor(v) for v in (a, p, n)), alpha).item() == pytest.approx(plain, rel=1e-9)
    assert abs(plain - expected) > 0.05


def test_udc_fixed_margin_com_triplet_against_the_centres():
    mu_min, mu_maj = torch.tensor([1.0, 1]), torch.tensor([1.0, 0])
    q = 1 - 1 / math.sqrt(2)   # d(mu_min, mu_maj), and d((1, 0), mu_min)
    e, majority = torch.tensor([[1.0, 0]]), torch.tensor([False])
    assert centre_loss(e, majority, mu_min, mu_maj, 0.6).item() == pytest.approx(0 - 0.5 * (q + q) + 0.6, abs=1e-6)
    assert centre_loss(e, majority, mu_min, mu_maj, 0.6, com=False).item() == pytest.approx(0 - q + 0.6, abs=1e-6)
    with pytest.raises(ValueError, match="constant margin"):
        centre_loss(e, majority, mu_min, mu_maj, None, com=False)


def test_the_traditional_triplet_loss_needs_its_margin(tmp_path):
    x = FeatureSet(np.eye(4, dtype=np.float32), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="triplet"):
        train_clustering(Embedder(None, 4, 2), x, x, ClusterConfig(loss="triplet", epochs=1, device="cpu"), tmp_path)


def test_loss_weighting_is_recomputed_from_each_batch():
    logits, loss = torch.tensor([0.3, -1.0, 2.0, 0.1]), BatchBalancedBCE()
    bce = F.binary_cross_entropy_with_logits(logits, torch.zeros(4), reduction="none")
    bce_pos = F.binary_cross_entropy_with_logits(logits, torch.ones(4), reduction="none")
    # One melanoma in four: w_min = 4 / (2 * 1) = 2, w_maj = 4 / (2 * 3) = 2/3 (Eq. 1).
    y = torch.tensor([1.0, 0, 0, 0])
    expected = (2 * bce_pos[0] + 2 / 3 * bce[1:].sum()) / 4
    assert loss(logits, y).item() == pytest.approx(expected.item(), rel=1e-6)
    # Two in four: both weights 1, plain BCE; a batch of one class: weight 1, plain BCE.
    y2 = torch.tensor([1.0, 1, 0, 0])
    assert loss(logits, y2).item() == pytest.approx(F.binary_cross_entropy_with_logits(logits, y2).item(), rel=1e-6)
    assert loss(logits, torch.zeros(4)).item() == pytest.approx(bce.mean().item(), rel=1e-6)


def test_direct_classifiers_use_the_studys_adam_and_keep_the_best_validation_auc_epoch(tmp_path):
    cfg = TrainConfig(**classifier_settings(epochs=4, batch_size=8, lr=0.05, device="cpu", seed=0))
    group = make_optimizer(nn.Linear(2, 1).parameters(), cfg).param_groups[0]
    assert group["betas"] == (0.9, 0.99) and group["eps"] == 1e-7 and group["lr"] == 0.05
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(40, int), np.ones(10, int)]
    x = (rng.normal(size=(50, 3)) + y[:, None]).astype(np.float32)
    yv = np.r_[np.zeros(20, int), np.ones(6, int)]
    xv = (rng.normal(size=(26, 3)) + 0.5 * yv[:, None]).astype(np.float32)
    torch.manual_seed(0)
    result = fit(nn.Linear(3, 1), BatchBalancedBCE(), FeatureSet(x, y), FeatureSet(xv, yv), cfg, tmp_path)
    aucs = result.history["val_roc_auc"].to_numpy()
    assert len(aucs) == 4 and result.best_epoch == int(np.argmax(aucs)) + 1
    assert result.best_value == pytest.approx(aucs.max())
    with pytest.raises(ValueError, match="epoch_threshold"):
        fit(nn.Linear(3, 1), BatchBalancedBCE(), FeatureSet(x, y), FeatureSet(xv, yv),
            TrainConfig(epochs=1, monitor="val_roc_auc", device="cpu"), tmp_path / "b")


def test_the_gmm_has_the_papers_full_covariance():
    assert ClusterConfig().gmm_covariance == "full" and CARD.settings["05_deep_clustering"]["gmm_covariance"] == "full"
    rng = np.random.default_rng(0)
    along, across = np.array([1, 1]) / math.sqrt(2), np.array([1, -1]) / math.sqrt(2)

    def thin(n: int, shift: float) -> np.ndarray:
        return rng.normal(0, 3, (n, 1)) * along + (rng.normal(0, 0.1, (n, 1)) + shift) * across + 5

    x, y = np.r_[thin(60, 0.0), thin(15, 0.8)], np.r_[np.zeros(60, bool), np.ones(15, bool)]
    full, _, _ = gmm_pseudo_labels(x, ClusterConfig(gmm_covariance="full"), 0)
    diag, _, _ = gmm_pseudo_labels(x, ClusterConfig(gmm_covariance="diag"), 0)
    assert (full == y).all() and (diag == y).mean() < 0.9   # two thin, tilted clusters: only full sees them


class Stub:
    def __init__(self, provenance: Provenance):
        self.provenance = provenance


def lite0(asked: str) -> Provenance:
    return Provenance("efficientnet_lite0", "imagenet", "PyPI package", "abc", asked)


def test_offline_stand_ins_are_run_once_and_named_by_the_backbone_asked_for(tmp_path):
    built: list[str] = []

    def inputs_for(name: str) -> Stub:
        built.append(name)
        return Stub(Provenance("densenet169", "imagenet", "torch hub cache", "d1") if name == "densenet169"
                    else lite0(name))

    main = Stub(lite0("vgg16"))
    used, repeats = distinct_backbones(["vgg16", "resnet50", "densenet169", "efficientnet_b3"], "vgg16", main,
                                       inputs_for)
    assert list(used) == ["vgg16", "densenet169"] and used["vgg16"] is main
    assert repeats == {"resnet50": "vgg16", "efficientnet_b3": "vgg16"} and "vgg16" not in built
    assert "repeat `vgg16`'s" in repeat_notes(repeats, used)[0]
    main.features = {"train": np.zeros(2)}
    shared = resolve("resnet50", used, inputs_for)   # the classifier backbone reuses its twin's features
    assert shared.features is main.features and shared.provenance.substituted_for == "resnet50"
    assert main.provenance.substituted_for == "vgg16"
    # Two rows of one name are refused, never written over each other.
    frames = {s: __import__("pandas").DataFrame({"image_id": ["a", "b"], "target": [0, 1]}) for s in ("val", "test")}
    scores = {"val": np.array([0.2, 0.8]), "test": np.array([0.3, 0.7])}
    rows = [scored_variant(f"SDC {name}", frames, scores, u.provenance.as_dict()) for name, u in used.items()]
    write_model_artifacts(tmp_path, rows)
    assert set(json.loads((tmp_path / "metrics.json").read_text())["variants"]) == {"SDC vgg16", "SDC densenet169"}
    with pytest.raises(ValueError, match="share a name"):
        write_model_artifacts(tmp_path / "twice", rows + rows[:1])


def test_the_main_sdc_is_the_candidate_with_the_best_validation_auc():
    """§V.A: the validation set picks the configuration used thereafter; the test split plays no part."""

    frames = {s: pd.DataFrame({"image_id": list("abcd"), "target": [0, 0, 1, 1]}) for s in ("val", "test")}

    def row(name: str, val: list[float], test: list[float]):
        return scored_variant(name, frames, {"val": np.array(val), "test": np.array(test)}, {})

    tl = row("SDC vgg16", [0.1, 0.6, 0.4, 0.9], [0.1, 0.2, 0.8, 0.9])   # validation AUC 0.75, test 1.0
    da = row("SDC TL+DA", [0.1, 0.2, 0.8, 0.9], [0.9, 0.8, 0.2, 0.1])   # validation AUC 1.0, test 0.0
    skipped = skipped_variant("SDC NP", "no triplets", {})
    assert validation_auc_of(tl) == 0.75 and validation_auc_of(da) == 1.0 and math.isnan(validation_auc_of(skipped))
    assert chosen_sdc([tl, da, skipped]) is da
    assert chosen_sdc([skipped, tl]) is tl
    assert chosen_sdc([skipped]) is skipped


def test_the_summary_quotes_the_main_sdc_not_the_best_on_test():

    from derm_nb.studies.study002 import verdict

    rows = pd.DataFrame({"roc_auc": [0.70, 0.75, 0.80, 0.60], "main": [True, False, False, False]},
                        index=["SDC TL+DA", "SDC vgg16", "Classifier vgg16", "UDC COM-Triplet"])
    assert "SDC 0.700 (SDC TL+DA, picked on validation) vs best direct classifier 0.800" in verdict(rows)
    assert "(study: 0.888 vs 0.842 on ISIC 2020); best UDC 0.600 (study: 0.708)" in verdict(rows)  # AUCs, not %
    assert "SDC 0.750 (the best on test)" in verdict(rows.drop(columns="main"))


def test_the_card_holds_the_papers_settings_and_says_why_full_departs():
    settings = CARD.settings["05_deep_clustering"]
    assert settings["backbones"] == ["vgg16", "resnet50", "densenet169", "efficientnet_b3"]
    assert (settings["epochs"], settings["batch_size"], settings["lr"], settings["image_size"]) == (15, 15, 1e-5, 256)
    assert settings["classifier_backbone"] == "resnet50" and settings["margins"] == [0.2, 0.6]
    assert set(CARD.reasons["05_deep_clustering"]) == {"sweep_scale"}
    assert "75 %" in CARD.splits and "12.5 %" in CARD.splits


def test_the_split_table_counts_the_patients_behind_the_melanomas_and_the_largest_patient():
    frame = lambda groups, targets: pd.DataFrame({"group_id": groups, "target": targets})
    table = split_table({"train": frame(["a", "a", "a", "b", "c", "c"], [1, 1, 0, 0, 1, 0]),
                         "test": frame(["d", "e"], [0, 0])})
    assert table.loc["train", "patients"] == 3 and table.loc["train", "patients with a melanoma"] == 2
    assert table.loc["train", "largest patient's share"] == pytest.approx(0.5)
    assert table.loc["test", "patients with a melanoma"] == 0 and table.loc["test", "melanomas"] == 0


def test_variants_list_every_trained_row_of_the_chapters_tables_in_order(real_declared):
    """One `run_variants` call trains the chapter: `variants` names every row its tables show, each once."""
    from derm_nb.studies import study002
    from derm_nb.studies.study002.rows import MAIN, SCRATCH, STRATEGY, STRATEGY_SCRATCH, TABLES, by_table

    notebook = {name: d.default for name, d in real_declared["05_deep_clustering"].items()}
    p = study002.params("05_deep_clustering", {**notebook, "backbones": ["resnet50", "vgg16"], "margins": [0.2, 0.6]})
    jobs = study002.variants(p)
    names = [row.name for row in jobs.values()]
    assert names == ["SDC vgg16", "SDC resnet50", "SDC COM-Triplet α=0.2", "SDC COM-Triplet α=0.6",
                     "SDC triplet α=0.2", "SDC NP", "SDC TL+DA", "Classifier vgg16", "Classifier resnet50",
                     "Classifier NP", "Classifier TL+DA", "Classifier TL+LW", "UDC COM-Triplet",
                     "UDC COM-Triplet α=0.2", "UDC COM-Triplet α=0.6", "UDC triplet α=0.2", "GMM", "K-Means", "PCA",
                     "Fast ICA", "LLE", "ODL", "CAE"]
    assert len({row.folder for row in jobs.values()}) == len(jobs) == len(set(names))
    assert {row.backbone for row in jobs.values()} == {"vgg16", "resnet50", MAIN, SCRATCH, STRATEGY, STRATEGY_SCRATCH}
    udc = [row for row in jobs.values() if row.table == "UDC"]
    assert {row.mode for row in udc} == {"unsupervised"} and udc[0].margin is None and udc[-1].loss == "triplet"
    grouped = by_table({key: row.name for key, row in jobs.items()}, jobs)
    assert list(grouped) == list(TABLES) and sum(map(len, grouped.values())) == len(jobs)
    assert grouped["SDC strategy"] == ["SDC NP", "SDC TL+DA"] and grouped["Shallow"][-1] == "CAE"


def test_a_backbone_left_out_as_a_repeat_loses_its_rows_only(tmp_path):
    from derm_nb.studies.study002.baselines import CAEConfig
    from derm_nb.studies.study002.rows import ChapterInputs, rows

    jobs = rows("vgg16", ("vgg16", "resnet50"), (0.2,))
    inputs = ChapterInputs({}, {"resnet50": "vgg16"}, {}, {}, {}, CAEConfig(), tmp_path, 8, True, "full", 0)
    kept = [row.name for row in inputs.distinct(jobs).values()]
    assert "SDC resnet50" not in kept and "Classifier resnet50" not in kept
    assert len(kept) == len(jobs) - 2 and "SDC vgg16" in kept and "Classifier TL+LW" in kept
