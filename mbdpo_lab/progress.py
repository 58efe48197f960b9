"""Training progress without widgets: bounded metric series, rates, ETA, and a console report.

A `MetricsFeed` is a trainer callback that only accumulates (microseconds per step, thread-safe);
`DashboardData` turns its drained windows into bounded series. The notebook dashboard draws these
series; `ConsoleReport` prints the same status line from a script or the CLI.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .config import Config

ENERGY_KEYS = ("energy_pos_logit", "energy_neg_logit", "energy_accuracy", "energy_mean", "energy_std")


class Series:
    """An (x, y) series with a bounded number of points.

    Points are means over buckets of ``stride`` raw values. When more than ``max_points`` points are
    held, adjacent pairs merge and the stride doubles, so a long run keeps its whole shape with equal
    weight per point, and every redraw sends at most ``max_points + 1`` values per trace. The newest
    partial bucket is shown too, so the latest value is always on the plot.
    """

    def __init__(self, max_points: int = 600):
        if max_points < 2:
            raise ValueError("max_points must be >= 2")
        self.max_points = max_points
        self.stride = 1
        self._x: list[float] = []
        self._y: list[float] = []
        self._pending = [0.0, 0.0, 0]  # sums of x and y, count, of the open bucket
        self.version = 0  # bumped on every change; panels redraw only when it moved

    def __len__(self) -> int:
        return len(self._x) + (1 if self._pending[2] else 0)

    def append(self, x: float, y: float) -> None:
        if y is None or not math.isfinite(float(y)):
            return  # a NaN would break plotly's autoscale; the CSV keeps the raw value
        pend = self._pending
        pend[0] += float(x)
        pend[1] += float(y)
        pend[2] += 1
        if pend[2] >= self.stride:
            self._x.append(pend[0] / pend[2])
            self._y.append(pend[1] / pend[2])
            self._pending = [0.0, 0.0, 0]
            if len(self._x) > self.max_points:
                self._halve()
        self.version += 1

    def _halve(self) -> None:
        n = len(self._x) // 2 * 2
        if n < len(self._x):  # an odd last point re-opens as a half-full bucket of the new stride
            self._pending = [self._x[-1] * self.stride, self._y[-1] * self.stride, self.stride]
        xs, ys = np.asarray(self._x[:n]), np.asarray(self._y[:n])
        self._x = xs.reshape(-1, 2).mean(1).tolist()
        self._y = ys.reshape(-1, 2).mean(1).tolist()
        self.stride *= 2

    @property
    def x(self) -> list[float]:
        pend = self._pending
        return self._x + ([pend[0] / pend[2]] if pend[2] else [])

    @property
    def y(self) -> list[float]:
        pend = self._pending
        return self._y + ([pend[1] / pend[2]] if pend[2] else [])

    @property
    def last(self) -> float | None:
        y = self.y
        return y[-1] if y else None


class Throttle:
    """``ready()`` is True at most once per ``interval`` seconds."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic):
        self.interval = float(interval)
        self.clock = clock
        self._last = -math.inf

    def ready(self, now: float | None = None) -> bool:
        now = self.clock() if now is None else now
        if now - self._last >= self.interval:
            self._last = now
            return True
        return False


class RateMeter:
    """Steps per second between successive observations, and an exponential average for the ETA.

    ``reset`` forgets the last observation (after a pause, so the pause is not counted as slowness).
    """

    def __init__(self, smoothing: float = 0.3):
        self.smoothing = smoothing
        self._last: tuple[float, int] | None = None
        self.rate: float | None = None  # the last window's rate
        self.average: float | None = None  # smoothed rate

    def reset(self) -> None:
        self._last = None

    def observe(self, now: float, step: int) -> float | None:
        if self._last is None:
            self._last = (now, step)
            return None
        t0, s0 = self._last
        if now <= t0 or step < s0:
            return None
        self._last = (now, step)
        rate = (step - s0) / (now - t0)
        self.rate = rate
        self.average = rate if self.average is None else (1 - self.smoothing) * self.average + self.smoothing * rate
        return rate


def eta_seconds(step: int, total: int, rate: float | None) -> float | None:
    """Seconds until ``total`` at ``rate`` steps/s (None when unknown)."""
    if rate is None or rate <= 0 or not math.isfinite(rate):
        return None
    return max(total - step, 0) / rate


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def phase_text(env_step: int, cfg: Config, last_eval_step: int | None = None,
               seed_updates: tuple[int, int] | None = None) -> str:
    """What the trainer is doing at ``env_step`` (the seed phase and its burst of updates take a while);
    ``seed_updates`` is (done, of) of that burst while it runs."""
    seed_end = cfg.num_seed_steps
    if seed_updates is not None:
        return f"updates on the seed data: {seed_updates[0]:,} / {seed_updates[1]:,} (the losses panel shows them as they go)"
    if env_step < seed_end - 1:
        return f"seed phase: uniform random actions until step {seed_end}"
    if env_step < seed_end:
        return f"running {seed_end} updates on the seed data (the losses panel shows them as they go)"
    if cfg.eval_every and env_step % cfg.eval_every == 0 and last_eval_step != env_step:
        n = cfg.eval_episodes
        return f"evaluating ({n} episode{'s' if n != 1 else ''}, planner without exploration noise)"
    return "learning: planning with the diffusion planner, one update per step" if cfg.planner == "diffusion" \
        else f"learning: acting with the {cfg.planner} planner, one update per step"


