"""Lock-step evaluation: B episodes planned with one batched call per step must each get exactly what
they get when run alone with the same environment seed and generator."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mbdpo_lab.agent import MBDPO
from mbdpo_lab.config import make_config
from mbdpo_lab.envs import make_env
from mbdpo_lab.episodes import run_episode, run_episodes
from mbdpo_lab.trainer import episode_seeds, evaluate

TASK, LENGTH = "reacher-easy", 12


def trained_looking_agent(variant: str, **overrides) -> MBDPO:
    """A tiny agent with perturbed weights, so plans depend on the state and the heads differ."""
    cfg = make_config("tiny", {"variant": variant, "task": TASK, "episode_length": LENGTH, **overrides},
                      device="cpu")
    torch.manual_seed(1)
    agent = MBDPO(cfg, obs_dim=6, act_dim=2)
    with torch.no_grad():
        for p in agent.wm.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return agent


def alone_and_together(agent, planner, n=3, seed=7):
    seeds = episode_seeds(seed, n)

    def gens():
        return [torch.Generator().manual_seed(s) for _, s in seeds]

    envs = [make_env(TASK, seed=e, episode_length=LENGTH) for e, _ in seeds]
    alone = [run_episode(agent, env, g, planner=planner) for env, g in zip(envs, gens())]
    together = run_episodes(agent, [env.reseed(e) for env, (e, _) in zip(envs, seeds)], gens(), planner=planner)
    return alone, together


@pytest.mark.parametrize("variant,planner,extra", [
    ("lab", "diffusion", {}), ("release", "diffusion", {}), ("lab", "mppi", {}), ("lab", "policy", {}),
    ("release", "score", {"use_score_net": True}), ("lab", "diffusion", {"score_guided": True, "use_score_net": True}),
])
def test_lockstep_episodes_equal_one_at_a_time(variant, planner, extra):
    agent = trained_looking_agent(variant, **extra)
    alone, together = alone_and_together(agent, planner)
    for a, b in zip(alone, together):
        assert len(a) == len(b) == LENGTH
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.obs, b.obs)
        assert a.total_return == b.total_return
    # the episodes differ from each other (each its own start and stream), so equality is not trivial
    assert not np.array_equal(together[0].actions, together[1].actions)


def test_episodes_in_lockstep_keep_their_own_random_streams():
    """Shared noise would make the episodes agree with each other but not with their solo runs."""
    agent = trained_looking_agent("release")
    seeds = episode_seeds(3, 2)
    envs = [make_env(TASK, seed=seeds[0][0], episode_length=LENGTH) for _ in range(2)]  # the same start twice
    g = [torch.Generator().manual_seed(5), torch.Generator().manual_seed(6)]
    a, b = run_episodes(agent, envs, g)
    assert not np.array_equal(a.actions, b.actions)


def test_evaluate_in_lockstep_matches_sequential_evaluation():
    agent = trained_looking_agent("lab")
    env = make_env(TASK, seed=0, episode_length=LENGTH)
    together = evaluate(agent, env, 3, seed=11)
    alone = evaluate(agent, env, 3, seed=11, lockstep=False)
    assert together["returns"] == alone["returns"]
    assert len(set(together["returns"])) > 1 or together["returns"][0] == 0.0
    # an env's history does not matter: episode i always starts from its own seed
    env.reset()
    env.step(np.zeros(2, np.float32))
    assert evaluate(agent, env, 3, seed=11)["returns"] == together["returns"]


def test_lockstep_evaluation_stops_when_asked():
    agent = trained_looking_agent("lab")
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 3

    assert evaluate(agent, make_env(TASK, seed=0, episode_length=LENGTH), 2, should_stop=stop) is None


def test_plan_batch_leaves_the_agents_warm_start_alone():
    agent = trained_looking_agent("lab")
    agent.prev_plan = torch.full((agent.cfg.horizon, 2), 0.25)
    agent.plan_batch([np.zeros(6, np.float32)] * 2, [None, None], [torch.Generator().manual_seed(0)] * 2)
    assert torch.equal(agent.prev_plan, torch.full((agent.cfg.horizon, 2), 0.25))
