"""Offline-to-online fine-tuning, as the release does it: a pretrained multi-task model meets a new task.

The new task gets its own embedding, initialised from the most similar pretraining task's (the
release's pairs where they apply, e.g. walker-run <- walker-walk, reacher-hard <- reacher-easy); the
optimisers start fresh, and so do the value scale and F's running statistics (the release keeps only
the model's weights). There is no random seed phase: the pretrained planner acts from the first step,
and learning starts after the usual seed steps with their burst of updates. Training is then the
ordinary online loop (`Trainer`), the model acting for its new task.
"""
from __future__ import annotations

import os
from pathlib import Path

from .agent import MBDPO, TaskSpec
from .checkpoint import load_any
from .config import Config, validate
from .errors import UsageError

# The release's source task for each fine-tuning task it reports (scripts/offline_to_online.py).
RELEASE_SOURCES = {"walker-run": "walker-walk", "cheetah-run": "cheetah-run-backwards", "hopper-hop": "hopper-stand",
                   "pendulum-swingup": "pendulum-spin", "reacher-hard": "reacher-easy"}


def most_similar_task(new: str, obs_dim: int, act_dim: int, tasks: list[TaskSpec]) -> str:
    """The pretraining task whose embedding the new task starts from: the release's pair when it was
    pretrained on; else a task of the same domain and sizes (the longest shared name prefix); else one of
    the same sizes. None fits: the caller must say (``--source``)."""
    names = {t.name: t for t in tasks}
    if RELEASE_SOURCES.get(new) in names:
        return RELEASE_SOURCES[new]
    same_size = [t for t in tasks if (t.obs_dim, t.act_dim) == (obs_dim, act_dim)]
    domain = new.split("-")[0]
    same_domain = [t for t in same_size if t.name.split("-")[0] == domain]
    if same_domain:
        return max(same_domain, key=lambda t: len(os.path.commonprefix([t.name, new]))).name
    if same_size:
        return same_size[0].name
    raise UsageError(f"no pretraining task has {new}'s sizes ({obs_dim} observations, {act_dim} actions); "
                     f"name one with --source ({', '.join(names)})")


def prepare(checkpoint: str | Path, task: str, source: str | None = None, overrides=None,
            device: str | None = None) -> tuple[Config, MBDPO, str]:
    """Load a pretrained multi-task agent and give it ``task``; returns (config, agent, source task)."""
    from .envs import make_env, resolve_task

    resolve_task(task)
    agent = load_any(str(checkpoint), device=device, overrides=overrides).agent  # no architecture changes
    if not agent.tasks:
        raise UsageError(f"{checkpoint} is a single-task agent; fine-tuning starts from a multi-task one "
                         "(`mbdpo-lab pretrain`)")
    cfg = agent.cfg
    cfg.task, cfg.seed_actions = task, "planner"  # no random seed phase: the pretrained planner acts
    validate(cfg)
    env = make_env(task, action_repeat=cfg.action_repeat, episode_length=cfg.episode_length)
    obs_dim, act_dim = env.obs_dim, env.act_dim
    env.close()
    if source is None:
        source = most_similar_task(task, obs_dim, act_dim, agent.tasks)
    elif source not in [t.name for t in agent.tasks]:
        raise UsageError(f"--source {source} is not a pretraining task of {checkpoint}: "
                         f"{', '.join(t.name for t in agent.tasks)}")
    agent.add_task(TaskSpec(task, obs_dim, act_dim, cfg.episode_length), init_from=source)
    # what the release does not carry over from pretraining: the value scale and F's statistics
    agent.q_scale.value.fill_(1.0)
    agent.wm.energy_mean.zero_()
    agent.wm.energy_std.fill_(1.0)
    return cfg, agent, source
