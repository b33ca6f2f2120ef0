"""Image-cache build speed: derm-nb's parallel, draft-mode cache vs a naive single-process PIL loop.

    .venv/bin/python benchmarks/cache.py [--images 400] [--width 1024] [--height 768] [--size 256]

Both build the same centre-cropped, resized cache from the same JPEGs (synthetic dermoscopy at a
camera-like resolution); the script prints images/s for each and the speed-up, and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from derm_nb.data.cache import build_cache, naive_cache
from derm_nb.data.sources import load_source
from derm_nb.data.synthetic import SynthConfig, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=50)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/cache.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = generate(SynthConfig("isic2020", n_patients=args.patients, prevalence=0.1, height=args.height,
                                    width=args.width), tmp / "isic2020")
        manifest, _ = load_source("isic2020", root)
        n = len(manifest)
        tic = time.perf_counter()
        naive_cache(manifest, tmp / "naive", args.size)
        naive = n / (time.perf_counter() - tic)
        tic = time.perf_counter()
        build_cache(manifest, tmp / "ours", args.size, args.workers)
        ours = n / (time.perf_counter() - tic)
    result = {"images": n, "source_px": [args.width, args.height], "cache_px": args.size,
              "naive_images_per_s": round(naive, 1), "ours_images_per_s": round(ours, 1),
              "speedup": round(ours / naive, 2)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{n} images {args.width}x{args.height} -> {args.size}px cache")
    print(f"  naive single-process PIL loop: {naive:8.1f} images/s")
    print(f"  derm-nb build_cache:           {ours:8.1f} images/s  ({ours / naive:.1f}x)")


if __name__ == "__main__":
    main()
