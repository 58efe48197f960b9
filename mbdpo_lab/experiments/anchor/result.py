"""The result of an anchoring comparison: metric rows, sweeps, histories, and their CSV/JSON files."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ...analysis.anchoring import METRICS
from ...checkpoint import json_default

COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e"]


ROW_METRICS = list(METRICS) + ["predicted_return"]


# with agents of several seeds per arm (``seeds`` > 1) a metric is the IQM over seeds of each seed's mean
# over episodes, ``_std`` the std over seeds and ``_low``/``_high`` its 95% stratified-bootstrap CI
CSV_COLUMNS = (["agent", "eta", "step", "eval_return", "eval_return_std", "episodes", "seeds"]
               + [c for m in ROW_METRICS for c in (m, f"{m}_std", f"{m}_low", f"{m}_high")]
               + ["steps", "valid_steps", "tail", "wall_time"])


SWEEP_COLUMNS = ["agent", "eta", "model_return", "energy", "total", "first_energy", "prior_distance",
                 "plan_shift", "prior_elite_share", "plan"]


HISTORY_COLUMNS = ["agent", "step", "kind", "episode_return", "eval_return", "eval_return_std"]


SHOWN_METRICS = ["return", "overestimation", "q_overestimation", "horizon_gap", "prior_distance", "energy",
                 "energy_gap", "nn_distance", "state_nn_distance", "td_plan_abs", "td_prior_abs", "cross_td_gap"]


def arm_row(label: str, eta: float, step: int, per_seed: list[dict[str, float]], tail: str) -> dict[str, Any]:
    """One CSV row for an arm of several seeds: each metric's IQM over the seeds' means over episodes, its
    std over seeds, and its 95% stratified-bootstrap CI over seeds (rliable), as ``seeds`` says."""
    from ...statistics import aggregate

    merged: dict[str, float] = {}
    bounds: dict[str, float] = {}
    for m in ROW_METRICS:
        values = np.array([as_float(r.get(m)) for r in per_seed])
        values = values[np.isfinite(values)]
        if not len(values):
            continue
        est = aggregate({m: values})[m]["IQM"]
        merged[m], merged[f"{m}_std"] = est.point, float(np.std(values))
        bounds[f"{m}_low"], bounds[f"{m}_high"] = est.low, est.high
    merged["episodes"] = min(int(as_float(r.get("episodes")) or 0) for r in per_seed)
    for key in ("steps", "valid_steps"):
        merged[key] = float(np.sum([as_float(r.get(key)) for r in per_seed]))
    row = make_row(label, eta, step, merged, tail)
    row.update(bounds, seeds=len(per_seed))
    return row


def label_for(eta: float) -> str:
    return f"eta={eta:g}"


def dirname_for(eta: float) -> str:
    return f"eta{eta:g}"


def make_row(label: str, eta: float, step: int, metrics: dict[str, float], tail: str,
             eval_return: float | None = None, eval_return_std: float | None = None,
             wall_time: float | None = None) -> dict[str, Any]:
    """One CSV row: the agent, its eta, the step, the trainer's eval return and every metric +- std."""
    row: dict[str, Any] = dict(agent=label, eta=float(eta), step=int(step),
                               eval_return=metrics.get("return") if eval_return is None else float(eval_return),
                               eval_return_std=(metrics.get("return_std") if eval_return_std is None
                                                else float(eval_return_std)),
                               episodes=int(metrics.get("episodes", 0)), tail=tail,
                               steps=metrics.get("steps"), valid_steps=metrics.get("valid_steps"),
                               wall_time=wall_time)
    for m in ROW_METRICS:
        row[m] = metrics.get(m, float("nan"))
        row[f"{m}_std"] = metrics.get(f"{m}_std", float("nan"))
    return row


