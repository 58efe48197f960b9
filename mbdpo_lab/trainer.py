"""Online training as an object you can step, pause, stop and resume.

`Trainer.step()` advances one agent step (seed phase: uniform actions; then planner actions; one
update per step, and as many updates as seed steps when the seed phase ends). `Trainer.run()` loops
with pause/stop support (a dashboard drives it from a thread); Ctrl-C, `stop()` or an exception
leave a usable agent and write an intact checkpoint. Callbacks receive the same metrics a script,
the CLI or a widget needs: ``callback(event, data)`` with events step, episode, eval, checkpoint,
error and done, and seed_updates during the burst of updates that ends the seed phase (it takes
minutes on a CPU; a view that waited for the next step event would look frozen).
"""
from __future__ import annotations

import csv
import json
import math
import random
import threading
import time
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .agent import MBDPO
from .buffer import ParallelReplay, ReplayBuffer
from .checkpoint import load_checkpoint, read_header, save_checkpoint
from .config import Config
from .envs import EVAL_SEED_OFFSET, make_env
from .errors import CheckpointError, TrainingDiverged
from .episodes import episode_seeds, run_episode, run_episodes
from .rendering import render_on_device

Callback = Callable[[str, dict[str, Any]], None]

ENV_SEED_STRIDE = 7919  # training environment i is seeded seed + i x this (environment 0: the run's seed)

CSV_COLUMNS = [
    "step", "sim_step", "episode", "kind", "episode_return", "episode_success", "eval_return", "eval_return_std",
    "eval_success",
    "consistency_loss", "reward_loss", "value_loss", "energy_loss", "score_loss", "pi_loss", "pi_entropy",
    "total_loss", "grad_norm", "energy_pos_logit", "energy_neg_logit", "energy_accuracy", "energy_mean",
    "energy_std", "q_scale", "steps_per_s", "planner_ms", "update_ms", "wall_time",
]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def append_row(path: Path, row: dict[str, Any], columns: list[str]) -> None:
    """Append one metrics row; a new file gets ``columns``, an existing one keeps its own header (a run
    resumed from an older version: columns added since are left out, nothing shifts)."""
    new = not path.exists()
    if not new:
        with open(path, newline="") as fh:
            columns = next(csv.reader(fh), None) or columns
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)


