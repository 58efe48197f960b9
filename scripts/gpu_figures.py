"""The GPU figures of docs/performance.md in one run, under 10 minutes on one GPU.

    python scripts/gpu_figures.py                        # cuda:0: appends one row to docs/data/gpu_figures.csv
    python scripts/gpu_figures.py --device cpu --quick   # the dry run a CPU-only machine can do (tests)

Benches the paper preset's planner and update in fp32 and bf16 (`mbdpo-lab bench --preset paper`),
then trains cartpole-swingup for 5k steps with the paper preset (its seed phase, the burst of updates,
then planning and updating every step) and evaluates the result in lock-step, and records ms per
action, update ms and steps/s with the GPU's name. `python -m mbdpo_lab.doc_tables` then renders the
table. The training stops at --budget-s (the row then says where), so a slow card stays in time too.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import sys
from pathlib import Path

import torch

from mbdpo_lab.agent import resolve_device
from mbdpo_lab.bench import benchmark, training_run_speed
from mbdpo_lab.config import make_config

CSV = Path(__file__).resolve().parent.parent / "docs" / "data" / "gpu_figures.csv"


def append(path: Path, row: dict) -> None:
    """One row per measured card; a file written by an older version keeps its columns."""
    rows = []
    if path.exists():
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    keys = list(rows[0]) if rows else []
    keys += [k for k in row if k not in keys]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows + [row])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--budget-s", type=float, default=420, help="stop the training after this many seconds")
    ap.add_argument("--csv", type=Path, default=CSV)
    ap.add_argument("--quick", action="store_true", help="tiny preset, 300 steps: the CPU dry run of the tests")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here: run this on a GPU machine, or add --device cpu --quick for a dry run",
              file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    preset = "tiny" if args.quick else "paper"
    row: dict = dict(date=datetime.date.today().isoformat(), torch=torch.__version__,
                     cuda=torch.version.cuda or "", preset=preset)
    for dtype in ("fp32", "bf16"):
        r = benchmark(make_config(preset, device=str(device)), dtype=dtype, repeats=5)
        row[f"bench_{dtype}_planner_ms"] = r["planner_ms_per_action"]
        row[f"bench_{dtype}_update_ms"] = r["update_ms"]
        print(json.dumps({"bench": dtype, **r}), flush=True)
    steps = 300 if args.quick else args.steps
    cfg = make_config(preset, device=str(device), task="cartpole-swingup", steps=steps,
                      **({"seed_steps": 100} if args.quick else {}))
    run = training_run_speed(cfg, budget_s=args.budget_s, eval_episodes=2 if args.quick else 10)
    print(json.dumps({"training": run}), flush=True)
    row.update({f"train_{k}": v for k, v in run.items() if k not in ("preset", "device", "name", "threads")})
    row = {"name": run["name"], **row}
    append(args.csv, row)
    print(f"appended to {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
