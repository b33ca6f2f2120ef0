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
# # Study 004: can a model trained only on image labels also find the lesion?
#
# Study 004 treats an image as a *bag* of k x k blocks (the instances), cut with a sliding window
# whose stride depends on the image height (Eq. 4). Blocks whose centres lie within √2·k are
# neighbours (Eq. 1). A ResNet-18 turns each block into a feature vector, two graph-convolution
# layers (512 → 512) mix neighbouring blocks, graph-attention pooling (L = 128) weighs the blocks
# into one bag vector, and a softmax layer names the class: melanoma, seborrheic keratosis or
# nevus (ISIC 2017). Minority classes are balanced by rotating their images (the DR set).
#
# The attention weights double as a segmentation: each pixel scores the attention of the blocks
# covering it times the predicted class's probability (Eq. 3), and a threshold η chosen on the
# training images turns the scores into a lesion mask, compared with the dermatologists' masks
# by the Jaccard index. The study's figures (its Table 5, each the mean of five runs) are quoted
# beside ours below.

# %% tags=["parameters"]
# The default profile (params/default.yaml: the book on 2 CPU cores); params/full.yaml holds the studies' own.
profile = "default"
run_dir = ""
score_split = "test"                  # "val": score the validation split in its place, to choose settings
scheduler = ""                        # the run's Dask scheduler (the runner sets it); empty: variants run here
seed = 0
device = "auto"
backbone = "resnet18"
weights = "imagenet"
weights_fallback = "efficientnet_lite0"
feature_stages = 2                     # also pool the backbone's last n feature stages beside its output (0: the study's)
bag_source = "cache"                   # cache (00_data's square cache) or original (each image at its own size)
image_size = 0                         # px the cached images are read at before blocks are cut (0: the cache's size)
block_size = 64
stride_scale = 0.42                     # multiplies Eq. 4's height bands and strides (1.0: the study's)
rotation_steps = {"melanoma": 180, "seborrheic_keratosis": 180}   # degrees; 0: not rotated
gcn_hidden = 512
attention_dim = 128
weight_init = "glorot"                 # glorot (torch-geometric's) or ones, the study's stated init
end_to_end = False                     # True: ResNet-18 trains with the graph layers, as the study (for a GPU)
epochs = 12
batch_size = 8
lr = 0.003
momentum = 0.9
lr_change_epoch = 1000
lr_after = 1e-4
patience = 2
seeds = 3                              # models trained from seed, seed + 1, ...; the study reports the mean of five
overlay_images = 4                     # per group in the contour figures

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display
from myst_nb import glue

from derm_nb.artifacts import write_parquet
from derm_nb.chapters import chapter
from derm_nb.models.backbones import create_backbone, with_stage_features
from derm_nb.plots import confusion_matrices, training_curves
from derm_nb.results import count_parameters, write_model_artifacts
from derm_nb.studies import study004
from derm_nb.studies.study004 import CARD
from derm_nb.studies.study004.experiment import (
    ModelSpec,
    bags_note,
    prepare_bags,
    run_seeds,
    scoring_for,
    seed_metrics,
    seed_table,
)
from derm_nb.studies.study004.mil import MILConfig, rotations
from derm_nb.studies.study004.segmentation import (
    bag_figure,
    contour_figure,
    gcn_mil_variant,
    overlay_rows,
)
from derm_nb.studies.study004.sources import bag_images

ctx = chapter("07_gcn_mil", globals())
p = study004.params("07_gcn_mil", ctx.parameters)
classes = ctx.data.classes
MEL = classes.index("melanoma")
frames = ctx.splits()
images = {s: ctx.images(f, size=p.image_size) for s, f in frames.items()}  # the square cache: figures and masks
sources = {s: bag_images(bag_source, f, images[s]) for s, f in frames.items()}  # what the bags are cut from
labels = {s: f["label"].to_numpy() for s, f in frames.items()}
size = images["train"].shape[-1]
everything = pd.concat([f.assign(split=s) for s, f in frames.items()], ignore_index=True)
display(pd.crosstab(everything["split"], everything["label_name"]).loc[list(frames)])

