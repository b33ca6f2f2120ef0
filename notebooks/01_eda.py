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
# # Exploring the data
#
# Study 000 explored ISIC 2020 before modelling it, looking for subgroups a *mixture of experts*
# could exploit: melanoma sites that differ by sex, darker melanoma images, and hair (22.4 % of
# male images in K. Sies et al., as the study cites). We repeat that exploration on whatever
# `00_data` prepared, and test the differences instead of only picturing them.

# %% tags=["parameters"]
# The default profile (params/default.yaml: the book on 2 CPU cores); params/full.yaml holds the studies' own.
profile = "default"
run_dir = ""
seed = 0
brightness_sample = 2500   # images in the random-sample brightness matrix (the study used 2,500)
hair_threshold = 0.08      # share of black-hat pixels above which an image counts as 'with hair'

# %%

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display
from myst_nb import glue
from scipy.stats import chi2_contingency

from derm_nb.artifacts import write_json, write_parquet
from derm_nb.chapters import chapter
from derm_nb.eda import colour_matrix, compare_distributions, extremes, image_stats
from derm_nb.plots import image_grid
from derm_nb.studies import study000

ctx = chapter("01_eda", globals())
out, data = ctx.out, ctx.data
m = data.manifest.assign(melanoma=lambda d: d["target"].map({0: "benign", 1: "melanoma"}))
sns.set_theme(style="whitegrid", context="notebook")
display(Markdown(f"Data: **{data.describe()}** ({len(m):,} images, {m['group_id'].nunique():,} "
                 f"{data.summary['group_kind']} groups)."))

# %% [markdown]
# ## Class balance and patients

# %%
balance = pd.concat({
    "all": m["melanoma"].value_counts(),
    **{f"study000 {s}": data.split("study000", s).pipe(lambda d: d["target"].map({0: "benign", 1: "melanoma"}))
       .value_counts() for s in ("train", "val")},
}, axis=1).T.fillna(0).astype(int)
balance["melanoma share %"] = (100 * balance["melanoma"] / balance.sum(axis=1)).round(2)
balance

# %%
per_group = m.groupby("group_id").size()
fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
sns.histplot(per_group, bins=30, ax=axes[0])
axes[0].set(title=f"Images per {data.summary['group_kind']} (max {per_group.max()})",
            xlabel="images", ylabel="groups")
if m["age"].notna().any():
    sns.histplot(data=m, x="age", hue="melanoma", stat="density", common_norm=False, bins=18, ax=axes[1])
    axes[1].set(title="Age by class", xlabel="age (years)")
else:  # a folder without its metadata file: every age is missing
    axes[1].set(title="Age by class: no ages in this dataset")
sex_counts = m.groupby(["sex", "melanoma"]).size().rename("images").reset_index()
sns.barplot(data=sex_counts, x="sex", y="images", hue="melanoma", ax=axes[2])
axes[2].set(title="Sex by class", yscale="log", ylabel="images (log scale)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Age, sex and site against the target (the study's Fig. 13)

# %%
fig, axes = plt.subplots(1, 2, figsize=(15, 4.5), gridspec_kw={"width_ratios": [1, 2.2]})
known_sex = m[m["sex"].isin(["male", "female"])]
sns.violinplot(data=known_sex, x="melanoma", y="age", hue="sex", split=True, inner="quart", cut=0, ax=axes[0])
axes[0].set(title="Age by class and sex", xlabel="", ylabel="age (years)")
sites = m["site"].value_counts().index.tolist()
sns.violinplot(data=m, x="site", y="age", hue="melanoma", split=True, inner="quart", cut=0, order=sites, ax=axes[1])
axes[1].set(title="Age by anatomical site and class", xlabel="site", ylabel="age (years)")
axes[1].tick_params(axis="x", rotation=25)
fig.tight_layout()
plt.show()

# %%
site_sex = (m[m["target"] == 1].pivot_table(index="site", columns="sex", values="image_id", aggfunc="count",
                                            fill_value=0))
site_sex["melanoma images"] = site_sex.sum(axis=1)
display(Markdown("Melanoma images per site and sex (study 000 points at palms/soles in men and "
                 "oral/genital sites in women):"))
site_sex.sort_values("melanoma images", ascending=False)

# %% [markdown]
# ## Brightness (the study's Fig. 2)
#
# Each image's general colour is its mean RGB (an averaging filter as wide as the image);
# brightness is that colour's BT.601 luma on a 0-255 scale. The matrices lay the colours out
# sorted from dark to light: all melanomas, and a random sample of all images.

# %%
stats = image_stats(m, data.image_paths(m), hair_threshold=hair_threshold)
write_parquet(out / "image_stats.parquet",
              stats[["image_id", "mean_r", "mean_g", "mean_b", "brightness", "hair_coverage", "has_hair", "lesion_area"]])
rgb = ["mean_r", "mean_g", "mean_b"]
mel = stats[stats["target"] == 1]
sample = stats.sample(min(brightness_sample, len(stats)), random_state=seed)
fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), gridspec_kw={"width_ratios": [1, 1, 1.3]})
for ax, (title, part) in zip(axes, [(f"All melanomas (n={len(mel)})", mel),
                                    (f"Random sample (n={len(sample)})", sample)]):
    ax.imshow(colour_matrix(part[rgb].to_numpy()), interpolation="nearest")
    ax.set(title=title, xticks=[], yticks=[])
    ax.set_xlabel("dark → light, row by row")
