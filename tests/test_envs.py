import json

import numpy as np
import pytest

from mbdpo_lab.envs import REACH_MARGIN, UnknownTaskError, list_tasks, make_env, resolve_task


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


def test_the_manipulation_task_reports_success_at_its_goal(caplog):
    from mbdpo_lab.envs import is_manipulation, list_tasks, natural_episode_length

    assert {"jaco-reach-site", "jaco-lift-brick"} <= set(list_tasks())
    assert is_manipulation("jaco-reach-site") and not is_manipulation("reacher-easy")
    assert natural_episode_length("jaco-reach-site") == 125 and natural_episode_length("walker-walk") == 500
    env = make_env("jaco-reach-site", seed=0, episode_length=500)
    assert (env.obs_dim, env.act_dim) == (45, 9) and env.success is False
    rng = np.random.default_rng(0)
    env.reset()
    steps, done = 0, False
    while not done:
        _, _, done = env.step(env.random_action(rng))
        steps += 1
    assert steps == 125 and env.success is False  # its own 10 s limit; random flailing does not reach
    env.reset()
    task, physics = env._env.task, env._env.physics
    physics.bind(task._target).pos = physics.bind(task._hand.tool_center_point).xpos.copy()  # the goal at the hand
    _, reward, _ = env.step(np.zeros(9, np.float32))
    assert reward == pytest.approx(2.0) and env.success is True  # reward 1 per control step: at the goal
    env.reset()
    assert env.success is False
    assert make_env("reacher-easy").success is None  # no goal to reach: no success signal
    import logging

    from mbdpo_lab.envs import _quiet_model_compiler

    with caplog.at_level("WARNING"), _quiet_model_compiler():  # what reset runs under: dm_control's IK retries
        logging.getLogger("absl").warning("Failed to converge after 99 steps: err_norm=0.7")
        logging.getLogger("absl").warning("something the user must see")
    assert [r.getMessage() for r in caplog.records] == ["something the user must see"]


def test_the_shaped_reach_pays_for_coming_closer_and_succeeds_where_the_original_does():
    from dm_control.utils import rewards

    shaped, original = make_env("jaco-reach-site-shaped", seed=6), make_env("jaco-reach-site", seed=6)
    assert shaped.shaped and not original.shaped and (shaped.obs_dim, shaped.act_dim) == (original.obs_dim, 9)
    assert np.array_equal(shaped.reset(), original.reset())  # the same task and start, another reward
    start = shaped.hand_to_target()
    assert start > 0.15 and abs(start - REACH_MARGIN) > 0.05  # a margin of the start distance would pay otherwise
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = shaped.random_action(rng)
        (_, r, _), (_, r_orig, _) = shaped.step(a), original.step(a)
        d = shaped.hand_to_target()
        one = rewards.tolerance(d, bounds=(0, 0.05), margin=REACH_MARGIN, sigmoid="long_tail")
        assert 0.1 < one < 1 and r == pytest.approx(2 * one, rel=0.2)  # two control steps, the hand barely moves
        assert r_orig < 1e-3  # far from the target the original pays nothing
    closer = rewards.tolerance(d / 2, bounds=(0, 0.05), margin=REACH_MARGIN, sigmoid="long_tail")
    assert closer > one  # half the distance, more reward
    task, physics = shaped._env.task, shaped._env.physics
    physics.bind(task._target).pos = physics.bind(task.hand.tool_center_point).xpos.copy()
    _, reward, _ = shaped.step(np.zeros(9, np.float32))
    assert reward == pytest.approx(2.0) and shaped.success is True


def test_the_hand_controlled_reach_moves_the_hand_where_the_action_points_and_a_greedy_reach_succeeds():
    """jaco-reach-site-hand: the same arm, start and reward as the shaped reach, with a 3-D hand velocity
    for an action (MetaWorld's kind): each axis moves the hand along it, and heading for the target wins."""
    from mbdpo_lab.hand_control import HAND_SPEED

    hand, shaped = make_env("jaco-reach-site-hand", seed=3), make_env("jaco-reach-site-shaped", seed=3)
    assert (hand.obs_dim, hand.act_dim) == (shaped.obs_dim, 3) and hand.shaped
    assert np.array_equal(hand.reset(), shaped.reset())
    task = hand._env.task
    for axis in range(3):
        for sign in (1, -1):
            hand.reset()
            start = hand._env.physics.bind(task.hand.tool_center_point).xpos.copy()
            a = np.zeros(3, np.float32)
            a[axis] = sign
            for _ in range(5):
                hand.step(a)
            moved = hand._env.physics.bind(task.hand.tool_center_point).xpos - start
            assert moved[axis] * sign > 0.5 * HAND_SPEED * 5 * 2 * 0.04  # at least half the commanded 10 control steps
            assert abs(moved[axis]) > 5 * np.abs(np.delete(moved, axis)).max()  # along that axis, not elsewhere
    hand.reset()
    done = False
    while not done:
        physics = hand._env.physics
        v = physics.bind(task._target).xpos - physics.bind(task.hand.tool_center_point).xpos
        _, _, done = hand.step((v / max(np.linalg.norm(v), 0.2)).astype(np.float32))
    assert hand.success is True and hand.hand_to_target() < 0.05


def test_evaluation_and_training_report_the_success_rate(tmp_path):
    from mbdpo_lab.cli import main
    from mbdpo_lab.config import make_config
    from mbdpo_lab.trainer import Trainer, evaluate

    cfg = make_config("tiny", task="jaco-reach-site", steps=30, seed_steps=10, episode_length=10, eval_every=30,
                      eval_episodes=2, device="cpu", save_video=False)
    trainer = Trainer(cfg, tmp_path / "run").run()
    ev = [r for r in trainer.history if r["kind"] == "eval"]
    ep = [r for r in trainer.history if r["kind"] == "episode"]
    assert ev and ev[-1]["eval_success"] == 0.0 and all(r["episode_success"] is False for r in ep)
    from mbdpo_lab.agent import MBDPO

    reacher = MBDPO(make_config("tiny", task="reacher-easy", device="cpu"), 6, 2)
    assert evaluate(reacher, make_env("reacher-easy", episode_length=5), 2)["success_rate"] is None
    # the command line gives a manipulation task its own, shorter episodes
    assert main(["train", "--task", "jaco-reach-site", "--preset", "tiny", "--steps", "0", "--out",
                 str(tmp_path / "cli"), "--no-progress", "--set", "eval_every=0", "--set", "save_video=false"]) == 0
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["episode_length"] == 100  # tiny's, < 125
    assert main(["train", "--task", "jaco-reach-site", "--preset", "cpu", "--steps", "0", "--out",
                 str(tmp_path / "cli2"), "--no-progress", "--set", "eval_every=0", "--set", "save_video=false"]) == 0
    assert json.loads((tmp_path / "cli2" / "config.json").read_text())["episode_length"] == 125
