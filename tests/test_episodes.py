"""One episode loop: it acts exactly as evaluation acts, and leaves the agent's warm start alone."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from mbdpo_lab.agent import MBDPO
from mbdpo_lab.config import make_config
from mbdpo_lab.envs import make_env
from mbdpo_lab.episodes import run_episode
from mbdpo_lab.trainer import evaluate


@pytest.fixture
def agent_env():
    cfg = make_config("tiny", task="pendulum-swingup", episode_length=12, device="cpu")
    torch.manual_seed(0)
    env = make_env(cfg.task, seed=3, action_repeat=cfg.action_repeat, episode_length=cfg.episode_length)
    agent = MBDPO(cfg, env.obs_dim, env.act_dim)
    yield agent, env
    env.close()


def _literal_episode(agent, env, seed):
    """The loop every caller used to write: act without noise, step until done."""
    gen = torch.Generator().manual_seed(seed)
    obs, done, t, actions, total = env.reset(), False, 0, [], 0.0
    while not done:
        action = agent.act(obs, t0=(t == 0), eval_mode=True, generator=gen)
        obs, reward, done = env.step(action)
        actions.append(action)
        total += reward
        t += 1
    return np.asarray(actions), total


@pytest.mark.parametrize("planner", ["diffusion", "mppi", "policy"])
def test_run_episode_acts_as_the_literal_loop(agent_env, planner):
    agent, _ = agent_env
    agent.cfg.planner = planner
    cfg = agent.cfg
    with make_env(cfg.task, seed=3, action_repeat=2, episode_length=12) as env:  # the same initial states
        actions, total = _literal_episode(agent, env, seed=5)
    with make_env(cfg.task, seed=3, action_repeat=2, episode_length=12) as env:
        ep = run_episode(agent, env, torch.Generator().manual_seed(5), planner=planner)
    np.testing.assert_array_equal(ep.actions, actions)
    assert ep.total_return == total and len(ep) == 12 and ep.obs.shape == (13, env.obs_dim)
    with make_env(cfg.task, seed=4, action_repeat=2, episode_length=12) as env:  # a test that can fail
        other = run_episode(agent, env, torch.Generator().manual_seed(5), planner=planner)
    assert not np.array_equal(other.obs, ep.obs)


def test_the_warm_start_is_the_callers_after_any_run(agent_env):
    agent, env = agent_env
    sentinel = torch.full((agent.cfg.horizon, agent.act_dim), 0.25)
    agent.prev_plan = sentinel
    run_episode(agent, env, torch.Generator().manual_seed(0), max_steps=5)
    assert agent.prev_plan is sentinel
    evaluate(agent, env, episodes=1)
    assert agent.prev_plan is sentinel
    with pytest.raises(RuntimeError):
        with agent.scoped_warm_start(torch.zeros_like(sentinel)):
            assert torch.equal(agent.prev_plan, torch.zeros_like(sentinel))
            raise RuntimeError("a failing caller")
    assert agent.prev_plan is sentinel


def test_should_stop_and_hooks_see_each_decision_before_the_step(agent_env):
    agent, env = agent_env
    seen = []
    ep = run_episode(agent, env, torch.Generator().manual_seed(0), record_warm_starts=True,
                     on_plan=lambda t, obs, result: seen.append((t, obs.copy(), result.plan.clone())))
    assert [t for t, _, _ in seen] == list(range(len(ep)))
    np.testing.assert_array_equal(np.asarray([o for _, o, _ in seen]), ep.obs[:-1])
    assert ep.warm_starts[0] is None
    np.testing.assert_allclose(ep.warm_starts[1], seen[0][2].numpy())  # step 1 starts from step 0's plan
    calls = iter(range(100))
    stopped = run_episode(agent, env, torch.Generator().manual_seed(0), should_stop=lambda: next(calls) >= 4)
    assert stopped.stopped and len(stopped) == 4


def test_no_other_module_runs_its_own_episode_loop():
    """Only the episode runner resets and steps an env in a loop; the trainer's step is training."""
    package = Path(__file__).resolve().parent.parent / "mbdpo_lab"
    allowed = {"episodes.py", "trainer.py", "envs.py"}
    offenders = []
    for path in package.rglob("*.py"):
        if path.name in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.For, ast.While)):
                calls = {n.func.attr for n in ast.walk(node) if isinstance(n, ast.Call)
                         and isinstance(n.func, ast.Attribute)}
                if {"step", "act"} <= calls or ("step" in calls and "plan" in calls):
                    offenders.append(f"{path.relative_to(package)}:{node.lineno}")
    assert not offenders, offenders