# %% [markdown]
# ## Bags
#
# Every image is cut into k x k blocks at the stride Eq. 4 gives for its height, from 00_data's
# square cache (`bag_source = "cache"`) or from the original image at its own resolution
# (`"original"`, the study's premise: no cropping, no resizing). Frozen (`end_to_end = False`, the
# CPU profiles), the backbone computes each block's features once, standardised with the training
# blocks' mean and SD; with `feature_stages` above 0 the outputs of the backbone's last stages are
# averaged over each block and set beside its own (mid-level colour and texture; the study used the
# output alone). End to end (as the study, for a GPU), a bag carries its blocks' pixels and
# ResNet-18 trains with the graph layers, on training images flipped and turned at random. Training
# images of the rotated classes enter once per rotation angle (the DR set).

# %%
feature_net, width, provenance = create_backbone(backbone, weights, weights_fallback)
feature_net, width = with_stage_features(feature_net, width, feature_stages)
angles = rotations(rotation_steps, classes)
bags = prepare_bags(feature_net, sources, labels, block_size, stride_scale, angles, end_to_end, device)
example = bags.test[0]
display(Markdown(bags_note(bags, labels["train"], angles, classes, block_size, stride_scale,
                           f"{provenance.label()}, {width} wide"
                           + (f" (its last {feature_stages} stages pooled beside its output)" if feature_stages else "")
                           + (", trained end to end" if end_to_end else ""))))
bag_figure(sources["test"][0], example, block_size)
plt.show()

# %% [markdown]
# ## Training
#
# One model per seed (`seeds`), each from a fresh initialisation; the study reports the mean of five.

# %%
spec = ModelSpec(width, gcn_hidden, attention_dim, len(classes), weight_init, feature_net if end_to_end else None)
cfg = MILConfig(epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum, lr_change_epoch=lr_change_epoch,
                lr_after=lr_after, patience=patience, device=device, seed=seed)
runs = run_seeds(study004.variants(p).values(), spec, bags, cfg, scoring_for(ctx, frames, labels, block_size, size),
                 ctx.out / "checkpoints", client=ctx.client)
run = runs[0]  # the first seed's predictions, masks and figures stand for the run
training_curves(pd.concat([r.history for r in runs]), title="GCN-based MIL: cross-entropy and accuracy by epoch")
plt.show()

# %% [markdown]
# ## Recognition (Table 5's columns)
#
# Melanoma AUC, accuracy and recall are melanoma against the two benign classes (a bag is called
# melanoma when that class has the highest probability); the seborrheic keratosis AUC is one
# against the rest. All on the held-out test split, for the first seed.

# %%
y, scores, seg = labels["test"], run.scores, run.seg
for what, m in (("Melanoma", scores["melanoma"]), ("Seborrheic keratosis", scores["sk"])):
    if m.get("auc_skipped"):
        display(Markdown(f"{what} AUC: skipped: {m['auc_skipped']}."))
display(scores["report"].style.format(precision=3))
confusion_matrices(pd.DataFrame({"model": "GCN-MIL", "label": y, "pred": scores["pred"]}), classes,
                   "Test split (argmax)", ncols=1)
plt.show()

# %% [markdown]
# ## Segmentation from attention (Eq. 3)
#
# The study states Eq. 3 as softmax(p × α) ≥ η. We read the score of a block as its attention
# weight divided by the image's largest one (so the most attended block scores 1, whatever the
# number of blocks) times the probability of the predicted class; a pixel takes the maximum over
# the blocks that cover it. η is swept from 0 to 1 by 0.05 on the training images of melanomas
# (the study calibrates on melanoma data), and the best η is applied to the test masks. Masks are
# scored on the cache's centred square, where 00_data keeps them; blocks cut from an original image
# are mapped onto it.

# %%
write_parquet(ctx.out / "eta_sweep.parquet", seg.sweep)
if seg.skipped:
    display(Markdown(f"**Segmentation skipped**: {seg.skipped}; no Jaccard index is reported."))
else:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    sns.lineplot(data=seg.sweep, x="eta", y="jaccard", marker="o", ax=ax)
    ax.axvline(seg.eta, color="red", linestyle=":")
    ax.set(title=f"Mean Jaccard on training melanomas by threshold (best η = {seg.eta:.2f})", xlabel="η",
           ylabel="mean Jaccard index")
    plt.show()

# %% [markdown]
# ## Results beside the study's Table 5
#
# Each seed's row, then their mean (the study's figure: the mean of five runs) and SD.

