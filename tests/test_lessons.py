"""The notebooks' shipped lesson data: intact, made from the agents shipped now, the same thing the live
path computes, and recordings that reproduce what the agent did (frames, latents, model checks)."""
import shutil

import numpy as np
import pytest
import torch

from mbdpo_lab.analysis.latents import latents_of, record_episodes
from mbdpo_lab.analysis.model_check import check_episode, reward_check
from mbdpo_lab.checkpoint import load_pretrained
from mbdpo_lab.envs import make_env
from mbdpo_lab.episodes import Episode, load_episodes, run_episode, save_episodes
from mbdpo_lab.experiments import lessons


@pytest.mark.parametrize("name", sorted(lessons.ASSETS))
def test_shipped_lesson_data_is_intact_and_current(name):
    assert lessons.problems(name) == [], f"run `mbdpo-lab lessons --build {name}`"
    entry = lessons.read_lessons_manifest()[name]
    # small beside the agents it is made from (about 3 MB each); the largest, five episodes of four agents: 2.3 MB
    assert sum((lessons.LESSONS_DIR / name / f).stat().st_size for f in entry["files"]) < 3 * 2**20


@pytest.mark.parametrize("name", sorted(lessons.ASSETS))
def test_live_path_makes_the_same_files_as_the_shipped_data(name, tmp_path, capsys):
    data = lessons.lesson(name, recompute=True, fast=True)
    assert data.live and "computing" in capsys.readouterr().out
    shipped = set(lessons.read_lessons_manifest()[name]["files"])
    made = {str(p.relative_to(data.folder)) for p in data.folder.rglob("*") if p.is_file()}
    assert made == shipped
    shutil.rmtree(data.folder)


def test_damaged_file_is_reported_and_the_data_computed_live(tmp_path, capsys):
    directory = tmp_path / "lessons"
    shutil.copytree(lessons.LESSONS_DIR, directory)
    target = directory / "world-model" / "episodes-reacher-easy.npz"
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    target.write_bytes(bytes(raw))
    assert any("sha256" in p for p in lessons.problems("world-model", directory))
    data = lessons.lesson("world-model", fast=True, directory=directory)
    out = capsys.readouterr().out
    assert data.live and "cannot be used" in out and "computing" in out
    (episode,), meta = data.episodes("reacher-easy")
    assert meta["task"] == "reacher-easy" and len(episode) == lessons.FAST.max_steps


def test_loaded_lesson_data_opens_the_latent_explorer_without_a_fit():
    from mbdpo_lab.analysis.projection import project

    rollouts = lessons.lesson("latents", quiet=True).latents()["walker-walk"]
    assert rollouts.num_episodes >= 2 and len(rollouts.latents[0]) == len(rollouts.frames[0])
    proj = project(rollouts, method="umap", dims=2, seed=0, progress=False)
    assert proj.real[0].shape == (len(rollouts.latents[0]), 2)  # the shipped fit, remembered for this data


def test_the_generalist_lesson_opens_its_task_map_without_a_fit():
    from mbdpo_lab.checkpoint import read_manifest

    rollouts, projection, labels = lessons.lesson("generalist", quiet=True).task_map()
    tasks = read_manifest(section="generalists")[lessons.GENERALIST]["tasks"]
    assert list(rollouts) == tasks and labels == tasks  # one episode of every task, in the model's order
    assert projection.precomputed  # the shipped UMAP, not a fit made here
    assert [len(p) for p in projection.real] == [len(ro.latents[0]) for ro in rollouts.values()]


def test_recording_renders_the_frames_the_episode_showed():
    agent = load_pretrained("cartpole-swingup").agent
    with make_env("cartpole-swingup", seed=5) as env:
        ep = run_episode(agent, env, torch.Generator().manual_seed(0), max_steps=6, frame_size=48,
                         final_frame=True, record=True)
    rollouts = latents_of(agent, "cartpole-swingup", [ep], frame_size=48)
    assert np.array_equal(np.asarray(rollouts.frames[0]), ep.frames)


