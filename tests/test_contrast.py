"""The latent contrast view: which agents, which part of each episode, and what it says about them."""
import json
import subprocess
import sys

import numpy as np
import pytest

from mbdpo_lab.analysis import LatentRollouts
from mbdpo_lab.analysis.contrast import (AFTER_GOAL, PERIODS, SETTLE_STEPS, contrast_agents, contrast_figure,
                                         contrast_panels, save_contrast_png, structure_window, task_kind)
from limits import HANG_S
from test_latents import noisy_circle, noisy_line


@pytest.mark.parametrize("task, kind", [("walker-walk", "cyclic"), ("cheetah-run", "cyclic"),
                                        ("reacher-easy", "goal"), ("jaco-reach-site", "goal"),
                                        ("walker-stand", "other"), ("cartpole-swingup", "other")])
def test_task_kinds(task, kind):
    assert task_kind(task) == kind


def test_a_goal_window_runs_from_the_start_to_the_goal_and_a_little_more():
    rewards = np.zeros(200)
    rewards[37:] = 1.0
    assert structure_window("goal", rewards, 201)[:2] == (0, 37 + 1 + AFTER_GOAL)
    start, stop, why = structure_window("goal", np.zeros(200), 201)
    assert (start, stop) == (0, 201) and "never reached" in why


def test_a_shaped_reward_reaches_the_goal_only_when_every_control_step_is_at_it():
    """jaco-reach-site-shaped pays ~0.5 per control step halfway to the target: two of them summed must not
    count as the goal; an agent step whose two control steps both paid 1 does."""
    rewards = np.r_[np.linspace(0.2, 1.8, 40), np.full(10, 1.95), np.full(50, 2.0)]  # action repeat 2
    assert structure_window("goal", rewards, 101, action_repeat=2)[:2] == (0, 50 + 1 + AFTER_GOAL)
    assert structure_window("goal", rewards / 2, 101, action_repeat=1)[:2] == (0, 50 + 1 + AFTER_GOAL)


def test_a_gait_window_skips_the_start_up_and_shows_a_few_periods():
    assert structure_window("cyclic", np.zeros(500), 501, period=12)[:2] == (SETTLE_STEPS, SETTLE_STEPS + PERIODS * 12 + 1)
    assert structure_window("cyclic", np.zeros(30), 31, period=3)[0] == 15  # short episodes: from their middle
    assert structure_window("other", np.zeros(500), 501)[:2] == (0, 501)


def _gait_and_reach(episodes=3):
    gait, reach = [], []
    for s in range(episodes):
        gait.append(noisy_circle(T=301, period=20, seed=s).astype(np.float32))
        reach.append(np.concatenate([noisy_line(T=40, seed=s), np.repeat(noisy_line(T=40, seed=s)[-1:], 161, 0)])
                     .astype(np.float32))

    def rollouts(task, latents, rewards):
        imagined = [np.repeat(z[:-1, None], 4, 1) for z in latents]
        return LatentRollouts(task=task, latents=latents, imagined=imagined, rewards=rewards,
                              actions=[np.zeros((len(z) - 1, 2), np.float32) for z in latents])

    reach_rewards = [np.r_[np.zeros(39), np.ones(161)].astype(np.float32) for _ in reach]
    return {"cartpole-swingup": rollouts("cartpole-swingup", gait[:1], [np.zeros(300, np.float32)]),
            "reacher-easy": rollouts("reacher-easy", reach, reach_rewards),
            "walker-walk": rollouts("walker-walk", gait, [np.zeros(300, np.float32)] * episodes)}


