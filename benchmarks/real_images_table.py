"""Print the README's "On real images" table from a run's folder: each study's main model beside its
linear-probe floor (as 09_summary's floors.csv, from the chapters that ran), 07's seborrheic-keratosis
AUC, and each chapter's minutes.

    python benchmarks/real_images_table.py runs/real
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from derm_nb import studies
from derm_nb.analysis import load_model_runs
from derm_nb.artifacts import read_json
from derm_nb.floor import study_floors


def figure(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.3f}"


def training_minutes(variants: dict, main: str) -> tuple[float, float]:
    """Minutes of training spent on the main model and the floor, against the chapter's other models
    (metrics.json `variants`): what a shorter run would have to give up. A floor's `train_seconds` already
    holds its `feature_seconds`."""
    own = other = 0.0
    for name, m in variants.items():
        seconds = float(m.get("train_seconds") or 0)
        if name == main or m.get("floor"):
            own += seconds
        else:
            other += seconds
    return own / 60, other / 60


def table(run_dir: Path) -> str:
    """One markdown row per model chapter: data and split, main model, AUC and weighted F1 against the floor."""
    floors = study_floors(load_model_runs(run_dir)[0], studies.cards())  # as 09 writes it; here 09 need not have run
    log = read_json(run_dir / "run_log.json")
    rows = ["| study | chapter | split scored | main model | main AUC | floor AUC | main wF1 | floor wF1 | minutes | "
            "training: main + floor / other models (min) | paper (quoted, on its own data) |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    split = {}
    for _, r in floors.iterrows():
        auc, floor_auc = figure(r["main ROC-AUC"]), figure(r["floor ROC-AUC"])
        variants = read_json(run_dir / r["chapter"] / "metrics.json")["variants"]  # a floor row comes from this file
        split[r["chapter"]] = training_minutes(variants, r["main model"])
        main, probe = variants.get(r["main model"], {}), variants.get("Linear probe", {})
        if "sk_roc_auc" in main:
            auc += f" (SK {figure(main['sk_roc_auc'])})"
            floor_auc += f" (SK {figure(probe.get('sk_roc_auc', float('nan')))})"
        minutes = log.get(r["chapter"], {}).get("seconds", float("nan")) / 60
        rows.append(f"| {r['study']} | {r['chapter']} | {r['split']} | {r['main model']} | {auc} | {floor_auc} | "
                    f"{figure(r['main weighted F1'])} | {figure(r['floor weighted F1'])} | {minutes:.1f} | "
                    f"{split[r['chapter']][0]:.1f} / {split[r['chapter']][1]:.1f} | {r['paper (quoted)']} |")
    total = sum(e.get("seconds", 0) for e in log.values()) / 60
    own, other = (sum(minutes[k] for minutes in split.values()) for k in (0, 1))
    return "\n".join(rows) + (f"\n\nWhole run: {total:.1f} minutes, of which training {own:.1f} on the main models and "
                              f"floors and {other:.1f} on the chapters' other models.")


if __name__ == "__main__":
    print(table(Path(sys.argv[1])))
