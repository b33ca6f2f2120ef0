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
score_split = "test"                  # "val": score the validation split in its place, to choose settings
scheduler = ""                        # the run's Dask scheduler (the runner sets it); empty: variants run here
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
augment_every_class = False           # also augment the majority class (the paper augments the minority classes)
num_workers = 0                       # batches are gathered from memory and augmented on the device: workers only add IPC

# %%
import matplotlib.pyplot as plt
from IPython.display import Markdown, display
from myst_nb import glue

from derm_nb.chapters import chapter
from derm_nb.cluster import run_variants
from derm_nb.plots import confusion_matrices, training_curves
from derm_nb.results import history_of, predictions_of, results_table, skip_notes, write_model_artifacts
from derm_nb.studies import study003

ctx = chapter("06_architectures", globals())
p = study003.params("06_architectures", ctx.parameters)
classes = ctx.data.classes
target_class = study003.target_class(classes)
frames = ctx.splits()
minority = study003.minority_classes(frames["train"]["label"], len(classes))
display(Markdown(f"Data: **{ctx.data.describe()}**, classes {classes}; minority classes oversampled and "
                 f"augmented: {[classes[k] for k in minority]}; images: {study003.preprocessing_note(ctx.data.summary)}."))
study003.class_counts(frames, classes, minority, p.minority_oversample)

# %%
images = {s: ctx.images(f) for s, f in frames.items()}
sets = study003.datasets(images, frames, p.image_size, minority, p.seed, p.minority_oversample,
                         p.augment_every_class)
# Validation drives early stopping and the best checkpoint; the held-out test split is what we score.
inputs = study003.Inputs(p, sets, frames["test"], tuple(classes), target_class, ctx.out / "checkpoints")
results = run_variants(study003.train_variant, study003.variants(p), inputs, ctx.out / "checkpoints" / "results",
                       p.seed, ctx.client)
variants = list(results.values())
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
predictions = predictions_of(variants)
confusion_matrices(predictions, classes, "Confusion matrices on the test split", ncols=3)
plt.show()
training_curves(history_of(variants), title="Loss and accuracy by epoch")
plt.show()

# %%
write_model_artifacts(ctx.out, variants, {"study": "003", "evaluation": "study003 test split", "split": f"study003 {ctx.scored}",
                                          "oracle_auc": ctx.oracle_auc(frames["test"]),
                                          "classes": classes, "data": ctx.data.summary["source"]},
                      main=study003.main_model(variants))
for note in skip_notes(variants):
    display(Markdown(note))
for key, value in study003.findings(results).items():
    glue(key, value, display=False)
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
display(ctx.differences(study003.CARD).style.hide(axis="index"))

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