@dataclass
class FeedUpdate:
    """What happened since the previous `MetricsFeed.drain`."""

    t: float
    step: int | None = None  # env step of the latest step event
    agent_step: int | None = None
    n_steps: int = 0  # step events in the window
    losses: dict[str, float] = field(default_factory=dict)  # mean over the window's update steps
    planner_ms: float | None = None  # median over the window's planned actions
    episodes: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    done: dict[str, Any] | None = None
    seed_updates: list[dict[str, Any]] = field(default_factory=list)  # losses of the seed-phase burst, by update

    @property
    def empty(self) -> bool:
        return not (self.n_steps or self.episodes or self.evals or self.checkpoints or self.errors or self.done
                    or self.seed_updates)


class MetricsFeed:
    """A trainer callback (``feed(event, data)``) that only accumulates; ``drain()`` aggregates.

    Per step it adds the losses to running sums under a lock (microseconds), so the training thread
    never waits for a plot. Attach it with ``feed.attach(trainer)`` (it then also records the planner's
    ms per action, read from the agent) or pass it in ``Trainer(callbacks=[feed])``.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.clock = clock
        self._lock = threading.Lock()
        self._trainer = None
        self._reset_window()

    def _reset_window(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._plan_ms: list[float] = []
        self._n = 0
        self._step: int | None = getattr(self, "_step", None)
        self._agent_step: int | None = getattr(self, "_agent_step", None)
        self._episodes: list[dict[str, Any]] = []
        self._evals: list[dict[str, Any]] = []
        self._checkpoints: list[dict[str, Any]] = []
        self._errors: list[dict[str, Any]] = []
        self._done: dict[str, Any] | None = None
        self._seed_updates: list[dict[str, Any]] = []

    def attach(self, trainer) -> "MetricsFeed":
        """Register as the trainer's first callback and read planner ms from its agent."""
        self._trainer = trainer
        if self not in trainer.callbacks:
            trainer.callbacks.insert(0, self)
        return self

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        trainer = self._trainer
        with self._lock:
            if event == "step":
                self._n += 1
                self._step = int(data["step"])
                if trainer is not None:
                    self._agent_step = trainer.agent_step
                    if trainer.agent_step > trainer.cfg.num_seed_steps:  # this step's action was planned
                        self._plan_ms.append(float(trainer.agent.last_plan_ms))
                for key, value in data.items():
                    if key in ("step", "reward"):
                        continue
                    self._sums[key] = self._sums.get(key, 0.0) + float(value)
                    self._counts[key] = self._counts.get(key, 0) + 1
            elif event == "episode":
                self._episodes.append(dict(data))
            elif event == "eval":
                # frames stay out of the feed (memory); the mp4 path is enough for the view
                self._evals.append({k: v for k, v in data.items() if k != "frames"})
            elif event == "checkpoint":
                self._checkpoints.append(dict(data))
            elif event == "error":
                self._errors.append(dict(data))
            elif event == "done":
                self._done = dict(data)
            elif event == "seed_updates":
                self._seed_updates.append(dict(data))

    def drain(self) -> FeedUpdate:
        with self._lock:
            update = FeedUpdate(
                t=self.clock(), step=self._step, agent_step=self._agent_step, n_steps=self._n,
                losses={k: self._sums[k] / self._counts[k] for k in self._sums},
                planner_ms=float(np.median(self._plan_ms)) if self._plan_ms else None,
                episodes=self._episodes, evals=self._evals, checkpoints=self._checkpoints,
                errors=self._errors, done=self._done, seed_updates=self._seed_updates)
            self._reset_window()
        return update


