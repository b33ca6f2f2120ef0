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
# Each study runs on its own paper's dataset, through the **catalog**: study 000 and 002 on
# ISIC 2020, study 001 on ISIC 2018 Task 3 (malignant = MEL + BCC + AKIEC), study 002's imbalance
# sweep on ISIC 2019 melanoma vs nevus, study 003 on BUSI and study 004 on ISIC 2017 with its
# official 2000 / 150 / 600 partitions. `datasets` points a study at another source, and `data`
# (`--data NAME=ROOT` on the command line) gives each source's folder. Each distinct dataset is
# prepared once: manifest, quality report, every study's splits and the image cache.
#
# With no folder given, the built-in generator writes each source's *real* layout first, and the
# real loaders read it back: the synthetic path runs the same code as real data. Its true
# per-image probabilities go to an oracle file beside the dataset, which no model ever reads.

# %% tags=["parameters"]
# The default profile (params/default.yaml: the book on 2 CPU cores); params/full.yaml holds the studies' own.
profile = "default"
run_dir = ""
seed = 0
device = "auto"
datasets = {}            # slot -> source, over each study's own (README: the catalog), e.g. {"study003": "isic2017"}
data = {}                # source -> dataset folder or "synthetic" (the --data flags); none given: all synthetic
missing_data = "error"   # a study whose source was not given: error | skip (its chapters are skipped with a note)
synth_patients = {"isic2020": 200, "isic2018": 2400, "isic2019": 600, "busi": 780, "isic2017": 150}  # patients, lesions or cases
synth_prevalence = 0.1  # ISIC 2020 layout only (the archive: 0.0176); the others follow their archive's class mix
synth_height = 240
synth_width = 320
cache_size = 128         # px of the square cache the models read
cache_fit = {"busi": "resize"}   # source -> crop (its centred square, the default) or resize (the whole image, as study 003)
workers = 0              # processes for generation, checks and cache (0: by core count)
max_images = 0           # per dataset, a seeded sample of about this many images, by partition x class, whole
                         # duplicate groups, drawn after the checks (0: all); a quick run on a large real folder

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from derm_nb.artifacts import write_json
from derm_nb.chapters import chapter
from derm_nb.data.catalog import resolve, slot_scheme
from derm_nb.data.prepared import oracle_auc, prepare_catalog, split_summary
from derm_nb.plots import image_grid
from derm_nb.studies import dataset_uses, official_schemes, split_schemes

out = chapter("00_data", globals()).out
plan = resolve(dataset_uses(), datasets, data, missing_data)
for slot, entry in plan.record()["slots"].items():
    if entry["status"] == "missing":
        display(Markdown(f"**{slot}: no data.** {entry['message']}."))

# %% [markdown]
# ## Loading, checking and splitting
#
# Each dataset goes through its loader (layout and schema checks, stated rules for missing
# values), a full decode of every image (missing, truncated or corrupt files are excluded), the
# byte-identical and perceptual-hash near-duplicate checks, the study's target (classes outside
# it are excluded and reported), the group-aware splits of every study, and the image cache.

# %%
prepared = prepare_catalog(plan, out, split_schemes(), official_schemes(), seed=seed, cache_size=cache_size,
                           workers=workers, synth=dict(n_patients=synth_patients, prevalence=synth_prevalence,
                                                       height=synth_height, width=synth_width), fit=cache_fit,
                           max_images=max_images)
slots_of = {key: [s for s, d in plan.slots.items() if d.key == key and s not in plan.missing] for key in prepared}
overview = pd.DataFrame({
    key: {"studies": ", ".join(slots_of[key]), "data": d.describe(), "images": d.summary["n_images"],
          "groups": f"{d.summary['n_groups']} ({d.summary['group_kind']})", "excluded rows": d.summary["n_excluded"],
          "positive share %": round(100 * d.summary["positive_share"], 1),
          "lesion masks": "yes" if d.has_masks else "none in this dataset",
          "cache (px, fit)": f"{d.summary['cache_size']}, {d.summary['cache_fit']}"}
    for key, d in prepared.items()
}).T
display(overview)
for key, d in prepared.items():
    if note := d.cache_note():
        display(Markdown(f"**{key}**: {note}."))
    if d.summary["partitions"]["not_found"]:
        display(Markdown(f"**{key}: the archive's {' and '.join(d.summary['partitions']['not_found'])} partition(s) "
                         f"not found** in the folder {d.summary['folder_name']}; splits: "
                         + "; ".join(f"{s}: {n}" for s, n in d.summary["splits"].items()) + "."))

