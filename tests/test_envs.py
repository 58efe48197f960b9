import numpy as np
import pytest

from mbdpo_lab.envs import UnknownTaskError, list_tasks, make_env, resolve_task


def test_task_names():
    tasks = list_tasks()
    assert {"cartpole-swingup", "reacher-easy", "cup-catch", "walker-walk", "finger-turn-easy"} <= set(tasks)
    assert resolve_task("cup-catch") == ("ball_in_cup", "catch")
    assert resolve_task("ball_in_cup-catch") == ("ball_in_cup", "catch")


def test_unknown_task_lists_valid_names():
    with pytest.raises(UnknownTaskError) as err:
        resolve_task("cartpole-swingupp")
    msg = str(err.value)
    assert "cartpole-swingup" in msg and "walker-walk" in msg


def test_episode_action_repeat_and_observations():
    env = make_env("cartpole-swingup", seed=0, action_repeat=2, episode_length=500)
    obs = env.reset()
    assert obs.dtype == np.float32 and obs.ndim == 1 and obs.shape == (env.obs_dim,)
    steps, total, done = 0, 0.0, False
    while not done:
        obs, r, done = env.step(np.ones(env.act_dim))
        steps += 1
        total += r
    assert steps == 500
    assert 0 <= total <= 1000
    # action repeat: the physics advanced 2 x 500 control steps
    assert env._env.physics.data.time == pytest.approx(1000 * env._env.control_timestep(), rel=1e-6)


def test_render_returns_rgb_frame():
    env = make_env("reacher-easy", seed=0)
    env.reset()
    frame = env.render(48, 64, camera=0)
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8 and frame.std() > 0


def test_close_releases_the_simulation_and_is_idempotent():
    with make_env("reacher-easy", seed=0) as env:
        env.reset()
        env.render(32, 32)
    assert env._env is None  # native data and GL contexts freed when the block ends
    env.close()  # a second close is harmless


def test_making_a_walker_shows_no_deprecation_noise(caplog):
    """dm_control's walker uses MuJoCo's deprecated settotalmass: that warning is dropped, others are not."""
    import logging

    from mbdpo_lab.envs import _quiet_model_compiler

    with caplog.at_level(logging.WARNING):
        make_env("walker-walk", seed=0)
        with _quiet_model_compiler():
            logging.getLogger("absl").warning("something else")
    assert "settotalmass" not in caplog.text and "something else" in caplog.text
