"""The `derm-nb` command: run the notebooks, build the book, make or load data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from derm_nb.artifacts import project_root, read_json


def data_roots(pairs: list[str]) -> dict[str, str]:
    """`--data NAME=ROOT` flags as {source: root}; ROOT may be `synthetic`. Errors name the bad flag."""
    from derm_nb.data import registry

    roots: dict[str, str] = {}
    for pair in pairs:
        name, sep, root = pair.partition("=")
        name = name.strip()
        if not sep or not name or not root.strip():
            raise SystemExit(f"derm-nb: error: --data {pair!r}: expected NAME=ROOT, e.g. --data isic2020=/data/siim")
        if name not in registry.SOURCES:
            raise SystemExit(f"derm-nb: error: --data {pair!r}: unknown source '{name}' "
                             f"(known: {', '.join(registry.names())})")
        if name in roots:
            raise SystemExit(f"derm-nb: error: --data {name}=... given twice")
        root = root.strip()
        roots[name] = root if root == "synthetic" else str(Path(root).expanduser().resolve())
    return roots


def _cmd_run(args: argparse.Namespace) -> int:
    from derm_nb.runner import run_notebooks

    if args.source or args.data_root:
        raise SystemExit("derm-nb: error: --source and --data-root were replaced by --data NAME=ROOT, one per "
                         "dataset (e.g. --data isic2020=/data/siim --data busi=/data/Dataset_BUSI_with_GT)")
    overrides: dict = {}
    if args.data:
        overrides["data"] = data_roots(args.data)
    if args.missing_data:
        overrides["missing_data"] = args.missing_data
    if args.workers is not None and args.workers < 1:
        raise SystemExit(f"derm-nb: error: --workers {args.workers}: give 1 or more worker processes")
    if args.workers and args.scheduler:
        raise SystemExit("derm-nb: error: --workers starts a local cluster and --scheduler joins one: give one of them")
    timings = run_notebooks(project_root(), args.profile, only=args.only, user_params=args.params,
                            overrides=overrides, run_dir=args.run_dir, workers=args.workers or 0,
                            scheduler=args.scheduler)
    for stem, seconds in timings.items():
        print(f"{stem:<24} {seconds:8.1f} s")
    return 0


def _cmd_book(args: argparse.Namespace) -> int:
    from derm_nb.runner import build_book

    index = build_book(project_root(), args.profile, run_dir=args.run_dir)
    print(f"book written to {index}")
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from derm_nb.data.synthetic import SynthConfig, generate, oracle_path

    cfg = SynthConfig(preset=args.preset, n_patients=args.n_patients, seed=args.seed,
                      prevalence=args.prevalence, workers=args.workers)
    out = generate(cfg, args.out)
    print(f"wrote the {args.preset} layout to {out}; oracle probabilities in {oracle_path(out)}")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from derm_nb.data.catalog import TARGETS, Dataset
    from derm_nb.data.prepared import prepare
    from derm_nb.studies import official_schemes, split_schemes

    target = args.target or ("melanoma" if TARGETS["melanoma"].supports(args.source) else "malignant")
    if not TARGETS[target].supports(args.source):
        raise SystemExit(f"derm-nb: error: --target {target}: {args.source} has no such target")
    prepared = prepare(Dataset(args.source, target), args.root, args.out, split_schemes(), seed=args.seed,
                       official=official_schemes(), cache_size=args.size, workers=args.workers, fit=args.fit,
                       max_images=args.max_images)
    print(f"{prepared.describe()}: {prepared.summary['duplicate_pairs']} duplicate pairs, "
          f"{prepared.summary['cross_partition_pairs']} across official partitions ({prepared.folder / 'near_duplicates.csv'})")
    print(prepared.manifest.groupby("label_name").size().rename("images").to_string())
    summary = prepared.quality.groupby(["check", "action"]).size() if len(prepared.quality) else "no problems found"
    print(f"quality report ({prepared.folder / 'quality_report.csv'}):\n{summary}")
    print(f"manifest: {prepared.folder / 'manifest.parquet'}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from derm_nb.bench import estimate, estimate_report, report, run_benchmark, save

    earlier = read_json(args.out) if args.out.is_file() else {}
    if args.estimate:  # only the estimate, kept beside the last full benchmark in the same file
        result = earlier
        result.setdefault("estimates", {})[args.estimate] = estimate(project_root(), args.estimate, args.device,
                                                                     args.params)
        print(estimate_report(result["estimates"][args.estimate]))
    else:
        result = run_benchmark(project_root(), args.run_profile, args.quick, args.device)
        result["estimates"] = earlier.get("estimates", {})
        print(report(result))
    print(f"\nwritten to {save(result, args.out)}")
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from derm_nb.data.download import DownloadError, download, listing, manual, manuals, parse_parts, remotes, select

    root = args.root.expanduser().resolve() if args.root else None
    if args.name in manuals():
        if args.list or args.parts or args.mirror:
            raise DownloadError(f"{args.name} is not fetched by derm-nb: --list, --parts and --mirror apply to "
                                f"{', '.join(remotes())}")
        return 0 if manual(args.name, root) else 1
    parts = parse_parts(args.parts)
    select(args.name, parts)  # an unknown name or part stops here, before anything is touched
    if args.list:
        print(listing(args.name, parts, root, args.mirror))
        return 0
    if root is None:
        raise DownloadError(f"give the folder to fetch {args.name} into: derm-nb download {args.name} --root DIR")
    return 0 if download(args.name, root, parts, args.mirror) else 1


def build_parser() -> argparse.ArgumentParser:
    from derm_nb.data import registry
    from derm_nb.data.catalog import TARGETS
    from derm_nb.data.download import known as downloadable

    sources = registry.names()
    presets = [s.name for s in registry.SOURCES.values() if s.synthetic is not None]
    fetched = downloadable()
    parser = argparse.ArgumentParser(prog="derm-nb", description=__doc__, allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute the notebooks with papermill under a parameter profile")
    run.add_argument("--profile", default="default", help="params/<profile>.yaml (smoke, default, full)")
    run.add_argument("--only", nargs="+", metavar="NAME", help="run only these notebooks (e.g. 00_data 01_eda)")
    run.add_argument("--params", type=Path, help="a user parameter file layered over the profile")
    run.add_argument("--data", action="append", metavar="NAME=ROOT",
                     help="a dataset's folder, repeatable: --data isic2020=/data/siim --data busi=/data/BUSI "
                          f"(NAME: {', '.join(sources)}; ROOT 'synthetic' for the built-in stand-in). With none, "
                          "every study runs on synthetic data")
    run.add_argument("--missing-data", choices=["error", "skip"],
                     help="a study whose dataset was not given: stop with an error (default) or skip its chapters")
    run.add_argument("--source", help=argparse.SUPPRESS)     # replaced by --data; kept to say so
    run.add_argument("--data-root", help=argparse.SUPPRESS)
    run.add_argument("--run-dir", type=Path, help="where the run's artifacts go (default: runs/<profile>/)")
    run.add_argument("--workers", type=int, metavar="N",
                     help="run the chapter graph on a local Dask cluster of N worker processes (one GPU each on CUDA); "
                          "chapters whose inputs are ready run side by side, and 02-07 farm out their variants")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="run on an existing Dask scheduler (e.g. tcp://host:8786 of a dask-jobqueue SLURMCluster); "
                          "its workers need --resources \"chapter=1\" (and GPU=1 on CUDA)")
    run.set_defaults(func=_cmd_run)

    book = sub.add_parser("book", help="build the HTML book from a profile's executed notebooks")
    book.add_argument("--profile", default="default")
    book.add_argument("--run-dir", type=Path, help="the run to build from (default: runs/<profile>/)")
    book.set_defaults(func=_cmd_book)

    synth = sub.add_parser("synth", help="write a synthetic dermoscopy dataset in a real layout")
    synth.add_argument("--out", required=True, type=Path)
    synth.add_argument("--preset", choices=presets, default="isic2020")
    synth.add_argument("--n-patients", type=int, default=200)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--prevalence", type=float, default=0.0176, help="melanoma share (isic2020 preset)")
    synth.add_argument("--workers", type=int, default=0, help="processes (0: up to 4, by core count)")
    synth.set_defaults(func=_cmd_synth)

    data = sub.add_parser("data", help="load a dataset folder into a manifest, quality report, splits and cache")
    data.add_argument("--source", required=True, choices=sources, help="the dataset's source")
    data.add_argument("--target", choices=list(TARGETS),
                      help="the binary target (default: melanoma where the source has it, else malignant)")
    data.add_argument("--root", required=True, type=Path, help="the dataset folder")
    data.add_argument("--out", required=True, type=Path)
    data.add_argument("--max-images", type=int, default=0, metavar="N",
                      help="keep a seeded sample of about N images, by partition and class, whole duplicate groups "
                           "(0: all)")
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--size", type=int, default=256, help="cache image size in px")
    data.add_argument("--fit", choices=("crop", "resize"), default="crop",
                      help="cache each image's centred square (crop) or the whole image (resize; 00_data's for BUSI)")
    data.add_argument("--workers", type=int, default=0)
    data.set_defaults(func=_cmd_data)

    bench = sub.add_parser("bench", help="measure cache, loader and model speed, data wait and notebook times")
    bench.add_argument("--run-profile", metavar="PROFILE", help="first execute this profile's notebooks (e.g. smoke)")
    bench.add_argument("--quick", action="store_true", help="fewer images and steps, 128 px models only")
    bench.add_argument("--device", default="auto", help="auto (CUDA when available, CPU too), cpu or cuda")
    bench.add_argument("--estimate", metavar="PROFILE", help="only estimate the hours per chapter of PROFILE "
                       "(e.g. full) at the archives' sizes from measured per-image step times on this machine")
    bench.add_argument("--params", type=Path, help="a parameter file layered over the estimated profile")
    bench.add_argument("--out", type=Path, default=Path("runs/benchmarks/bench.json"))
    bench.set_defaults(func=_cmd_bench)
    download = sub.add_parser("download", help="fetch an ISIC archive (2017-2020) into the layout the catalog reads, "
                              "or say where to get BUSI / HAM10000")
    download.add_argument("name", metavar="NAME", help=f"{', '.join(fetched[:-1])} or {fetched[-1]}")
    download.add_argument("--root", type=Path, help="the dataset folder to fill (then give it as --data NAME=DIR)")
    download.add_argument("--parts", metavar="PARTS", help="only these partitions, comma-separated: training,validation,test")
    download.add_argument("--list", action="store_true", help="show the files, their sizes and checks; fetch nothing")
    download.add_argument("--mirror", metavar="URL", help="fetch from URL/<year>/<file> instead of the public host")
    download.set_defaults(func=_cmd_download)
    for command in sub.choices.values():  # a partial flag is an error, never another flag's prefix
        command.allow_abbrev = False
    return parser


def _expected_errors(command: str) -> tuple[type[Exception], ...]:
    """The errors a command reports in one line; `download` imports neither torch, dask nor papermill for them."""
    from derm_nb.data.errors import DataError

    if command == "download":
        return (DataError,)
    from derm_nb.cluster import ClusterError
    from derm_nb.params import ParameterError
    from derm_nb.runner import NotebookFailed

    return (ParameterError, NotebookFailed, DataError, FileNotFoundError, ClusterError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    errors = _expected_errors(args.command)
    try:
        return args.func(args)
    except errors as err:
        print(f"derm-nb: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
