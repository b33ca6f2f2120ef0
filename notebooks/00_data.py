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
# # The data
#
# Which images, labels and patients does every later chapter stand on, and what did we have to
# exclude or repair on the way in?
#
# Two datasets are prepared:
#
# * a **binary** set (melanoma vs benign) for studies 000, 001 and 002: ISIC 2020 by default,
#   or ISIC 2019 / HAM10000 / ISIC 2017 when pointed at them;
# * a **3-class** set with lesion masks for studies 003 and 004: ISIC 2017 (melanoma /
#   seborrheic keratosis / nevus) by default, or BUSI (benign / malignant / normal).
#
# With `data_source = "synthetic"` the built-in generator writes the *real* ISIC 2020 and
# ISIC 2017 folder layouts first, and the real loaders read them back: the synthetic path runs
# the same code as real data. Its true per-image probabilities go to an oracle file beside the
# dataset, which no model ever reads.

# %% tags=["parameters"]
profile = "default"
run_dir = ""
seed = 0
device = "auto"
data_source = "synthetic"        # synthetic | isic2020 | isic2019 | ham10000 | isic2017
data_root = ""                   # the dataset folder when data_source is not synthetic
multiclass_source = "synthetic"  # synthetic (ISIC 2017 layout) | isic2017 | busi
multiclass_root = ""
synth_n_patients = 300           # binary synthetic set (ISIC 2020 layout)
synth_prevalence = 0.05          # ISIC 2020 itself is 0.0176
synth_multiclass_patients = 150  # 3-class synthetic set (ISIC 2017 layout)
synth_height = 240
synth_width = 320
cache_size = 128                 # px of the centre-cropped square cache the models read
workers = 0                      # processes for generation, checks and cache (0: by core count)

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from derm_nb.artifacts import write_json
from derm_nb.chapters import chapter
from derm_nb.data.prepared import oracle_auc, prepare, resolve_source, split_summary
from derm_nb.plots import image_grid
from derm_nb.studies import split_schemes

out = chapter("00_data", profile, run_dir).out
schemes = split_schemes()  # every study's own split, e.g. study 000's 85:15
synth = dict(seed=seed, height=synth_height, width=synth_width, workers=workers)

# %% [markdown]
# ## Loading, checking and splitting
#
# Each dataset goes through its loader (schema check, stated rules for missing values), a full
# decode of every image (missing, truncated or corrupt files are excluded), a byte-hash duplicate
# check, the group-aware splits of every study, and the image cache.

# %%
binary_source, binary_root, binary_oracle = resolve_source(
    data_source, data_root, "isic2020", out / "raw",
    n_patients=synth_n_patients, prevalence=synth_prevalence, **synth)
binary = prepare(binary_source, binary_root, out / "binary", schemes, seed=seed, cache_size=cache_size,
                 workers=workers, oracle_file=binary_oracle)

multi_source, multi_root, multi_oracle = resolve_source(
    multiclass_source, multiclass_root, "isic2017", out / "raw",
    n_patients=synth_multiclass_patients, **synth)
multiclass = prepare(multi_source, multi_root, out / "multiclass", schemes, seed=seed, cache_size=cache_size,
                     workers=workers, oracle_file=multi_oracle)

overview = pd.DataFrame({
    name: {"source": d.summary["source"], "images": d.summary["n_images"], "groups": d.summary["n_groups"],
           "grouped by": d.summary["group_kind"], "excluded rows": d.summary["n_excluded"],
           **{f"class: {k}": v for k, v in d.summary["class_counts"].items()}}
    for name, d in {"binary": binary, "3-class": multiclass}.items()
}).fillna("")
overview

# %% [markdown]
# ## The quality report
#
# Every row that was excluded, imputed or changed, with its reason. Nothing leaves the data
# without a line here; the full CSVs sit beside the manifests (`quality_report.csv`).

# %%
for name, d in {"binary": binary, "3-class": multiclass}.items():
    q = d.quality
    print(f"{name}: {len(q)} rows in the quality report")
    if len(q):
        display(q.groupby(["check", "action"]).size().rename("rows").to_frame())
        display(q.head(8))

# %% [markdown]
# ## Splits
#
# Every study's split is group-aware (no patient, or lesion/image where there is no patient id,
# crosses splits; this is asserted when the splits are made) and stratified by class.

# %%
split_summary(binary.manifest)

# %%
split_summary(multiclass.manifest)

# %% [markdown]
# ## What the images look like
#
# A sample of each class from the cache the models read, with the lesion mask drawn in yellow.

# %%
def sample_grid(d, per_class=6):
    rows = d.manifest.sample(frac=1, random_state=seed).groupby("label_name").head(per_class)
    rows = rows.sort_values("label_name")
    cached = d.image_paths(rows)
    masks = [p.with_name(p.stem + "_mask.png") for p in cached]
    return image_grid(cached, titles=list(rows["label_name"]), masks=masks, ncols=per_class,
                      suptitle=f"{d.summary['source']}: {per_class} images per class")


sample_grid(binary)
plt.show()
sample_grid(multiclass)
plt.show()

# %% [markdown]
# ## The ceiling
#
# On synthetic data the label was drawn from a known probability, so the best AUC any model can
# reach on a split is the AUC of that probability. Later chapters report it beside their own.

# %%
ceilings = {}
for name, d in {"binary": binary, "3-class": multiclass}.items():
    val = d.split("study000", "val")
    ceilings[name] = oracle_auc(d, val)
    print(f"{name}: oracle melanoma AUC on the study-000 validation split =",
          "n/a (real data)" if ceilings[name] is None else f"{ceilings[name]:.3f}")

write_json(out / "summary.json", {"binary": binary.summary, "multiclass": multiclass.summary,
                                  "oracle_auc_study000_val": ceilings})
