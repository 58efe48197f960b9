"""Anchored vs unanchored: a paired experiment that differs only in eta (issue 5).

Two or three agents share one config and one seed; only the planner's energy weight eta differs
(0 = unanchored, the preset's default 0.01, and optionally a larger value). Each is trained with the
core `Trainer`; at every evaluation an `AnchorMetricsCallback` measures the anchoring metrics of
`mbdpo_lab.analysis.anchoring` on extra noise-free episodes and appends one row. Because the seed is
shared, the agents see the same seed-phase data, start from the same weights and are evaluated from
the same initial states. Alternatively `compare_checkpoints` loads two or three trained agents.

Outputs (`AnchorResult.save`): ``anchor_metrics.csv`` (one row per evaluation per agent),
``anchor_sweep.csv`` (the eta sweep on one shared state), ``anchor_history.csv`` (training return
curves), ``anchor_summary.json`` and ``anchor_report.html`` (self-contained: plotly is inlined and
the videos are embedded, so it opens offline).

*No measurable difference.* A metric differs measurably between two agents when, at the final
evaluation, mean +- 1 std across evaluation episodes of the two agents do not overlap
(|m1 - m0| > s0 + s1); with fewer than two episodes per agent there is no noise estimate and the
summary says "cannot tell".
"""
from __future__ import annotations

import argparse
import base64
import csv
import html
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..analysis.anchoring import (DEFAULT_SWEEP_ETAS, METRICS, BehaviourData, collect_anchor_rollouts,
                                  eta_sweep, evaluation_metrics, referee_energy, sweep_observation)
from ..config import Config, ConfigError
from ..envs import MEASURE_SEED_OFFSET

COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e"]
ROW_METRICS = list(METRICS) + ["predicted_return"]
CSV_COLUMNS = (["agent", "eta", "step", "eval_return", "eval_return_std", "episodes"]
               + [c for m in ROW_METRICS for c in (m, f"{m}_std")] + ["steps", "valid_steps", "tail", "wall_time"])
SWEEP_COLUMNS = ["agent", "eta", "model_return", "energy", "total", "first_energy", "prior_distance",
                 "plan_shift", "prior_elite_share", "plan"]
HISTORY_COLUMNS = ["agent", "step", "kind", "episode_return", "eval_return", "eval_return_std"]
# The metrics the summary talks about, grouped as the claim is stated.
GROUPS: dict[str, tuple[list[str], str, str]] = {
    # group: (metrics, word when better, word when worse)
    "value over-estimation": (["overestimation", "q_overestimation"], "reduced", "increased"),
    "action drift": (["prior_distance", "state_nn_distance", "energy"], "reduced", "increased"),
    "TD error on planner actions": (["td_plan_abs", "cross_td_gap"], "reduced", "increased"),
    "return": (["return"], "higher", "lower"),
}
SHOWN_METRICS = ["return", "overestimation", "q_overestimation", "horizon_gap", "prior_distance", "energy",
                 "energy_gap", "nn_distance", "state_nn_distance", "td_plan_abs", "td_prior_abs", "cross_td_gap"]


def label_for(eta: float) -> str:
    return f"eta={eta:g}"


def dirname_for(eta: float) -> str:
    return f"eta{eta:g}"


# --- the pair ---------------------------------------------------------------------------------

def paired_configs(base: Config, eta_large: float | None = None) -> list[Config]:
    """[eta=0, eta=base.eta(, eta=eta_large)]: copies of ``base`` that differ only in eta."""
    if not base.eta > 0:
        raise ConfigError(f"the anchored agent needs eta > 0, the base config has eta={base.eta}; "
                          "leave eta at the preset's default (0.01) or set it with --set eta=...")
    configs = [base.replace(eta=0.0), base.replace(eta=base.eta)]
    if eta_large is not None:
        if not (isinstance(eta_large, (int, float)) and math.isfinite(eta_large)) or eta_large <= base.eta:
            raise ConfigError(f"--eta-large must be a number larger than the default eta ({base.eta:g}), "
                              f"got {eta_large!r}")
        configs.append(base.replace(eta=float(eta_large)))
    return configs


def config_diff(a: Config | dict, b: Config | dict, ignore: Iterable[str] = ()) -> dict[str, tuple[Any, Any]]:
    """Fields whose values differ: {name: (a's value, b's value)}."""
    da = a.to_dict() if isinstance(a, Config) else dict(a)
    db = b.to_dict() if isinstance(b, Config) else dict(b)
    skip = set(ignore)
    return {k: (da.get(k), db.get(k)) for k in sorted(set(da) | set(db))
            if k not in skip and da.get(k) != db.get(k)}


# --- measuring during training ----------------------------------------------------------------