def test_the_contrast_puts_gaits_beside_goals_and_its_numbers_tell_them_apart(tmp_path):
    data = _gait_and_reach()
    assert contrast_agents(data) == ["walker-walk", "reacher-easy"]  # the task that is neither stays out
    gait, reach = contrast_panels(data, method="pca")
    assert gait.windows == [(SETTLE_STEPS, SETTLE_STEPS + PERIODS * 20 + 1)] * 3  # its measured period, 20
    assert reach.windows == [(0, 39 + 1 + AFTER_GOAL)] * 3
    assert [len(p) for p in gait.projection.real] == [PERIODS * 20 + 1] * 3
    assert [len(b) for b in reach.projection.imagined] == [39 + AFTER_GOAL + 1] * 3  # branches of shown steps only
    assert gait.summary("cyclicity")[0] > 0.7 > reach.summary("cyclicity")[0]
    assert reach.summary("goal_directedness")[0] > 0.6 > gait.summary("goal_directedness")[0]
    assert gait.summary("cyclicity")[1] >= 0 and len(gait.metrics) == 3
    fig = contrast_figure([gait, reach])
    titles = [a.text for a in fig.layout.annotations]
    assert "walker-walk" in titles[0] and "cyclicity" in titles[0] and "± " in titles[0] and "reacher-easy" in titles[1]
    assert {t.xaxis for t in fig.data} == {"x", "x2"}  # one panel each
    four = contrast_figure([gait, reach, gait, reach])  # the lesson's four agents: two over two, none cut off
    assert {t.xaxis for t in four.data} == {"x", "x2", "x3", "x4"} and four.layout.width < fig.layout.width + 10
    assert four.layout.xaxis3.domain == four.layout.xaxis.domain and four.layout.yaxis3.domain[1] < four.layout.yaxis.domain[0]
    without = contrast_figure([gait, reach], show_imagined=False)
    assert len(without.data) < len(fig.data)
    assert save_contrast_png([gait, reach], tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_a_panel_draws_a_few_episodes_and_measures_them_all():
    from mbdpo_lab.analysis.contrast import SHOWN_EPISODES, contrast_panel

    panel = contrast_panel("walker-walk", _gait_and_reach(episodes=SHOWN_EPISODES + 2)["walker-walk"], method="pca")
    assert len(panel.projection.real) == len(panel.windows) == SHOWN_EPISODES
    assert len(panel.metrics) == SHOWN_EPISODES + 2 and f"n={SHOWN_EPISODES + 2}" in panel.caption()


def test_the_contrast_widget_opens_on_the_view_and_saves_it(tmp_path):
    from mbdpo_lab.widgets.latent_explorer import LatentExplorer

    ex = LatentExplorer(_gait_and_reach(), method="pca")
    contrast = ex.contrast
    assert contrast is not None and contrast.widget in ex.widget.children
    assert len({t.xaxis for t in contrast.figure.data}) == 2
    assert "steps 100-" in contrast.windows.value and "from the start to the goal" in contrast.windows.value
    shown = len(contrast.figure.data)
    contrast.show_imagined.value = False
    assert len(contrast.figure.data) < shown
    html_path, png_path = contrast.export(tmp_path)
    assert "Plotly.newPlot" in html_path.read_text() and png_path.read_bytes()[:4] == b"\x89PNG"
    assert LatentExplorer({"walker-walk": _gait_and_reach()["walker-walk"]}, method="pca").contrast is None


def test_latents_with_several_checkpoints_writes_their_contrast(tmp_path):
    from mbdpo_lab.agent import MBDPO
    from mbdpo_lab.checkpoint import save_checkpoint
    from mbdpo_lab.config import make_config
    from mbdpo_lab.envs import make_env

    paths = []
    for task in ("walker-walk", "reacher-easy"):
        cfg = make_config("tiny", task=task, device="cpu")
        with make_env(task, seed=0, episode_length=cfg.episode_length) as env:
            agent = MBDPO(cfg, env.obs_dim, env.act_dim)
        paths.append(str(save_checkpoint(agent, tmp_path / task / "agent.safetensors")))
    out = tmp_path / "lat"
    proc = subprocess.run([sys.executable, "-m", "mbdpo_lab.cli", "latents", "--checkpoint", *paths, "--episodes", "2",
                           "--max-steps", "30", "--method", "pca", "--out", str(out)],
                          capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert list(summary["agents"]) == ["walker-walk", "reacher-easy"]
    assert summary["agents"]["walker-walk"]["kind"] == "cyclic" and "cyclicity_std" in summary["agents"]["reacher-easy"]
    for name in ("contrast.html", "contrast.png", "contrast.json", "walker-walk/latents.npz",
                 "reacher-easy/projection.png"):
        assert (out / name).stat().st_size > 0


def test_the_shipped_latent_lesson_opens_its_contrast_without_a_fit():
    from mbdpo_lab.experiments.lessons import lesson

    rollouts = lesson("latents", quiet=True).latents(frame_size=None)
    panels = contrast_panels(rollouts)
    assert [p.kind for p in panels] == ["cyclic", "cyclic", "goal", "goal"]
    cyclicity = {p.name: p.summary("cyclicity")[0] for p in panels}
    goal = {p.name: p.summary("goal_directedness")[0] for p in panels}
    gaits, reaches = [p.name for p in panels if p.kind == "cyclic"], [p.name for p in panels if p.kind == "goal"]
    assert min(cyclicity[g] for g in gaits) > max(cyclicity[r] for r in reaches)  # the picture the lesson teaches
    assert min(goal[r] for r in reaches) > max(goal[g] for g in gaits)
    assert all(p.projection.precomputed for p in panels)  # the UMAPs made with the lesson data
