"""Every study has the same face: CARD, DATASETS, a typed parameters dataclass per model chapter built from
the notebook's parameters, variants(params), train_variant(variant, inputs) and findings(results)."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pandas as pd
import pytest

from derm_nb.cards import PaperCard
from derm_nb.chapters import CHAPTERS
from derm_nb.results import Variant, skipped_variant
from derm_nb.studies import STUDIES, study

FACE = ("CARD", "DATASETS", "params", "variants", "train_variant", "findings")
MODEL_CHAPTERS = {c.stem: c.study for c in CHAPTERS if c.kind == "model"}


@pytest.mark.parametrize("study_id", list(STUDIES))
def test_every_study_module_has_the_whole_face(study_id):
    module = study(study_id)
    missing = [name for name in FACE if not hasattr(module, name)]
    assert not missing, f"study {study_id} lacks {missing}"
    assert isinstance(module.CARD, PaperCard) and module.DATASETS
    assert list(inspect.signature(module.train_variant).parameters)[:2] == ["variant", "inputs"]
    assert next(iter(inspect.signature(module.findings).parameters)) == "results"


@pytest.mark.parametrize("stem", list(MODEL_CHAPTERS))
def test_each_model_chapter_gets_typed_parameters_from_its_own_defaults(stem, real_declared):
    module = study(MODEL_CHAPTERS[stem])
    notebook = {name: d.default for name, d in real_declared[stem].items()}
    p = module.params(stem, notebook)
    assert dataclasses.is_dataclass(p) and p.seed == notebook["seed"]
    fields = {f.name for f in dataclasses.fields(p)}
    assert fields <= set(notebook), f"{stem}: the dataclass names parameters the notebook lacks"
    # every parameter of the chapter's own is typed (the runner's three aside)
    assert set(notebook) - fields - {"profile", "run_dir", "scheduler", "score_split"} == set(), stem
    assert module.variants(p), f"{stem} has no variants under its default parameters"
    with pytest.raises(KeyError, match="seed"):
        module.params(stem, {k: v for k, v in notebook.items() if k != "seed"})


def _variant(name: str, auc: float | None, seconds: float = 1.0) -> Variant:
    metrics = {"roc_auc": auc, "roc_auc_ci_low": None if auc is None else auc - 0.1,
               "roc_auc_ci_high": None if auc is None else auc + 0.1, "f1_weighted": auc, "epochs_run": 1}
    return Variant(name, pd.DataFrame(), pd.DataFrame(), metrics, seconds, {}, 10)


def test_study000_findings_survive_none_and_skipped_metrics():
    """03's conclusion once crashed on max() over AUCs that were None (a validation split with one class)."""
    s = study("000")
    results = {"Sex experts (small)": _variant("Sex experts (small)", None),
               "Brightness experts (small)": skipped_variant("Brightness experts (small)", "one class", {})}
    out = s.findings(results, base={"Base All": {"roc_auc": None, "n_params": 10}})
    assert out["best_model"].startswith("none") and np.isnan(out["best_auc"]) and np.isnan(out["best_base_auc"])
    assert "0 of the 2" in out["small_experts"]
    base = s.findings({"Base All": _variant("Base All", 0.7, 10.0), "Base Small": _variant("Base Small", None)})
    assert base["best_model"] == "Base All" and "cannot be compared" in base["ci_overlap"]
    both = s.findings({"Base All": _variant("Base All", 0.7, 10.0), "Base Small": _variant("Base Small", 0.75, 2.0)})
    assert both["best_model"] == "Base Small" and both["time_share"] == pytest.approx(0.2)
    assert both["ci_overlap"].startswith("overlap")
    assert both["small_vs_all"].startswith("The small set reached a ROC-AUC of 0.750 against 0.700")
    same = s.findings({"Base All": _variant("Base All", 0.7, 10.0),
                       "Base Small": skipped_variant("Base Small", "its small set is all 9 training images", {})})
    assert same["small_vs_all"].endswith("Base Small was skipped: its small set is all 9 training images.")


def test_study003_findings_survive_every_architecture_skipped():
    s = study("003")
    skipped = {"simple_cnn": skipped_variant("Simple CNN", "diverged", {"backbone": "simple_cnn"})}
    out = s.findings(skipped)
    assert out["best_model"].startswith("none") and np.isnan(out["best_f1"])
    assert s.findings({"mobilenet": _variant("MobileNet", 0.6)})["best_model"] == "MobileNet"


def test_study001_findings_survive_a_skipped_recipe():
    s = study("001")
    out = s.findings({"recipe": skipped_variant("Recipe", "diverged", {})})
    assert np.isnan(out["recipe_auc"]) and "not" in out["milestone_gain"]


def test_study003s_schedule_is_the_papers_steplr():
    s = study("003")
    p = s.ArchitectureParams(0, "cpu", 32, 1, 8, 2, 1, 1e-3, 5e-5, "resnet101", "none", "", ("simple_cnn",), 1.0, 0)
    cfg = p.train_config("pretrained")
    assert (cfg.scheduler, cfg.step_size, cfg.gamma, cfg.lr) == ("step", 7, 0.1, 5e-5)
    assert p.train_config("simple_cnn").lr == 1e-3


@pytest.mark.parametrize("stem", list(MODEL_CHAPTERS))
def test_each_model_chapter_takes_the_scheduler_and_calls_run_variants(stem, real_declared, root):
    """The runner passes the scheduler only to a chapter that declares it; without it the variants would
    quietly run in the kernel."""
    assert real_declared[stem]["scheduler"].default == "", stem
    source = (root / "notebooks" / f"{stem}.py").read_text()
    assert "ctx.client" in source and f'chapter("{stem}", globals())' in source, stem


def test_chapter_05_trains_every_table_row_through_one_run_variants_call(root):
    """05 builds no inputs and trains no row in its kernel: the package's `chapter_inputs` and `train_variant`
    do, through one `run_variants` call for the tables (the sweep, its own dataset, has the other)."""
    source = (root / "notebooks" / "05_deep_clustering.py").read_text()
    assert source.count("run_variants(study002.train_variant, ") == 1
    assert source.count("run_variants(") == 2 and "study002.chapter_inputs(" in source
    for kernel_work in ("ModelInputs(", "run_clustering_variant", "run_direct_classifier", "cae_variant",
                        "shallow_variant", "def "):
        assert kernel_work not in source, kernel_work


def test_a_skipped_variant_leaves_the_curves_their_integer_labels():
    """02 on ISIC 2017 once crashed drawing ROC curves: Base Small's empty predictions made the labels object."""
    from sklearn.metrics import roc_curve

    from derm_nb.results import PREDICTION_COLUMNS, history_of, predictions_of

    scored = _variant("Base All", 0.7)
    scored.predictions = pd.DataFrame({"image_id": ["a", "b"], "split": "val", "model": "Base All", "label": [0, 1],
                                       "prob": [0.2, 0.9], "pred": [0, 1]})[PREDICTION_COLUMNS]
    scored.history = pd.DataFrame({"model": ["Base All"], "epoch": [1], "val_loss": [0.5]})
    skipped = skipped_variant("Base Small", "its small set is all 2 training images", {})
    predictions = predictions_of([scored, skipped])
    assert predictions["label"].dtype.kind == "i" and len(predictions) == 2
    assert len(roc_curve(predictions["label"], predictions["prob"])[0]) > 1
    assert list(history_of([skipped, scored])["model"]) == ["Base All"]
    assert predictions_of([skipped]).columns.tolist() == PREDICTION_COLUMNS
