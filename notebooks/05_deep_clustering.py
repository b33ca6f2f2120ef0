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
# # Study 002: does clustering in an embedding space resist class imbalance better than a classifier?
#
# Study 002 (Öztürk & Çukur) maps each image to an embedding (a backbone, dropout 0.3 and an
# embedding layer) and trains it with a *COM-Triplet* loss: a triplet loss on cosine distances
# that also pushes the positive away from the negative, with an adaptive margin 1 - d(P, N)
# instead of a constant one (Eq. 3-5). Two cluster prototypes are kept from the training batches,
# replaced only when their separation grows (Eq. 6-7), and a test image is called melanoma when it
# is nearer the minority prototype (Eq. 14). Without labels (UDC), a 2-component Gaussian mixture
# on each batch's embeddings gives pseudo-labels and the centres replace P and N (Eq. 12-13).
#
# The study claims the clustering is less hurt by imbalance than a direct classifier, and
# compares it with direct classifiers, the plain triplet loss and seven unsupervised baselines.
# We run all of them on the same split (75 / 12.5 / 12.5, patient-grouped) and score every one on
# the held-out test split in the study's table form: class-weighted recall, precision,
# specificity and F1, accuracy, and AUC.

# %% tags=["parameters"]
# The default profile (params/default.yaml: the book on 2 CPU cores); params/full.yaml holds the studies' own.
profile = "default"
run_dir = ""
score_split = "test"                  # "val": score the validation split in its place, to choose settings
scheduler = ""                        # the run's Dask scheduler (the runner sets it); empty: variants run here
seed = 0
device = "auto"
backbone = "vgg16"                     # the study's best backbone; the main one for every comparison
backbones = ["vgg16"]   # Table I-II backbone rows
classifier_backbone = "vgg16"          # the direct classifiers' learning strategies (Table III: resnet50)
weights = "imagenet"
weights_fallback = "efficientnet_lite0"
finetune = "head"                       # all: train the backbone (the study) | head: frozen backbone features
feature_stages = 2                     # also pool the backbone's last n feature stages beside its output (0: the study's)
image_size = 96
embedding_dim = 128
epochs = 10
batch_size = 15                        # M triplets per iteration (SDC), 3M images (UDC)
lr = 0.001
classifier_lr = 0.001
aug_views = 4                          # augmented copies per training image, in head mode
margins = [0.2, 0.6]                   # COM-Triplet's constant margins, SDC and UDC (Tables I-II, IV-V)
gmm_covariance = "diag"                # UDC's and the GMM baseline's covariance: full (the study) | diag
feature_selection = True               # §IV prototype feature selection at inference
cae_epochs = 5
cae_batch_size = 32
sweep_majority = 4500
sweep_minorities = [4500, 2250, 1125, 300, 125, 75]
sweep_scale = 0.02                      # multiplies the study's image counts (the synthetic pool is smaller)
sweep_repeats = 2                      # subsets drawn per ratio (different seeds)

# %%
import matplotlib.pyplot as plt
import seaborn as sns
from IPython.display import Markdown, display
from myst_nb import glue

from derm_nb.artifacts import write_parquet
from derm_nb.chapters import chapter
from derm_nb.cluster import run_variants
from derm_nb.results import history_of, skip_notes, write_model_artifacts
from derm_nb.studies import study002
from derm_nb.studies.study002 import CARD
from derm_nb.studies.study002.experiments import (
    chosen_sdc,
    repeat_notes,
    split_table,
    sweep_cell,
    sweep_summary,
    table,
    validation_auc_of,
)
from derm_nb.studies.study002.rows import STRATEGY, by_table, sweep_cells, sweep_inputs, sweep_rows

ctx = chapter("05_deep_clustering", globals())
p = study002.params("05_deep_clustering", ctx.parameters)
frames = ctx.splits()
display(Markdown(f"Data: **{ctx.data.describe()}**; split: {ctx.data.summary['splits']['study002']}."))
display(split_table(frames).style.format(precision=3))
checkpoints = ctx.out / "checkpoints"
inputs = study002.chapter_inputs(p, {s: ctx.images(f) for s, f in frames.items()}, frames, checkpoints)
display(Markdown(f"Main backbone: {inputs.main.describe()}."))
jobs = inputs.distinct(study002.variants(p))
results = run_variants(study002.train_variant, jobs, inputs, checkpoints / "results", p.seed, ctx.client)
rows = by_table(results, jobs)

