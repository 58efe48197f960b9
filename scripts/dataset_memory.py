"""Peak memory of the dataset loader against dataset size (docs/performance.md, "Offline datasets").

For each size it writes a synthetic dataset of 500-step episodes (24-D observations, 6-D actions: an
mt30-sized task), then, in a fresh process, samples 200 batches of 256 sub-trajectories (horizon 3)
with the default pool of 4 chunks of 50 episodes, and records the process's peak RSS. Usage:

    python scripts/dataset_memory.py --sizes 100 1000 4000 --csv docs/data/tables/dataset-memory.csv
"""
from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measure(path: str) -> None:
    """Child process: sample from the dataset at ``path``; print its peak RSS (MiB) and time."""
    from mbdpo_lab.datasets import EpisodeDataset

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ds = EpisodeDataset(path)
    start = time.perf_counter()
    for _ in range(200):
        ds.sample(256, horizon=3)
    print(json.dumps(dict(peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                          after_import_mib=base, pool_mib=ds.pool_bytes / 2**20,
                          ms_per_batch=1000 * (time.perf_counter() - start) / 200)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 4000], help="episodes per dataset")
    ap.add_argument("--csv", type=Path, default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        measure(args.child)
        return
    import numpy as np

    from mbdpo_lab.bench import cpu_description
    from mbdpo_lab.datasets import DatasetWriter

    rows = []
    rng = np.random.default_rng(0)
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            with DatasetWriter(Path(tmp) / "ds", how="synthetic (scripts/dataset_memory.py)") as writer:
                for _ in range(size):
                    writer.add("cheetah-run", rng.standard_normal((501, 24), np.float32),
                               rng.uniform(-1, 1, (500, 6)).astype(np.float32), rng.random(500, np.float32))
            on_disk = sum(f.stat().st_size for f in (Path(tmp) / "ds").iterdir()) / 2**20
            out = subprocess.run([sys.executable, __file__, "--child", str(Path(tmp) / "ds")], capture_output=True,
                                 text=True, check=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
        rows.append(["{:,}".format(size), "{:,}".format(size * 500), f"{on_disk:.0f} MiB",
                     f"{result['pool_mib']:.0f} MiB", f"{result['peak_rss_mib']:.0f} MiB",
                     f"{result['ms_per_batch']:.1f}", cpu_description()])
        print(rows[-1], flush=True)
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["episodes", "transitions", "on disk", "pool in memory", "peak RSS of the process",
                             "ms per batch of 256", "processor"])
            writer.writerows(rows)


if __name__ == "__main__":
    main()
