"""The planner checked against physics: the simulator is brought back exactly, every plan runs from the
same state, the episode is left as it was, and the widget panel shows the numbers."""
from __future__ import annotations

import numpy as np
import pytest

from mbdpo_lab.analysis.denoising import collect_rollout, plan_trace
from mbdpo_lab.analysis.reality import env_at, imagined_outcome, real_outcome, reality_check
from mbdpo_lab.checkpoint import load_pretrained
from mbdpo_lab.envs import make_env


@pytest.fixture(scope="module")
def decision():
    agent = load_pretrained("cartpole-swingup", device="cpu").agent
    cfg = agent.cfg
    with make_env(cfg.task, seed=3, action_repeat=cfg.action_repeat, episode_length=cfg.episode_length) as env:
        rollout = collect_rollout(agent, env, steps=6, seed=3, render_size=None)
    t = 4
    trace = plan_trace(agent, rollout.obs[t], rollout.warm_plans[t], {}, seed=0)
    return agent, rollout, t, trace


def test_the_environment_is_rebuilt_exactly_and_left_as_it_was(decision):
    agent, rollout, t, trace = decision
    env = env_at(agent, agent.cfg.task, 3, rollout.actions[:t])
    np.testing.assert_allclose(env._flatten(env._env.task.get_observation(env._env.physics)), rollout.obs[t], atol=1e-6)
    check = reality_check(agent, env, trace, rollout.obs[t], t, frame_size=(24, 32))
    obs, _, _ = env.step(rollout.actions[t])  # the episode goes on as recorded: the branches left no trace
    np.testing.assert_allclose(obs, rollout.obs[t + 1], atol=1e-6)
    env.close()
    L, E = trace.elite_idx.shape
    assert check.imagined_return.shape == check.real_return.shape == (L,) and check.elite_real.shape == (L, E)
    assert check.frames.shape == (agent.cfg.horizon + 1, 24, 32, 3)


def test_real_returns_are_the_simulators_and_imagined_ones_the_models(decision):
    agent, rollout, t, trace = decision
    gamma, H = agent.gamma, agent.cfg.horizon
    env = env_at(agent, agent.cfg.task, 3, rollout.actions[:t])
    check = reality_check(agent, env, trace, rollout.obs[t], t)
    env.close()
    # the final plan stepped by hand in a rebuilt environment
    fresh = env_at(agent, agent.cfg.task, 3, rollout.actions[:t])
    rewards = [fresh.step(a)[1] for a in np.clip(trace.plan, -1, 1)]
    fresh.close()
    real_rewards = float(np.dot(gamma ** np.arange(H), rewards))
    again_env = env_at(agent, agent.cfg.task, 3, rollout.actions[:t])
    assert real_outcome(agent, again_env, trace.plan[None])[0][0] == pytest.approx(real_rewards)
    again_env.close()
    plan_r, _ = imagined_outcome(agent, rollout.obs[t], trace.plan[None])
    # the imagined rewards of the final plan are what the planner's own rollout predicted
    np.testing.assert_allclose(plan_r[0], float(np.dot(gamma ** np.arange(H), trace.imagined["rewards"])), rtol=1e-4)
    level_real = check.real_rewards[-1]
    again = env_at(agent, agent.cfg.task, 3, rollout.actions[:t])
    by_hand = [again.step(a)[1] for a in np.clip(trace.weighted_mean[-1], -1, 1)]
    again.close()
    assert level_real == pytest.approx(float(np.dot(gamma ** np.arange(H), by_hand)))
    assert np.isfinite(real_rewards) and np.all(np.isfinite(check.elite_real))


def test_the_stepper_panel_shows_imagined_and_real(decision):
    pytest.importorskip("ipywidgets")
    from mbdpo_lab.widgets.denoising import DenoisingStepper, figure_trace

    agent, _, _, _ = decision
    stepper = DenoisingStepper(agent, steps=5, seed=3, state=3, render_size=(48, 64))
    assert stepper.physics_results.children == ()  # no empty figure in the page before the first check
    check = stepper.check_physics()
    assert check is not None and check.t == 3
    assert list(figure_trace(stepper.fig_physics, "real").y) == list(check.real_return.round(2))
    assert "earned" in stepper.physics_caption.value and stepper.fig_physics in stepper.physics_results.children
    stepper.set_level(0)
    assert list(figure_trace(stepper.fig_physics, "elites").x) == list(check.elite_imagined[0].round(2))
    stepper.state.value = 4  # a new decision is checked again at once
    assert stepper.reality.t == 4
    given = DenoisingStepper(agent, rollout=stepper.rollout, state=1)
    assert given.check_physics() is None and "unavailable" in given.physics_caption.value
