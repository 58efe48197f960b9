"""Offline multi-task pretraining: MBDPO's losses on a dataset of many tasks, no environment steps.

One step is one gradient update on a batch drawn from the dataset (`EpisodeDataset.sample`: padded,
with each sample's task), so ``cfg.steps`` counts updates here. Every ``eval_every`` updates each task
is evaluated in its own environment (``eval_episodes`` noise-free episodes in lock-step through
`run_episodes`), and the normalised score, return / 10 averaged over tasks (the paper's DMControl
score), goes to ``metrics.csv`` beside one row per task. Checkpoints hold the agent with its optimisers
and the counters; a resumed run refuses another dataset (the card's sha256 is recorded). Like online
training, a resumed run reseeds its randomness by update count (batches continue, they are not replayed).
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .agent import MBDPO, TaskSpec
from .checkpoint import load_checkpoint, save_checkpoint
from .config import Config
from .datasets import CARD, EpisodeDataset
from .episodes import episode_seeds, run_episodes
from .errors import CheckpointError, TrainingDiverged, UnknownTaskError
from .trainer import append_row, set_aside_rows_after

COLUMNS = ["update", "kind", "task", "eval_return", "eval_return_std", "normalised_score",
           "consistency_loss", "reward_loss", "value_loss", "energy_loss", "pi_loss", "total_loss",
           "grad_norm", "energy_accuracy", "updates_per_s", "wall_time"]
LOSSES = ["consistency_loss", "reward_loss", "value_loss", "energy_loss", "pi_loss", "total_loss", "grad_norm",
          "energy_accuracy"]


def card_digest(data_dir: str | Path) -> str:
    """sha256 of a dataset's card (which holds the sha256 of every chunk): the dataset's identity."""
    return hashlib.sha256((Path(data_dir) / CARD).read_bytes()).hexdigest()


def _seed(seed: int) -> None:
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Pretrainer:
    """Updates on a multi-task dataset, periodic per-task evaluation, checkpoints (see the module docstring)."""

    def __init__(self, cfg: Config, data_dir: str | Path, out_dir: str | Path | None = None,
                 agent: MBDPO | None = None, callbacks: list[Callable[[str, dict], None]] | None = None):
        self.cfg, self.data_dir = cfg, Path(data_dir)
        self.data = EpisodeDataset(self.data_dir, seed=cfg.seed)
        tasks = [TaskSpec(t.name, t.obs_dim, t.act_dim, cfg.episode_length) for t in self.data.tasks]
        if agent is None:
            _seed(cfg.seed)
            agent = MBDPO(cfg, self.data.obs_dim, self.data.act_dim, tasks=tasks)
        elif [t.name for t in agent.tasks] != [t.name for t in tasks]:
            raise CheckpointError(f"the checkpoint's tasks ({', '.join(t.name for t in agent.tasks)}) are not the "
                                  f"dataset's ({', '.join(t.name for t in tasks)})")
        self.agent = agent
        self.out_dir = Path(out_dir) if out_dir else None
        self.callbacks = list(callbacks or [])
        self.updates = 0
        self.history: list[dict[str, Any]] = []
        self.last_eval: dict[str, Any] | None = None
        self._wall_start = time.perf_counter()
        self._pending: list[dict[str, float]] = []
        self._since = time.perf_counter()
        self.evaluable = self._evaluable_tasks()
        if self.out_dir:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.json").write_text(cfg.to_json())

    def _evaluable_tasks(self) -> list[str]:
        """The dataset's tasks that this package has environments for (the rest train but are not evaluated)."""
        from .envs import resolve_task

        out = []
        for t in self.agent.tasks:
            try:
                resolve_task(t.name)
                out.append(t.name)
            except UnknownTaskError:
                pass
        return out

    def _emit(self, event: str, data: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb(event, data)

    def _record(self, row: dict[str, Any]) -> None:
        self.history.append(row)
        if not self.out_dir:
            return
        append_row(self.out_dir / "metrics.csv", row, COLUMNS)

    # --- one update ---------------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        cfg, agent = self.cfg, self.agent
        losses = agent.update(agent.to_batch(self.data.sample(cfg.batch_size, cfg.horizon)))
        if not all(np.isfinite(v) for v in losses.values()):
            raise TrainingDiverged(f"a loss is not finite at update {self.updates + 1}: {losses}; resume from the "
                                   "last checkpoint with a smaller lr")
        self.updates += 1
        self._pending.append(losses)
        log_every = max(1, (cfg.eval_every or cfg.steps or 1) // 10)
        if self.updates % log_every == 0:
            self._log_training()
        if cfg.eval_every and self.updates % cfg.eval_every == 0:
            self.evaluate()
        if self.out_dir and cfg.checkpoint_every and self.updates % cfg.checkpoint_every == 0:
            self.save()
        return losses

    def _log_training(self) -> None:
        if not self._pending:
            return
        now = time.perf_counter()
        row = {"update": self.updates, "kind": "train",
               **{k: float(np.mean([p[k] for p in self._pending])) for k in LOSSES},
               "updates_per_s": len(self._pending) / max(now - self._since, 1e-9),
               "wall_time": now - self._wall_start}
        self._pending, self._since = [], now
        self._record(row)
        self._emit("train", row)

    # --- evaluation -----------------------------------------------------------------------------
    def evaluate(self, episodes: int | None = None, seed: int | None = None) -> dict[str, Any]:
        """Each evaluable task: noise-free episodes in lock-step; one row per task and one for all."""
        from .envs import make_env

        cfg, agent = self.cfg, self.agent
        episodes = episodes or cfg.eval_episodes
        seeds = episode_seeds(cfg.seed + self.updates if seed is None else seed, episodes)
        per_task: dict[str, tuple[float, float]] = {}
        for name in self.evaluable:
            envs = [make_env(name, seed=env_seed, action_repeat=cfg.action_repeat, episode_length=cfg.episode_length)
                    for env_seed, _ in seeds]
            gens = [torch.Generator(device=agent.device).manual_seed(s) for _, s in seeds]
            try:
                runs = run_episodes(agent, envs, gens, task=name)
            finally:
                for env in envs:
                    env.close()
            returns = [r.total_return for r in runs]
            per_task[name] = (float(np.mean(returns)), float(np.std(returns)))
            self._record({"update": self.updates, "kind": "eval", "task": name, "eval_return": per_task[name][0],
                          "eval_return_std": per_task[name][1], "normalised_score": per_task[name][0] / 10,
                          "wall_time": time.perf_counter() - self._wall_start})
        score = float(np.mean([m for m, _ in per_task.values()]) / 10) if per_task else float("nan")
        result = {"update": self.updates, "normalised_score": score, "tasks": per_task}
        self._record({"update": self.updates, "kind": "eval", "task": "all", "normalised_score": score,
                      "wall_time": time.perf_counter() - self._wall_start})
        self.last_eval = result
        self._emit("eval", result)
        return result

    # --- the run ------------------------------------------------------------------------------
    def run(self, updates: int | None = None, progress: Callable[[int], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> "Pretrainer":
        """Update until ``updates`` (default cfg.steps) or ``should_stop()``; evaluate and save at the end."""
        target = self.cfg.steps if updates is None else updates
        try:
            while self.updates < target and not (should_stop and should_stop()):
                self.step()
                if progress:
                    progress(1)
        except KeyboardInterrupt:
            pass
        self._log_training()
        if self.updates >= target and (self.last_eval or {}).get("update") != self.updates:
            self.evaluate()
        if self.out_dir:
            self.save()
        return self

    # --- persistence ----------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        ev = self.last_eval or {}
        return dict(kind="pretrain", updates=self.updates, dataset=str(self.data_dir),
                    dataset_card_sha256=card_digest(self.data_dir),
                    wall_time=time.perf_counter() - self._wall_start,
                    normalised_score=ev.get("normalised_score"), eval_update=ev.get("update"))

    def save(self) -> Path:
        assert self.out_dir is not None
        if not all(bool(torch.isfinite(p).all()) for p in self.agent.wm.parameters()):
            raise TrainingDiverged(f"the weights are not finite at update {self.updates}; not overwriting the last "
                                   "good checkpoint")
        path = save_checkpoint(self.agent, self.out_dir / "checkpoints" / "last.safetensors", self.meta(),
                               include_optimizer=True)
        save_checkpoint(self.agent, self.out_dir / "agent.safetensors", self.meta())
        self._emit("checkpoint", {"update": self.updates, "path": str(path)})
        return path

    @classmethod
    def resume_from(cls, out_dir: str | Path, data_dir: str | Path | None = None, updates: int | None = None,
                    overrides=None, device: str | None = None,
                    callbacks: list[Callable[[str, dict], None]] | None = None) -> "Pretrainer":
        """Continue a pretraining run (agent, optimisers, counters) on the dataset it started with."""
        out_dir = Path(out_dir)
        ckpt = load_checkpoint(out_dir / "checkpoints" / "last.safetensors", overrides=overrides, device=device)
        if ckpt.meta.get("kind") != "pretrain":
            raise CheckpointError(f"{out_dir} holds an online training run; resume it with `mbdpo-lab train --resume`")
        data_dir = Path(data_dir or ckpt.meta["dataset"])
        if not (data_dir / CARD).exists():
            raise CheckpointError(f"the run's dataset {data_dir} is gone; pass --data with the same dataset")
        if card_digest(data_dir) != ckpt.meta["dataset_card_sha256"]:
            raise CheckpointError(f"{data_dir} is not the dataset this run pretrained on (its card differs); "
                                  "pass --data with that dataset, or start a new run")
        cfg = ckpt.agent.cfg
        if updates is not None:
            cfg.steps = updates
        trainer = cls(cfg, data_dir, out_dir, agent=ckpt.agent, callbacks=callbacks)
        trainer.updates = int(ckpt.meta["updates"])
        trainer._wall_start -= float(ckpt.meta.get("wall_time", 0.0))
        set_aside_rows_after(out_dir / "metrics.csv", trainer.updates, key="update")
        trainer.last_eval = _eval_from_metrics(out_dir / "metrics.csv", ckpt.meta.get("eval_update"))
        _seed(cfg.seed + trainer.updates)
        trainer.data.rng = np.random.default_rng(cfg.seed + trainer.updates)
        return trainer


def _eval_from_metrics(path: Path, update: int | None) -> dict[str, Any] | None:
    """The evaluation at ``update`` as `Pretrainer.evaluate` returned it, read back from metrics.csv (None if
    it is not all there): a resumed finished run need not evaluate again."""
    import csv

    if update is None or not path.exists():
        return None
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["kind"] == "eval" and r["update"] and int(r["update"]) == update]
    overall = [r for r in rows if r["task"] == "all"]
    if not overall:
        return None
    tasks = {r["task"]: (float(r["eval_return"]), float(r["eval_return_std"])) for r in rows if r["task"] != "all"}
    return {"update": update, "normalised_score": float(overall[-1]["normalised_score"]), "tasks": tasks}