# %% [markdown]
# ## Supervised deep clustering (SDC): backbone, margin and learning strategy (Tables I-II)
#
# Every row changes one thing against SDC with the COM-Triplet loss (adaptive margin) on the main
# backbone with transfer learning (TL). The margin rows keep the COM-Triplet loss with a constant
# margin α instead (Eq. 3 with a fixed α); `SDC triplet α=0.2` is the traditional triplet loss of
# Eq. 2, Table III's baseline. NP trains from random weights; TL+DA adds the study's augmentation.
# Each run keeps the epoch (model and prototypes) with the best validation AUC. Rows are named by
# the backbone asked for; the weights column says what it really started from. As in the study,
# whose validation set picked the configuration "used in all experiments thereafter", the
# COM-Triplet row (backbone or learning strategy) with the best validation AUC becomes the main
# SDC: the one held against the direct classifiers below and against the book's goal.

# %%
for note in repeat_notes(inputs.repeats, inputs.backbones):
    display(Markdown(note))
sdc = rows["SDC backbone"] + rows["SDC margin"] + rows["SDC strategy"]
display(table(sdc))
for note in skip_notes(sdc):
    display(Markdown(note))
sdc_main = chosen_sdc(rows["SDC backbone"] + rows["SDC strategy"])
glue("sdc_main", sdc_main.name, display=False)
glue("sdc_main_val_auc", validation_auc_of(sdc_main), display=False)

# %% [markdown]
# ## SDC against direct classifiers (Table III)
#
# One direct classifier per backbone with transfer learning, then the learning strategies (NP,
# TL+DA, TL+LW) on `classifier_backbone` (the study's ResNet50). Each is the backbone with a new
# output layer: one logit trained with BCE (a two-way softmax is the same model), the study's
# Adam, melanoma above 0.5, and like SDC the epoch of best validation AUC. Loss weighting (LW)
# recomputes Eq. 1's class weights in every batch, inversely to that batch's class counts.

# %%
display(Markdown(f"Classifier backbone (`{classifier_backbone}`): {inputs.backbones[STRATEGY].describe()}."))
direct = rows["Classifier"]
supervised = direct + [v for v in sdc if v.name.startswith("SDC triplet")] + [sdc_main]
ceiling = ctx.oracle_auc(frames["test"])
display(Markdown("**Ours** (test split)" + (f"; the generator's oracle AUC on it is {ceiling:.3f}" if ceiling else "")))
display(table(supervised))
for note in skip_notes(direct):
    display(Markdown(note))
display(CARD.quote("Supervised", 2))

# %% [markdown]
# ## Unsupervised deep clustering (UDC) and the unsupervised baselines (Tables IV-VI)
#
# No training label is used here. As for SDC, the margin rows are COM-Triplet with a constant α
# and `UDC triplet α=0.2` is the traditional triplet loss, here against the cluster centres
# (Eq. 12-13). Which cluster is "melanoma" is decided without labels too, by
# one stated rule for every method: **the smaller cluster is the minority** (melanoma is rare).
# The GMM splits each batch of 3M embeddings; the shallow methods run on the main backbone's
# frozen ImageNet features; the 1-D projections (kernel PCA, FastICA, LLE, dictionary learning)
# are thresholded by 2-means on the training projections. Validation labels only pick UDC's epoch.

# %%
udc, shallow = rows["UDC"], rows["Shallow"]
unsupervised = shallow + udc
display(table(unsupervised))
for note in skip_notes(unsupervised):
    display(Markdown(note))
display(CARD.quote("Unsupervised", 2))

# %%
history = history_of(sdc + udc)
if len(history):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    sns.lineplot(data=history, x="epoch", y="train_loss", hue="model", marker="o", ax=axes[0])
    axes[0].set(title="Training loss (COM-Triplet or triplet)", ylabel="loss")
    sns.lineplot(data=history, x="epoch", y="val_auc", hue="model", marker="o", ax=axes[1], legend=False)
    axes[1].axhline(0.5, color="grey", linestyle=":")
    axes[1].set(title="Validation AUC of the nearest-prototype score", ylabel="AUC")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    plt.show()

# %% [markdown]
# ## How much imbalance can each method take? (Fig. 4)
#
# The study kept 4,500 nevi and shrank the melanomas from 4,500 to 75 (ISIC 2019, melanoma vs
# nevus), training SDC and the direct classifier on each subset with the same backbone. We draw
# the subsets from the training split of the sweep's own dataset (the catalog's `study002_sweep`:
# ISIC 2019 melanoma vs nevus, every other class excluded) at `sweep_scale` times the study's
# counts, `sweep_repeats` times each, and score every model on that dataset's test split.