class AnchorMetricsCallback:
    """Trainer callback: at every ``eval`` event, measure the anchoring metrics and append one row.

    The extra episodes run in their own environment (seed ``cfg.seed + MEASURE_SEED_OFFSET``, the same for every
    agent of a pair, so all agents start from the same states) with their own torch generator; the
    training run's random numbers are untouched. Frames of one episode are recorded at ``video_at``
    (an environment step, e.g. the last); ``on_row`` is called with each new row.
    """

    def __init__(self, trainer, label: str, rows: list[dict[str, Any]], episodes: int | None = None,
                 tail: str = "steady", video_at: int | None = None, frame_size: int = 96,
                 on_row: Callable[[dict[str, Any]], None] | None = None):
        from ..envs import make_env

        cfg = trainer.cfg
        self.trainer, self.label, self.rows = trainer, label, rows
        self.episodes = episodes or cfg.eval_episodes
        self.tail, self.video_at, self.frame_size, self.on_row = tail, video_at, frame_size, on_row
        self.env = make_env(cfg.task, seed=cfg.seed + MEASURE_SEED_OFFSET, action_repeat=cfg.action_repeat,
                            episode_length=cfg.episode_length)
        self.frames: np.ndarray | None = None
        self.last_rollouts = None  # the latest evaluation's episodes (for the one-F energy comparison)
        self.notes: list[str] = []
        self._start = time.perf_counter()

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        if event != "eval":
            return
        trainer, cfg = self.trainer, self.trainer.cfg
        want_video = self.video_at is not None and data["step"] >= self.video_at
        rollouts = self._collect(seed=cfg.seed + MEASURE_SEED_OFFSET + int(data["step"]), frames=want_video)
        self.last_rollouts = rollouts
        behaviour = BehaviourData.from_buffer(trainer.buffer, seed=cfg.seed)
        metrics = evaluation_metrics(rollouts, behaviour, tail=self.tail)
        row = make_row(self.label, cfg.eta, int(data["step"]), metrics, self.tail,
                       eval_return=data.get("eval_return"), eval_return_std=data.get("eval_return_std"),
                       wall_time=time.perf_counter() - self._start)
        self.rows.append(row)
        if want_video and rollouts.episodes and rollouts.episodes[0].frames is not None:
            self.frames = rollouts.episodes[0].frames
        if self.on_row:
            self.on_row(row)

    def _collect(self, seed: int, frames: bool):
        from ..rendering import RenderingUnavailable

        try:
            return collect_anchor_rollouts(self.trainer.agent, self.env, self.episodes, seed=seed,
                                           frames=frames, frame_size=self.frame_size)
        except RenderingUnavailable as exc:
            self.notes.append(f"no video for {self.label}: {str(exc).splitlines()[0]}")
            return collect_anchor_rollouts(self.trainer.agent, self.env, self.episodes, seed=seed)


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


# --- the result -------------------------------------------------------------------------------

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
    out_dir: Path | None = None
    agents: dict[str, Any] = field(default_factory=dict, repr=False)  # label -> MBDPO (in memory only)

    # --- views -------------------------------------------------------------------------------
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
        return (np.array([r["step"] for r in rows], float), np.array([_f(r.get(key)) for r in rows]),
                np.array([_f(r.get(std_key)) for r in rows]))

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
        _write_csv(out / "anchor_metrics.csv", CSV_COLUMNS, self.rows)
        sweep_rows = [dict(agent=label, **{k: v for k, v in r.items() if k not in ("plan", "action")},
                           plan=json.dumps(np.asarray(r["plan"]).round(6).tolist()))
                      for label, rows in self.sweeps.items() for r in rows]
        _write_csv(out / "anchor_sweep.csv", SWEEP_COLUMNS, sweep_rows)
        _write_csv(out / "anchor_history.csv", HISTORY_COLUMNS, self.history)
        for label, frames in self.frames.items():
            if label in self.videos or frames is None or not len(frames):
                continue
            try:
                from ..rendering import write_video

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
                       videos=videos, sweep_state=self.sweep_state, cross_energy=self.cross_energy)
        (out / "anchor_summary.json").write_text(json.dumps(summary, indent=2, default=_json_default))
        if report:
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
        rows = [_parse(r, ("agent", "tail")) for r in _read_csv(out / "anchor_metrics.csv")]
        sweeps: dict[str, list[dict[str, Any]]] = {}
        for r in _read_csv(out / "anchor_sweep.csv"):
            plan = np.asarray(json.loads(r.pop("plan")), np.float64)
            row = _parse(r, ("agent",))
            row.update(plan=plan, action=plan[0])
            sweeps.setdefault(row.pop("agent"), []).append(row)
        history = [_parse(r, ("agent", "kind")) for r in _read_csv(out / "anchor_history.csv")]
        return cls(task=meta["task"], labels=meta["labels"], etas=meta["etas"], configs=meta["configs"],
                   rows=rows, sweeps=sweeps, history=history, videos=meta.get("videos", {}),
                   summary=meta.get("summary", ""), verdicts=meta.get("verdicts", []),
                   cross_energy=meta.get("cross_energy", []), notes=meta.get("notes", []),
                   mode=meta.get("mode", "train"),
                   sweep_state=meta.get("sweep_state", {}), out_dir=out)