def set_aside_rows_after(path: Path, step: int, key: str = "step") -> None:
    """Move metrics rows logged after the checkpoint at ``step`` (column ``key``) to ``metrics.after_crash.csv``.

    A run killed hard (power cut, SIGKILL) has logged episodes the checkpoint does not contain; resuming
    replays those steps, and keeping both copies would draw the curve twice over the same steps.
    The rows are kept, not deleted, so nothing that was measured is lost.
    """
    if not path.exists():
        return
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        columns, rows = reader.fieldnames or CSV_COLUMNS, list(reader)
    after = [bool(r.get(key)) and int(float(r[key])) > step for r in rows]
    if not any(after):
        return
    aside = path.with_name("metrics.after_crash.csv")
    with open(aside, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        if fh.tell() == 0:
            writer.writeheader()
        writer.writerows(r for r, late in zip(rows, after) if late)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(r for r, late in zip(rows, after) if not late)
    tmp.replace(path)


def evaluate(agent: MBDPO, env, episodes: int, planner: str | None = None, video_size: int = 0,
             seed: int = 0, should_stop: Callable[[], bool] | None = None, lockstep: bool = True
             ) -> dict[str, Any] | None:
    """Run ``episodes`` noise-free episodes (in lock-step unless ``lockstep=False``); frames of the
    first one when ``video_size`` > 0. Episode i starts from ``env``'s task reseeded with
    `episode_seeds`'s i-th pair, whatever ``env`` did before.

    Returns None when ``should_stop()`` turns true before the evaluation is complete.
    """
    seeds = episode_seeds(seed, episodes)
    gens = [torch.Generator(device=agent.device).manual_seed(torch_seed) for _, torch_seed in seeds]
    envs = [env] + [env.copy() for _ in range(episodes - 1)] if lockstep else [env] * episodes
    try:
        if lockstep:
            for e, (env_seed, _) in zip(envs, seeds):
                e.reseed(env_seed)
            runs = run_episodes(agent, envs, gens, planner=planner, should_stop=should_stop,
                                frame_size=video_size or None)
        else:
            runs = []
            for ep, (env_seed, _) in enumerate(seeds):
                runs.append(run_episode(agent, env.reseed(env_seed), gens[ep], planner=planner, should_stop=should_stop,
                                        frame_size=video_size if ep == 0 and video_size else None))
                if runs[-1].stopped:
                    break
    finally:
        for e in envs[1:] if lockstep else []:
            e.close()
    if any(r.stopped for r in runs):
        return None
    returns = [r.total_return for r in runs]
    plan_ms = np.concatenate([r.plan_ms for r in runs])
    return dict(mean_return=float(np.mean(returns)), std_return=float(np.std(returns)),
                returns=[float(r) for r in returns], episodes=episodes, success_rate=success_rate(runs),
                planner_ms=float(np.median(plan_ms)) if plan_ms.size else 0.0, frames=runs[0].frames)


def success_rate(runs) -> float | None:
    """Share of episodes that ended at their goal (goal-directed tasks); None for tasks without one."""
    flags = [r.success for r in runs if r.success is not None]
    return float(np.mean(flags)) if flags else None


def replay_path(run_dir: str | Path) -> Path:
    """The replay file that a run's resumable checkpoint names (``replay.npz`` for older runs)."""
    ckpt_dir = Path(run_dir) / "checkpoints"
    meta = read_header(ckpt_dir / "last.safetensors")[1] if (ckpt_dir / "last.safetensors").exists() else {}
    return ckpt_dir / str(meta.get("replay_file", "replay.npz"))


def fresh_run_dir(path: str | Path) -> Path:
    """``path`` when it is absent or empty, else the first free ``path-2``, ``path-3``, ..."""
    path = Path(path)
    if not path.exists() or not any(path.iterdir()):
        return path
    k = 2
    while True:
        candidate = path.with_name(f"{path.name}-{k}")
        if not candidate.exists() or not any(candidate.iterdir()):
            return candidate
        k += 1



class RunControls:
    """Pause and stop requests of one run; thread-safe, and usable before its trainer exists.

    A caller that builds the trainer in a background thread (the dashboard) hands the same controls to
    it, so a Pause or Stop pressed while the trainer is still being built is not lost.
    """

    def __init__(self) -> None:
        self._pause = threading.Event()
        self._stop = threading.Event()

    @property
    def pause_requested(self) -> bool:
        return self._pause.is_set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def pause(self) -> None:
        self._pause.set()

    def resume(self) -> None:
        self._pause.clear()

    def stop(self) -> None:
        self._stop.set()
        self._pause.clear()

    def clear_stop(self) -> None:
        """Forget an honoured stop, so the next run continues."""
        self._stop.clear()


class Trainer:
    """Owns env, agent, replay and counters; safe to drive from a background thread."""

    def __init__(self, cfg: Config, out_dir: str | Path | None = None, callbacks: list[Callback] | None = None,
                 agent: MBDPO | None = None, env_seed: int | None = None, controls: RunControls | None = None):
        self.cfg = cfg
        seed_everything(cfg.seed)
        base_seed = cfg.seed if env_seed is None else env_seed
        self.envs = [make_env(cfg.task, seed=base_seed + ENV_SEED_STRIDE * i, action_repeat=cfg.action_repeat,
                              episode_length=cfg.episode_length) for i in range(cfg.num_envs)]
        self.env = self.envs[0]
        self.eval_env = make_env(cfg.task, seed=cfg.seed + EVAL_SEED_OFFSET, action_repeat=cfg.action_repeat,
                                 episode_length=cfg.episode_length)
        self.agent = agent or MBDPO(cfg, self.env.obs_dim, self.env.act_dim)
        render_on_device(self.agent.device)  # evaluation videos on the training GPU (EGL)
        planned = min(cfg.buffer_size, cfg.steps)  # storage for the planned run; it grows if run() goes on
        rows = planned + planned // cfg.episode_length + 2
        # the agent's sizes: a multi-task model fine-tuned on one task pads that task's to its own
        obs_dim, act_dim = self.agent.obs_dim, self.agent.act_dim
        if cfg.num_envs == 1:
            self.buffer = ReplayBuffer(obs_dim, act_dim, cfg.buffer_size, cfg.horizon, seed=cfg.seed,
                                       initial_rows=rows, release=cfg.variant == "release")
        else:
            self.buffer = ParallelReplay(obs_dim, act_dim, cfg.buffer_size, cfg.horizon,
                                         cfg.num_envs, seed=cfg.seed, initial_rows=rows + cfg.num_envs,
                                         release=cfg.variant == "release")
        self.rng = np.random.default_rng(cfg.seed)
        self.callbacks: list[Callback] = list(callbacks or [])
        self.out_dir = Path(out_dir) if out_dir else None
        self.agent_step = 0
        self.episode = 0
        self.history: list[dict[str, Any]] = []
        self.last_eval: dict[str, Any] | None = None
        self.state = "idle"  # idle, running, paused, stopped, finished, failed
        self.error: BaseException | None = None
        n = cfg.num_envs  # each training environment's episode in progress:
        self._obs: list[np.ndarray | None] = [None] * n  # its observation (None: reset at the next step)
        self._t = [0] * n  # its steps so far
        self._ep_return = [0.0] * n
        self._plans: list[torch.Tensor | None] = [None] * n  # its last plan, the next warm start (num_envs > 1)
        self._ep_start_time = [time.perf_counter()] * n
        self._ep_start_step = [0] * n
        self._update_credit = 0.0  # updates earned by updates_per_env_step and not yet run
        self._ep_losses: list[dict[str, float]] = []
        self._ep_plan_ms: list[float] = []
        self._ep_update_ms: list[float] = []
        self._run_lock = threading.Lock()
        self.controls = controls or RunControls()
        self._wall_start = time.perf_counter()
        if self.out_dir:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))

    # --- counters --------------------------------------------------------------------------
    @property
    def env_step(self) -> int:
        """Steps of the action-repeated environment so far (= agent steps), the x-axis of every curve.

        The unit of ``cfg.steps`` and of the published curves; the simulator ran action_repeat times more.
        """
        return self.agent_step

    @property
    def first_update_step(self) -> int:
        """Index of the step (counting from 0) after which the first updates run: S - 1 (lab) or S (release)."""
        s = self.cfg.num_seed_steps
        return s if self.cfg.variant == "release" else s - 1

    @property
    def done(self) -> bool:
        return self.env_step >= self.cfg.steps

    def _emit(self, event: str, data: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb(event, data)

    # --- one step --------------------------------------------------------------------------
    def step(self, limit: int | None = None) -> dict[str, Any]:
        """Advance one agent step in each training environment (at most ``limit`` transitions), in
        lock-step, with the updates they earn; returns this step's metrics."""
        cfg = self.cfg
        k = self.cfg.num_envs if limit is None else max(1, min(self.cfg.num_envs, limit))
        first = self.agent_step  # index of this round's first transition
        for i in range(k):
            if self._obs[i] is None:
                self._obs[i] = self.envs[i].reset()  # the task's own observation: what the agent acts on
                self.buffer.start_episode(self.agent.check_observation(self._obs[i]), stream=i)  # padded
                self._t[i], self._ep_return[i], self._plans[i] = 0, 0.0, None
                self._ep_start_time[i], self._ep_start_step[i] = time.perf_counter(), self.agent_step
        # The seed phase: random actions up to and including `first_update_step`, after which S updates run
        first_update = self.first_update_step
        if first <= first_update and cfg.seed_actions == "random":
            actions = [self.envs[i].random_action(self.rng) for i in range(k)]
        elif k == 1 and cfg.num_envs == 1:
            actions = [self.agent.act(self._obs[0], t0=self._t[0] == 0, eval_mode=False)]
            self._ep_plan_ms.append(self.agent.last_plan_ms)
        else:
            batch, plans = self.agent.act_batch(self._obs[:k], [None if self._t[i] == 0 else self._plans[i]
                                                                 for i in range(k)])
            actions, self._plans[:k] = list(batch), plans
            self._ep_plan_ms.append(self.agent.last_plan_ms)
        rewards, ended = [], []
        for i, action in enumerate(actions):
            action = np.asarray(action, np.float32)[:self.envs[i].act_dim]  # a padded model's extra entries
            next_obs, reward, done = self.envs[i].step(action)
            if len(action) < self.agent.act_dim:  # stored padded, as the model reads it
                action = np.concatenate([action, np.zeros(self.agent.act_dim - len(action), np.float32)])
            # checked (nothing non-finite enters the replay) and padded to the model's size
            self.buffer.add(action, reward, self.agent.check_observation(next_obs), stream=i)
            if done:
                self.buffer.end_episode(stream=i)
            self._obs[i], self._ep_return[i], self._t[i] = next_obs, self._ep_return[i] + reward, self._t[i] + 1
            rewards.append(reward)
            if done:
                ended.append(i)
        self.agent_step += k
        before = first  # env steps before this round (env_step == agent_step)

        info: dict[str, Any] = {"step": self.env_step, "reward": float(np.mean(rewards))}
        burst = first <= first_update < self.agent_step
        self._update_credit += cfg.updates_per_env_step * max(0, self.agent_step - max(first, first_update + 1))
        n_updates = int(self._update_credit)
        self._update_credit -= n_updates
        if burst:
            n_updates += cfg.num_seed_steps
        if n_updates:
            losses = self._updates(n_updates, burst)
            info.update(losses)
        for i in ended:  # book-keeping first, so a callback that raises cannot lose the episode's end
            self._end_episode(i, last=i == ended[-1])
        self._emit("step", info)
        if cfg.eval_every and self.env_step // cfg.eval_every > before // cfg.eval_every:
            self.run_evaluation()
        if cfg.checkpoint_every and self.out_dir and self.env_step // cfg.checkpoint_every > before // cfg.checkpoint_every:
            self.save()
        return info

    def _updates(self, n_updates: int, burst: bool) -> dict[str, float]:
        """Run ``n_updates`` updates on replay samples; the seed phase's burst reports its progress."""
        report_every = max(1, n_updates // 200)
        start = time.perf_counter()
        for i in range(n_updates):
            losses = self.agent.update(self.agent.to_batch(self.buffer.sample(self.cfg.batch_size)))
            if burst and n_updates > 1 and ((i + 1) % report_every == 0 or i + 1 == n_updates):
                self._emit("seed_updates", dict(losses, done=i + 1, of=n_updates, step=self.env_step))
        bad = sorted(k for k, v in losses.items() if not math.isfinite(v))
        if bad:
            raise TrainingDiverged(f"non-finite {', '.join(bad)} at step {self.env_step}: the update diverged; "
                                   "the last good checkpoint is kept (lower lr, or resume from it)")
        self._ep_update_ms.append(1000 * (time.perf_counter() - start) / n_updates)
        self._ep_losses.append(losses)
        return losses

    def _end_episode(self, env: int = 0, last: bool = True) -> None:
        """Record environment ``env``'s finished episode; the losses and timings gathered since the last
        recorded episode go to every episode that ends in this step and are cleared after the ``last``."""
        elapsed = max(time.perf_counter() - self._ep_start_time[env], 1e-9)
        row: dict[str, Any] = dict(step=self.env_step, sim_step=self.agent_step * self.cfg.action_repeat,
                                   episode=self.episode, kind="episode", episode_return=self._ep_return[env],
                                   episode_success=self.envs[env].success,
                                   steps_per_s=(self.agent_step - self._ep_start_step[env]) / elapsed,
                                   wall_time=time.perf_counter() - self._wall_start)
        if self._ep_losses:
            for key in self._ep_losses[0]:
                row[key] = float(np.mean([m[key] for m in self._ep_losses]))
        if self._ep_plan_ms:
            row["planner_ms"] = float(np.median(self._ep_plan_ms))
        if self._ep_update_ms:
            row["update_ms"] = float(np.median(self._ep_update_ms))
        if last:
            self._ep_losses, self._ep_plan_ms, self._ep_update_ms = [], [], []
        self.episode += 1
        self._obs[env] = None
        self._record(row)
        self._emit("episode", row)

    def run_evaluation(self, episodes: int | None = None) -> dict[str, Any] | None:
        """Evaluate now; None (and no row) if stop() interrupts it."""
        cfg = self.cfg
        video = cfg.video_size if (cfg.save_video and self.out_dir) else 0
        result = evaluate(self.agent, self.eval_env, episodes or cfg.eval_episodes, video_size=video,
                          seed=cfg.seed + self.agent_step, should_stop=lambda: self.controls.stop_requested)
        if result is None:
            return None
        row = dict(step=self.env_step, sim_step=self.agent_step * self.cfg.action_repeat, episode=self.episode,
                   kind="eval",
                   eval_return=result["mean_return"], eval_return_std=result["std_return"],
                   eval_success=result["success_rate"],
                   planner_ms=result["planner_ms"], wall_time=time.perf_counter() - self._wall_start)
        if result["frames"] is not None and self.out_dir:
            from .rendering import write_video

            path = self.out_dir / "videos" / f"eval_{self.env_step:07d}.mp4"
            path.parent.mkdir(exist_ok=True)
            write_video(str(path), result["frames"], fps=30)
            result["video"] = str(path)
        self.last_eval = {**result, "step": self.env_step}
        self._record(row)
        self._emit("eval", {**row, "video": result.get("video"), "frames": result["frames"],
                            "returns": result["returns"]})
        return result

    def _record(self, row: dict[str, Any]) -> None:
        self.history.append(row)
        if not self.out_dir:
            return
        append_row(self.out_dir / "metrics.csv", row, CSV_COLUMNS)

    # --- run / pause / stop ----------------------------------------------------------------
    def run(self, steps: int | None = None, progress: Callable[[int], None] | None = None) -> "Trainer":
        """Train until ``steps`` (default cfg.steps) env steps, a stop request, or an error.

        Ctrl-C and stop() end the run cleanly (state ``stopped``) after writing a checkpoint.
        An exception writes a checkpoint of the last good state, sets ``state='failed'`` and is re-raised.
        """
        target = self.cfg.steps if steps is None else steps
        if not self._run_lock.acquire(blocking=False):
            raise RuntimeError("this trainer is already running; stop it first")
        try:
            if self.state == "stopped":  # a new run() continues after an honoured stop
                self.controls.clear_stop()
            self.state, self.error = "running", None
            while self.env_step < target:
                if self.controls.stop_requested:  # also one requested before the run began
                    self.state = "stopped"
                    break
                if self.controls.pause_requested:
                    self.state = "paused"
                    time.sleep(0.05)
                    continue
                self.state = "running"
                before = self.env_step
                self.step(limit=target - self.env_step)
                if progress:
                    progress(self.env_step - before)
            else:
                self.state = "finished"
        except KeyboardInterrupt:
            self.state = "stopped"
        except BaseException as exc:
            self.state, self.error = "failed", exc
            self._emit("error", {"step": self.env_step, "error": repr(exc)})
            self._safe_save()
            raise
        finally:
            self._run_lock.release()
        self._safe_save()
        self._emit("done", {"step": self.env_step, "state": self.state})
        return self

    def complete(self, progress: Callable[[int], None] | None = None) -> "Trainer":
        """`run` to cfg.steps; a finished run is then evaluated at its last step (when the schedule did not)
        and saved, so its last evaluation and checkpoint describe the final agent."""
        self.run(progress=progress)
        if self.state == "finished" and (self.last_eval or {}).get("step") != self.env_step:
            self.run_evaluation()
            if self.out_dir:
                self.save()
        return self

    def _safe_save(self) -> None:
        if not self.out_dir:
            return
        finite = all(torch.isfinite(p).all() for p in self.agent.wm.parameters())
        if finite:
            self.save()

    def pause(self) -> None:
        self.controls.pause()

    def resume(self) -> None:
        self.controls.resume()

    def stop(self) -> None:
        self.controls.stop()

    # --- persistence -------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        ev = self.last_eval or {}
        return dict(task=self.cfg.task, env_step=self.env_step, agent_step=self.agent_step,
                    episode=self.episode, wall_time=time.perf_counter() - self._wall_start,
                    update_credit=self._update_credit,
                    eval_return=ev.get("mean_return"),
                    eval_return_std=ev.get("std_return"), eval_step=ev.get("step"))

    def save(self) -> Path:
        """Write the resumable state (``last.safetensors`` with the optimiser, and its replay) and the agent.

        The order keeps a consistent pair at every instant, a SIGKILL included: the replay goes to a new
        file named by its step first, then the checkpoint that names it replaces the old one (atomically),
        and only then are older replay files removed. A kill leaves the previous pair, or the new one.
        """
        assert self.out_dir is not None
        if not all(bool(torch.isfinite(p).all()) for p in self.agent.wm.parameters()):
            raise TrainingDiverged(f"the weights are not finite at step {self.env_step}; not overwriting the last "
                                   "good checkpoint")
        ckpt_dir = self.out_dir / "checkpoints"
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        replay = ckpt_dir / f"replay-{self.agent_step}.npz"
        tmp = ckpt_dir / f"replay-{self.agent_step}.tmp.npz"
        np.savez(tmp, **self.buffer.state_dict())
        tmp.replace(replay)
        meta = {**self.meta(), "replay_file": replay.name, "replay_transitions": len(self.buffer)}
        path = save_checkpoint(self.agent, ckpt_dir / "last.safetensors", meta, include_optimizer=True)
        for old in [*ckpt_dir.glob("replay-*.npz"), ckpt_dir / "replay.npz"]:
            if old.name != replay.name and old.exists():
                old.unlink()
        save_checkpoint(self.agent, self.out_dir / "agent.safetensors", self.meta())
        self._emit("checkpoint", {"step": self.env_step, "path": str(path)})
        return path

    @classmethod
    def resume_from(cls, out_dir: str | Path, steps: int | None = None,
                    callbacks: list[Callback] | None = None, overrides=None,
                    controls: RunControls | None = None, device: str | None = None) -> "Trainer":
        """Continue a run from its directory (agent, optimiser, replay and counters).

        ``overrides`` may change schedule knobs (eval_every, eval_episodes, ...), not the architecture;
        ``device`` where it continues (None: ``auto``, whatever it was trained on).
        """
        out_dir = Path(out_dir)
        ckpt = load_checkpoint(out_dir / "checkpoints" / "last.safetensors", overrides=overrides, device=device)
        cfg = ckpt.agent.cfg
        if steps is not None:
            cfg.steps = steps
        agent_step = int(ckpt.meta["agent_step"])
        # Fresh initial states: the env seeded like the first segment would replay its start states.
        # (Evaluation episodes are seeded by step, `episode_seeds`, whatever the envs did before.)
        trainer = cls(cfg, out_dir, callbacks, agent=ckpt.agent, env_seed=cfg.seed + agent_step, controls=controls)
        for leftover in [*(out_dir / "checkpoints").glob("*.tmp*"), *out_dir.glob("*.tmp")]:
            leftover.unlink()  # half-written files of a killed save
        replay = replay_path(out_dir)
        if not replay.exists():
            raise CheckpointError(f"{replay} is missing, but the checkpoint at step {agent_step} needs it; "
                                  "the run cannot resume without its replay (start a new run)")
        unreadable = "{} cannot be read ({}); the run cannot resume without its replay (start a new run)"
        try:
            with np.load(replay, allow_pickle=False) as data:
                state = {k: data[k] for k in data.files}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise CheckpointError(unreadable.format(replay, exc)) from None
        streams = len(state.get("stream_rows", [0]))
        if streams != cfg.num_envs:
            raise CheckpointError(f"this run collected with num_envs={streams}; resume it with the same "
                                  f"(not --set num_envs={cfg.num_envs})")
        try:
            trainer.buffer.load_state_dict(state)
        except (ValueError, KeyError) as exc:
            raise CheckpointError(unreadable.format(replay, exc)) from None
        expected = ckpt.meta.get("replay_transitions")
        if expected is not None and len(trainer.buffer) != int(expected):
            raise CheckpointError(f"{replay.name} holds {len(trainer.buffer)} transitions, the checkpoint expects "
                                  f"{expected}; the run directory was changed by hand")
        trainer.agent_step = agent_step
        set_aside_rows_after(out_dir / "metrics.csv", trainer.env_step)
        trainer._wall_start -= float(ckpt.meta.get("wall_time", 0.0))  # wall time counts the whole run
        trainer.episode = int(ckpt.meta["episode"])
        trainer._update_credit = float(ckpt.meta.get("update_credit", 0.0))
        seed_everything(cfg.seed + trainer.agent_step)
        trainer.rng = np.random.default_rng(cfg.seed + trainer.agent_step)
        return trainer
