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


def test_the_gpu_figures_script_dry_run_appends_a_row_the_docs_render(tmp_path):
    import csv
    import subprocess
    import sys
    from pathlib import Path

    from limits import HANG_S
    from mbdpo_lab.doc_tables import gpu_table

    script = Path(__file__).resolve().parent.parent / "scripts" / "gpu_figures.py"
    table = tmp_path / "gpu_figures.csv"
    assert gpu_table(tmp_path).startswith("No GPU has been lent")  # nothing measured yet: says how to fill it
    table.write_text("name,date\nan earlier card,2026-01-01\n")  # a second card adds a row, it keeps the first
    proc = subprocess.run([sys.executable, str(script), "--device", "cpu", "--quick", "--csv", str(table)],
                          capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = list(csv.DictReader(open(table)))
    assert len(rows) == 2 and rows[0]["name"] == "an earlier card"
    row = rows[1]
    assert row["train_task"] == "cartpole-swingup" and row["train_steps_done"] == row["train_steps"] == "300"
    assert float(row["train_online_steps_per_s"]) > 0 and float(row["bench_bf16_planner_ms"]) > 0
    lines = table.read_text().splitlines(keepends=True)
    table.write_text(lines[0] + "".join(lines[2:]))  # the measured row alone
    rendered = gpu_table(tmp_path)
    assert rendered.count("\n| ") == 1 and row["name"] in rendered and "stopped at" not in rendered
    assert f"{row['train_online_steps']} steps" in rendered


def test_the_gpu_figures_script_refuses_cuda_on_a_machine_without_it(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    script = Path(__file__).resolve().parent.parent / "scripts" / "gpu_figures.py"
    proc = subprocess.run([sys.executable, str(script), "--csv", str(tmp_path / "x.csv")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "--device cpu --quick" in proc.stderr
    assert not (tmp_path / "x.csv").exists()


def test_a_timed_training_run_reports_its_phases_and_stops_at_its_budget():
    from mbdpo_lab.bench import training_run_speed

    cfg = make_config("tiny", device="cpu", task="cartpole-swingup", steps=260, seed_steps=100)
    run = training_run_speed(cfg, eval_episodes=1)
    # release: random actions for steps 0..S, the burst of S updates at the end of step S, then planned steps
    assert run["seed_steps"] == 101 and run["burst_updates"] == 100 and run["online_steps"] == 159
    assert run["steps_done"] == 260 and run["planner_ms"] > 0 and run["update_ms"] > 0
    stopped = training_run_speed(cfg.replace(steps=100_000), budget_s=3, eval_episodes=1)
    assert stopped["steps_done"] < 100_000  # in whichever phase the budget ended
