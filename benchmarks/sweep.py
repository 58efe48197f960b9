"""Cost curve of the planner and the update: sweep candidates x levels x horizon x model size.

    .venv/bin/python benchmarks/sweep.py --out benchmarks/sweep.csv [--quick]

One CSV row per setting with planner ms/action, update ms, GFLOP and GFLOP/s (see mbdpo_lab.bench),
so how time grows with each factor can be plotted. Run on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import csv
import itertools
import sys

import torch

from mbdpo_lab.bench import benchmark
from mbdpo_lab.config import make_config

FULL = dict(samples=[128, 256, 512], levels=[5, 10, 20], horizon=[3, 5], model_size=[1, 5])
QUICK = dict(samples=[128, 512], levels=[5, 20], horizon=[3], model_size=[1, 5])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/sweep.csv")
    parser.add_argument("--quick", action="store_true", help="a 2x2x1x2 grid instead of 3x3x2x2")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    grid = QUICK if args.quick else FULL
    rows = []
    for samples, levels, horizon, size in itertools.product(*grid.values()):
        cfg = make_config("paper", model_size=size, num_samples=samples, num_levels=levels, horizon=horizon,
                          num_elites=min(64, samples), device=args.device)
        row = benchmark(cfg, dtype=args.dtype, repeats=args.repeats)
        row.update(model_size=size)
        rows.append(row)
        print(f"size {size} samples {samples} levels {levels} H {horizon}: "
              f"{row['planner_ms_per_action']:.1f} ms/action, {row['update_ms']:.1f} ms/update", file=sys.stderr)
    with open(args.out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {args.out} ({torch.get_num_threads()} threads)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
