"""Running the comparison: train agents that differ only in eta, or load trained ones, and measure them."""
from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ...analysis.anchoring import (DEFAULT_SWEEP_ETAS, BehaviourData, collect_anchor_rollouts, eta_sweep,
                                   evaluation_metrics, sweep_observation)
from ...config import Config, ConfigError
from ...envs import MEASURE_SEED_OFFSET
from .result import (HISTORY_COLUMNS, AnchorResult, arm_row, dirname_for, label_for, make_row, parse_row,
                     read_csv)
from .verdicts import attach_cross_energy, fmt_number, summarise

logger = logging.getLogger(__name__)


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
        from ...envs import make_env

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
        from ...rendering import RenderingUnavailable

        try:
            return collect_anchor_rollouts(self.trainer.agent, self.env, self.episodes, seed=seed,
                                           frames=frames, frame_size=self.frame_size)
        except RenderingUnavailable as exc:
            self.notes.append(f"no video for {self.label}: {str(exc).splitlines()[0]}")
            return collect_anchor_rollouts(self.trainer.agent, self.env, self.episodes, seed=seed)


def _trainer_history(label: str, trainer) -> list[dict[str, Any]]:
    return [dict(agent=label, step=r["step"], kind=r["kind"], episode_return=r.get("episode_return"),
                 eval_return=r.get("eval_return"), eval_return_std=r.get("eval_return_std"))
            for r in trainer.history]


def run_paired(cfg: Config, out: str | Path | None = None, eta_large: float | None = None,
               metric_episodes: int | None = None, tail: str = "steady",
               sweep_etas: Sequence[float] = DEFAULT_SWEEP_ETAS, sweep_step: int = 100, video: bool = True,
               frame_size: int = 96, progress: bool = False, report: bool = True) -> AnchorResult:
    """Train eta=0, eta=cfg.eta (and eta_large) from the same config and seed; measure; report.

    Every agent trains in ``out/eta<value>/`` (the trainer's own metrics.csv, checkpoints and
    ``agent.safetensors``, so `compare_checkpoints` can re-measure them later). ``metric_episodes``
    noise-free episodes per evaluation (default cfg.eval_episodes) feed the metrics. A final
    evaluation is added when ``cfg.steps`` is not a multiple of ``cfg.eval_every``. The eta sweep
    re-plans the state at ``sweep_step`` of the unanchored agent's last evaluation (see `sweep_agents`).
    """
    from ...envs import resolve_task
    from ...trainer import Trainer

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
    say = logger.info
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
                                                              f"{fmt_number(r['eval_return'])}, over-estimation "
                                                              f"{fmt_number(r['overestimation'])}, prior distance "
                                                              f"{fmt_number(r['prior_distance'])}"))
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


