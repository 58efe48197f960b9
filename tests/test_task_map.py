"""One multi-task model's tasks in one map: each task acted for in turn, the state latent only, one fit."""
import json
import subprocess
import sys

import numpy as np
import torch

from mbdpo_lab.agent import MBDPO, TaskSpec
from mbdpo_lab.analysis.task_map import save_task_map_png, task_latents, task_map_figure, task_projection
from mbdpo_lab.checkpoint import save_checkpoint
from mbdpo_lab.config import make_config
from limits import HANG_S

TASKS = [TaskSpec("cartpole-swingup", 5, 1), TaskSpec("reacher-easy", 6, 2)]


def _agent():
    torch.manual_seed(0)
    return MBDPO(make_config("tiny", device="cpu", task_dim=4), 6, 2, tasks=TASKS)


def test_every_task_is_acted_for_in_turn_and_mapped_together(tmp_path):
    agent = _agent()
    rollouts = task_latents(agent, episodes=2, max_steps=10)
    assert list(rollouts) == ["cartpole-swingup", "reacher-easy"] and agent.bound_task is None  # binding restored
    L = agent.cfg.latent_dim
    assert [z.shape for z in rollouts["reacher-easy"].latents] == [(11, L)] * 2  # no task context in the paths
    assert [a.shape[1] for a in rollouts["cartpole-swingup"].actions] == [1, 1]  # each task's own action size
    from mbdpo_lab.envs import LATENTS_SEED_OFFSET, make_env

    with make_env("cartpole-swingup", seed=LATENTS_SEED_OFFSET) as env:  # the episode's first observation
        first = agent.encode(env.reset(), task="cartpole-swingup")
    np.testing.assert_allclose(rollouts["cartpole-swingup"].latents[0][0], agent.wm.latent(first).numpy(), atol=1e-5)
    projection, labels = task_projection(rollouts, method="pca")
    assert labels == ["cartpole-swingup"] * 2 + ["reacher-easy"] * 2 and len(projection.real) == 4
    fig = task_map_figure(projection, labels)
    assert [t.name for t in fig.data if t.showlegend] == ["cartpole-swingup", "reacher-easy"]
    assert save_task_map_png(projection, labels, tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"


def test_latents_task_all_maps_a_multi_task_checkpoint_and_refuses_a_single_task_one(tmp_path):
    ckpt = save_checkpoint(_agent(), tmp_path / "mt.safetensors")
    out = tmp_path / "lat"
    proc = subprocess.run([sys.executable, "-m", "mbdpo_lab.cli", "latents", "--checkpoint", str(ckpt), "--task", "all",
                           "--episodes", "1", "--max-steps", "8", "--method", "pca", "--out", str(out)],
                          capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["tasks"] == ["cartpole-swingup", "reacher-easy"]
    for name in ("tasks.html", "tasks.png", "reacher-easy/latents.npz", "cartpole-swingup/projection.png"):
        assert (out / name).stat().st_size > 0
    single = subprocess.run([sys.executable, "-m", "mbdpo_lab.cli", "latents", "--checkpoint", "cartpole-swingup",
                             "--task", "all", "--out", str(tmp_path / "x")], capture_output=True, text=True,
                            timeout=HANG_S)
    assert single.returncode == 2 and "needs a multi-task checkpoint" in single.stderr
    assert "Traceback" not in single.stderr and not (tmp_path / "x").exists()
