"""The `derm-nb` command: run the notebooks, build the book, make or load data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from derm_nb.artifacts import project_root


def _cmd_run(args: argparse.Namespace) -> int:
    from derm_nb.runner import run_notebooks

    overrides = {}
    if args.source:
        overrides["data_source"] = args.source
    if args.data_root:
        overrides["data_root"] = str(Path(args.data_root).resolve())
    timings = run_notebooks(
        project_root(), args.profile, only=args.only, user_params=args.params, overrides=overrides
    )
    for stem, seconds in timings.items():
        print(f"{stem:<24} {seconds:8.1f} s")
    return 0


def _cmd_book(args: argparse.Namespace) -> int:
    from derm_nb.runner import build_book

    index = build_book(project_root(), args.profile)
    print(f"book written to {index}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="derm-nb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute the notebooks with papermill under a parameter profile")
    run.add_argument("--profile", default="default", help="params/<profile>.yaml (smoke, default, full)")
    run.add_argument("--only", nargs="+", metavar="NAME", help="run only these notebooks (e.g. 00_data 01_eda)")
    run.add_argument("--params", type=Path, help="a user parameter file layered over the profile")
    run.add_argument("--source", help="data source: synthetic, isic2020, isic2019, ham10000, isic2017, busi")
    run.add_argument("--data-root", help="folder holding the real dataset")
    run.set_defaults(func=_cmd_run)

    book = sub.add_parser("book", help="build the HTML book from a profile's executed notebooks")
    book.add_argument("--profile", default="default")
    book.set_defaults(func=_cmd_book)
    return parser


def main(argv: list[str] | None = None) -> int:
    from derm_nb.data.errors import DataError
    from derm_nb.params import ParameterError
    from derm_nb.runner import NotebookFailed

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ParameterError, NotebookFailed, DataError, FileNotFoundError) as err:
        print(f"derm-nb: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
