"""Published learning curves (MBDPO paper, arXiv 2605.26282) to draw beside our own runs.

The data lives in ``mbdpo_lab/data/reference/paper_curves.csv`` (columns ``method,task,step,seed,reward``; see
the README beside it for its source and licence). `reference_curve("mbdpo", "cartpole-swingup")` gives
the mean over seeds of the evaluation return at every published step (every 100k environment steps),
with the spread over seeds, ready for a plot whose x-axis is environment steps like the trainer's.
"""
from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .data import data_dir

REFERENCE_DIR = data_dir("reference")
REFERENCE_CSV = REFERENCE_DIR / "paper_curves.csv"

# Methods drawn next to a run by default, with the labels used in legends.
DEFAULT_METHODS = ("mbdpo", "tdmpc2")
METHOD_LABELS = {"mbdpo": "MBDPO (paper)", "tdmpc2": "TD-MPC2 (paper)", "tdmpc": "TD-MPC (paper)",
                 "sac": "SAC (paper)", "dreamerv3": "DreamerV3 (paper)",
                 "mbdpo-pixels": "MBDPO pixels (paper)", "tdmpc2-pixels": "TD-MPC2 pixels (paper)"}


@dataclass(frozen=True)
class ReferenceCurve:
    """Mean (and std) over seeds of the published evaluation return per environment step."""

    method: str
    task: str
    steps: np.ndarray  # [T] environment steps, increasing
    mean: np.ndarray  # [T] mean over the seeds present at that step
    std: np.ndarray  # [T] population std over those seeds (0 with one seed)
    seeds: np.ndarray  # [T] number of seeds averaged at that step

    @property
    def label(self) -> str:
        return METHOD_LABELS.get(self.method, f"{self.method} (paper)")

    def at(self, step: int) -> float:
        """Mean return at a published step (KeyError when the step is not published)."""
        hits = np.flatnonzero(self.steps == step)
        if not len(hits):
            raise KeyError(f"{self.method}/{self.task} has no published value at step {step}; "
                           f"published steps: {self.steps[:5].tolist()}...")
        return float(self.mean[hits[0]])

    def clipped(self, max_step: float) -> "ReferenceCurve":
        """The points up to ``max_step`` plus the first one after it (so a line reaches the axis edge)."""
        n = int(np.searchsorted(self.steps, max_step, side="right"))
        n = min(len(self.steps), n + 1)
        return ReferenceCurve(self.method, self.task, self.steps[:n], self.mean[:n], self.std[:n], self.seeds[:n])


def _normalise_task(task: str) -> str:
    return task.strip().lower().replace("_", "-").replace("ball-in-cup", "cup")


@lru_cache(maxsize=4)
def _table(path: str) -> dict[tuple[str, str], dict[int, list[float]]]:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"reference curves not found at {p}; they ship in mbdpo_lab/data/reference/ of the "
                                "repository (run from a source checkout or pass path=...)")
    table: dict[tuple[str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    with open(p, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"method", "task", "step", "seed", "reward"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{p} lacks the columns {sorted(missing)}; expected method,task,step,seed,reward")
        for row in reader:
            try:
                step, reward = int(float(row["step"])), float(row["reward"])
            except ValueError:
                continue  # a blank or malformed cell: skip the row rather than fail the plot
            table[(row["method"], row["task"])][step].append(reward)
    return {k: dict(v) for k, v in table.items()}


def reference_methods(task: str | None = None, path: str | Path | None = None) -> list[str]:
    """Methods with published curves (for ``task`` when given), sorted."""
    table = _table(str(path or REFERENCE_CSV))
    key = _normalise_task(task) if task else None
    return sorted({m for m, t in table if key is None or t == key})


def reference_tasks(method: str = "mbdpo", path: str | Path | None = None) -> list[str]:
    """Tasks with a published curve for ``method``, sorted."""
    return sorted({t for m, t in _table(str(path or REFERENCE_CSV)) if m == method})


def reference_curve(method: str, task: str, path: str | Path | None = None) -> ReferenceCurve | None:
    """Mean over seeds per step of ``method`` on ``task``; None when nothing is published for the pair."""
    by_step = _table(str(path or REFERENCE_CSV)).get((method, _normalise_task(task)))
    if not by_step:
        return None
    steps = np.array(sorted(by_step), dtype=np.int64)
    values = [np.asarray(by_step[s], dtype=np.float64) for s in steps]
    return ReferenceCurve(method=method, task=_normalise_task(task), steps=steps,
                          mean=np.array([v.mean() for v in values]), std=np.array([v.std() for v in values]),
                          seeds=np.array([len(v) for v in values], dtype=np.int64))


def reference_curves(task: str, methods: tuple[str, ...] = DEFAULT_METHODS,
                     path: str | Path | None = None) -> dict[str, ReferenceCurve]:
    """The curves of several methods for one task (methods without data are left out)."""
    out = {}
    for method in methods:
        curve = reference_curve(method, task, path)
        if curve is not None:
            out[method] = curve
    return out
