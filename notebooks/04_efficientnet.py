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
# # Study 001: which parts of a fine-tuning recipe matter, and where does the model look?
#
# Study 001 fine-tuned an ImageNet EfficientNet-B0 on ISIC 2018 Task 3, malignant (melanoma, basal
# cell carcinoma, actinic keratosis) vs benign, with a recipe:
# centre-crop, 224 px, per-image standardisation, train-only augmentation, a 60/40 balanced
# sampler, a frozen-backbone warm-up, focal BCE (α 0.6, γ 2), AdamW 3e-4 (weight decay 1e-4)
# with a cosine schedule, batch 32, mixed precision and gradient accumulation, and a Youden
# threshold. It trained the recipe for a fixed number of epochs and kept the last, and credited
# the recipe with an AUROC gain over its milestone-1 baseline (a larger focal α, no sampler, no
# warm-up, no mixed precision, no gradient accumulation). It tried three shorter ablations (300 px,
# mixup, and "Shades of Grey", which its text describes as a greyscale transform) and left one
# question open: its Grad-CAM maps sometimes lit the image corners, not the lesion.
#
# We run the recipe, the milestone-1 baseline and the ablations as variants of one notebook, and
# under the `full` profile two more (focal loss off, sampler off; `default` leaves them out for its
# CPU budget). "Shades of Grey" runs twice, as the two things it can mean:
# `shades_of_grey` is Shades-of-Grey colour constancy (the method of that name), `greyscale` is
# the greyscale transform the paper's text describes (the `default` profile, on its CPU budget,
# runs only the first). We then measure where Grad-CAM's mass falls: in the image corners, and
# on the lesion where the dataset has masks (ISIC 2018 Task 3 ships none; HAM10000's
# segmentations, same images, are read when they sit beside it).

# %% tags=["parameters"]
# The default profile (params/default.yaml: the book on 2 CPU cores); params/full.yaml holds the studies' own.
profile = "default"
run_dir = ""
score_split = "test"                  # "val": score the validation split in its place, to choose settings
scheduler = ""                        # the run's Dask scheduler (the runner sets it); empty: variants run here
seed = 0
device = "auto"
backbone = "efficientnet_b0"
weights = "imagenet"
weights_fallback = "efficientnet_lite0"
image_size = 96
ablation_size = 128                # px of the size ablation; the 00_data cache must hold it
epochs = 4                         # the recipe and the milestone-1 baseline
ablation_epochs = 2                # every other variant
keep_epoch = "last"                # last: every epoch, the last (the paper); best: early stopping, the best val-loss epoch
cosine_epochs = 0                  # the cosine schedule's length in epochs; 0: the variant's own epochs
warmup_epochs = 1
batch_size = 32
grad_accum = 2
lr = 0.001
weight_decay = 1e-4
sampler_pos_share = 0.4
focal_alpha = 0.6
focal_gamma = 2.0
baseline_focal_alpha = 0.75        # the milestone-1 baseline's focal alpha
mixup_alpha = 0.2
patience = 3
variants = ["recipe", "milestone1", "ablation_size", "mixup", "shades_of_grey"]
gradcam_images = 8                 # per group (correct / incorrect) in the gallery
gradcam_min_size = 7               # Grad-CAM layer: the last convolution with maps at least this wide
num_workers = 0                       # batches are gathered from memory and augmented on the device: workers only add IPC

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from derm_nb.artifacts import write_parquet
from derm_nb.chapters import chapter
from derm_nb.datasets import gather
from derm_nb.explain import conv_layer_at_resolution, gradcam_maps
from derm_nb.plots import confusion_matrices, loss_curves, roc_curves
from derm_nb.results import history_of, predictions_of, results_table, weights_note, write_model_artifacts
from derm_nb.studies import study001

ctx = chapter("04_efficientnet", globals())
p = study001.params("04_efficientnet", ctx.parameters)
frames = ctx.splits()
images = {s: ctx.images(f) for s, f in frames.items()}
display(Markdown(f"Data: **{ctx.data.describe()}**; positive share {ctx.data.summary['positive_share']:.1%} "
                 f"({', '.join(ctx.data.summary['positive_classes'])} of {', '.join(ctx.data.classes)}); "
                 f"split: {ctx.data.summary['splits']['study001']}."))
study001.split_overview(frames)

# %% [markdown]
# ## The recipe and its variants
#
# Each ablation changes one thing against the recipe, and trains for `ablation_epochs` (the paper's
# ablations ran fewer epochs than its recipe); the milestone-1 baseline changes the five things
# the paper added for its recipe, and trains as long as the recipe. `keep_epoch` says which epoch's
# weights are scored: `last` trains every epoch and keeps the last (the paper), `best` stops early
# and keeps the best validation-loss epoch. A variant whose size exceeds the image cache is not run
# (resizing the cache up adds no resolution). The threshold is Youden's point on the validation
# split, applied to the held-out test split that every number below comes from.

# %%
ablations, refused = study001.within_cache(list(study001.variants(p).values()), cache_px=images["train"].shape[-1])
for note in refused:
    display(Markdown(note))
grid = study001.AblationGrid(images, frames, p.backbone, p.weights, p.weights_fallback, p.train_config(),
                             p.focal_alpha, p.focal_gamma, ctx.out / "checkpoints")
trained = study001.train_ablations(ablations, grid, ctx.client)  # each from the same seed
results = {key: result for key, (result, _) in trained.items()}
display(Markdown(weights_note(results["recipe"].provenance)))

# %% [markdown]
# ## Results (test split, Youden threshold from validation)

