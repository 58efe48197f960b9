"""Every path an agent takes on a GPU, run on a stand-in device (`device_standin`) on a CPU-only machine:
no host tensor meets a device tensor, no tensor is created without a device, no generator draws for the
wrong device, no device tensor is read with .numpy(). The checker is shown to catch planted bugs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from device_standin import STANDIN, DeviceDiscipline, report
from mbdpo_lab.agent import MBDPO
from mbdpo_lab.analysis import collect_latents
from mbdpo_lab.analysis.anchoring import collect_anchor_rollouts
from mbdpo_lab.analysis.denoising import collect_rollout, plan_trace
from mbdpo_lab.analysis.model_check import reward_check
from mbdpo_lab.checkpoint import load_checkpoint, save_checkpoint
from mbdpo_lab.config import make_config
from mbdpo_lab.trainer import Trainer, evaluate


def tiny(**kw):
    return make_config("tiny", device="cpu", steps=120, seed_steps=100, eval_every=0, **kw)


@pytest.mark.parametrize("variant", ["lab", "release"])
def test_training_acting_analysis_and_checkpoints_keep_to_the_device(tmp_path, variant):
    cfg = tiny(variant=variant, use_score_net=True, score_coef=1.0)
    with DeviceDiscipline() as mode:
        agent = MBDPO(cfg, 5, 1, device=STANDIN)
        assert next(agent.wm.parameters()).device == STANDIN
        trainer = Trainer(cfg, tmp_path / "run", agent=agent)
        trainer.run()  # the seed phase, its updates, planned steps with updates, the final save
        env = trainer.eval_env
        for planner in ("diffusion", "mppi", "policy", "score"):
            evaluate(agent, env, 1, planner=planner)
        obs = env.reset()
        assert agent.plan(obs, t0=True, trace=True).trace is not None
        rollout = collect_rollout(agent, env, steps=3, seed=0, render_size=None)
        plan_trace(agent, rollout.obs[1], rollout.warm_plans[1], {"num_levels": 3}, seed=0)
        collect_latents(agent, env, episodes=1, max_steps=5)
        collect_anchor_rollouts(agent, env, episodes=1, max_steps=5)
        reward_check(agent, env, steps=5)
        loaded = load_checkpoint(save_checkpoint(agent, tmp_path / "a.safetensors"), device=STANDIN).agent
        loaded.act(obs, t0=True)
        resumed = Trainer.resume_from(tmp_path / "run", steps=130, device=STANDIN)
        assert resumed.agent.device == STANDIN
        resumed.run()
    assert not mode.violations, "\n" + report(mode)


def test_the_checker_catches_a_host_generator_a_host_input_and_a_numpy_read():
    with DeviceDiscipline() as mode:
        agent = MBDPO(tiny(), 5, 1, device=STANDIN)
        agent.act(np.zeros(5, np.float32), t0=True, generator=torch.Generator())  # a CPU generator
    assert "a host generator draws a device tensor" in report(mode)
    with DeviceDiscipline() as mode:
        agent = MBDPO(tiny(), 5, 1, device=STANDIN)
        agent.wm.encode(torch.zeros(2, 5))  # an input left on the host
    assert "a host tensor of shape (2, 5) meets a device tensor" in report(mode)
    with DeviceDiscipline() as mode:
        agent = MBDPO(tiny(), 5, 1, device=STANDIN)
        agent.wm.energy_mean.numpy()  # needs .cpu() on a GPU
    assert "numpy() of a device tensor" in report(mode)
    with DeviceDiscipline() as mode:
        agent = MBDPO(tiny(), 5, 1, device=STANDIN)
        agent.act(np.zeros(5, np.float32), t0=True, generator=torch.Generator(device=agent.device))
    assert not mode.violations, report(mode)


def test_the_gpu_check_script_passes_its_cpu_dry_run():
    import json
    import subprocess
    import sys
    from pathlib import Path

    from limits import HANG_S

    script = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.py"
    proc = subprocess.run([sys.executable, str(script), "--device", "cpu", "--quick", "--steps", "150"],
                          capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["device"] == "cpu" and not summary["failures"]
    assert {"ms per action, diffusion", "ms per action, score"} <= set(summary["timings"])