# %%
by_seed = seed_table(runs, y, MEL)
display(by_seed.style.format(precision=3, na_rep="–").set_caption(f"GCN-based MIL (ours, {provenance.backbone})"))
display(CARD.quote("Table 5"))

# %% [markdown]
# ## Predicted and true lesion contours (the study's Figs. 4-5)
#
# Green: the contour at η; red: the dermatologists' mask. Titles give the predicted class and the
# image's Jaccard index.

# %%
for group, rows in overlay_rows(y, MEL, overlay_images, seed).items():
    if len(rows) == 0:
        display(Markdown(f"*{group}: no such test images.*"))
        continue
    contour_figure(images["test"], rows, seg, scores["pred"], classes, group)
    plt.show()

# %%
record = {"blocks_per_bag": int(example.num_nodes), "block_size": block_size, "bag_source": bag_source,
          "end_to_end": end_to_end, "train_bags": len(bags.train), "n_params": count_parameters(run.model),
          **seed_metrics(runs, y, MEL)}
variant = gcn_mil_variant("GCN-MIL", run.history, frames["test"], run.prob, y, classes, scores, seg,
                          provenance.as_dict(), record)
write_model_artifacts(ctx.out, [variant], {"study": "004", "evaluation": "study004 test split (ISIC 2017 layout)",
                                           "split": f"study004 {ctx.scored}",
                                           "classes": classes, "oracle_auc": ctx.oracle_auc(frames["test"])},
                      main=variant.name)
for key, value in study004.findings({f"seed_{r.seed}": r for r in runs}, y, classes, int(example.num_nodes)).items():
    glue(key, value, display=False)

# %%
# The floor (derm_nb.floor): a linear probe on frozen ImageNet features of this chapter's backbone, added to metrics.json.
from derm_nb.floor import FloorSpec, chapter_floor  # noqa: E402
from derm_nb.studies.study004.segmentation import recognition  # noqa: E402


def table5_metrics(labels, prob):  # the GCN-MIL's own metrics (Table 5's columns), for the probe's probabilities
    found = recognition(prob, labels, classes, seed)
    return {**found["melanoma"], "sk_roc_auc": found["sk"]["roc_auc"], "accuracy": found["accuracy"],
            "recall": found["recall"], "accuracy_3class": float((found["pred"] == labels).mean()),
            "f1_weighted": float(found["report"].loc["weighted avg", "f1-score"])}


chapter_floor(ctx, frames, FloorSpec(kind="multiclass", classes=tuple(classes), target_class=MEL, seed=seed,
                                     scorer=table5_metrics),
              {"roc_auc": "melanoma AUC", "sk_roc_auc": "SK AUC", "accuracy": "accuracy (melanoma)",
               "accuracy_3class": "accuracy (3 classes)", "f1_weighted": "weighted F1"},
              images=images, size=size, backbone=backbone, weights=weights, fallback=weights_fallback,
              device=device)

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
# * Melanoma AUC {glue:text}`mel_auc:.3f` ({glue:text}`over_seeds`; the first seed's CI
#   {glue:text}`mel_ci_low:.3f`-{glue:text}`mel_ci_high:.3f`), seborrheic keratosis AUC
#   {glue:text}`sk_auc:.3f`, on {glue:text}`n_test` test images; the study reports the mean of five runs,
#   {glue:text}`paper_mel_auc:.3f` and {glue:text}`paper_sk_auc:.3f`, on ISIC 2017's test set.
# * Trained on image labels only, the attention map gives a mean Jaccard index of
#   {glue:text}`jaccard:.3f` (melanomas: {glue:text}`jaccard_melanoma:.3f`; the first seed's η is
#   {glue:text}`eta:.2f`); the study reports {glue:text}`paper_jaccard:.3f`. With {glue:text}`blocks_per_bag` blocks per
#   image, a mask can follow the lesion only to the block grid's resolution; calling the whole image
#   lesion scores {glue:text}`jaccard_whole_image:.3f`, so the attention {glue:text}`attention_adds`
#   localisation beyond that.
# * The study initialises every weight to 1; that makes all hidden units of a layer identical (a
#   test shows it), so we use torch-geometric's Glorot initialisation unless `weight_init = "ones"`.
