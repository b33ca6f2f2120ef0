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
# # Where the binary models fail
#
# Study 000 looked at its base model's true positives and false negatives (its Figs. 11-12) and
# suggested that small melanomas are missed. Here we test that with the lesion masks where the
# dataset has them (ISIC 2020 ships none, and then the test is skipped), and ask
# for every binary model: which subgroups (sex, age, site, brightness, hair) does it serve
# worse, and are its probabilities calibrated? Everything is read from the predictions the
# model chapters wrote; nothing is retrained.

# %% tags=["parameters"]
profile = "default"
run_dir = ""
seed = 0
gallery_model = "Base Small"   # the study's Figs. 11-12 used the base model trained on the small set
gallery_size = 6
n_boot = 500

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display
from myst_nb import glue

from derm_nb.analysis import age_band, calibration, load_model_runs, scored_predictions, subgroup_auc
from derm_nb.artifacts import write_parquet
from derm_nb.chapters import chapter
from derm_nb.eda import compare_distributions
from derm_nb.plots import image_grid
from derm_nb.studies import study000

ctx = chapter("08_error_analysis", globals())
out, data = ctx.out, ctx.data
candidates = ctx.model_reads()  # the model chapters whose predictions the registry lets this chapter read
analysed = ctx.on_same_data(candidates)  # subgroups and lesion sizes come from this chapter's dataset
metrics, predictions = load_model_runs(ctx.run_dir, tuple(analysed))
stats = ctx.read("image_stats")
split_point = ctx.read("brightness_split")["brightness_split"]
attributes = data.manifest[["image_id", "group_id", "sex", "age", "site"]].merge(stats, on="image_id")
attributes = attributes.assign(age_band=age_band(attributes["age"]),
                               brightness_band=study000.brightness_band(attributes["brightness"], split_point),
                               hair=np.where(attributes["has_hair"], "hair", "no hair"))
scored = scored_predictions(metrics, predictions)  # each model on the split its chapter scored (metrics.json)
others = [c for c in candidates if c not in analysed]
display(Markdown(f"{scored['model'].nunique()} binary models of {', '.join(analysed)} on {data.describe()}, "
                 f"{len(scored):,} scored predictions."
                 + (f" Not analysed here (another dataset): {', '.join(others)}." if others else "")))

# %% [markdown]
# ## True positives and false negatives (study 000's Figs. 11-12)

# %%
chosen = scored[scored["model"] == gallery_model]
if chosen.empty:
    chosen = scored[scored["model"] == scored["model"].iloc[0]]
caught = chosen[(chosen["label"] == 1) & (chosen["pred"] == 1)]
missed = chosen[(chosen["label"] == 1) & (chosen["pred"] == 0)]
for title, rows in (("True positives", caught), ("False negatives", missed)):
    rows = rows.sample(min(gallery_size, len(rows)), random_state=seed)
    if len(rows):
        frame = data.manifest.set_index("image_id").loc[rows["image_id"]].reset_index()
        image_grid(data.image_paths(frame), titles=[f"p={p:.2f}" for p in rows["prob"]], masks=data.mask_paths(frame),
                   ncols=gallery_size, suptitle=f"{title} of {chosen['model'].iloc[0]}"
                   + (" (lesion mask in yellow)" if data.has_masks else ""))
        plt.show()
    else:
        display(Markdown(f"No {title.lower()} for {chosen['model'].iloc[0]}."))

# %% [markdown]
# ## Are missed melanomas smaller?
#
# Lesion size is the share of the image inside the lesion mask. For every model: the median size
# of the melanomas it caught and of those it missed, and a Mann-Whitney test of the difference.

# %%
rows = []
if data.has_masks:
    melanomas = scored[scored["label"] == 1].merge(attributes[["image_id", "lesion_area"]], on="image_id")
    melanomas = melanomas.dropna(subset=["lesion_area"])  # images kept without a mask (quality report)
    for model, part in melanomas.groupby("model", sort=False):
        hit, miss = part.loc[part["pred"] == 1, "lesion_area"], part.loc[part["pred"] == 0, "lesion_area"]
        if len(hit) and len(miss):
            test = compare_distributions(miss, hit)
            rows.append({"model": model, "caught": len(hit), "missed": len(miss), "median area caught": hit.median(),
                         "median area missed": miss.median(), "p (Mann-Whitney)": test["p_value"],
                         "P(missed larger)": test["p_a_greater"]})