sns.kdeplot(data=stats, x="brightness", hue="melanoma", common_norm=False, fill=True, ax=axes[2])
axes[2].set(title="Brightness by class", xlabel="brightness of the mean colour (0-255)")
fig.tight_layout()
plt.show()

test = compare_distributions(mel["brightness"], stats.loc[stats["target"] == 0, "brightness"])
display(Markdown(
    f"Mann-Whitney U, melanoma vs benign brightness: median {test['median_a']:.1f} vs {test['median_b']:.1f}, "
    f"p = {test['p_value']:.2g}; P(a melanoma image is brighter than a benign one) = {test['p_a_greater']:.2f} "
    f"(0.5 = no difference)."))

# %% [markdown]
# ## The darkest and lightest images of each class (the study's Figs. 3 and 4)

# %%
for label, part in stats.groupby("melanoma"):
    dark, light = extremes(part, "brightness", k=5)
    rows = pd.concat([dark, light])
    image_grid(data.image_paths(rows), titles=[f"{b:.0f}" for b in rows["brightness"]], ncols=5, size=2.2,
               suptitle=f"{label}: five darkest (top) and five lightest (bottom); brightness 0-255")
    plt.show()

# %% [markdown]
# ## Hair
#
# Hair is estimated per image with a morphological black-hat filter (thin dark structures);
# an image counts as *with hair* when over `hair_threshold` of its pixels are flagged.

# %%
hair_by_sex = stats.groupby("sex")["has_hair"].agg(["mean", "sum", "size"]).rename(
    columns={"mean": "share with hair", "sum": "images with hair", "size": "images"})
known = stats[stats["sex"].isin(["male", "female"])]
chi2, p_hair, _, _ = chi2_contingency(pd.crosstab(known["sex"], known["has_hair"]))
display(hair_by_sex.style.format({"share with hair": "{:.1%}"}))
display(Markdown(f"Chi-square test of hair against sex: χ² = {chi2:.1f}, p = {p_hair:.2g}. "
                 "Study 000 cites 22.4 % of male ISIC images with hair."))

fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
sns.boxplot(data=stats, x="has_hair", y="brightness", hue="melanoma", ax=axes[0])
axes[0].set(title="Brightness with and without hair", xlabel="hair detected", ylabel="brightness (0-255)")
sns.histplot(data=stats, x="hair_coverage", hue="sex", bins=40, element="step", ax=axes[1])
axes[1].set(title="Hair coverage by sex", xlabel="share of hair pixels", yscale="log")
fig.tight_layout()
plt.show()
hair_brightness = compare_distributions(stats.loc[stats["has_hair"], "brightness"],
                                        stats.loc[~stats["has_hair"], "brightness"]) if stats["has_hair"].any() \
    and (~stats["has_hair"]).any() else None
if hair_brightness:
    display(Markdown(f"Images with hair vs without: median brightness {hair_brightness['median_a']:.1f} vs "
                     f"{hair_brightness['median_b']:.1f} (Mann-Whitney p = {hair_brightness['p_value']:.2g})."))

# %% [markdown]
# ## The brightness split point for the brightness experts
#
# Study 000's brightness experts split images at the middle brightness of the melanoma images.
# We take that median over the **study-000 training split only**, so the validation labels never
# shape the model, and write it for the expert chapter to read.

# %%
split = study000.brightness_split(stats, data.split("study000", "train")["image_id"])
split_point = split["brightness_split"]
write_json(out / "brightness_split.json", split)
write_json(out / "tests.json", {"brightness_melanoma_vs_benign": test,
                                "hair_vs_sex_chi2": {"chi2": chi2, "p_value": p_hair},
                                "hair_share_by_sex": hair_by_sex["share with hair"].to_dict()})
display(Markdown(f"Brightness split point: **{split_point:.1f}** (from {split['n_melanomas']} training melanomas); "
                 f"{(study000.brightness_band(stats['brightness'], split_point) == 'dark').mean():.0%} of all images "
                 "fall at or below it."))

# %%
shares = hair_by_sex["share with hair"]
glue("brightness_direction", "darker" if test["median_a"] < test["median_b"] else "lighter", display=False)
glue("brightness_gap", float(abs(test["median_a"] - test["median_b"])), display=False)
glue("brightness_p", float(test["p_value"]), display=False)
glue("brightness_reading", "a real difference in this data" if test["p_value"] < 0.05
     else "not distinguishable from chance here", display=False)
glue("hair_male", float(shares.get("male", float("nan"))), display=False)
glue("hair_female", float(shares.get("female", float("nan"))), display=False)
glue("hair_reading", "a significant difference by sex" if p_hair < 0.05 else "no significant difference",
     display=False)
glue("split_point", float(split_point), display=False)

# %% [markdown]
# ## What we learned
#
# Melanoma images are {glue:text}`brightness_direction` than benign ones by
# {glue:text}`brightness_gap:.1f` brightness units (p = {glue:text}`brightness_p:.2g`:
# {glue:text}`brightness_reading`). {glue:text}`hair_male:.0%` of male and
# {glue:text}`hair_female:.0%` of female images show hair ({glue:text}`hair_reading`). The
# brightness experts will split at {glue:text}`split_point:.1f`.
#
# On the synthetic default these follow from how the generator works (malignant lesions are
# larger and more variegated; men get hair more often). On real data they are findings about
# that dataset.
