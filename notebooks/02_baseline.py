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
# # Study 000: does a small, patient-diverse training set do as well as all the data?
#
# Study 000 (SIIM-ISIC 2020, ResNet-18 + metadata) trained one base model on four training sets
# (all images; a *small* set of every melanoma plus two images per patient; and the small set
# with 3 or 5 augmented copies of each image) and scored all four on one common validation
# set. It found the small set nearly as good as all images in a small fraction of the training
# time (its timings are quoted from the paper card under *What we learned*).
#
# The base model: a ResNet-18 image branch and a one-hot tabular branch (sex, site, age)
# fused into one sigmoid output, BCE, Adam at 1e-5 with cosine annealing, batch 64, at most
# 10 epochs, early stopping after 3 epochs without validation-loss gain, best-epoch checkpoint;
# after every epoch it recorded F1, precision, recall, ROC-AUC and the confusion matrix at a
# threshold of 0.5, and so do we. It removed rows with missing metadata; `missing_metadata`
# chooses between that (`drop`) and imputing them (`impute`). The `full` profile runs the
# paper's values; `smoke` and `default` shrink image size and epochs so the chapter runs on a CPU.

# %% tags=["parameters"]
# The default profile (params/default.yaml: the book on 2 CPU cores); params/full.yaml holds the studies' own.
profile = "default"
run_dir = ""
scheduler = ""                        # the run's Dask scheduler (the runner sets it); empty: variants run here
seed = 0
device = "auto"
backbone = "resnet18"
weights = "imagenet"                  # none | imagenet | path to a state dict
weights_fallback = "efficientnet_lite0"  # used only if ImageNet weights for `backbone` cannot be had
image_size = 128
epochs = 2
batch_size = 64
lr = 0.0003
patience = 2
small_per_patient = 2
aug_copies = [3]
missing_metadata = "impute"   # impute | drop (rows whose sex, age or site was missing)
num_workers = 0

# %%
import matplotlib.pyplot as plt
from IPython.display import Markdown, display
from myst_nb import glue

from derm_nb.chapters import chapter
from derm_nb.cluster import run_variants
from derm_nb.plots import confusion_matrices, loss_curves, roc_curves
from derm_nb.results import history_of, predictions_of, results_table, write_model_artifacts
from derm_nb.studies import study000
from derm_nb.studies.study000 import CARD

ctx = chapter("02_baseline", globals())
p = study000.params("02_baseline", ctx.parameters)
kept, dropped = study000.missing_metadata(ctx.splits(("train", "val")), ctx.data.quality, p.missing_metadata)
train_all, val = kept["train"], kept["val"]
display(Markdown(study000.report_dropped(dropped, p.missing_metadata, ctx.out)))

# %% [markdown]
# ## The training sets and one validation set
#
# Every training set is drawn from the study-000 training split, so by construction no
# validation row is in any of them; we still remove, and count, any validation row used for
# training (the study had to, because it re-split its small set separately).

# %%
runs = study000.variants(p)
sets = study000.training_sets(train_all, runs, p.small_per_patient, p.seed)
common_val = study000.common_validation(val, sets)
display(Markdown(f"Common validation set: {len(common_val)} images ({int(common_val['target'].sum())} melanomas); "
                 f"{len(val) - len(common_val)} validation rows removed because a training set used them."))
study000.set_summary(sets)

# %%
inputs = study000.inputs(p, train_all, common_val, ctx.images(train_all), ctx.images(common_val), ctx.out / "checkpoints")
results = run_variants(study000.train_variant, runs, inputs, ctx.out / "checkpoints" / "results", p.seed, ctx.client)
variants = list(results.values())
provenance = variants[0].provenance
display(Markdown(f"Image branch: **{provenance['backbone']}**, weights: {provenance['weights']} "
                 f"({provenance['source']})" + (f". **Substitute**: the study used {provenance['substituted_for']}, "
                 "whose ImageNet weights are not available here." if provenance["substituted_for"] else ".")))

# %% [markdown]
# ## Results in the study's form
#
# Thresholds are chosen as the study did: the maximum F1 with the true-positive rate bounded to
# [0.8, 0.9], on the validation set itself (as in the study, so these thresholds are optimistic).

# %%
table = results_table(variants, {"threshold": "Threshold", "f1": "F1-Score", "roc_auc": "ROC-AUC",
                                 "roc_auc_ci_low": "AUC 95% CI low", "roc_auc_ci_high": "AUC 95% CI high",
                                 "recall": "Recall", "precision": "Precision", "pauc_80": "pAUC (TPR≥0.8)",
                                 "best_epoch": "best epoch", "train_seconds": "train time (s)"})
ceiling = ctx.oracle_auc(common_val)
display(Markdown("**Ours** (computed in this run" + (f"; oracle AUC on this validation set: {ceiling:.3f}" if ceiling
                                                    else "") + "):"))
display(table.style.format(precision=3))
display(CARD.quote("Table 1"))

# %%
history = history_of(variants)
display(Markdown(f"Validation metrics after each epoch at a threshold of {study000.EPOCH_THRESHOLD}, as the study "
                 "recorded them (the best epoch is the one with the lowest validation loss):"))
display(study000.epoch_table(history).style.format(precision=3).hide(axis="index"))
loss_curves(history, "Study 000 base model: loss by epoch")
plt.show()
predictions = predictions_of(variants)
merged = common_val[["image_id", "target"]].merge(ctx.data.oracle(), on="image_id") if ceiling else None
roc_curves(predictions, "Base model on the common validation set",
           oracle=(merged["target"], merged["p_true"]) if merged is not None else None)
plt.show()
confusion_matrices(predictions, ["benign", "melanoma"], "At the optimised thresholds")
plt.show()

# %%
write_model_artifacts(ctx.out, variants, {"study": "000", "evaluation": "study000 val (common validation set)",
                                          "split": "study000 val", "oracle_auc": ceiling, "image_size": p.image_size},
                      main=variants[0].name)
for key, value in study000.findings(results).items():
    glue(key, value, display=False)
glue("ceiling_note", f"against an oracle ceiling of {ceiling:.3f} on this validation set" if ceiling
     else "with no oracle ceiling on real data", display=False)

# %%
# The floor (derm_nb.floor): a linear probe on frozen ImageNet features of this chapter's backbone, added to metrics.json.
from derm_nb.floor import FloorSpec, chapter_floor  # noqa: E402

chapter_floor(ctx, {"train": train_all, "val": common_val},
              FloorSpec(score_split="val", select_on="cv", threshold_rule="max_f1", seed=seed),
              {"roc_auc": "ROC-AUC", "roc_auc_ci_low": "AUC 95% CI low", "roc_auc_ci_high": "AUC 95% CI high",
               "f1": "F1-Score", "recall": "Recall", "precision": "Precision"},
              images={"train": inputs.images, "val": inputs.val_images}, size=image_size, backbone=backbone,
              weights=weights, fallback=weights_fallback, device=device)

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
# The best ROC-AUC was reached by **{glue:text}`best_model`**: {glue:text}`best_auc:.3f` (95 % CI
# {glue:text}`best_ci_low:.3f`-{glue:text}`best_ci_high:.3f`), {glue:text}`ceiling_note`.
#
# {glue:text}`small_vs_all` The study saw {glue:text}`published_small_auc:.3f` against
# {glue:text}`published_all_auc:.3f`, and {glue:text}`published_time`.