size_table = pd.DataFrame(rows)
if not data.has_masks:
    display(Markdown(f"**Skipped:** {data.summary['source']} has no lesion masks, so lesion size cannot be measured "
                     "(no size is reported rather than a size of 0)."))
elif len(size_table):
    display(size_table.style.format(precision=3))
    fig, ax = plt.subplots(figsize=(10, 3.8))
    sns.boxplot(data=melanomas.assign(outcome=np.where(melanomas["pred"] == 1, "caught", "missed")),
                x="model", y="lesion_area", hue="outcome", ax=ax)
    ax.set(title="Lesion size of melanomas, caught vs missed", xlabel="", ylabel="lesion share of the image")
    ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    plt.show()
else:
    display(Markdown("Every model caught or missed all melanomas, so size could not be compared."))

# %% [markdown]
# ## Performance by subgroup
#
# ROC-AUC with bootstrap 95 % intervals per subgroup (subgroups with at least two melanomas). The
# bootstrap draws whole patients (or lesions), as every chapter's does: one patient's images share
# that patient's risk.

# %%
groups = subgroup_auc(scored, attributes, ["sex", "age_band", "site", "brightness_band", "hair"], n_boot=n_boot,
                      include_skipped=True,
                      seed=seed)
write_parquet(out / "subgroup_auc.parquet", groups)
shown = groups.dropna(subset=["roc_auc"])
if len(shown):
    g = sns.catplot(data=shown, kind="point", x="roc_auc", y="subgroup", hue="model", col="attribute",
                    col_wrap=3, sharey=False, linestyle="none", height=2.8, aspect=1.4, dodge=0.5)
    for ax in g.axes.flat:
        ax.axvline(0.5, color="grey", linestyle=":")
    g.set_axis_labels("ROC-AUC", "")
    g.figure.suptitle("ROC-AUC by subgroup (points; intervals in the table below)", y=1.02)
    plt.show()
groups.round(3)

# %% [markdown]
# ## Calibration
#
# A model whose probabilities are calibrated lies on the diagonal of the reliability diagram;
# the Brier score is the mean squared error of the probability (lower is better).

# %%
scores, curves = calibration(scored)
fig, ax = plt.subplots(figsize=(5.5, 5))
for model, part in curves.groupby("model", sort=False):
    ax.plot(part["predicted"], part["observed"], marker="o", label=model)
ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
ax.set(title="Reliability diagram (quantile bins)", xlabel="mean predicted probability",
       ylabel="observed melanoma share")
ax.legend(fontsize=7)
fig.tight_layout()
plt.show()
write_parquet(out / "calibration.parquet", scores)
scores.round(4)

# %%
worst = shown.sort_values("roc_auc").head(1)
smaller = int((size_table["median area missed"] < size_table["median area caught"]).sum()) if len(size_table) else 0
glue("size_finding", (f"Missed melanomas were smaller than caught ones for {smaller} of {len(size_table)} models; "
                      f"significant (p < 0.05) for {int((size_table['p (Mann-Whitney)'] < 0.05).sum())}.")
     if len(size_table) else ("No model both caught and missed melanomas, so size could not be compared."
                              if data.has_masks else f"{data.summary['source']} has no lesion masks, so lesion size "
                              "was not analysed."), display=False)
glue("worst_subgroup", (f"{worst['model'].iloc[0]} on {worst['attribute'].iloc[0]} = {worst['subgroup'].iloc[0]}, "
                        f"AUC {worst['roc_auc'].iloc[0]:.3f} (CI {worst['ci_low'].iloc[0]:.3f}-"
                        f"{worst['ci_high'].iloc[0]:.3f})") if len(worst) else "none with both classes", display=False)
glue("brier_min", float(scores["brier"].min()), display=False)
glue("brier_max", float(scores["brier"].max()), display=False)

# %% [markdown]
# ## What we learned
#
# {glue:text}`size_finding` The weakest subgroup: {glue:text}`worst_subgroup`. Brier scores range
# from {glue:text}`brier_min:.4f` to {glue:text}`brier_max:.4f`; models trained with a balanced
# sampler or focal loss over-predict melanoma by design (compare the mean probability with the
# prevalence above).