@dataclass
class AnchorResult:
    """Everything the report and the AnchorComparison widget show."""

    task: str
    labels: list[str]  # agents, baseline (smallest eta) first
    etas: dict[str, float]
    configs: dict[str, dict[str, Any]]
    rows: list[dict[str, Any]]  # one per evaluation per agent
    sweeps: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # agent -> eta sweep rows
    history: list[dict[str, Any]] = field(default_factory=list)  # training curves (agent, step, kind, ...)
    videos: dict[str, str] = field(default_factory=dict)  # agent -> mp4 path (relative to out_dir when saved)
    frames: dict[str, np.ndarray] = field(default_factory=dict)  # agent -> frames (in memory only)
    summary: str = ""
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    cross_energy: list[dict[str, Any]] = field(default_factory=list)  # every agent's actions under every F
    notes: list[str] = field(default_factory=list)
    mode: str = "train"  # "train" or "checkpoints"
    sweep_state: dict[str, Any] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)  # agent -> its checkpoints (seeds of one arm)
    out_dir: Path | None = None
    agents: dict[str, Any] = field(default_factory=dict, repr=False)  # label -> MBDPO (in memory only)

    # --- views -------------------------------------------------------------------------------
    @property
    def over_seeds(self) -> bool:
        """True when an agent is an arm of several seeds (its metrics carry CIs over seeds)."""
        return any(len(m) > 1 for m in self.members.values())

    def interval(self, label: str, metric: str) -> tuple[float, float] | None:
        """The final row's 95% CI over seeds of ``metric``, or None (one seed per agent)."""
        rows = self.agent_rows(label)
        if not rows or not as_float(rows[-1].get("seeds")) >= 2:
            return None
        return as_float(rows[-1].get(f"{metric}_low")), as_float(rows[-1].get(f"{metric}_high"))

    def agent_rows(self, label: str) -> list[dict[str, Any]]:
        return sorted((r for r in self.rows if r["agent"] == label), key=lambda r: r["step"])

    def final_rows(self) -> dict[str, dict[str, Any]]:
        """The last evaluation of every agent."""
        return {label: rows[-1] for label in self.labels if (rows := self.agent_rows(label))}

    def series(self, label: str, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(steps, mean, std) of one metric over training for one agent."""
        rows = self.agent_rows(label)
        key = "eval_return" if metric == "return" and self.mode == "train" else metric
        std_key = "eval_return_std" if key == "eval_return" else f"{metric}_std"
        return (np.array([r["step"] for r in rows], float), np.array([as_float(r.get(key)) for r in rows]),
                np.array([as_float(r.get(std_key)) for r in rows]))

    def video_path(self, label: str) -> Path | None:
        if label not in self.videos:
            return None
        path = Path(self.videos[label])
        if not path.is_absolute() and self.out_dir is not None:
            path = self.out_dir / path
        return path if path.exists() else None

    def video_bytes(self, label: str, fps: int = 30) -> bytes | None:
        """mp4 bytes of the agent's rollout: the saved file, else encoded from frames (needs ffmpeg)."""
        path = self.video_path(label)
        if path is not None:
            return path.read_bytes()
        frames = self.frames.get(label)
        if frames is None or not len(frames):
            return None
        try:
            import mediapy

            return mediapy.compress_video(frames, fps=fps)
        except Exception:  # noqa: BLE001 - no ffmpeg: the widget falls back to a still frame
            return None

    # --- persistence ------------------------------------------------------------------------
    def save(self, out: str | Path, report: bool = True) -> Path:
        """Write the CSVs, the summary JSON and (``report``) the HTML report into ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.out_dir = out
        write_csv(out / "anchor_metrics.csv", CSV_COLUMNS, self.rows)
        sweep_rows = [dict(agent=label, **{k: v for k, v in r.items() if k not in ("plan", "action")},
                           plan=json.dumps(np.asarray(r["plan"]).round(6).tolist()))
                      for label, rows in self.sweeps.items() for r in rows]
        write_csv(out / "anchor_sweep.csv", SWEEP_COLUMNS, sweep_rows)
        write_csv(out / "anchor_history.csv", HISTORY_COLUMNS, self.history)
        for label, frames in self.frames.items():
            if label in self.videos or frames is None or not len(frames):
                continue
            try:
                from ...rendering import write_video

                path = out / "videos" / f"{dirname_for(self.etas[label])}.mp4"
                path.parent.mkdir(exist_ok=True)
                write_video(str(path), frames, fps=30)
                self.videos[label] = str(path.relative_to(out))
            except Exception as exc:  # noqa: BLE001 - a missing ffmpeg must not lose the numbers
                self.notes.append(f"video of {label} not written: {exc}")
        videos = {k: (str(Path(v).relative_to(out)) if Path(v).is_absolute() and Path(v).is_relative_to(out)
                      else v) for k, v in self.videos.items()}
        summary = dict(task=self.task, labels=self.labels, etas=self.etas, configs=self.configs,
                       summary=self.summary, verdicts=self.verdicts, notes=self.notes, mode=self.mode,
                       videos=videos, sweep_state=self.sweep_state, cross_energy=self.cross_energy,
                       members=self.members)
        (out / "anchor_summary.json").write_text(json.dumps(summary, indent=2, default=json_default))
        if report:
            from .report import write_report  # the report reads the result, not the other way

            write_report(self, out / "anchor_report.html")
        return out

    @classmethod
    def load(cls, out: str | Path) -> "AnchorResult":
        """Read a directory written by `save` (the CLI's --out)."""
        out = Path(out)
        path = out / "anchor_summary.json"
        if not path.exists():
            raise FileNotFoundError(f"{out} holds no anchor comparison (no anchor_summary.json); "
                                    "run `mbdpo-lab compare-anchor --out DIR` first")
        meta = json.loads(path.read_text())
        rows = [parse_row(r, ("agent", "tail")) for r in read_csv(out / "anchor_metrics.csv")]
        sweeps: dict[str, list[dict[str, Any]]] = {}
        for r in read_csv(out / "anchor_sweep.csv"):
            plan = np.asarray(json.loads(r.pop("plan")), np.float64)
            row = parse_row(r, ("agent",))
            row.update(plan=plan, action=plan[0])
            sweeps.setdefault(row.pop("agent"), []).append(row)
        history = [parse_row(r, ("agent", "kind")) for r in read_csv(out / "anchor_history.csv")]
        return cls(task=meta["task"], labels=meta["labels"], etas=meta["etas"], configs=meta["configs"],
                   rows=rows, sweeps=sweeps, history=history, videos=meta.get("videos", {}),
                   summary=meta.get("summary", ""), verdicts=meta.get("verdicts", []),
                   cross_energy=meta.get("cross_energy", []), notes=meta.get("notes", []),
                   mode=meta.get("mode", "train"),
                   sweep_state=meta.get("sweep_state", {}), members=meta.get("members", {}), out_dir=out)


def as_float(value: Any) -> float:
    """A CSV cell or metric value as a float (NaN when empty or not a number)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def write_csv(path: Path, columns: list[str], rows: Iterable[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def parse_row(row: dict[str, str], text_keys: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if k in text_keys:
            out[k] = v
        elif k == "step":
            out[k] = int(float(v)) if v not in ("", None) else None
        else:
            out[k] = as_float(v) if v not in ("", None) else None
    return out