def _replay_beside(path: Path | None) -> Path | None:
    """The replay of the run a checkpoint belongs to (its run directory, or the folder above), if any."""
    if path is None:
        return None
    from ...trainer import replay_path

    for run_dir in (path.parent, path.parent.parent):
        for candidate in (replay_path(run_dir), run_dir / "replay.npz"):
            if candidate.exists():
                return candidate
    return None


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
                        device: str | None = None, report: bool = True,
                        max_steps: int | None = None) -> AnchorResult:
    """Measure trained agents (paths, run directories or pretrained names) on the same states.

    Two or three agents are compared one to one. Checkpoints whose configs differ only in their seed
    are one arm (e.g. the runs of a sweep over eta and seeds): each seed is measured, and the arm's
    metrics are IQMs over seeds with 95% CIs over seeds (`result.arm_row`); two or three arms.
    The replay of a run's checkpoint (``checkpoints/replay-<step>.npz``) feeds the replay-distance
    metrics when it exists (else they are n/a); the run's ``metrics.csv`` gives the return curves
    (one-seed arms only). Configs that differ in more than eta and seed are reported in the notes.
    """
    from ...checkpoint import load_any
    from ...envs import make_env

    if tail not in ("steady", "mask", "none"):
        raise ConfigError(f"tail must be steady, mask or none, got {tail!r}")
    if episodes < 1:
        raise ConfigError(f"episodes must be >= 1, got {episodes}")
    if len(checkpoints) < 2:
        raise ConfigError(f"--checkpoints takes two or more checkpoints, got {len(checkpoints)}")
    loaded = [(name, load_any(name, device)) for name in checkpoints]
    tasks = {ck.agent.cfg.task for _, ck in loaded}
    if len(tasks) > 1:
        raise ConfigError(f"the checkpoints are for different tasks ({', '.join(sorted(tasks))}); "
                          "compare agents of one task")
    loaded.sort(key=lambda item: (item[1].agent.cfg.eta, item[1].agent.cfg.seed))
    arms = _arms(loaded)
    if len(arms) == 1 and len(loaded) <= 3:  # seeds of one config: compared one to one
        arms = [[item] for item in loaded]
    if not 2 <= len(arms) <= 3:
        raise ConfigError(f"--checkpoints takes two or three agents, or the seeds of two or three arms (runs that "
                          f"differ only in their seed), got {len(loaded)} checkpoint(s) in {len(arms)} arm(s)")
    labels: list[str] = []
    for arm in arms:
        label = label_for(arm[0][1].agent.cfg.eta)
        while label in labels:
            label += "'"
        labels.append(label)
    task = tasks.pop()
    cfg0 = arms[0][0][1].agent.cfg
    result = AnchorResult(task=task, labels=labels, etas={lb: arm[0][1].agent.cfg.eta for lb, arm in zip(labels, arms)},
                          configs={lb: arm[0][1].agent.cfg.to_dict() for lb, arm in zip(labels, arms)}, rows=[],
                          mode="checkpoints", members={lb: [name for name, _ in arm] for lb, arm in zip(labels, arms)})
    for lb, arm in zip(labels[1:], arms[1:]):
        diff = config_diff(cfg0, arm[0][1].agent.cfg, ignore=("eta", "device", "seed"))
        if diff:
            result.notes.append(f"{lb} differs from {labels[0]} in more than eta: "
                                + ", ".join(f"{k}={b!r} (vs {a!r})" for k, (a, b) in diff.items())
                                + " — the comparison is not strictly paired.")
    if result.over_seeds:
        result.notes.append("Each agent is an arm of seeds (" + "; ".join(f"{lb}: {len(arm)}" for lb, arm in
                            zip(labels, arms)) + "): metrics are IQMs over seeds with 95% CIs over seeds; the "
                            "video, the eta sweep and the one-F comparison use each arm's first seed.")
    all_rollouts: dict[str, Any] = {}
    for label, arm in zip(labels, arms):
        per_seed = []
        for k, (name, ck) in enumerate(arm):
            rollouts, metrics = _measure(result, label, name, ck, make_env, episodes, seed, tail, max_steps,
                                         frames=video and k == 0, frame_size=frame_size)
            per_seed.append(metrics)
            if k == 0:
                all_rollouts[label] = rollouts
                result.agents[label] = ck.agent
                if rollouts.episodes and rollouts.episodes[0].frames is not None:
                    result.frames[label] = rollouts.episodes[0].frames
        step = int(arm[0][1].meta.get("agent_step", 0) or 0)
        if len(arm) > 1:
            result.rows.append(arm_row(label, arm[0][1].agent.cfg.eta, step, per_seed, tail))
            continue
        result.rows.append(make_row(label, arm[0][1].agent.cfg.eta, step, per_seed[0], tail))
        metrics_csv = _beside(arm[0][1].path, ["metrics.csv"])
        if metrics_csv is not None:
            for r in read_csv(metrics_csv):
                parsed = parse_row({k: r.get(k, "") for k in HISTORY_COLUMNS if k != "agent"}, ("kind",))
                result.history.append(dict(agent=label, **parsed))
    result.summary, result.verdicts = summarise(result.rows, result.labels)
    sweep_agents(result, all_rollouts, sweep_etas, sweep_step, seed)
    attach_cross_energy(result, all_rollouts)
    if out is not None:
        result.save(out, report=report)
    return result


def _arms(loaded: list) -> list[list]:
    """Checkpoints grouped into arms: configs equal but for seed and device, in first-seen order."""
    groups: dict[str, list] = {}
    for name, ck in loaded:
        key = json.dumps({k: v for k, v in ck.agent.cfg.to_dict().items() if k not in ("seed", "device")},
                         sort_keys=True, default=str)
        groups.setdefault(key, []).append((name, ck))
    return list(groups.values())


def _measure(result: AnchorResult, label: str, name: str, ck, make_env, episodes: int, seed: int, tail: str,
             max_steps: int | None, frames: bool, frame_size: int):
    """Rollouts and metrics of one checkpoint on the measurement states (frames of its first episode)."""
    agent, cfg = ck.agent, ck.agent.cfg
    env = make_env(result.task, seed=seed + MEASURE_SEED_OFFSET, action_repeat=cfg.action_repeat,
                   episode_length=cfg.episode_length)
    replay = _replay_beside(ck.path)
    behaviour = BehaviourData.load(replay, seed=seed) if replay else None
    if behaviour is None:
        result.notes.append(f"{label}: no replay next to {name}; replay-distance metrics are n/a")
    try:
        rollouts = collect_anchor_rollouts(agent, env, episodes, seed=seed + MEASURE_SEED_OFFSET, frames=int(frames),
                                           frame_size=frame_size, max_steps=max_steps)
    except Exception as exc:  # noqa: BLE001 - rendering may be unavailable; measure without frames
        from ...rendering import RenderingUnavailable

        if not isinstance(exc, RenderingUnavailable):
            raise
        result.notes.append(f"no video for {label}: {str(exc).splitlines()[0]}")
        rollouts = collect_anchor_rollouts(agent, env, episodes, seed=seed + MEASURE_SEED_OFFSET, max_steps=max_steps)
    return rollouts, evaluation_metrics(rollouts, behaviour, tail=tail)


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
    from ...config import apply_overrides, make_config, validate

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
                            tail=args.tail, sweep_etas=etas, video=not args.no_video, progress=progress)
    lines = result.summary.splitlines()
    print(json.dumps({"out": str(out), "report": str(out / "anchor_report.html"),
                      "metrics": str(out / "anchor_metrics.csv"), "agents": result.labels,
                      "summary": [ln for ln in lines if not ln.startswith("  -")]}))
    return result
