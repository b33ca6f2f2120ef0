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
# set. It found the small set nearly as good as all images at a sixth of the training time.
#
# The base model: a ResNet-18 image branch and a one-hot tabular branch (sex, site, age)
# fused into one sigmoid output, BCE, Adam at 1e-5 with cosine annealing, batch 64, at most
# 10 epochs, early stopping after 3 epochs without validation-loss gain, best-epoch checkpoint.
# Those are the `full` profile's values; `smoke` and `default` shrink image size and epochs so
# the chapter runs on a CPU.

# %% tags=["parameters"]
profile = "default"
run_dir = ""
seed = 0
device = "auto"
backbone = "resnet18"
weights = "imagenet"                  # none | imagenet | path to a state dict
weights_fallback = "efficientnet_lite0"  # used only if ImageNet weights for `backbone` cannot be had
image_size = 128
epochs = 10
batch_size = 64
lr = 1e-5
patience = 3
small_per_patient = 2
aug_copies = [3, 5]
num_workers = 0

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from derm_nb.artifacts import notebook_dir, run_dir_for
from derm_nb.data.prepared import load_prepared, oracle_auc
from derm_nb.data.splits import small_dataset
from derm_nb.datasets import CachedImages, eval_transform, load_split_images, study000_augment
from derm_nb.experiments import results_table, run_binary_variant, write_model_artifacts
from derm_nb.losses import BCE
from derm_nb.models.fusion import build_fusion, encode_tabular
from derm_nb.plots import confusion_matrices, loss_curves, roc_curves
from derm_nb.published import STUDY000_DATA, STUDY000_TABLE1, quote
from derm_nb.train import TrainConfig

runs = run_dir_for(profile, run_dir)
out = notebook_dir(runs, "02_baseline")
data = load_prepared(runs / "00_data" / "binary")
train_all, val = data.split("study000", "train"), data.split("study000", "val")

# %% [markdown]
# ## Four training sets, one validation set
#
# All four training sets are drawn from the study-000 training split, so by construction no
# validation row is in any of them; we still remove, and count, any validation row used for
# training (the study had to, because it re-split its small set separately).

# %%
small = small_dataset(train_all, per_group=small_per_patient, seed=seed)
sets = {"Base All": (train_all, 0), "Base Small": (small, 0),
        **{f"Base Small {k}aug": (small, k) for k in aug_copies}}
used = set().union(*(set(f["image_id"]) for f, _ in sets.values()))
common_val = val[~val["image_id"].isin(used)]
display(Markdown(f"Common validation set: {len(common_val)} images ({int(common_val['target'].sum())} melanomas); "
                 f"{len(val) - len(common_val)} validation rows removed because a training set used them."))
pd.DataFrame({name: {"images": len(f) * (k + 1), "distinct images": len(f), "melanomas": int(f["target"].sum()),
                     "patients": f["group_id"].nunique()} for name, (f, k) in sets.items()}).T

# %%
tab_all, tab_val = encode_tabular(train_all, common_val)
val_images = load_split_images(data.cache_dir, common_val)
val_ds = CachedImages(val_images, common_val["target"], eval_transform(image_size), tab_val)
all_images = load_split_images(data.cache_dir, train_all)
position = {image_id: k for k, image_id in enumerate(train_all["image_id"])}


def training_set(frame: pd.DataFrame, copies: int) -> CachedImages:
    rows = [position[i] for i in frame["image_id"]]
    return CachedImages(all_images[rows], frame["target"], eval_transform(image_size), tab_all[rows],
                        copies=copies, augment=study000_augment(image_size), seed=seed)


config = dict(epochs=epochs, batch_size=batch_size, lr=lr, optimizer="adam", scheduler="cosine",
              patience=patience, device=device, seed=seed, num_workers=num_workers)
variants = []
for name, (frame, copies) in sets.items():
    model, provenance = build_fusion(backbone, weights, weights_fallback, tab_all.shape[1])
    variants.append(run_binary_variant(name, model, provenance, BCE(), training_set(frame, copies), val_ds,
                                       common_val, TrainConfig(**config), out / "checkpoints" / name))
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
ceiling = oracle_auc(data, common_val)
display(Markdown("**Ours** (computed in this run" + (f"; oracle AUC on this validation set: {ceiling:.3f}" if ceiling
                                                    else "") + "):"))
display(table.style.format(precision=3))
display(quote(STUDY000_TABLE1, STUDY000_DATA))

# %%
history = pd.concat([v.history for v in variants])
loss_curves(history, "Study 000 base model: loss by epoch")
plt.show()
predictions = pd.concat([v.predictions for v in variants])
merged = common_val[["image_id", "target"]].merge(data.oracle(), on="image_id") if ceiling else None
roc_curves(predictions, "Base model on the common validation set",
           oracle=(merged["target"], merged["p_true"]) if merged is not None else None)
plt.show()
confusion_matrices(predictions, ["benign", "melanoma"], "At the optimised thresholds")
plt.show()

# %%
write_model_artifacts(out, variants, {"study": "000", "evaluation": "study000 val (common validation set)",
                                      "oracle_auc": ceiling, "image_size": image_size})
best = max(variants, key=lambda v: v.metrics["roc_auc"])
all_v, small_v = variants[0], variants[1]
display(Markdown(
    f"## What we learned\n\n"
    f"* Best ROC-AUC: **{best.name}**, {best.metrics['roc_auc']:.3f} "
    f"(95 % CI {best.metrics['roc_auc_ci_low']:.3f}-{best.metrics['roc_auc_ci_high']:.3f})"
    + (f", against an oracle ceiling of {ceiling:.3f}." if ceiling else ".") + "\n"
    f"* Small vs all: ROC-AUC {small_v.metrics['roc_auc']:.3f} vs {all_v.metrics['roc_auc']:.3f}, trained in "
    f"{small_v.seconds:.0f} s vs {all_v.seconds:.0f} s. The study saw 0.868 vs 0.900 at a sixth of the time.\n"
    "* Overlapping confidence intervals mean a difference is not established on this validation set."))
