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
# brightness, one for lighter). It reported that both failed to train except on all images.
#
# Patients of unknown sex go through both sex experts, whose image features are averaged (a
# gate of ½, ½). The brightness split point is read from the EDA chapter, where it was
# computed on training melanomas only.

# %% tags=["parameters"]
profile = "default"
run_dir = ""
seed = 0
device = "auto"
backbone = "resnet18"
weights = "imagenet"
weights_fallback = "efficientnet_lite0"
image_size = 128
epochs = 10
batch_size = 64
lr = 1e-5
patience = 3
small_per_patient = 2
training_sets = ["all", "small"]   # which study-000 training sets the experts are trained on
num_workers = 0

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from sklearn.metrics import roc_auc_score

from derm_nb.artifacts import notebook_dir, read_json, run_dir_for
from derm_nb.data.prepared import load_prepared, oracle_auc
from derm_nb.data.splits import small_dataset
from derm_nb.datasets import CachedImages, eval_transform, load_split_images
from derm_nb.experiments import results_table, run_binary_variant, weights_label, write_model_artifacts
from derm_nb.losses import BCE
from derm_nb.models.fusion import brightness_gate, build_fusion, encode_tabular, sex_gate
from derm_nb.plots import confusion_matrices, loss_curves, roc_curves
from derm_nb.published import STUDY000_EXPERTS
from derm_nb.train import TrainConfig

runs = run_dir_for(profile, run_dir)
out = notebook_dir(runs, "03_experts")
data = load_prepared(runs / "00_data" / "binary")
split_point = read_json(runs / "01_eda" / "brightness_split.json")["brightness_split"]
brightness = pd.read_parquet(runs / "01_eda" / "image_stats.parquet").set_index("image_id")["brightness"]
base = pd.read_parquet(runs / "02_baseline" / "predictions.parquet")
train_all, val = data.split("study000", "train"), data.split("study000", "val")
val = val[val["image_id"].isin(base["image_id"])]  # the common validation set of the base chapter
display(Markdown(f"Brightness split point from the EDA chapter: **{split_point:.1f}**; validation images: {len(val)}."))

# %%
sets = {"all": train_all, "small": small_dataset(train_all, per_group=small_per_patient, seed=seed)}
tab_train, tab_val = encode_tabular(train_all, val)
position = {image_id: k for k, image_id in enumerate(train_all["image_id"])}
all_images = load_split_images(data.cache_dir, train_all)
val_images = load_split_images(data.cache_dir, val)
gates = {"Sex experts": lambda f: sex_gate(f["sex"]),
         "Brightness experts": lambda f: brightness_gate(brightness.loc[f["image_id"]], split_point)}
config = dict(epochs=epochs, batch_size=batch_size, lr=lr, optimizer="adam", scheduler="cosine",
              patience=patience, device=device, seed=seed, num_workers=num_workers)

variants = []
for expert_kind, gate in gates.items():
    val_ds = CachedImages(val_images, val["target"], eval_transform(image_size), tab_val, extra=gate(val))
    for set_name in training_sets:
        frame = sets[set_name]
        rows = [position[i] for i in frame["image_id"]]
        train_ds = CachedImages(all_images[rows], frame["target"], eval_transform(image_size), tab_train[rows],
                                extra=gate(frame))
        model, provenance = build_fusion(backbone, weights, weights_fallback, tab_train.shape[1], experts=2)
        name = f"{expert_kind} ({set_name})"
        variants.append(run_binary_variant(name, model, provenance, BCE(), train_ds, val_ds, val,
                                           TrainConfig(**config), out / "checkpoints" / name))
        share = gate(frame)[:, 0].mean()
        variants[-1].extra["gate_share_first_expert"] = float(share)

prov = variants[0].provenance
display(Markdown(f"Each expert's image branch: **{prov['backbone']}** ({prov['weights']}, {prov['source']})"
                 + (f"; a substitute for {prov['substituted_for']}." if prov["substituted_for"] else ".")))

# %% [markdown]
# ## Results beside the base model
#
# The base model's rows are read from the base chapter's predictions (same validation images),
# not retrained here.

# %%
base_metrics = read_json(runs / "02_baseline" / "metrics.json")["variants"]
columns = {"threshold": "Threshold", "f1": "F1-Score", "roc_auc": "ROC-AUC", "roc_auc_ci_low": "AUC CI low",
           "roc_auc_ci_high": "AUC CI high", "recall": "Recall", "train_seconds": "train time (s)",
           "n_params": "parameters"}
ours = results_table(variants, columns)
base_rows = pd.DataFrame({name: {**{title: m.get(key) for key, title in columns.items()},
                                 "weights": weights_label(m["weights"])}
                          for name, m in base_metrics.items() if name in ("Base All", "Base Small")}).T
display(pd.concat([base_rows, ours]).style.format(precision=3))
display(Markdown(f"Published: {STUDY000_EXPERTS}"))

# %% [markdown]
# ## Do experts help the subgroup they were built for?
#
# ROC-AUC within each subgroup of the validation set (subgroups with both classes only).

# %%
predictions = pd.concat([v.predictions for v in variants] + [base[base["model"].isin(["Base All", "Base Small"])]])
groups = val.assign(brightness_band=np.where(brightness.loc[val["image_id"]].to_numpy() <= split_point,
                                             "dark", "light"))[["image_id", "sex", "brightness_band"]]
scored = predictions.merge(groups, on="image_id")
rows = []
for (model, column), part in [((m, c), p) for c in ("sex", "brightness_band") for m, p in scored.groupby("model")]:
    for level, sub in part.groupby(column):
        if sub["label"].nunique() == 2:
            rows.append({"model": model, "subgroup": f"{column}={level}", "n": len(sub),
                         "melanomas": int(sub["label"].sum()), "roc_auc": roc_auc_score(sub["label"], sub["prob"])})
subgroups = pd.DataFrame(rows)
subgroups.pivot_table(index="model", columns="subgroup", values="roc_auc").style.format(precision=3)

# %%
loss_curves(pd.concat([v.history for v in variants]), "Experts: loss by epoch")
plt.show()
roc_curves(predictions, "Experts and base model on the validation set")
plt.show()
confusion_matrices(pd.concat([v.predictions for v in variants]), ["benign", "melanoma"], "Experts at optimised thresholds")
plt.show()

# %%
write_model_artifacts(out, variants, {"study": "000", "evaluation": "study000 common validation set",
                                      "oracle_auc": oracle_auc(data, val),
                                      "brightness_split": split_point, "unknown_sex_rule": "gate (0.5, 0.5)"})
best_base = max(base_metrics[k]["roc_auc"] for k in ("Base All", "Base Small"))
best = max(variants, key=lambda v: v.metrics["roc_auc"])
display(Markdown(
    "## What we learned\n\n"
    f"* Best expert model: **{best.name}**, ROC-AUC {best.metrics['roc_auc']:.3f} "
    f"(CI {best.metrics['roc_auc_ci_low']:.3f}-{best.metrics['roc_auc_ci_high']:.3f}), vs {best_base:.3f} for the "
    f"best base model; an expert model has {best.n_params / base_metrics['Base All']['n_params']:.1f}× the base "
    "model's parameters (two image branches).\n"
    "* The study's experts did not train on small data; compare the rows above to see whether ours did."))