def test_a_goal_directed_tasks_recorded_episodes_keep_whether_they_ended_at_the_goal(tmp_path):
    def episode(success):
        return Episode(obs=np.zeros((3, 2), np.float32), actions=np.zeros((2, 1), np.float32),
                       rewards=np.ones(2), plan_ms=np.ones(2), success=success)

    loaded, meta = load_episodes(save_episodes(tmp_path / "eps.npz", [episode(True), episode(False)], task="jaco"))
    assert [ep.success for ep in loaded] == [True, False] and meta == {"task": "jaco", "episodes": 2}
    loaded, _ = load_episodes(save_episodes(tmp_path / "ctl.npz", [episode(None)], task="walker-walk"))
    assert loaded[0].success is None  # a control task has no success to keep


def test_recorded_episode_round_trips_and_gives_the_same_latents_and_model_check(tmp_path):
    agent = load_pretrained("reacher-easy").agent
    with make_env("reacher-easy", seed=3) as env:
        recorded = record_episodes(agent, env, episodes=2, max_steps=8)
    path = save_episodes(tmp_path / "eps.npz", recorded, task="reacher-easy")
    loaded, meta = load_episodes(path)
    assert meta == {"task": "reacher-easy", "episodes": 2}
    for a, b in zip(recorded, loaded):
        for key in ("obs", "actions", "rewards", "plans", "states"):
            assert np.array_equal(getattr(a, key), getattr(b, key)), key
    rollouts = latents_of(agent, "reacher-easy", loaded, frame_size=None)
    # the imagined branch of step t is the final plan of step t rolled through the dynamics from z_t
    t = 5
    with torch.no_grad():
        z = agent.wm.encode(torch.as_tensor(loaded[0].obs[t:t + 1]))
        for h in range(agent.cfg.horizon):
            z = agent.wm.next(z, torch.as_tensor(loaded[0].plans[t:t + 1, h]))
    assert np.allclose(rollouts.imagined[0][t, -1], z[0].numpy(), atol=1e-5)
    with make_env("reacher-easy", seed=3) as env:
        live = reward_check(agent, env, steps=8)
    from_recording = check_episode(agent, loaded[0])
    assert np.allclose(live.one_step, from_recording.one_step) and np.allclose(live.real, from_recording.real)


def test_unknown_lesson_name_says_which_exist():
    with pytest.raises(KeyError, match="tour"):
        lessons.lesson("nope")


def test_shipped_anchor_measurement_shows_bars_and_only_what_was_measured():
    pytest.importorskip("ipywidgets")
    from mbdpo_lab.widgets.anchor_comparison import AnchorComparison

    result = lessons.lesson("anchor", quiet=True).anchor()
    assert set(result.agents) == set(result.labels) == {"eta=0", "eta=0.01"}
    w = AnchorComparison(result)
    # measured once, no training curves: one bar per agent, never a line through one point
    assert w.fig_returns.data and all(t.type == "bar" for t in w.fig_returns.data)
    assert w.fig_metric.data and all(t.type == "bar" for t in w.fig_metric.data)
    offered = [value for _, value in w.metric_w.options]
    assert "overestimation" in offered and "nn_distance" not in offered  # no replay ships with the agents
    assert "n/a" not in w.table_w.value and "not measured here: nn_distance" in w.table_w.value
    assert all(type(v).__name__ == "Video" and len(v.value) > 10_000 for v in w.videos.values())


def test_docs_latent_structure_table_is_the_shipped_lesson_data():
    import csv

    from mbdpo_lab.doc_tables import DOCS_DATA

    with open(DOCS_DATA / "tables" / "latent-structure.csv", newline="") as fh:
        documented = list(csv.reader(fh))
    assert documented == lessons.latent_structure_rows(), "run `python -m mbdpo_lab.experiments.lessons`"
