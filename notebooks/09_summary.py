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
# # Summary: every model on one page
#
# One table of every model family and variant, built from the `metrics.json` each chapter wrote
# in this run: ROC-AUC with its bootstrap 95 % interval, the ISIC partial AUC above 80 %
# sensitivity, balanced accuracy, sensitivity at 90 % specificity, training time, parameter
# count and the weights each model started from. On synthetic data the oracle AUC, the AUC of
# the true probability, is the ceiling, and `oracle_lift` = (AUC - 0.5) / (oracle AUC - 0.5) is
# the share of the oracle's lift over chance that a model reached (1 is the ceiling, 0 chance).

# %% tags=["parameters"]
profile = "default"
run_dir = ""
seed = 0

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import HTML, Markdown, display
from myst_nb import glue

from derm_nb import studies
from derm_nb.analysis import GOAL_LIFT, SHOWN, benchmark_table, goal_table, load_model_runs
from derm_nb.artifacts import write_csv
from derm_nb.cards import benchmark_rows, headline_table
from derm_nb.chapters import chapter
from derm_nb.floor import study_floors

ctx = chapter("09_summary", globals())
metrics, _ = load_model_runs(ctx.run_dir)
table = benchmark_table(metrics, ctx.read("catalog")["slots"])
table["floor"] = metrics["floor"].eq(True).to_numpy() if "floor" in metrics else False  # the linear probes
write_csv(ctx.out / "benchmark.csv", table)
# One format call: a second .format() would reset every other column to the default precision.
display(table[[*SHOWN, "floor"]].style.hide(axis="index").format({"oracle_lift": "{:.0%}"}, precision=3, na_rep="-"))
display(HTML('<details><summary>Every column (also in <code>09_summary/benchmark.csv</code>)</summary>'
             '<div style="overflow-x: auto">' + table.style.hide(axis="index").format(
                 {"parameters": "{:,.0f}", "train time (s)": "{:.0f}", "oracle_lift": "{:.0%}"},
                 precision=3, na_rep="-").to_html() + "</div></details>"))

# %%
scored = table[~table["floor"]].dropna(subset=["ROC-AUC"])  # the studies' own models
best = scored.loc[scored["ROC-AUC"].idxmax()]
glue("n_models", int((~table["floor"]).sum()), display=False)
glue("n_datasets", int(table["data"].nunique()), display=False)
glue("best_model", f"{best['model']} (study {best['study']}, {best['data']})", display=False)
glue("best_auc", float(best["ROC-AUC"]), display=False)
glue("best_ci", f"{best['CI low']:.3f}-{best['CI high']:.3f}", display=False)
glue("best_ceiling", f"against an oracle ceiling of {best['oracle AUC']:.3f} on its split"
     if pd.notna(best["oracle AUC"]) else "(real data: no oracle ceiling)", display=False)

fig, ax = plt.subplots(figsize=(8, 0.35 * len(table) + 1.2))
order = table.sort_values("ROC-AUC")
ax.errorbar(order["ROC-AUC"], range(len(order)), xerr=[order["ROC-AUC"] - order["CI low"],
                                                       order["CI high"] - order["ROC-AUC"]], fmt="o", capsize=3)
ax.set_yticks(range(len(order)), [f"{m} ({s})" for m, s in zip(order["model"], order["study"])])
if order["oracle AUC"].notna().any():
    ax.plot(order["oracle AUC"], range(len(order)), "k|", markersize=12, label="oracle AUC of its split")
ax.axvline(0.5, color="grey", linestyle=":", label="chance")
ax.set(title="ROC-AUC with bootstrap 95 % intervals", xlabel="ROC-AUC (each study's positive class vs rest)")
ax.legend(loc="lower right", fontsize=8)
fig.tight_layout()
glue("auc_figure", fig, display=False)
plt.close(fig)

# %% [markdown]
# ## The headline
#
# Of {glue:text}`n_models` models (the linear-probe floors aside), each trained on its own study's dataset
# ({glue:text}`n_datasets` datasets, the `data` column), the highest ROC-AUC was reached by
# {glue:text}`best_model`: {glue:text}`best_auc:.3f` (95 % CI {glue:text}`best_ci`),
# {glue:text}`best_ceiling`. AUCs on different datasets are not a ranking of methods.
#
# ```{glue:figure} auc_figure
# :name: fig-auc-summary
#
# Every model's ROC-AUC with its bootstrap 95 % interval; the black tick is the best any model
# could do on its own synthetic split.
# ```

# %% [markdown]
# ## Each study's main model against the book's goal
#
# The main model is the one each chapter is about: study 000's base model on all images, 001's recipe,
# 002's SDC on the main backbone, 003's pretrained network (the architecture the study found best) and
# 004's GCN-MIL. The goal: a 95 % CI above chance, and at least 60 % of the oracle's lift over chance.

# %%
goal = goal_table(table)
display(goal.style.hide(axis="index").format({"oracle_lift": "{:.1%}"}, precision=3, na_rep="-"))  # 59.7 % is not 60 %
lifted = goal["oracle_lift"].dropna()
glue("n_main", len(goal), display=False)
glue("n_above_chance", int(goal["CI above chance"].sum()), display=False)
glue("n_lift_met", int(lifted.ge(GOAL_LIFT).sum()), display=False)
glue("n_lifted", len(lifted), display=False)
glue("goal_lift", GOAL_LIFT * 100, display=False)
glue("lift_range", f"{lifted.min():.1%}-{lifted.max():.1%}" if len(lifted) else "not measurable (no oracle)",
     display=False)

# %% [markdown]
# Of {glue:text}`n_main` main models, {glue:text}`n_above_chance` have a 95 % CI whose lower end is
# above 0.5, and {glue:text}`n_lift_met` of the {glue:text}`n_lifted` with an oracle reach
# {glue:text}`goal_lift:.0f` % of its lift (their range: {glue:text}`lift_range`).

# %% [markdown]
# ## The studies' own figures
#
# Quoted from the papers, with the data they were measured on. They are not comparable to ours
# number for number: different data, image sizes and training budgets.

# %%
headline_table(studies.cards())

# %% [markdown]
# ## Each study's main model beside its floor, its paper and the best public figure
#
# The floor is a linear probe: frozen ImageNet features of the chapter's own backbone (or the stand-in
# the weights column names) at the chapter's resolution, and a logistic regression whose C was chosen
# on validation, scored on the chapter's own split (`derm_nb.floor`). It is never a study's main model.
# The paper's and the public figures are quoted from the study cards with their sources, not computed
# here; they were measured on other data sizes and resolutions (also in `09_summary/floors.csv`).

# %%
floors = study_floors(metrics, studies.cards())
write_csv(ctx.out / "floors.csv", floors)
display(floors.style.hide(axis="index").format(precision=3, na_rep="–") if len(floors)
        else Markdown("No chapter wrote a floor in this run."))
display(benchmark_rows(studies.cards()).style.hide(axis="index").set_caption(
    "The best public figures on each study's data, quoted as published (not computed here)"))

# %% [markdown]
# ## What reproduced, what did not, and why

# %%
own = metrics[~table["floor"].to_numpy()]
verdicts = {sid: studies.study(sid).verdict(own[own["study"] == sid].set_index("variant"))
            if (own["study"] == sid).any() else f"* **Study {sid}**: not run in this book yet."
            for sid in studies.STUDIES}
display(Markdown("\n".join(verdicts.values())))

# %% [markdown]
# On the synthetic data every gap to the oracle ceiling is the models' (and the CPU budget's): the
# labels are a known function of what the images show. On real data, read the tables above.
