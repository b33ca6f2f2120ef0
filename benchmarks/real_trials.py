"""Validation trials on the real copies: run one chapter with trial settings, scoring the validation split
(`score_split: val`), and keep its main model's and its floor's figures with the chapter's minutes. The
README's trade-off table (metric against minutes) is printed from the kept trials; `params/default.yaml`'s
`real_data` settings were chosen from them, never from a test split.

    python benchmarks/real_trials.py run 06_160_e8 06_architectures '{"image_size": 160, "epochs": 8}'
    python benchmarks/real_trials.py table
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from derm_nb.artifacts import read_json, write_json

ROOT = Path(__file__).resolve().parent.parent
TRIALS = ROOT / "benchmarks" / "real_trials"
REAL = ROOT.parent / "shared" / "real"
FOLDERS = {"isic2017": "ISIC2017", "busi": "BUSI/Dataset_BUSI_with_GT"}
FIGURES = ("roc_auc", "sk_roc_auc", "f1_weighted", "train_seconds", "epochs_run")


def run(name: str, chapter: str, overrides: dict, run_dir: Path, real: Path) -> dict:
    """Run `chapter` (after 00_data, if the run folder has none) on the real copies at `real`, scoring its
    validation split, with `overrides` over the default profile and its real_data keys; keep its figures."""
    missing = [str(real / f) for f in FOLDERS.values() if not (real / f).is_dir()]
    if missing:
        raise SystemExit(f"the real copies are not at {', '.join(missing)} (see ../shared/real/README)")
    user = _user_file(chapter, overrides)
    run_dir.mkdir(parents=True, exist_ok=True)
    params = run_dir / f"{name}.yaml"
    params.write_text(json.dumps(user), encoding="utf-8")
    shutil.rmtree(run_dir / chapter / "checkpoints", ignore_errors=True)  # train afresh: the time is measured
    only = [chapter] if (run_dir / "00_data" / "catalog.json").is_file() else ["00_data", chapter]
    command = [str(Path(sys.executable).with_name("derm-nb")), "run", "--profile", "default", "--params", str(params),
               "--run-dir", str(run_dir), *(f"--data={k}={real / f}" for k, f in FOLDERS.items()), "--only", *only]
    start = time.monotonic()
    subprocess.run(command, cwd=ROOT, check=True)
    return kept_figures(name, chapter, overrides, read_json(run_dir / chapter / "metrics.json"),
                        read_json(run_dir / "run_log.json")[chapter]["seconds"] if only == [chapter]
                        else time.monotonic() - start)


def _user_file(chapter: str, overrides: dict) -> dict:
    """The README's real-copies user file, scoring validation, with the trial's settings for `chapter`."""
    user = yaml.safe_load((ROOT / "benchmarks" / "real_copies.yaml").read_text(encoding="utf-8"))
    user.setdefault("common", {})["score_split"] = "val"
    user.setdefault("notebooks", {})[chapter] = {**user["notebooks"].get(chapter, {}), **overrides}
    return user


def kept_figures(name: str, chapter: str, overrides: dict, metrics: dict, seconds: float) -> dict:
    """What a trial keeps: its settings, the split it scored, the chapter's seconds, and each variant's
    figures (the main model and the floor marked)."""
    if not str(metrics.get("split", "")).endswith("val"):
        raise ValueError(f"{chapter} scored '{metrics.get('split')}', not a validation split: not kept as a trial")
    variants = {v: {k: r[k] for k in FIGURES if isinstance(r.get(k), (int, float))} | {"floor": bool(r.get("floor"))}
                for v, r in metrics["variants"].items() if "skipped" not in r}
    return {"name": name, "chapter": chapter, "overrides": overrides, "split": metrics["split"],
            "main_model": metrics.get("main_model"), "seconds": round(float(seconds), 1), "variants": variants}


def table(folder: Path) -> str:
    """One markdown row per kept trial, by chapter: its settings, the main model's and the floor's
    validation figures, and the chapter's minutes."""
    rows = ["| chapter | trial settings (over the default profile of the time) | main model | main AUC | main wF1 | "
            "floor AUC | floor wF1 | chapter minutes |", "|---|---|---|---|---|---|---|---|"]
    for trial in sorted((read_json(p) for p in folder.glob("*.json")), key=lambda t: (t["chapter"], t["seconds"])):
        main = trial["variants"].get(trial["main_model"] or "", {})
        floor = next((v for v in trial["variants"].values() if v["floor"]), {})
        sk = f" (SK {main['sk_roc_auc']:.3f})" if "sk_roc_auc" in main else ""
        settings = ", ".join(f"{k}: {v}" for k, v in trial["overrides"].items()) or "the default"
        rows.append(f"| {trial['chapter']} | {settings} | {trial['main_model']} | {_fig(main, 'roc_auc')}{sk} | "
                    f"{_fig(main, 'f1_weighted')} | {_fig(floor, 'roc_auc')} | {_fig(floor, 'f1_weighted')} | "
                    f"{trial['seconds'] / 60:.1f}{' (note)' if trial.get('note') else ''} |")
    notes = [f"- {t['chapter']}, {t['name']}: {t['note']}" for t in map(read_json, sorted(folder.glob("*.json")))
             if t.get("note")]
    return "\n".join(rows + ([""] + notes if notes else []))


def _fig(figures: dict, key: str) -> str:
    return f"{figures[key]:.3f}" if key in figures else "–"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("run", help="run one trial and keep it")
    one.add_argument("name")
    one.add_argument("chapter")
    one.add_argument("overrides", type=json.loads, help="the chapter's settings as JSON, e.g. '{\"epochs\": 8}'")
    one.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "trials")
    one.add_argument("--real", type=Path, default=REAL)
    sub.add_parser("table", help="print the kept trials as a markdown table")
    args = parser.parse_args(argv)
    if args.command == "table":
        print(table(TRIALS))
        return
    trial = run(args.name, args.chapter, args.overrides, args.run_dir, args.real)
    write_json(TRIALS / f"{args.name}.json", trial)
    print(json.dumps(trial, indent=1))


if __name__ == "__main__":
    main()