# %%
table = results_table(list(results.values()), {
    "roc_auc": "AUROC", "roc_auc_ci_low": "AUROC CI low", "roc_auc_ci_high": "AUROC CI high",
    "balanced_accuracy": "balanced accuracy", "recall": "recall", "f1_macro": "macro-F1", "threshold": "threshold",
    "epochs_run": "epochs run", "best_epoch": "best val epoch", "train_seconds": "train time (s)"})
ceiling = ctx.oracle_auc(frames["test"])
display(Markdown("**Ours**" + (f" (oracle AUROC on this test split: {ceiling:.3f})" if ceiling else "") + ":"))
display(table.style.format(precision=3))
display(study001.CARD.quote("Results"))
display(Markdown(study001.milestone_gain(table["AUROC"])))

# %%
history = history_of(results.values())
loss_curves(history, "Study 001 variants: focal / BCE loss by epoch", ncols=3)
plt.show()
test_predictions = predictions_of(results.values()).query("split == 'test'")
roc_curves(test_predictions, "Test split")
plt.show()
confusion_matrices(test_predictions, ["benign", "melanoma"], "At Youden's threshold", ncols=3)
plt.show()

# %% [markdown]
# ## Where does the recipe model look?
#
# Grad-CAM (pytorch-grad-cam) for every test image, explaining the class the model predicted. The
# target layer is the backbone's last convolution whose maps are at least `gradcam_min_size` px
# wide: at 224 px that is the last convolution, as in the study; at the small sizes of the CPU
# profiles an earlier stage, since a 2 x 2 map cannot say where the model looks. For each map we
# measure the share of its mass inside the lesion mask and inside the image corners (outside the
# inscribed circle, where dermoscope dark corners sit), and compare with those regions' share of
# the image area.

# %%
recipe_run = next(a for a in ablations if a.key == "recipe")
model, size, sets = trained["recipe"][1], recipe_run.size, study001.datasets(recipe_run, images, frames)
recipe = results["recipe"].predictions.query("split == 'test'").reset_index(drop=True)
batch = gather(sets["test"], range(len(sets["test"])))["image"]   # the test images as the model sees them
layer_name, layer, layer_px = conv_layer_at_resolution(model.cpu(), size, gradcam_min_size)
display(Markdown(f"Grad-CAM layer: `{layer_name}` ({layer_px} x {layer_px} maps at {size} px input)."))
cams = gradcam_maps(model, batch, recipe["pred"].to_numpy(), layer=layer)
masks = ctx.masks(frames["test"], size) if ctx.data.has_masks else None
if masks is None:
    display(Markdown(f"**{ctx.data.summary['source']} has no lesion masks**: the lesion share is skipped, and only "
                     "the corner share is measured."))
mass = study001.gradcam_mass(cams, masks, recipe)
empty = int(mass["corner_mass"].isna().sum())
if empty:
    display(Markdown(f"{empty} heat maps were zero everywhere (no positive evidence) and are left out of the shares."))
write_parquet(ctx.out / "gradcam_mass.parquet", pd.concat([recipe[["image_id", "label", "pred"]], mass], axis=1))
summary = study001.gradcam_summary(mass)
display(summary.style.format(precision=3))
study001.plot_gradcam_mass(mass)
plt.show()

# %%
rng = np.random.default_rng(seed)
paths = ctx.data.image_paths(frames["test"])
top = "image and lesion mask" if masks is not None else "image"
for group in ("correct", "incorrect"):
    rows = study001.gallery_rows(mass, group, gradcam_images, rng)
    if study001.gradcam_gallery(rows, paths, size, masks, cams, recipe, mass, f"Grad-CAM, {group} predictions "
                                f"(top: {top}; bottom: heat map)") is not None:
        plt.show()

# %%
write_model_artifacts(ctx.out, list(results.values()), {
    "study": "001", "evaluation": "study001 test split, Youden threshold from val", "split": f"study001 {ctx.scored}",
    "oracle_auc": ceiling,
    "gradcam_median_by_correctness": summary.to_dict("index")}, main=results["recipe"].name)
for key, value in study001.findings(results, summary).items():
    glue(key, value, display=False)
glue("ceiling_note", f"The oracle ceiling, the AUROC of the true probability on this test split, is {ceiling:.3f}."
     if ceiling else "On real data there is no oracle ceiling to compare with.", display=False)

# %%
# The floor (derm_nb.floor): a linear probe on frozen ImageNet features of this chapter's backbone, added to metrics.json.
from derm_nb.floor import FloorSpec, chapter_floor  # noqa: E402

chapter_floor(ctx, frames, FloorSpec(threshold_rule="youden", seed=seed),
              {"roc_auc": "AUROC", "roc_auc_ci_low": "AUROC CI low", "roc_auc_ci_high": "AUROC CI high",
               "balanced_accuracy": "balanced accuracy", "recall": "recall", "f1_macro": "macro-F1"},
              images=images, size=image_size, backbone=backbone, weights=weights, fallback=weights_fallback,
              device=device)

# %% [markdown]
# ## What differs from the paper
#
# Every setting of this run that is not the paper's, and every departure of method, generated from
# the study's paper card and this run's parameters (the `full` profile starts from the card).

# %%
display(ctx.differences(study001.CARD).style.hide(axis="index"))

# %% [markdown]
# ## What we learned
#
# * The recipe reached a test AUROC of {glue:text}`recipe_auc:.3f` (95 % CI
#   {glue:text}`recipe_ci_low:.3f`-{glue:text}`recipe_ci_high:.3f`). {glue:text}`ceiling_note`
# * Each ablation row changes one part of the recipe, so its difference from the recipe row is
#   that part's effect, within the confidence intervals shown, when it ran as many epochs as the
#   recipe (the "epochs run" column); where it ran fewer, as the paper's ablations did, the
#   difference also holds the shorter training.
# * {glue:text}`milestone_gain`
# * {glue:text}`gradcam_correct`
# * {glue:text}`gradcam_incorrect`
