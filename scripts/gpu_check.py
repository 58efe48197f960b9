"""Every GPU path of mbdpo-lab in one run (under 5 minutes on one GPU): exits non-zero listing each failure.

    python scripts/gpu_check.py                 # on cuda:0 (or --device cuda:1)
    python scripts/gpu_check.py --device cpu    # the dry run a CPU-only machine can do

Trains a few hundred steps of the tiny preset (both variants), evaluates with every planner, plans
with a trace and in bf16, runs the widgets' data functions and the dashboard, saves on the device and
loads on the CPU (in this process and in one with CUDA_VISIBLE_DEVICES=""), resumes, and benches fp32 and
bf16. Prints one line per check with its time and, at the end, the device and the timings as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from mbdpo_lab.agent import resolve_device
from mbdpo_lab.analysis import collect_latents
from mbdpo_lab.analysis.anchoring import collect_anchor_rollouts
from mbdpo_lab.analysis.denoising import collect_rollout, plan_trace
from mbdpo_lab.bench import benchmark, device_name
from mbdpo_lab.checkpoint import load_checkpoint, load_pretrained, save_checkpoint
from mbdpo_lab.config import make_config
from mbdpo_lab.trainer import Trainer, evaluate

FAILURES: list[str] = []
TIMINGS: dict[str, float] = {}


def check(name: str):
    def run(fn):
        start = time.perf_counter()
        try:
            fn()
            TIMINGS[name] = round(time.perf_counter() - start, 2)
            print(f"ok    {name} ({TIMINGS[name]} s)", flush=True)
        except Exception as exc:  # a check script reports every failure, then exits non-zero
            FAILURES.append(f"{name}: {type(exc).__name__}: {exc}")
            print(f"FAIL  {name}: {exc}\n{traceback.format_exc()}", flush=True)
        return fn
    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--quick", action="store_true", help="bench the cpu preset instead of the paper's (tests)")
    args = ap.parse_args()
    device = resolve_device(args.device)
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    state: dict = {}

    for variant in ("lab", "release"):
        @check(f"train {variant} ({args.steps} steps, tiny, {device})")
        def _(variant=variant):
            cfg = make_config("tiny", device=str(device), variant=variant, steps=args.steps, seed_steps=100,
                              eval_every=0, use_score_net=True, score_coef=1.0)
            trainer = Trainer(cfg, work / variant).run()
            assert trainer.state == "finished", trainer.error
            assert next(trainer.agent.wm.parameters()).device == device
            state[variant] = trainer

    trainer = state.get("release")
    agent = trainer.agent if trainer else None

    @check("evaluate with every planner")
    def _():
        for planner in ("diffusion", "mppi", "policy", "score"):
            r = evaluate(agent, trainer.eval_env, 1, planner=planner)
            TIMINGS[f"ms per action, {planner}"] = round(r["planner_ms"], 2)

    @check("plan with a trace, and in bf16")
    def _():
        obs = trainer.eval_env.reset()
        assert agent.plan(obs, t0=True, trace=True).trace.candidates.shape[0] == agent.cfg.num_levels - 1
        bf16 = load_checkpoint(save_checkpoint(agent, work / "bf16.safetensors"), device=device,
                               overrides=["planner_bf16=true"]).agent
        assert np.all(np.isfinite(bf16.act(obs, t0=True)))

    @check("widgets' data functions")
    def _():
        env = trainer.eval_env
        rollout = collect_rollout(agent, env, steps=4, seed=0)
        plan_trace(agent, rollout.obs[1], rollout.warm_plans[1], {"num_levels": 3}, seed=0)
        collect_latents(agent, env, episodes=1, max_steps=20)
        collect_anchor_rollouts(agent, env, episodes=1, max_steps=20)

    @check("dashboard: start, train, stop")
    def _():
        from mbdpo_lab.widgets.dashboard import TrainingDashboard

        dash = TrainingDashboard(preset="tiny", steps=150, device=str(device), out_dir=work / "dash",
                                 seed_steps=100, eval_every=0)
        dash.start()
        assert dash.wait(timeout=240), "the dashboard's run did not finish in 240 s"
        assert dash.error_text is None, dash.error_text
        assert next(dash.agent.wm.parameters()).device == device

    @check("save on the device, load on the CPU, here and with CUDA hidden")
    def _():
        path = save_checkpoint(agent, work / "a.safetensors")
        assert str(load_checkpoint(path, device="cpu").agent.device) == "cpu"
        code = ("from mbdpo_lab.checkpoint import load_checkpoint; import sys; "
                "a = load_checkpoint(sys.argv[1]).agent; assert str(a.device) == 'cpu', a.device")
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
        proc = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr.strip().splitlines()[-1:]

    @check("shipped agent lands on the device")
    def _():
        assert load_pretrained("cartpole-swingup", device=str(device)).agent.device == device
        if device.type == "cuda":
            assert load_pretrained("cartpole-swingup").agent.device.type == "cuda"  # auto picks the GPU

    @check("resume on the device")
    def _():
        resumed = Trainer.resume_from(work / "release", steps=args.steps + 50, device=str(device)).run()
        assert resumed.state == "finished" and resumed.agent.device == device

    preset = "tiny" if args.quick else "paper"
    for dtype in ("fp32", "bf16"):
        @check(f"bench {preset} preset, {dtype}")
        def _(dtype=dtype):
            r = benchmark(make_config(preset, device=str(device)), dtype=dtype, repeats=3)
            TIMINGS[f"{preset} {dtype} planner ms per action"] = r["planner_ms_per_action"]
            TIMINGS[f"{preset} {dtype} update ms"] = r["update_ms"]

    name = device_name(device)
    print(json.dumps({"device": str(device), "name": name, "torch": torch.__version__, "timings": TIMINGS,
                      "failures": FAILURES}))
    if FAILURES:
        print("\n".join(["FAILED:"] + FAILURES), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
