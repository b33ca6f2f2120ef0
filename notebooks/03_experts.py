# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Study 000: do experts for subgroups beat one model?
#
# The EDA found subgroup structure (sites that differ by sex, darker melanoma images, hair in
# men). Study 000 built two mixtures of experts on the base architecture: **sex experts** (one
# image branch for male and one for female patients, sharing the tabular branch) and
# **brightness experts** (one image branch for images darker than the melanomas' median
# brightness, one for lighter), and trained each on every training set (all images, the small
# set, and the small set with 3 or 5 augmented copies). It reported that both failed to train
# except on all images: its finding is about the small sets, which `training_sets` chooses.
#
# Patients of unknown sex go through both sex experts, whose image features are averaged (a
# gate of ½, ½). The brightness split point is read from the EDA chapter, where it was
# computed on training melanomas only.

# %% tags=["parameters"]
# The default profile (params/default.yaml: the book on 2 CPU cores); params/full.yaml holds the studies' own.
profile = "default"
run_dir = ""
scheduler = ""                        # the run's Dask scheduler (the runner sets it); empty: variants run here
seed = 0
device = "auto"
backbone = "resnet18"
weights = "imagenet"
weights_fallback = "efficientnet_lite0"
image_size = 128
epochs = 2
batch_size = 64
lr = 0.0003
patience = 2
small_per_patient = 2
training_sets = ["small"]   # all | small | small+3aug | small+5aug (the small set with augmented copies)
missing_metadata = "impute"   # impute | drop (rows whose sex, age or site was missing)
num_workers = 0

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from derm_nb.analysis import subgroup_auc
from derm_nb.chapters import chapter
from derm_nb.cluster import run_variants
from derm_nb.plots import confusion_matrices, loss_curves, roc_curves
from derm_nb.results import history_of, predictions_of, results_table, write_model_artifacts
from derm_nb.studies import study000
from derm_nb.studies.study000 import CARD

ctx = chapter("03_experts", globals())
p = study000.params("03_experts", ctx.parameters)
split_point = ctx.read("brightness_split")["brightness_split"]
brightness = ctx.read("image_stats").set_index("image_id")["brightness"]
base = ctx.read("02_baseline/predictions.parquet")
kept, dropped = study000.missing_metadata(ctx.splits(("train", "val")), ctx.data.quality, p.missing_metadata)
train_all, val = kept["train"], kept["val"]
display(Markdown(study000.report_dropped(dropped, p.missing_metadata, ctx.out)))
val = val[val["image_id"].isin(base["image_id"])]  # the common validation set of the base chapter
display(Markdown(f"Brightness split point from the EDA chapter: **{split_point:.1f}**; validation images: {len(val)}."))

# %%
inputs = study000.inputs(p, train_all, val, ctx.images(train_all), ctx.images(val), ctx.out / "checkpoints",
                         brightness, split_point)
results = run_variants(study000.train_variant, study000.variants(p), inputs, ctx.out / "checkpoints" / "results",
                       p.seed, ctx.client)
variants = list(results.values())

prov = variants[0].provenance
display(Markdown(f"Each expert's image branch: **{prov['backbone']}** ({prov['weights']}, {prov['source']})"
                 + (f"; a substitute for {prov['substituted_for']}." if prov["substituted_for"] else ".")))

# %% [markdown]
# ## Results beside the base model
#
# The base model's rows are read from the base chapter's predictions (same validation images),
# not retrained here.

# %%
base_metrics = ctx.read("02_baseline/metrics.json")["variants"]
columns = {"threshold": "Threshold", "f1": "F1-Score", "roc_auc": "ROC-AUC", "roc_auc_ci_low": "AUC CI low",
           "roc_auc_ci_high": "AUC CI high", "recall": "Recall", "train_seconds": "train time (s)",
           "n_params": "parameters"}
ours = results_table(variants, columns)
display(pd.concat([study000.base_rows(base_metrics, columns), ours]).style.format(precision=3))
display(Markdown(f"Published: {CARD.notes['experts']}"))

# %% [markdown]
# ## Do experts help the subgroup they were built for?
#
# ROC-AUC within each subgroup of the validation set (subgroups with both classes only), with its
# bootstrap 95 % interval.

# %%
predictions = pd.concat([predictions_of(variants), base[base["model"].isin(["Base All", "Base Small"])]])
attributes = study000.subgroup_attributes(val, brightness, split_point)
subgroups = subgroup_auc(predictions, attributes, ["sex", "brightness_band"], n_boot=200, seed=seed,
                         min_positives=1)
subgroups["cell"] = [f"{a:.3f} ({lo:.3f}-{hi:.3f})" for a, lo, hi in subgroups[["roc_auc", "ci_low", "ci_high"]].to_numpy()]
subgroups.assign(subgroup=subgroups["attribute"] + "=" + subgroups["subgroup"]).pivot(
    index="model", columns="subgroup", values="cell")

# %%
history = history_of(variants)
display(study000.epoch_table(history).style.format(precision=3).hide(axis="index"))
loss_curves(history, "Experts: loss by epoch")
plt.show()
roc_curves(predictions, "Experts and base model on the validation set")
plt.show()
confusion_matrices(predictions_of(variants), ["benign", "melanoma"], "Experts at optimised thresholds")
plt.show()

# %%
write_model_artifacts(ctx.out, variants, {"study": "000", "evaluation": "study000 common validation set",
                                          "split": "study000 val", "oracle_auc": ctx.oracle_auc(val),
                                          "brightness_split": split_point, "unknown_sex_rule": "gate (0.5, 0.5)"})
for key, value in study000.findings(results, base=base_metrics).items():
    glue(key, value, display=False)

# %%
# The floor (derm_nb.floor): a linear probe on frozen ImageNet features of this chapter's backbone, added to metrics.json.
from derm_nb.floor import FloorSpec, chapter_floor  # noqa: E402

chapter_floor(ctx, {"train": train_all, "val": val},
              FloorSpec(score_split="val", select_on="cv", threshold_rule="max_f1", name="Linear probe (experts)",
                        seed=seed),
              {"roc_auc": "ROC-AUC", "roc_auc_ci_low": "AUC 95% CI low", "roc_auc_ci_high": "AUC 95% CI high",
               "f1": "F1-Score"},
              images={"train": inputs.images, "val": inputs.val_images}, size=image_size, backbone=backbone, weights=weights,
              fallback=weights_fallback, device=device)

# %% [markdown]
# ## What differs from the paper
#
# Every setting of this run that is not the paper's, and every departure of method, generated from
# the study's paper card and this run's parameters (the `full` profile starts from the card).

# %%
display(ctx.differences(CARD).style.hide(axis="index"))

# %% [markdown]
# ## What we learned
#
# The best expert model is **{glue:text}`best_model`**, with a ROC-AUC of
# {glue:text}`best_auc:.3f` (95 % CI {glue:text}`best_ci_low:.3f`-{glue:text}`best_ci_high:.3f`),
# against {glue:text}`best_base_auc:.3f` for the best base model; an expert model has
# {glue:text}`param_ratio:.1f`× the base model's parameters (two image branches).
#
# The study's experts did not train on small data; here, {glue:text}`small_experts`.
