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
# # Study 003: how much does architecture matter on a small 3-class problem?
#
# Study 003 compared a simple CNN, a MobileNet (v1) trained from scratch and an ImageNet-pretrained
# ResNet-101 on BUSI (benign / malignant / normal breast ultrasound, 780 images), and found the
# pretrained network far ahead and more balanced across classes. We run the same comparison on
# the catalog's `study003` dataset: BUSI (its real folders, or the built-in stand-in in BUSI's
# layout), or any other source `datasets` names, such as ISIC 2017's three classes.
#
# Recipe (the seed's §III): stratified split of 563 / 100 / 117 images (about 72/12/15 %), the
# whole image resized to 224 px (00_data caches BUSI's images whole, not centre-cropped), ImageNet
# normalisation, the minority classes enlarged with augmented copies (horizontal flip p 0.9,
# rotation ±15°, colour jitter; `minority_oversample` 1 balances them with the majority class),
# MobileNet v1, Adam at 1e-3 (CNN, MobileNet) and 5e-5 (ResNet-101), StepLR(7, 0.1),
# cross-entropy, early stopping with patience 2 after at least 5 epochs, batch 8, fixed seed.

# %% tags=["parameters"]
# The default profile (params/default.yaml: the book on 2 CPU cores); params/full.yaml holds the studies' own.
profile = "default"
run_dir = ""
seed = 0
device = "auto"
image_size = 96
epochs = 3
batch_size = 16
patience = 2
min_epochs = 3
lr_scratch = 1e-3
lr_pretrained = 0.0001
pretrained_backbone = "resnet101"
weights = "imagenet"
weights_fallback = "efficientnet_lite0"
architectures = ["simple_cnn", "mobilenet", "pretrained"]
minority_oversample = 1.0             # each minority class enlarged to this share of the majority class (0: none)
num_workers = 0                       # batches are gathered from memory and augmented on the device: workers only add IPC

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue
from torch import nn

from derm_nb.chapters import chapter
from derm_nb.plots import confusion_matrices, training_curves
from derm_nb.results import results_table, run_multiclass_variant, skip_notes, write_model_artifacts
from derm_nb.studies import study003
from derm_nb.train import TrainConfig

ctx = chapter("06_architectures", profile, run_dir)
classes = ctx.data.classes
target_class = study003.target_class(classes)
frames = ctx.splits()
minority = study003.minority_classes(frames["train"]["label"], len(classes))
display(Markdown(f"Data: **{ctx.data.describe()}**, classes {classes}; minority classes oversampled and "
                 f"augmented: {[classes[k] for k in minority]}; images: {study003.preprocessing_note(ctx.data.summary)}."))
study003.class_counts(frames, classes, minority, minority_oversample)

# %%
images = {s: ctx.images(f) for s, f in frames.items()}
sets = study003.datasets(images, frames, image_size, minority, seed, minority_oversample)

variants = []
for arch in architectures:
    model, provenance, name = study003.build_architecture(arch, len(classes), image_size, pretrained_backbone,
                                                          weights, weights_fallback, seed=seed)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr_pretrained if arch == "pretrained" else lr_scratch,
                      optimizer="adam", scheduler="step", step_size=7, gamma=0.1, patience=patience,
                      min_epochs=min_epochs, device=device, seed=seed, num_workers=num_workers)
    # Validation drives early stopping and the best checkpoint; the held-out test split is what we score.
    variants.append(run_multiclass_variant(name, model, provenance, nn.CrossEntropyLoss(), sets["train"], sets["val"],
                                           frames["test"], cfg, ctx.out / "checkpoints" / arch, classes, target_class,
                                           split="test", score_on=sets["test"]))
for note in filter(None, map(study003.substitution_note, variants)):
    display(Markdown(note))

# %% [markdown]
# ## Results in the study's Table I layout (held-out test split)

# %%
display(Markdown("**Ours** (computed on the test split of this run):"))
display(study003.table_one(variants, classes).style.format(precision=2))
display(study003.CARD.quote("Table I"))

# %%
summary = results_table(variants, {"accuracy": "accuracy", "f1_weighted": "weighted F1",
                                   "roc_auc": f"{classes[target_class]} AUC (one-vs-rest)",
                                   "n_params": "parameters", "train_seconds": "train time (s)",
                                   "epochs_run": "epochs run", "best_epoch": "best epoch"})
summary.style.format(precision=3)

# %%
predictions = pd.concat([v.predictions for v in variants])
confusion_matrices(predictions, classes, "Confusion matrices on the test split", ncols=3)
plt.show()
training_curves(pd.concat([v.history for v in variants]), title="Loss and accuracy by epoch")
plt.show()

# %%
write_model_artifacts(ctx.out, variants, {"study": "003", "evaluation": "study003 test split",
                                          "oracle_auc": ctx.oracle_auc(frames["test"]),
                                          "classes": classes, "data": ctx.data.summary["source"]},
                      main=study003.main_model(variants))
for note in skip_notes(variants):
    display(Markdown(note))
best = max((v for v in variants if not v.skipped), key=lambda v: v.metrics["f1_weighted"])
glue("best_model", best.name, display=False)
glue("best_f1", float(best.metrics["f1_weighted"]), display=False)
glue("published_resnet_f1", study003.published_weighted_f1("ResNet101"), display=False)
glue("published_cnn_f1", study003.published_weighted_f1("Simple CNN"), display=False)
glue("published_mobilenet_f1", study003.published_weighted_f1("MobileNet"), display=False)
glue("model_facts", study003.model_facts(variants), display=False)
glue("data_source", ctx.data.summary["source"], display=False)
glue("n_test", len(frames["test"]), display=False)

# %%
# The floor (derm_nb.floor): a linear probe on frozen ImageNet features of this chapter's backbone, added to metrics.json.
from derm_nb.floor import FloorSpec, chapter_floor  # noqa: E402

chapter_floor(ctx, frames, FloorSpec(kind="multiclass", classes=tuple(classes), target_class=target_class,
                                     seed=seed),
              {"accuracy": "accuracy", "f1_weighted": "weighted F1", "balanced_accuracy": "balanced accuracy",
               "roc_auc": f"{classes[target_class]} AUC (one-vs-rest)"},
              images=images, size=image_size, backbone=pretrained_backbone, weights=weights,
              fallback=weights_fallback, device=device)

# %% [markdown]
# ## What differs from the paper
#
# Every setting of this run that is not the paper's, and every departure of method, generated from
# the study's paper card and this run's parameters (the `full` profile starts from the card).

# %%
display(ctx.differences(study003.CARD, globals()).style.hide(axis="index"))

# %% [markdown]
# ## What we learned
#
# * The highest weighted F1 on the test split was reached by **{glue:text}`best_model`**
#   ({glue:text}`best_f1:.2f`); the study found its ResNet-101 ahead
#   ({glue:text}`published_resnet_f1:.2f`) of the simple CNN ({glue:text}`published_cnn_f1:.2f`)
#   and MobileNet ({glue:text}`published_mobilenet_f1:.2f`) on BUSI.
# * What each model cost: {glue:text}`model_facts`.
# * Data: {glue:text}`data_source` ({glue:text}`n_test` test images). Compare the per-class recall
#   in the Table I layout above to see which model, if any, is biased towards the majority class.