# %%
sweep_data = ctx.dataset("study002_sweep")
sweep_frames = {s: sweep_data.split("study002", s).reset_index(drop=True) for s in ("train", "val", "test")}
sweep_grid = sweep_inputs(p, {s: ctx.images(f, sweep_data) for s, f in sweep_frames.items()}, sweep_frames, checkpoints)
display(Markdown(f"Sweep data: **{sweep_data.describe()}**."))
display(split_table(sweep_frames).style.format(precision=3))
sweep = sweep_rows(run_variants(sweep_cell, sweep_cells(p, sweep_frames["train"]), sweep_grid,
                                checkpoints / "results_sweep", p.seed, ctx.client))
write_parquet(ctx.out / "imbalance_sweep.parquet", sweep)
fig, ax = plt.subplots(figsize=(7, 4))
sns.pointplot(data=sweep, x="ratio", y="roc_auc", hue="method", errorbar="sd", dodge=0.2, ax=ax)
ax.axhline(0.5, color="grey", linestyle=":")
ax.set(title="Test AUC as the melanomas shrink (majority:minority)", xlabel="nevus:melanoma training images",
       ylabel="test AUC")
plt.show()
summary = sweep_summary(sweep)
display(summary.style.format(precision=3))
display(CARD.quote("Sweep", data=CARD.notes["sweep"]))

# %%
variants = sdc + direct + udc + shallow
write_model_artifacts(ctx.out, variants, {
    "study": "002", "evaluation": "study002 test split; nearest prototype (clustering) or 0.5 (classifiers)",
    "split": f"study002 {ctx.scored}",
    "oracle_auc": ceiling, "finetune": finetune,
    "sweep": summary.reset_index().to_dict("records")}, main=sdc_main.name)
for key, value in study002.findings({v.name: v for v in variants}, sdc_main.name, summary, ceiling).items():
    glue(key, value, display=False)
test_split = split_table(frames).loc["test"]
for key, column in {"test_melanomas": "melanomas", "test_patients": "patients",
                    "test_melanoma_patients": "patients with a melanoma",
                    "test_largest_share": "largest patient's share"}.items():
    glue(key, float(test_split[column]), display=False)

# %%
# The floor (derm_nb.floor): a linear probe on frozen ImageNet features of this chapter's backbone, added to metrics.json.
from derm_nb.floor import FloorSpec, chapter_floor, reused_features  # noqa: E402

chapter_floor(ctx, frames, FloorSpec(kind="class_weighted", seed=seed),
              {"roc_auc": "AUC", "roc_auc_ci_low": "AUC CI low", "roc_auc_ci_high": "AUC CI high",
               "accuracy": "Accuracy", "f1_weighted": "F1-score"},
              probe=reused_features({s: inputs.main.features(s) for s in ("train", "val", "test")},
                                    inputs.main.provenance, inputs.main._module, image_size))

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
# * SDC with the COM-Triplet loss ({glue:text}`sdc_main`, the best validation AUC of its
#   backbones and learning strategies: {glue:text}`sdc_main_val_auc:.3f`) reached a test AUC of {glue:text}`sdc_auc:.3f` (CI
#   {glue:text}`sdc_ci_low:.3f`-{glue:text}`sdc_ci_high:.3f`); the best direct classifier
#   ({glue:text}`best_direct`) {glue:text}`best_direct_auc:.3f` (CI
#   {glue:text}`best_direct_ci_low:.3f`-{glue:text}`best_direct_ci_high:.3f`){glue:text}`oracle_clause`.
# * The test split's {glue:text}`test_melanomas:.0f` melanomas come from {glue:text}`test_melanoma_patients:.0f`
#   of its {glue:text}`test_patients:.0f` patients, and its largest patient holds
#   {glue:text}`test_largest_share:.0%` of its images. A patient's images share that patient's risk,
#   so the patients, more than the images, are the independent cases: the CIs above resample
#   whole patients, and with this few of them, validation and test AUCs can differ by more than
#   the models do.
# * Unsupervised: UDC COM-Triplet {glue:text}`udc_auc:.3f`, UDC triplet {glue:text}`udc_triplet_auc:.3f`;
#   the shallow baselines range {glue:text}`shallow_min_auc:.3f`-{glue:text}`shallow_max_auc:.3f`. An
#   AUC below 0.5 means the smaller cluster was not the melanomas: without labels, that rule is all
#   that names the clusters.
# * At the most imbalanced ratio ({glue:text}`extreme_ratio`), SDC minus classifier is
#   {glue:text}`extreme_gap:+.3f` AUC (the study: {glue:text}`paper_gap:+.3f` at
#   {glue:text}`paper_ratio`). With the few test melanomas of the built-in data, differences inside
#   the CIs above are not evidence either way.
# * Class-weighted recall equals accuracy by construction, and with few melanomas both are
#   dominated by the benign class, as in the study's tables: AUC and the melanoma recall column are
#   the numbers to read.
