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
# # Appendix: how fast, on what
#
# Can the book be run where our readers run it? The targets, on a 2-core CPU: the `smoke` book in
# under 5 minutes, the `default` book in under 30 with every model above chance, the training
# loop never waiting on data for more than 10 % of its step time, and the image cache built at
# least 3x faster than a naive PIL loop. `derm-nb bench` (`make bench`) measures all of it in one
# run and writes `runs/benchmarks/bench.json`; this appendix shows that file, or, before anyone has
# run it here, the reference measurement shipped in `benchmarks/reference.json`. The notebook
# times of the run you are reading come from its own `run_log.json`.

# %% tags=["parameters"]
profile = "default"
run_dir = ""
seed = 0
benchmark_json = ""

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from derm_nb.artifacts import project_root, read_json, run_dir_for
from derm_nb.bench import notebook_times, stand_in_lines, target_table

root = project_root()
candidates = [benchmark_json] if benchmark_json else [root / "runs/benchmarks/bench.json", root / "benchmarks/reference.json"]
source = next((p for p in map(Path, candidates) if p.is_file()), None)
if source is None:
    raise FileNotFoundError(f"no benchmark results at {', '.join(map(str, candidates))}; run `make bench`")
result = read_json(source)
m = result["machine"]
shown = source.relative_to(root) if source.is_relative_to(root) else source
display(Markdown(f"Benchmark file `{shown}`, measured {m['date']} on {m['platform']} (torch {m['torch']}, "
                 f"{m['cpu_threads']} CPU threads{', ' + m['gpu'] if m.get('gpu') else ', no GPU'})."))

# %% [markdown]
# ## Targets

# %%
checks = target_table(result)
display(checks.style.hide(axis="index"))

# %% [markdown]
# ## Notebook wall times
#
# Each chapter's time in the benchmark's runs, beside the run of this book. A chapter that found
# its finished checkpoints (a second run with the same parameters) resumes instead of training, so
# only a run from empty `checkpoints/` folders measures training time.

# %%
this_run = notebook_times(run_dir_for(profile, run_dir)).assign(profile=f"this book ({profile})")
times = pd.concat([pd.DataFrame(rows).assign(profile=f"benchmark ({p})") for p, rows in result["notebooks"].items()
                   if rows] + [this_run], ignore_index=True)
fig, ax = plt.subplots(figsize=(8, 4))
sns.barplot(data=times, y="notebook", x="seconds", hue="profile", ax=ax)
ax.set(title="Wall time per notebook", xlabel="seconds", ylabel="")
plt.show()
display(times.pivot_table(index="notebook", columns="profile", values="seconds", sort=False)
        .style.format(precision=0, na_rep="–"))

# %% [markdown]
# ## Images in, images through
#
# The cache build against a naive single-process loop over the same files, the data loader's
# rate from the in-memory cache, and training and inference throughput of two backbones at two
# image sizes, in the default memory layout and channels-last (with and without mixed precision
# on CUDA, when the benchmark ran on a GPU).

# %%
cache = result["cache"]
display(Markdown(f"**Cache build**, {cache['images']} JPEGs of {cache['source_px'][0]} x {cache['source_px'][1]} px "
                 f"to {cache['cache_px']} px: {cache['ours_images_per_s']:.0f} images/s against "
                 f"{cache['naive_images_per_s']:.0f} for the naive loop ({cache['speedup']:.1f}x); with a full-size PNG mask "
                 f"per image (ISIC 2017), {cache['with_masks_ours_images_per_s']:.0f} against "
                 f"{cache['with_masks_naive_images_per_s']:.0f} ({cache['with_masks_speedup']:.1f}x), since every mask "
                 "must be decoded at full size either way."))
display(pd.DataFrame(result["loader"]).style.hide(axis="index").format(precision=0))
models = pd.DataFrame(result["models"])
models["setting"] = (models["device"] + models["channels_last"].map({True: ", channels-last", False: ""})
                     + models["amp"].map({True: ", AMP", False: ""}))
long = models.melt(id_vars=["model", "size", "setting"], value_vars=["train_images_per_s", "inference_images_per_s"],
                   var_name="phase", value_name="images/s")
long["phase"] = long["phase"].str.replace("_images_per_s", "")
grid = sns.catplot(data=long, kind="bar", x="size", y="images/s", hue="setting", col="model", row="phase",
                   sharey=False, height=2.8, aspect=1.4)
grid.set_titles("{row_name}, {col_name}")
grid.figure.suptitle("Throughput", y=1.02)
plt.show()

# %% [markdown]
# ## Waiting for data

# %%
display(pd.DataFrame(result["data_wait"]).style.hide(axis="index").format({"data_wait_share": "{:.1%}"}))

# %% [markdown]
# ## The full book on this machine
#
# `derm-nb bench --estimate full` counts each chapter's passes at the archives' published sizes
# (images x epochs x variants from the resolved `full` parameters) and times each model per image
# here. Where the benchmark file holds such an estimate, it is shown below: the hours per chapter,
# and the passes that dominate.

# %%
estimates = result.get("estimates", {})
for name, estimate in estimates.items():
    passes = pd.DataFrame(estimate["passes"])
    hours = pd.Series(estimate["chapters"], name="hours").sort_values(ascending=False)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    sns.barplot(x=hours.values, y=hours.index, ax=ax, color="tab:blue")
    ax.set(title=f"Estimated hours per chapter, {name} profile on {estimate['device']} "
           f"(total {estimate['total_hours']:.1f} h)", xlabel="hours", ylabel="")
    plt.show()
    shown = ["chapter", "what", "backbone", *(["stands_in_for"] if "stands_in_for" in passes else []), "size", "images",
             "hours"]
    display(passes.nlargest(8, "hours")[shown].style.hide(axis="index").format({"images": "{:,.0f}", "hours": "{:.2f}"}))
    for line in stand_in_lines(passes):
        display(Markdown(line.strip()))
if not estimates:
    display(Markdown("This benchmark file holds no estimate: run `derm-nb bench --estimate full`."))
if "calibration" in result:
    cal = result["calibration"]
    display(Markdown(f"Calibration workload: {cal['workload']}, {cal['images_per_s']:.1f} images/s here; one unit "
                     f"(1,000 images) takes {cal['seconds_per_unit']:.1f} s."))

# %%
fastest = models.loc[models["train_images_per_s"].idxmax()]
missed = checks[checks["met"] == "no"]
display(Markdown(
    "## What we learned\n\n"
    + ("* Every measured target is met on this machine.\n" if missed.empty else
       "* Missed: " + "; ".join(f"{r.target} ({r.measured}: {r.note})" for r in missed.itertuples()) + ".\n")
    + f"* Fastest training setting: {fastest['model']} at {fastest['size']} px, {fastest['setting']}, "
    f"{fastest['train_images_per_s']:.0f} images/s.\n"
    "* Timings depend on the machine; run `make bench` to measure yours."))