class DashboardData:
    """Everything the panels draw, built from `FeedUpdate`s; `apply` says which panels changed."""

    def __init__(self, max_points: int = 600):
        self.max_points = max_points
        s = lambda: Series(max_points)  # noqa: E731
        self.episode_return = s()
        self.eval_return = s()
        self.eval_std: list[float] = []  # parallel to eval points (evals are few; never decimated)
        self.eval_points: list[dict[str, Any]] = []
        self.losses: dict[str, Series] = {}
        self.energy: dict[str, Series] = {k: s() for k in ENERGY_KEYS}
        self.steps_per_s = s()  # live window rate
        self.episode_steps_per_s = s()  # the trainer's per-episode rate
        self.planner_ms = s()
        self.update_ms = s()
        self.eval_planner_ms = s()
        self.rate = RateMeter()
        self.step = 0
        self.agent_step = 0
        self.last_checkpoint: str | None = None
        self.errors: list[dict[str, Any]] = []
        self.done: dict[str, Any] | None = None
        self.seed_updates: tuple[int, int] | None = None  # (done, of) of the seed-phase burst, while it runs

    def start_clock(self, now: float, step: int) -> None:
        """Call at (re)start: the rate counts from here, not across a pause or a stop."""
        self.rate.reset()
        self.rate.observe(now, step)

    def apply(self, update: FeedUpdate) -> set[str]:
        changed: set[str] = set()
        for row in update.seed_updates:
            # losses of the burst are drawn at their update number: update k of the burst is the k-th
            # update of the run, which is where later steps' losses land too (one update per step)
            x = row["done"]
            for key, value in row.items():
                if key in ("done", "of", "step"):
                    continue
                target = self.energy[key] if key in ENERGY_KEYS else self.losses.setdefault(key, Series(self.max_points))
                target.append(x, value)
                changed.add("energy" if key in ENERGY_KEYS else "losses")
            self.seed_updates = (row["done"], row["of"]) if row["done"] < row["of"] else None
            changed.add("status")
        if update.n_steps and update.step is not None:
            self.seed_updates = None
            self.step = update.step
            if update.agent_step is not None:
                self.agent_step = update.agent_step
            rate = self.rate.observe(update.t, update.step)
            if rate is not None:
                self.steps_per_s.append(update.step, rate)
                changed.add("speed")
            if update.planner_ms is not None:
                self.planner_ms.append(update.step, update.planner_ms)
                changed.add("speed")
            for key, value in update.losses.items():
                if key in ENERGY_KEYS:
                    self.energy[key].append(update.step, value)
                    changed.add("energy")
                else:
                    self.losses.setdefault(key, Series(self.max_points)).append(update.step, value)
                    changed.add("losses")
            changed.add("status")
        for row in update.episodes:
            self.episode_return.append(row["step"], row["episode_return"])
            if row.get("steps_per_s") is not None:
                self.episode_steps_per_s.append(row["step"], row["steps_per_s"])
            if row.get("update_ms") is not None:
                self.update_ms.append(row["step"], row["update_ms"])
            changed |= {"returns", "speed"}
        for row in update.evals:
            self.eval_return.append(row["step"], row["eval_return"])
            self.eval_std.append(float(row.get("eval_return_std") or 0.0))
            self.eval_points.append(row)
            if row.get("planner_ms"):
                self.eval_planner_ms.append(row["step"], row["planner_ms"])
            changed |= {"returns", "video", "speed"}
        for row in update.checkpoints:
            self.last_checkpoint = row.get("path")
            changed.add("status")
        if update.errors:
            self.errors.extend(update.errors)
            changed.add("status")
        if update.done:
            self.done = update.done
            if update.done.get("step") is not None:
                self.step = int(update.done["step"])
            changed.add("status")
        return changed


def status_line(step: int, total: int, rate: float | None, planner_ms: float | None = None) -> str:
    """``step 1,200 / 50,000 (2.4%) · 41.0 steps/s · planner 12.3 ms/action · ETA 19:48``."""
    pct = 100.0 * step / total if total else 100.0
    parts = [f"step {step:,} / {total:,} ({pct:.1f}%)"]
    parts.append(f"{rate:.1f} steps/s" if rate else "— steps/s")
    if planner_ms is not None:
        parts.append(f"planner {planner_ms:.1f} ms/action")
    parts.append(f"ETA {format_duration(eta_seconds(step, total, rate))}")
    return " · ".join(parts)


class ConsoleReport:
    """The dashboard's status without widgets: a trainer callback that prints at most every ``interval_s``.

    ``Trainer(cfg, callbacks=[ConsoleReport(cfg.steps)])`` prints progress, rate, ETA and the latest
    losses, and every episode/eval return as it happens (evaluations always print).
    """

    def __init__(self, total: int, interval_s: float = 10.0, print_fn: Callable[[str], None] = print,
                 clock: Callable[[], float] = time.perf_counter):
        self.total = total
        self.feed = MetricsFeed(clock)
        self.data = DashboardData()
        self.throttle = Throttle(interval_s, clock)
        self.print_fn = print_fn
        self.clock = clock
        self.data.start_clock(clock(), 0)

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        self.feed(event, data)
        if event in ("eval", "done", "error") or self.throttle.ready():
            update = self.feed.drain()
            self.data.apply(update)
            for row in update.evals:
                self.print_fn(f"[eval] step {row['step']:,}: return {row['eval_return']:.1f} "
                              f"± {row.get('eval_return_std') or 0:.1f}")
            for row in update.errors:
                self.print_fn(f"[error] step {row['step']:,}: {row['error']}")
            losses = ", ".join(f"{k.replace('_loss', '')} {v.last:.3g}" for k, v in self.data.losses.items()
                               if k.endswith("_loss") and v.last is not None)
            ret = self.data.episode_return.last
            self.print_fn(status_line(self.data.step, self.total, self.data.rate.average)
                          + (f" · episode return {ret:.1f}" if ret is not None else "")
                          + (f" · {losses}" if losses else ""))
