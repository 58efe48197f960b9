import numpy as np

from mbdpo_lab.analysis.model_check import reward_check
from mbdpo_lab.analysis.planners import compare_planners
from mbdpo_lab.envs import make_env


def test_reward_check_aligns_predictions_with_real_rewards(tiny_cfg):
    from mbdpo_lab.agent import MBDPO

    env = make_env("cartpole-swingup", seed=0, episode_length=20)
    agent = MBDPO(tiny_cfg, env.obs_dim, env.act_dim)
    check = reward_check(agent, env, open_loop_steps=3)
    assert check.real.shape == check.one_step.shape == check.open_loop.shape == (20,)
    assert check.latents.shape == (21, tiny_cfg.latent_dim)
    # an untrained reward head predicts ~0, so the error equals the real rewards' magnitude
    assert np.isclose(check.errors()["one_step_mae"], np.abs(check.real).mean(), atol=0.05)
    np.testing.assert_allclose(check.open_loop[:3], check.one_step[:3])


def test_compare_planners_rows(tiny_cfg):
    from mbdpo_lab.agent import MBDPO

    env = make_env("pendulum-swingup", seed=0, episode_length=10)
    agent = MBDPO(tiny_cfg, env.obs_dim, env.act_dim)
    rows = compare_planners(agent, env, episodes=1)
    assert [r["planner"] for r in rows] == ["diffusion", "mppi", "policy"]
    assert all(r["ms_per_action"] > 0 and np.isfinite(r["mean_return"]) for r in rows)