def _f(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _write_csv(path: Path, columns: list[str], rows: Iterable[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _parse(row: dict[str, str], text_keys: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if k in text_keys:
            out[k] = v
        elif k == "step":
            out[k] = int(float(v)) if v not in ("", None) else None
        else:
            out[k] = _f(v) if v not in ("", None) else None
    return out


# --- summary ----------------------------------------------------------------------------------

def _fmt(x: float) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.3g}"


def compare_metric(metric: str, base: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Verdict of one metric, ``other`` vs ``base`` at their final evaluations (rule: module docstring)."""
    better = METRICS[metric][1]
    m0, s0, m1, s1 = (_f(base.get(metric)), _f(base.get(f"{metric}_std")),
                      _f(other.get(metric)), _f(other.get(f"{metric}_std")))
    n0, n1 = int(_f(base.get("episodes")) or 0), int(_f(other.get("episodes")) or 0)
    out = dict(metric=metric, base=base["agent"], other=other["agent"], base_mean=m0, base_std=s0,
               other_mean=m1, other_std=s1, episodes=(n0, n1), difference=m1 - m0)
    if not (np.isfinite(m0) and np.isfinite(m1)):
        out["verdict"] = "unknown"
    elif n0 < 2 or n1 < 2:
        out["verdict"] = "unknown"
    elif abs(m1 - m0) <= (s0 if np.isfinite(s0) else 0) + (s1 if np.isfinite(s1) else 0):
        out["verdict"] = "none"
    else:
        if better == "zero":
            improved = abs(m1) < abs(m0)
        elif better == "lower":
            improved = m1 < m0
        else:
            improved = m1 > m0
        out["verdict"] = "better" if improved else "worse"
    out["relative"] = (m1 - m0) / abs(m0) if np.isfinite(m0) and abs(m0) > 1e-9 else float("nan")
    return out


def _metric_line(v: dict[str, Any]) -> str:
    desc = METRICS[v["metric"]][0]
    head = (f"{desc}: {v['base']} {_fmt(v['base_mean'])} ± {_fmt(v['base_std'])} vs {v['other']} "
            f"{_fmt(v['other_mean'])} ± {_fmt(v['other_std'])}")
    n0, n1 = v["episodes"]
    if v["verdict"] == "unknown":
        why = "not measured" if not (np.isfinite(v["base_mean"]) and np.isfinite(v["other_mean"])) else \
            f"cannot tell: fewer than 2 evaluation episodes ({n0}, {n1}) give no noise estimate"
        return f"{head} → {why}"
    if v["verdict"] == "none":
        return f"{head} → no measurable difference (±1 std across {min(n0, n1)}+ episodes overlap)"
    rel = f" ({v['relative']:+.0%})" if np.isfinite(v["relative"]) else ""
    direction = "higher" if v["difference"] > 0 else "lower"
    better = METRICS[v["metric"]][1]
    if v["metric"] == "return":
        quality = ""
    elif better == "zero":
        quality = ", closer to zero" if v["verdict"] == "better" else ", further from zero"
    else:
        quality = ", in the anchor's favour" if v["verdict"] == "better" else ", against the anchor"
    return f"{head} → {direction} by {_fmt(abs(v['difference']))}{rel}{quality}"


def _group_word(verdicts: list[dict[str, Any]], better_word: str, worse_word: str) -> str:
    kinds = {v["verdict"] for v in verdicts}
    if kinds <= {"unknown"}:
        return "cannot tell"
    if "better" in kinds and "worse" in kinds:
        return "mixed"
    if "better" in kinds:
        return better_word
    if "worse" in kinds:
        return worse_word
    return "no measurable difference"


def _value_words(v: dict[str, Any]) -> tuple[str, str]:
    """Words for the value-error group that say plainly whether it is over- or under-estimation."""
    m0, m1 = v["base_mean"], v["other_mean"]
    better = "reduced" if m0 > 0 and m1 >= 0 else "closer to zero (the agents under-estimate)" if m0 < 0 else \
        "closer to zero"
    worse = "increased" if m1 > 0 and m0 >= 0 else "further from zero (under-estimation grew)" if m1 < 0 else \
        "further from zero"
    return better, worse


def summarise(rows: list[dict[str, Any]], labels: list[str]) -> tuple[str, list[dict[str, Any]]]:
    """The textual summary (headline per anchored agent, then one line per metric) and the verdicts."""
    finals = {}
    for label in labels:
        agent = sorted((r for r in rows if r["agent"] == label), key=lambda r: r["step"])
        if agent:
            finals[label] = agent[-1]
    if len(finals) < 2:
        return "Not enough agents with an evaluation to compare.", []
    base_label = labels[0]
    base = finals[base_label]
    lines, verdicts = [], []
    n_eps = {label: int(_f(r.get("episodes")) or 0) for label, r in finals.items()}
    lines.append(f"Compared at the final evaluation (step {base['step']}), baseline {base_label} (unanchored), "
                 f"{min(n_eps.values())}+ evaluation episodes per agent. A difference counts when mean ± 1 std "
                 "across episodes of the two agents do not overlap.")
    for label in labels[1:]:
        if label not in finals:
            continue
        other = finals[label]
        per = [compare_metric(m, base, other) for m in SHOWN_METRICS]
        verdicts.extend(per)
        by_metric = {v["metric"]: v for v in per}
        words = []
        for group, (metrics, good, bad) in GROUPS.items():
            if group == "value over-estimation":
                good, bad = _value_words(by_metric["overestimation"])
            word = _group_word([by_metric[m] for m in metrics], good, bad)
            words.append(f"{group}: {word}")
        lines.append(f"{label} vs {base_label} — " + "; ".join(words) + ".")
        claim = [_group_word([by_metric[m] for m in GROUPS[g][0]], "reduced", "increased")
                 for g in ("value over-estimation", "action drift")]
        if claim == ["reduced", "reduced"] and by_metric["overestimation"]["base_mean"] > 0:
            lines.append(f"  In this run the anchor ({label}) reduced both over-estimation and drift.")
        elif all(c == "no measurable difference" for c in claim):
            lines.append(f"  In this run the anchor ({label}) made no measurable difference to over-estimation "
                         "or drift.")
        elif all(c == "cannot tell" for c in claim):
            lines.append("  Too few evaluation episodes to tell whether the anchor changed anything.")
        for v in per:
            lines.append("  - " + _metric_line(v))
    return "\n".join(lines), verdicts


def cross_energy_rows(agents: dict[str, Any], rollouts: dict[str, Any]) -> list[dict[str, Any]]:
    """Every agent's executed actions scored under every agent's F (`referee_energy`): one row per pair."""
    rows = []
    for referee, agent in agents.items():
        for actor, ro in rollouts.items():
            per = referee_energy(agent, ro)
            rows.append(dict(referee=referee, actor=actor, energy=float(per.mean()) if len(per) else float("nan"),
                             energy_std=float(per.std()) if len(per) else float("nan"), episodes=len(per)))
    return rows


def summarise_cross_energy(cross: list[dict[str, Any]], labels: list[str]) -> tuple[str, list[dict[str, Any]]]:
    """Summary lines for the one-F comparison: per anchored agent, its actions vs the baseline's under each F.

    The same rule as the other metrics (module docstring); the verdict is firm only when every referee
    F agrees.
    """
    table = {(r["referee"], r["actor"]): r for r in cross}
    referees = [lb for lb in labels if any(r["referee"] == lb for r in cross)]
    if len(labels) < 2 or not referees:
        return "", []
    base_label, lines, verdicts = labels[0], [], []
    for label in labels[1:]:
        per = []
        for referee in referees:
            if (referee, base_label) not in table or (referee, label) not in table:
                continue
            base, other = (dict(table[(referee, actor)], agent=actor) for actor in (base_label, label))
            v = compare_metric("energy", base, other)
            v["referee"] = referee
            per.append(v)
        if not per:
            continue
        verdicts.extend(per)
        word = _group_word(per, "reduced", "increased")
        lines.append(f"{label} vs {base_label} — action drift under one F (both agents' actions scored by the "
                     f"same energy head, high = looks like that agent's data): {word}"
                     + (" under every F." if word in ("reduced", "increased") and len(per) > 1 else "."))
        for v in per:
            lines.append(f"  - under {v['referee']}'s F: " + _metric_line(v))
    return "\n".join(lines), verdicts


def attach_cross_energy(result: AnchorResult, rollouts: dict[str, Any]) -> None:
    """Score the final rollouts under every agent's F; add the rows and their summary lines to ``result``."""
    agents = {lb: result.agents[lb] for lb in result.labels if lb in result.agents}
    rollouts = {lb: rollouts[lb] for lb in result.labels if rollouts.get(lb) is not None}
    if len(agents) < 2 or len(rollouts) < 2:
        return
    result.cross_energy = cross_energy_rows(agents, rollouts)
    text, _ = summarise_cross_energy(result.cross_energy, result.labels)
    if text:
        result.summary = f"{result.summary}\n{text}"


# --- running the pair -----------------------------------------------------------------------

def _trainer_history(label: str, trainer) -> list[dict[str, Any]]:
    return [dict(agent=label, step=r["step"], kind=r["kind"], episode_return=r.get("episode_return"),
                 eval_return=r.get("eval_return"), eval_return_std=r.get("eval_return_std"))
            for r in trainer.history]


def run_paired(cfg: Config, out: str | Path | None = None, eta_large: float | None = None,
               metric_episodes: int | None = None, tail: str = "steady",
               sweep_etas: Sequence[float] = DEFAULT_SWEEP_ETAS, sweep_step: int = 100, video: bool = True,
               frame_size: int = 96, progress: bool = False, report: bool = True,
               log: Callable[[str], None] | None = None) -> AnchorResult:
    """Train eta=0, eta=cfg.eta (and eta_large) from the same config and seed; measure; report.

    Every agent trains in ``out/eta<value>/`` (the trainer's own metrics.csv, checkpoints and
    ``agent.safetensors``, so `compare_checkpoints` can re-measure them later). ``metric_episodes``
    noise-free episodes per evaluation (default cfg.eval_episodes) feed the metrics. A final
    evaluation is added when ``cfg.steps`` is not a multiple of ``cfg.eval_every``. The eta sweep
    re-plans the state at ``sweep_step`` of the unanchored agent's last evaluation (see `sweep_agents`).
    """
    from ..envs import resolve_task
    from ..trainer import Trainer

    resolve_task(cfg.task)
    if cfg.planner == "policy":
        raise ConfigError("eta only acts through the planner's return; use planner=diffusion (or mppi), "
                          "not planner=policy, for an anchoring comparison")
    if tail not in ("steady", "mask", "none"):
        raise ConfigError(f"tail must be steady, mask or none, got {tail!r}")
    configs = paired_configs(cfg, eta_large)
    out_dir = Path(out) if out is not None else None
    rows: list[dict[str, Any]] = []
    result = AnchorResult(task=cfg.task, labels=[label_for(c.eta) for c in configs],
                          etas={label_for(c.eta): c.eta for c in configs},
                          configs={label_for(c.eta): c.to_dict() for c in configs}, rows=rows, mode="train")
    say = log or (lambda msg: None)
    final_rollouts: dict[str, Any] = {}
    for c in configs:
        label = label_for(c.eta)
        run_dir = out_dir / dirname_for(c.eta) if out_dir else None
        if run_dir is not None and (run_dir / "metrics.csv").exists():
            raise ConfigError(f"{run_dir} already holds a run; choose another --out")
        trainer = Trainer(c, run_dir)
        callback = AnchorMetricsCallback(trainer, label, rows, episodes=metric_episodes, tail=tail,
                                         video_at=c.steps if video else None, frame_size=frame_size,
                                         on_row=lambda r: say(f"{r['agent']} step {r['step']}: return "
                                                              f"{_fmt(r['eval_return'])}, over-estimation "
                                                              f"{_fmt(r['overestimation'])}, prior distance "
                                                              f"{_fmt(r['prior_distance'])}"))
        trainer.callbacks.append(callback)
        say(f"training {label} ({c.steps} steps, seed {c.seed})")
        bar = _progress(c.steps, label, progress)
        try:
            trainer.run(progress=bar.update if bar else None)
        finally:
            if bar:
                bar.close()
        if trainer.last_eval is None or trainer.last_eval.get("step") != trainer.env_step:
            trainer.run_evaluation()
            if run_dir is not None:
                trainer.save()
        result.history.extend(_trainer_history(label, trainer))
        result.notes.extend(callback.notes)
        final_rollouts[label] = callback.last_rollouts
        if callback.frames is not None:
            result.frames[label] = callback.frames
        result.agents[label] = trainer.agent
        if trainer.state != "finished":
            result.notes.append(f"{label} stopped early ({trainer.state}) at step {trainer.env_step}")
            break
    result.summary, result.verdicts = summarise(rows, result.labels)
    sweep_agents(result, final_rollouts, sweep_etas, sweep_step, cfg.seed)
    attach_cross_energy(result, final_rollouts)
    if out_dir is not None:
        result.save(out_dir, report=report)
    return result


def sweep_agents(result: AnchorResult, rollouts: dict[str, Any], etas: Sequence[float], step: int,
                 seed: int) -> None:
    """Run the eta sweep of every agent on one shared state, and record which state it was.

    The state is where the least anchored agent stands ``step`` steps into its first evaluation
    episode: a state the trained agents know. Where a trained F is flat in the action (states reached
    by random actions; on cartpole-swingup also the first swing-up steps) no eta changes the plan and
    the sweep shows nothing; the default step 100 is one where the shipped agents do the task (the
    pole balances, the arm holds the target) and F ranks actions. Without such an episode (a run
    stopped early), the state is ``step`` uniform random actions after a seeded reset.
    """
    first = rollouts.get(result.labels[0])
    episode = first.episodes[0] if first is not None and first.episodes else None
    if episode is not None and len(episode.obs) > step:
        obs, source = episode.obs[step], f"step {step} of {result.labels[0]}'s first evaluation episode"
    else:
        cfg = next(iter(result.agents.values())).cfg
        obs = sweep_observation(result.task, seed, step, cfg.action_repeat, cfg.episode_length)
        source = f"reset with seed {seed}, then {step} uniform random actions"
    result.sweep_state = dict(task=result.task, seed=seed, step=step, source=source, etas=list(etas),
                              obs=np.asarray(obs).round(6).tolist())
    for label, agent in result.agents.items():
        result.sweeps[label] = eta_sweep(agent, obs, etas, seed=seed)


def sweep_state_text(state: dict[str, Any]) -> str:
    """One line saying which state the eta sweep re-plans (results saved before ``source`` existed too)."""
    source = state.get("source") or (f"reset with seed {state.get('seed')}, then {state.get('random_steps')} "
                                     "uniform random actions")
    return (f"Sweep state ({state.get('task')}): {source}. Every agent re-plans this one state for every eta "
            "with the same random numbers, so only eta changes.")


def _progress(total: int, label: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=label, unit="step", dynamic_ncols=True)


def _load_any(name_or_path: str, device: str | None):
    from ..checkpoint import list_pretrained, load_checkpoint, load_pretrained

    path = Path(name_or_path)
    if path.suffix == ".safetensors" or path.exists():
        if path.is_dir():
            path = path / "agent.safetensors"
        return load_checkpoint(path, device=device)
    if name_or_path in list_pretrained():
        return load_pretrained(name_or_path, device=device)
    return load_checkpoint(path, device=device)  # raises CheckpointError "not found" with a hint


def _beside(path: Path | None, names: Sequence[str]) -> Path | None:
    if path is None:
        return None
    for base in (path.parent, path.parent.parent):
        for name in names:
            if (base / name).exists():
                return base / name
    return None


def compare_checkpoints(checkpoints: Sequence[str], out: str | Path | None = None, episodes: int = 10,
                        seed: int = 0, tail: str = "steady", sweep_etas: Sequence[float] = DEFAULT_SWEEP_ETAS,
                        sweep_step: int = 100, video: bool = True, frame_size: int = 96,
                        device: str | None = None, report: bool = True) -> AnchorResult:
    """Measure two or three trained agents (paths, run directories or pretrained names) on the same states.

    The replay next to a run's checkpoint (``checkpoints/replay.npz``) feeds the replay-distance
    metrics when it exists (else they are n/a); the run's ``metrics.csv`` gives the return curves.
    Configs that differ in more than eta are reported in the notes (the comparison is then not paired).
    """
    from ..envs import make_env

    if not 2 <= len(checkpoints) <= 3:
        raise ConfigError(f"--checkpoints takes two or three checkpoints, got {len(checkpoints)}")
    if tail not in ("steady", "mask", "none"):
        raise ConfigError(f"tail must be steady, mask or none, got {tail!r}")
    if episodes < 1:
        raise ConfigError(f"episodes must be >= 1, got {episodes}")
    loaded = [(name, _load_any(name, device)) for name in checkpoints]
    tasks = {ck.agent.cfg.task for _, ck in loaded}
    if len(tasks) > 1:
        raise ConfigError(f"the checkpoints are for different tasks ({', '.join(sorted(tasks))}); "
                          "compare agents of one task")
    loaded.sort(key=lambda item: item[1].agent.cfg.eta)
    labels: list[str] = []
    for _, ck in loaded:
        label = label_for(ck.agent.cfg.eta)
        while label in labels:
            label += "'"
        labels.append(label)
    task = tasks.pop()
    cfg0 = loaded[0][1].agent.cfg
    result = AnchorResult(task=task, labels=labels, etas={lb: ck.agent.cfg.eta for lb, (_, ck) in zip(labels, loaded)},
                          configs={lb: ck.agent.cfg.to_dict() for lb, (_, ck) in zip(labels, loaded)}, rows=[],
                          mode="checkpoints")
    for lb, (_, ck) in zip(labels[1:], loaded[1:]):
        diff = config_diff(cfg0, ck.agent.cfg, ignore=("eta", "device"))
        if diff:
            result.notes.append(f"{lb} differs from {labels[0]} in more than eta: "
                                + ", ".join(f"{k}={b!r} (vs {a!r})" for k, (a, b) in diff.items())
                                + " — the comparison is not strictly paired.")
    all_rollouts: dict[str, Any] = {}
    for label, (name, ck) in zip(labels, loaded):
        agent, cfg = ck.agent, ck.agent.cfg
        env = make_env(task, seed=seed + MEASURE_SEED_OFFSET, action_repeat=cfg.action_repeat, episode_length=cfg.episode_length)
        replay = _beside(ck.path, ["checkpoints/replay.npz", "replay.npz"])
        behaviour = BehaviourData.load(replay, seed=seed) if replay else None
        if behaviour is None:
            result.notes.append(f"{label}: no replay next to {name}; replay-distance metrics are n/a")
        frames = 1 if video else 0
        try:
            rollouts = collect_anchor_rollouts(agent, env, episodes, seed=seed + MEASURE_SEED_OFFSET, frames=frames,
                                               frame_size=frame_size)
        except Exception as exc:  # noqa: BLE001 - rendering may be unavailable; measure without frames
            from ..rendering import RenderingUnavailable

            if not isinstance(exc, RenderingUnavailable):
                raise
            result.notes.append(f"no video for {label}: {str(exc).splitlines()[0]}")
            rollouts = collect_anchor_rollouts(agent, env, episodes, seed=seed + MEASURE_SEED_OFFSET)
        all_rollouts[label] = rollouts
        metrics = evaluation_metrics(rollouts, behaviour, tail=tail)
        step = int(ck.meta.get("agent_step", 0))
        result.rows.append(make_row(label, cfg.eta, int(step or 0), metrics, tail))
        if rollouts.episodes and rollouts.episodes[0].frames is not None:
            result.frames[label] = rollouts.episodes[0].frames
        metrics_csv = _beside(ck.path, ["metrics.csv"])
        if metrics_csv is not None:
            for r in _read_csv(metrics_csv):
                parsed = _parse({k: r.get(k, "") for k in HISTORY_COLUMNS if k != "agent"}, ("kind",))
                result.history.append(dict(agent=label, **parsed))
        result.agents[label] = agent
    result.summary, result.verdicts = summarise(result.rows, result.labels)
    sweep_agents(result, all_rollouts, sweep_etas, sweep_step, seed)
    attach_cross_energy(result, all_rollouts)
    if out is not None:
        result.save(out, report=report)
    return result


# --- figures (shared by the HTML report and the widget) -----------------------------------------

def returns_figure(result: AnchorResult):
    """Training episode returns (faint) and evaluation returns (+- std) of every agent."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, label in enumerate(result.labels):
        color = COLORS[i % len(COLORS)]
        ep = [r for r in result.history if r["agent"] == label and r.get("kind") == "episode"
              and r.get("episode_return") is not None]
        if ep:
            fig.add_scatter(x=[r["step"] for r in ep], y=[r["episode_return"] for r in ep], mode="lines",
                            name=f"{label} training episodes", line=dict(color=color, width=1), opacity=0.35)
        steps, mean, std = result.series(label, "return")
        if result.mode == "train" and not len(steps):
            continue
        ev = [r for r in result.history if r["agent"] == label and r.get("kind") == "eval"]
        if result.mode == "checkpoints" and ev:
            fig.add_scatter(x=[r["step"] for r in ev], y=[r["eval_return"] for r in ev], mode="lines+markers",
                            name=f"{label} eval (training run)", line=dict(color=color, dash="dot"))
        fig.add_scatter(x=steps, y=mean, mode="lines+markers", name=f"{label} evaluation",
                        line=dict(color=color, width=2.5), marker=dict(size=8),
                        error_y=dict(type="data", array=np.nan_to_num(std), visible=True))
    fig.update_layout(title="return vs environment steps", xaxis_title="environment steps",
                      yaxis_title="episode return", height=360, margin=dict(l=50, r=20, t=50, b=40),
                      legend=dict(orientation="h", y=-0.25))
    return fig


def metric_traces(result: AnchorResult, metric: str) -> list[dict[str, Any]]:
    """Plotly trace dicts: one line (+- std across episodes) per agent for one metric."""
    traces = []
    for i, label in enumerate(result.labels):
        steps, mean, std = result.series(label, metric)
        traces.append(dict(type="scatter", x=steps, y=mean, mode="lines+markers", name=label,
                           line=dict(color=COLORS[i % len(COLORS)], width=2),
                           error_y=dict(type="data", array=np.nan_to_num(std), visible=True)))
    return traces


def metrics_figure(result: AnchorResult, metrics: Sequence[str] = tuple(SHOWN_METRICS[1:])):
    """A grid of small plots: each metric over training, one line per agent."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cols = 3
    rows = math.ceil(len(metrics) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[_short(m) for m in metrics],
                        horizontal_spacing=0.08, vertical_spacing=0.12)
    for k, metric in enumerate(metrics):
        for trace in metric_traces(result, metric):
            trace["showlegend"] = k == 0
            trace["legendgroup"] = trace["name"]
            fig.add_trace(go.Scatter(**trace), row=k // cols + 1, col=k % cols + 1)
    fig.update_layout(height=230 * rows + 80, margin=dict(l=40, r=20, t=60, b=30),
                      title="anchoring metrics at each evaluation (mean ± std across episodes)")
    fig.update_annotations(font_size=11)
    return fig


def _short(metric: str) -> str:
    return {"overestimation": "plan over-estimation", "q_overestimation": "Q over-estimation",
            "horizon_gap": "reward gap (H steps)", "prior_distance": "distance from prior",
            "energy": "energy of actions (high=data-like)", "energy_gap": "energy gap (prior - actions)",
            "nn_distance": "NN distance to replay actions", "state_nn_distance": "NN distance (similar states)",
            "td_plan_abs": "|TD| planner actions", "td_prior_abs": "|TD| prior actions",
            "cross_td_gap": "cross-TD gap", "return": "return"}.get(metric, metric)


SWEEP_QUANTITIES = {
    "model_return": "model return of the chosen plan (no energy)",
    "energy": "energy term of the chosen plan (discounted, before eta)",
    "total": "total J = model return + eta * energy",
    "prior_distance": "distance of the first action from the prior's mean",
    "plan_shift": "distance of the plan from the first eta's plan",
    "action": "first action (solid a[0], dashed a[1], dotted a[2], ...)",
}


def sweep_traces(result: AnchorResult, quantity: str) -> list[dict[str, Any]]:
    traces = []
    for i, label in enumerate(result.labels):
        rows = result.sweeps.get(label, [])
        if not rows:
            continue
        x = [f"{r['eta']:g}" for r in rows]
        color = COLORS[i % len(COLORS)]
        if quantity == "action":
            acts = np.array([np.asarray(r["plan"])[0] for r in rows])
            for d in range(acts.shape[1]):
                traces.append(dict(type="scatter", x=x, y=acts[:, d], mode="lines+markers",
                                   name=f"{label} a[{d}]", line=dict(color=color, dash=["solid", "dash", "dot",
                                                                                       "dashdot"][d % 4])))
        else:
            traces.append(dict(type="scatter", x=x, y=[r[quantity] for r in rows], mode="lines+markers",
                               name=label, line=dict(color=color, width=2)))
    return traces


def sweep_figure(result: AnchorResult, quantities: Sequence[str] = ("model_return", "energy", "action")):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(quantities), subplot_titles=[SWEEP_QUANTITIES[q] for q in quantities],
                        horizontal_spacing=0.08)
    for k, q in enumerate(quantities):
        for trace in sweep_traces(result, q):
            trace["showlegend"] = k == 0
            fig.add_trace(go.Scatter(**trace), row=1, col=k + 1)
        fig.update_xaxes(type="category", title_text="planning eta", row=1, col=k + 1)
    fig.update_layout(height=360, margin=dict(l=40, r=20, t=70, b=40),
                      title="eta sweep on one shared state (same random numbers for every eta)")
    fig.update_annotations(font_size=11)
    return fig


# --- HTML report ------------------------------------------------------------------------------

def final_table_html(result: AnchorResult) -> str:
    finals = result.final_rows()
    head = "".join(f"<th>{html.escape(label)}</th>" for label in finals)
    body = ""
    for m in ["eval_return"] + SHOWN_METRICS:
        name = "evaluation return (trainer)" if m == "eval_return" else METRICS[m][0]
        std_key = "eval_return_std" if m == "eval_return" else f"{m}_std"
        cells = "".join(f"<td>{_fmt(_f(r.get(m)))} ± {_fmt(_f(r.get(std_key)))}</td>" for r in finals.values())
        body += f"<tr><td>{html.escape(name)}</td>{cells}</tr>"
    return f"<table><tr><th>metric (final evaluation)</th>{head}</tr>{body}</table>"


def cross_energy_html(result: AnchorResult) -> str:
    """Rows: whose actions; columns: whose F scores them (mean ± std across episodes)."""
    if not result.cross_energy:
        return "<p><i>not measured</i></p>"
    table = {(r["referee"], r["actor"]): r for r in result.cross_energy}
    referees = [lb for lb in result.labels if any(k[0] == lb for k in table)]
    head = "".join(f"<th>under {html.escape(lb)}'s F</th>" for lb in referees)
    body = ""

    def cell(key) -> str:
        r = table.get(key)
        return f"<td>{_fmt(_f(r['energy']))} ± {_fmt(_f(r['energy_std']))}</td>" if r else "<td>n/a</td>"

    for actor in result.labels:
        cells = "".join(cell((ref, actor)) for ref in referees)
        body += f"<tr><td>actions of {html.escape(actor)}</td>{cells}</tr>"
    return f"<table><tr><th>standardised energy</th>{head}</tr>{body}</table>"


def _config_html(result: AnchorResult) -> str:
    labels = result.labels
    parts = []
    for label in labels[1:]:
        diff = config_diff(result.configs[labels[0]], result.configs[label], ignore=("device",))
        items = ", ".join(f"<code>{k}</code>: {html.escape(repr(a))} → {html.escape(repr(b))}"
                          for k, (a, b) in diff.items()) or "none"
        parts.append(f"<li>{html.escape(label)} vs {html.escape(labels[0])}: {items}</li>")
    full = json.dumps(result.configs[labels[0]], indent=1, sort_keys=True)
    return (f"<ul>{''.join(parts)}</ul><details><summary>full config of {html.escape(labels[0])}</summary>"
            f"<pre>{html.escape(full)}</pre></details>")


def _videos_html(result: AnchorResult) -> str:
    cells = []
    for label in result.labels:
        data = result.video_bytes(label)
        if data:
            src = "data:video/mp4;base64," + base64.b64encode(data).decode()
            cells.append(f"<div class='vid'><b>{html.escape(label)}</b><br><video controls loop muted "
                         f"width='240' src='{src}'></video></div>")
        else:
            cells.append(f"<div class='vid'><b>{html.escape(label)}</b><br><i>no video</i></div>")
    return "<div class='row'>" + "".join(cells) + "</div>"


def summary_list_html(summary: str) -> str:
    """The summary as HTML list items; per-metric lines nest under their agent's headline."""
    items: list[tuple[str, list[str]]] = []
    for line in summary.splitlines():
        if not line.strip():
            continue
        if line.startswith("  ") and items:
            text = line.strip()
            items[-1][1].append(text[2:] if text.startswith("- ") else f"<b>{html.escape(text)}</b>")
        else:
            items.append((line.strip(), []))
    out = ""
    for head, subs in items:
        nested = "".join(f"<li>{s if s.startswith('<b>') else html.escape(s)}</li>" for s in subs)
        out += f"<li>{html.escape(head)}" + (f"<ul>{nested}</ul>" if nested else "") + "</li>"
    return out


def write_report(result: AnchorResult, path: str | Path) -> Path:
    """A self-contained HTML report: summary, final table, figures (plotly inlined), videos, config."""
    path = Path(path)
    figs = [("Returns", returns_figure(result)), ("Metrics over training", metrics_figure(result)),
            ("Eta sweep on one shared state", sweep_figure(result))]
    fig_html = ""
    for i, (title, fig) in enumerate(figs):
        fig_html += f"<h2>{title}</h2>" + fig.to_html(full_html=False, include_plotlyjs=(i == 0))
    summary = summary_list_html(result.summary)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    defs = "".join(f"<li><code>{k}</code>: {html.escape(v[0])} (better: {v[1]})</li>" for k, v in METRICS.items())
    doc = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Anchored vs unanchored: {html.escape(result.task)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1200px;margin:auto;padding:1em}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 8px}}
.row{{display:flex;gap:1em;flex-wrap:wrap}}.vid{{text-align:center}}#summary li{{margin:3px 0}}</style></head>
<body><h1>Anchored vs unanchored MBDPO: {html.escape(result.task)}</h1>
<p>Agents: {', '.join(html.escape(lb) for lb in result.labels)} ({'trained as a pair' if result.mode == 'train'
    else 'loaded from checkpoints'}). eta weighs the energy anchor in the planner's return; eta = 0 is unanchored.</p>
<h2>Summary</h2><ul id="summary">{summary}</ul>
{f'<h3>Notes</h3><ul>{notes}</ul>' if notes else ''}
<h2>Final evaluation</h2>{final_table_html(result)}
<h3>Executed actions under one F</h3>
<p>Each agent's own <code>energy</code> row above uses its own F (trained on its own replay, with its own
running mean and std). Here every agent's executed actions are scored by each agent's F, so a column
compares the agents on one scale (higher = looks more like that F's data).</p>{cross_energy_html(result)}
{fig_html}
<p>{html.escape(sweep_state_text(result.sweep_state))}</p>
<h2>Rollouts (final evaluation, first episode)</h2>{_videos_html(result)}
<h2>Configuration</h2>{_config_html(result)}
<h2>Definitions</h2><ul>{defs}</ul>
<p>See <code>mbdpo_lab.analysis.anchoring</code> for the exact definitions (realised returns continue a
truncated episode with its final mean reward unless tail=mask/none) and <code>mbdpo_lab.experiments.anchor</code>
for the rule behind "no measurable difference".</p>
</body></html>"""
    path.write_text(doc)
    return path


# --- command line ---------------------------------------------------------------------------------

def _parse_etas(text: str | None) -> tuple[float, ...]:
    if not text:
        return DEFAULT_SWEEP_ETAS
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--sweep-etas must be comma-separated numbers, got {text!r}") from None
    if not values or any(v < 0 or not math.isfinite(v) for v in values):
        raise ConfigError(f"--sweep-etas needs at least one finite value >= 0, got {text!r}")
    return values


def run_compare_anchor(args: argparse.Namespace) -> AnchorResult:
    """Run ``compare-anchor`` from parsed arguments; prints one JSON line (out paths and the headline)."""
    from ..config import apply_overrides, make_config, validate

    etas = _parse_etas(args.sweep_etas)
    if args.metric_episodes is not None and args.metric_episodes < 1:
        raise ConfigError(f"--metric-episodes must be >= 1, got {args.metric_episodes}")
    out = Path(args.out)
    if (out / "anchor_summary.json").exists():
        raise ConfigError(f"{out} already holds an anchor comparison; choose another --out")
    progress = not getattr(args, "no_progress", False)
    if args.checkpoints:
        result = compare_checkpoints(args.checkpoints, out, episodes=args.metric_episodes or 10, seed=args.seed,
                                     tail=args.tail, sweep_etas=etas, video=not args.no_video, device=args.device)
    else:
        fields = {k: v for k, v in dict(task=args.task, steps=args.steps, seed=args.seed,
                                         device=args.device).items() if v is not None}
        cfg = make_config(args.preset, overrides=fields)
        if args.overrides:
            apply_overrides(cfg, args.overrides)
            validate(cfg)
        result = run_paired(cfg, out, eta_large=args.eta_large, metric_episodes=args.metric_episodes,
                            tail=args.tail, sweep_etas=etas, video=not args.no_video, progress=progress,
                            log=(lambda m: print(m, flush=True)) if progress else None)
    lines = result.summary.splitlines()
    print(json.dumps({"out": str(out), "report": str(out / "anchor_report.html"),
                      "metrics": str(out / "anchor_metrics.csv"), "agents": result.labels,
                      "summary": [ln for ln in lines if not ln.startswith("  -")]}))
    return result


TABLE_METRICS = ["return", "overestimation", "q_overestimation", "prior_distance", "state_nn_distance", "energy",
                 "td_plan_abs", "cross_td_gap"]


def markdown_table(out_dirs: Iterable[str | Path], metrics: Sequence[str] = TABLE_METRICS) -> str:
    """One markdown row per agent per comparison directory: final-evaluation mean ± std of each metric.

    ``mbdpo-lab anchor-table runs/anchor/*`` prints it.
    """
    head = "| task | seed | steps | agent | " + " | ".join(metrics) + " |"
    lines = [head, "|" + "---|" * (4 + len(metrics))]
    for out in out_dirs:
        result = AnchorResult.load(out)
        for label, row in result.final_rows().items():
            seed = result.configs.get(label, {}).get("seed", "")
            cells = [f"{_fmt(_f(row.get(m)))} ± {_fmt(_f(row.get(f'{m}_std')))}" for m in metrics]
            lines.append(f"| {result.task} | {seed} | {row['step']} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def result_from_rows(task: str, rows: list[dict[str, Any]], configs: dict[str, dict[str, Any]] | None = None,
                     **kwargs: Any) -> AnchorResult:
    """Build a result from metric rows (e.g. synthetic or hand-made); labels ordered by eta."""
    etas = {}
    for r in rows:
        etas.setdefault(r["agent"], float(r["eta"]))
    labels = sorted(etas, key=etas.get)
    result = AnchorResult(task=task, labels=labels, etas=etas, configs=configs or {lb: {} for lb in labels},
                          rows=rows, **kwargs)
    result.summary, result.verdicts = summarise(rows, labels)
    return result


__all__ = ["AnchorMetricsCallback", "AnchorResult", "paired_configs", "config_diff", "run_paired",
           "compare_checkpoints", "summarise", "compare_metric", "write_report", "returns_figure",
           "metrics_figure", "sweep_figure", "metric_traces", "sweep_traces",
           "run_compare_anchor", "result_from_rows", "cross_energy_rows", "summarise_cross_energy",
           "attach_cross_energy", "cross_energy_html", "make_row", "CSV_COLUMNS", "SHOWN_METRICS",
           "SWEEP_QUANTITIES", "markdown_table"]