# %% [markdown]
# ## The quality report
#
# Every row that was excluded, imputed or changed, with its reason. Nothing leaves the data
# without a line here; the full CSVs sit beside the manifests (`quality_report.csv`).

# %%
for key, d in prepared.items():
    q = d.quality
    display(Markdown(f"**{key}**: {len(q)} rows in the quality report."))
    if len(q):
        display(q.groupby(["check", "action"]).size().rename("rows").to_frame())

# %% [markdown]
# ## Duplicates and the official partitions
#
# Every byte-identical or near-duplicate pair found (`near_duplicates.csv` beside each manifest),
# with each image's official partition and which copies stay. Where a copy sits in an archive's
# official validation or test partition, that partition stays as published and the training copy
# goes, so its figures compare with published ones; elsewhere one copy of each group stays.

# %%
for key, d in prepared.items():
    pairs, parts = d.duplicate_pairs(), d.summary["partitions"]
    display(Markdown(f"**{key}**: {d.summary['duplicate_pairs']} duplicate pairs "
                     f"({d.summary['identical_pairs']} byte-identical), "
                     f"{d.summary['cross_partition_pairs']} across official partitions."
                     + (" Official partitions, images read / kept: " + ", ".join(
                         f"{s} {parts['read'][s]:,} / {parts['kept'].get(s, 0):,}" for s in parts["read"]) + "."
                        if parts["read"] else "")))
    crossing = pairs[pairs["partition_a"].ne(pairs["partition_b"])]
    if len(crossing):
        display(crossing)

# %% [markdown]
# ## Splits
#
# Every study's split is group-aware (no patient, or lesion/image where there is no patient id,
# crosses splits, and no near-duplicate pair does either; both are asserted when the splits are
# made) and stratified by class, except where the study used the archive's own partitions.

# %%
for key, d in prepared.items():
    schemes = sorted({slot_scheme(s) for s in slots_of[key]})
    notes = "; ".join(f"{s}: {d.summary['splits'][s]}" for s in schemes)
    display(Markdown(f"**{key}**. {notes}."))
    display(split_summary(d.manifest, schemes))

# %% [markdown]
# ## What the images look like
#
# A sample of each class from the cache the models read, with the lesion mask drawn in yellow
# where the dataset has masks.

# %%
def sample_grid(d, per_class=6):
    rows = d.manifest.sample(frac=1, random_state=seed).groupby("label_name").head(per_class)
    rows = rows.sort_values("label_name")
    return image_grid(d.image_paths(rows), titles=list(rows["label_name"]), masks=d.mask_paths(rows), ncols=per_class,
                      suptitle=f"{d.describe()}: up to {per_class} images per class")


for d in prepared.values():
    sample_grid(d)
    plt.show()

# %% [markdown]
# ## The ceiling
#
# On synthetic data the label was drawn from a known probability, so the best AUC any model can
# reach on a split is the AUC of that probability. Later chapters report it beside their own.

# %%
ceilings = {}
for slot, dataset in plan.slots.items():
    if slot in plan.missing:
        continue
    d, scheme = prepared[dataset.key], slot_scheme(slot)
    ceilings[slot] = oracle_auc(d, d.split(scheme, "val"))
    print(f"{slot} ({dataset.key}): oracle AUC on its validation split =",
          "n/a (real data)" if ceilings[slot] is None else f"{ceilings[slot]:.3f}")

summary_file = write_json(out / "summary.json", {"datasets": {k: d.summary for k, d in prepared.items()},
                                                 "catalog": plan.record(), "oracle_auc_val": ceilings})
