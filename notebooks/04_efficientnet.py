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
# Study 001 fine-tuned an ImageNet EfficientNet-B0 on ISIC 2018 (binary melanoma) with a recipe:
# centre-crop, 224 px, per-image standardisation, train-only augmentation, a 60/40 balanced
# sampler, a frozen-backbone warm-up, focal BCE (α 0.6, γ 2), AdamW 3e-4 (weight decay 1e-4)
# with a cosine schedule, batch 32, mixed precision and gradient accumulation, and a Youden
# threshold. It tried three ablations (300 px, mixup 0.2, Shades-of-Grey colour constancy) and
# left one question open: its Grad-CAM maps sometimes lit the image corners, not the lesion.
#
# We run the recipe, the three ablations and two more (focal loss off, sampler off) as variants
# of one notebook, and measure where Grad-CAM's mass falls using the lesion masks.

# %% tags=["parameters"]
profile = "default"
run_dir = ""
seed = 0
device = "auto"
backbone = "efficientnet_b0"
weights = "imagenet"
weights_fallback = "efficientnet_lite0"
image_size = 224
ablation_size = 300
epochs = 20
warmup_epochs = 1
batch_size = 32
grad_accum = 2
lr = 3e-4
weight_decay = 1e-4
sampler_pos_share = 0.4
focal_alpha = 0.6
focal_gamma = 2.0
mixup_alpha = 0.2
patience = 5
variants = ["recipe", "300px", "mixup", "shades_of_grey", "no_focal", "no_sampler"]
gradcam_images = 8                 # per group (correct / incorrect) in the gallery
gradcam_min_size = 7               # Grad-CAM layer: the last convolution with maps at least this wide
num_workers = 2                       # worker processes preparing augmented batches while the model trains

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display
from PIL import Image

from derm_nb.artifacts import notebook_dir, run_dir_for, write_parquet
from derm_nb.data.prepared import load_prepared, oracle_auc
from derm_nb.datasets import CachedImages, load_split_images, study001_transform
from derm_nb.experiments import results_table, run_binary_variant, write_model_artifacts
from derm_nb.explain import conv_layer_at_resolution, gradcam_maps, heatmap_mass
from derm_nb.losses import BCE, FocalBCE
from derm_nb.models.cnn import build_architecture
from derm_nb.plots import confusion_matrices, loss_curves, roc_curves
from derm_nb.published import STUDY001_DATA, STUDY001_RESULTS, quote
from derm_nb.train import TrainConfig

runs = run_dir_for(profile, run_dir)
out = notebook_dir(runs, "04_efficientnet")
data = load_prepared(runs / "00_data" / "binary")
frames = {s: data.split("study001", s) for s in ("train", "val", "test")}
images = {s: load_split_images(data.cache_dir, f) for s, f in frames.items()}
pd.DataFrame({s: {"images": len(f), "melanomas": int(f["target"].sum()), "patients": f["group_id"].nunique()}
              for s, f in frames.items()}).T

# %% [markdown]
# ## The recipe and its variants
#
# Each variant changes one thing against the recipe. The threshold is Youden's point on the
# validation split, applied to the held-out test split that every number below comes from.

# %%
SPECS = {
    "recipe": {}, "300px": {"size": ablation_size}, "mixup": {"mixup": mixup_alpha},
    "shades_of_grey": {"sog": True}, "no_focal": {"loss": "bce"}, "no_sampler": {"sampler": 0.0},
}
TITLES = {"recipe": "Recipe", "300px": f"{ablation_size} px", "mixup": f"Mixup {mixup_alpha}",
          "shades_of_grey": "Shades of Grey", "no_focal": "BCE instead of focal", "no_sampler": "No balanced sampler"}
results, models = [], {}
for key in variants:
    spec = SPECS[key]
    size, sog = spec.get("size", image_size), spec.get("sog", False)
    sets = {s: CachedImages(images[s], frames[s]["target"], study001_transform(size, s == "train", sog))
            for s in frames}
    model, provenance = build_architecture(backbone, 1, size, weights, weights_fallback)
    loss = BCE() if spec.get("loss") == "bce" else FocalBCE(focal_alpha, focal_gamma)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, optimizer="adamw",
                      scheduler="cosine", patience=patience, freeze_backbone_epochs=warmup_epochs,
                      grad_accum=grad_accum, sampler_pos_share=spec.get("sampler", sampler_pos_share),
                      mixup_alpha=spec.get("mixup", 0.0), device=device, seed=seed, num_workers=num_workers)
    variant = run_binary_variant(TITLES[key], model, provenance, loss, sets["train"], sets["val"], frames["val"],
                                 cfg, out / "checkpoints" / key, threshold_rule="youden",
                                 test=(sets["test"], frames["test"]))
    results.append(variant)
    models[key] = (model, sets, size)
prov = results[0].provenance
display(Markdown(f"Backbone: **{prov['backbone']}** ({prov['weights']}, {prov['source']})"
                 + (f"; **a substitute** for {prov['substituted_for']}, whose ImageNet weights are not available "
                    "here." if prov["substituted_for"] else ".")))

# %% [markdown]
# ## Results (test split, Youden threshold from validation)

# %%
table = results_table(results, {"roc_auc": "AUROC", "roc_auc_ci_low": "AUROC CI low",
                                "roc_auc_ci_high": "AUROC CI high", "balanced_accuracy": "balanced accuracy",
                                "recall": "recall", "f1_macro": "macro-F1", "threshold": "threshold",
                                "train_seconds": "train time (s)"})
ceiling = oracle_auc(data, frames["test"])
display(Markdown("**Ours**" + (f" (oracle AUROC on this test split: {ceiling:.3f})" if ceiling else "") + ":"))
display(table.style.format(precision=3))
display(quote(STUDY001_RESULTS, STUDY001_DATA))

# %%
history = pd.concat([v.history for v in results])
loss_curves(history, "Study 001 variants: focal / BCE loss by epoch", ncols=3)
plt.show()
test_predictions = pd.concat([v.predictions[v.predictions["split"] == "test"] for v in results])
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
# profiles an earlier stage, since a 2 x 2 map cannot say where the model looks. For each map we measure the share of its mass inside the lesion
# mask and inside the image corners (outside the inscribed circle, where dermoscope dark corners
# sit), and compare with those regions' share of the image area.

# %%
model, sets, size = models["recipe"]
recipe = results[0].predictions.query("split == 'test'").reset_index(drop=True)
batch = torch.stack([sets["test"][i]["image"] for i in range(len(sets["test"]))])
layer_name, layer, layer_px = conv_layer_at_resolution(model.cpu(), size, gradcam_min_size)
display(Markdown(f"Grad-CAM layer: `{layer_name}` ({layer_px} x {layer_px} maps at {size} px input)."))
cams = gradcam_maps(model, batch, recipe["pred"].to_numpy(), layer=layer)
masks = [np.asarray(Image.open(p.with_name(p.stem + "_mask.png")).resize((size, size), Image.NEAREST)) > 127
         for p in data.image_paths(frames["test"])]
mass = pd.DataFrame([heatmap_mass(c, m) for c, m in zip(cams, masks)])
mass["correct"] = np.where(recipe["pred"] == recipe["label"], "correct", "incorrect")
empty = int(mass["lesion_mass"].isna().sum())
if empty:
    display(Markdown(f"{empty} heat maps were zero everywhere (no positive evidence) and are left out of the shares."))
write_parquet(out / "gradcam_mass.parquet", pd.concat([recipe[["image_id", "label", "pred"]], mass], axis=1))
summary = mass.groupby("correct")[["lesion_mass", "lesion_area", "corner_mass", "corner_area",
                                   "lesion_enrichment"]].median()
summary["images"] = mass.groupby("correct").size()
display(summary.style.format(precision=3))

defined = mass.dropna(subset=["lesion_mass"])
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
long = defined.melt(id_vars="correct", value_vars=["lesion_mass", "corner_mass"], var_name="region", value_name="share")
sns.boxplot(data=long, x="region", y="share", hue="correct", ax=axes[0])
axes[0].set(title="Share of Grad-CAM mass by region", ylabel="share of heat-map mass", xlabel="")
sns.histplot(data=defined, x="lesion_enrichment", hue="correct", element="step", bins=20, ax=axes[1])
axes[1].axvline(1, color="grey", linestyle=":")
axes[1].set(title="Lesion enrichment (mass share / area share)", xlabel="enrichment (1 = like a uniform map)")
fig.tight_layout()
plt.show()

# %%
def gallery(rows, title):
    n = len(rows)
    if n == 0:
        return
    fig, axes = plt.subplots(2, n, figsize=(2.2 * n, 4.6), squeeze=False)
    for k, i in enumerate(rows):
        image = np.asarray(Image.open(data.image_paths(frames["test"].iloc[[i]])[0]).resize((size, size)))
        axes[0, k].imshow(image)
        axes[0, k].contour(masks[i], levels=[0.5], colors="yellow", linewidths=0.8)
        axes[0, k].set_title(f"y={recipe['label'][i]} p={recipe['prob'][i]:.2f}", fontsize=8)
        axes[1, k].imshow(image)
        axes[1, k].imshow(cams[i], cmap="jet", alpha=0.45)
        share = mass["lesion_mass"][i]
        axes[1, k].set_title("empty map" if np.isnan(share) else f"lesion {share:.0%}", fontsize=8)
        for ax in axes[:, k]:
            ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    plt.show()


rng = np.random.default_rng(seed)
for group in ("correct", "incorrect"):
    idx = np.flatnonzero(mass["correct"] == group)
    gallery(rng.choice(idx, min(gradcam_images, len(idx)), replace=False) if len(idx) else [],
            f"Grad-CAM, {group} predictions (top: image and lesion mask; bottom: heat map)")

# %%
write_model_artifacts(out, results, {"study": "001", "evaluation": "study001 test split, Youden threshold from val",
                                     "oracle_auc": ceiling, "gradcam_median_by_correctness": summary.to_dict("index")})
base = results[0].metrics
display(Markdown(
    "## What we learned\n\n"
    f"* The recipe reached a test AUROC of {base['roc_auc']:.3f} (CI {base['roc_auc_ci_low']:.3f}-"
    f"{base['roc_auc_ci_high']:.3f})" + (f" against an oracle ceiling of {ceiling:.3f}" if ceiling else "") + "; "
    "each other row changes one part of it, so its difference from the recipe row is that part's effect "
    "(within the confidence intervals shown).\n"
    + "".join(f"* Grad-CAM, {g} predictions: median {r['lesion_mass']:.0%} of the mass on the lesion "
              f"({r['lesion_area']:.0%} of the area) and {r['corner_mass']:.0%} in the corners "
              f"({r['corner_area']:.0%} of the area).\n" if pd.notna(r["lesion_mass"]) else
              f"* Grad-CAM, {g} predictions: every heat map was empty, so no share can be measured.\n"
              for g, r in summary.iterrows())))
