"""Timing of the planner (ms per action) and the update (ms), with FLOP counts, for any preset.

Median over repeated runs after warm-up, on random inputs of a chosen observation/action size
(no simulator needed), so figures compare presets, devices and dtypes, not tasks.
"""
from __future__ import annotations

import platform
import statistics
import time
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from .agent import MBDPO
from .config import Config


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(fn, device: torch.device, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def significant(x: float, digits: int = 3) -> float:
    """``x`` to ``digits`` significant digits: small ratios and rates stay visible (never rounded to 0)."""
    return float(f"{x:.{digits}g}")


def _gflop(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def cpu_description() -> str:
    """CPU model and its matrix extensions: the same VM kind can land on different processors."""
    try:
        info = open("/proc/cpuinfo").read()
    except OSError:
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in info.splitlines()[::-1] if ":" in line)  # the first CPU wins
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    model, flags = fields.get("model name", platform.machine()), fields.get("flags", "").split()
    extras = [f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f in flags]
    return f"{model} ({', '.join(extras) or 'no AVX2'})"


def matmul_peak_gflops(device: torch.device, dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """This machine's practical ceiling: GFLOP/s of one large square matmul (best of ``repeats``).

    The planner and update are measured against it, so the ratio says how much of the hardware the
    small matmuls and elementwise work leave unused, on whatever CPU or GPU runs the benchmark.
    Where a dtype has no fast kernel (bf16 on a CPU without AVX-512 BF16 or AMX runs ~100x slower) the
    size is halved until one product takes under a second, so the measurement stays short."""
    while n > 256:
        probe = torch.randn(n // 4, n // 4, device=device).to(dtype)
        _sync(device)
        start = time.perf_counter()
        torch.mm(probe, probe)
        _sync(device)
        if (time.perf_counter() - start) * 64 < 1.0:  # the full size costs 64x the probe
            break
        n //= 2
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    best = float("inf")
    for i in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        if i:  # the first call warms up
            best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


PHASES = ("candidates", "rollout", "heads", "weighting")


def planner_phases(fn, repeats: int = 3) -> dict[str, float]:
    """Mean ms per call spent in each named planner phase (torch.profiler record_function labels)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(repeats):
            fn()
    totals = {name: 0.0 for name in PHASES}
    for event in prof.key_averages():
        if event.key in totals:
            totals[event.key] += event.cpu_time_total / 1000 / repeats
    return {f"phase_{k}_ms": significant(v, 4) for k, v in totals.items()}


def benchmark(cfg: Config, obs_dim: int = 24, act_dim: int = 6, dtype: str = "fp32",
              repeats: int = 10) -> dict[str, Any]:
    cfg = cfg.replace(planner_bf16=(dtype == "bf16"))
    torch.manual_seed(0)
    agent = MBDPO(cfg, obs_dim, act_dim)
    device = agent.device
    obs = np.random.default_rng(0).standard_normal(obs_dim).astype(np.float32)
    H, B = cfg.horizon, cfg.batch_size
    batch = dict(obs=torch.randn(H + 1, B, obs_dim, device=device),
                 action=torch.rand(H, B, act_dim, device=device) * 2 - 1,
                 reward=torch.rand(H, B, device=device))

    def act():
        agent.act(obs, t0=False, eval_mode=True)

    def update():
        agent.update(batch)

    planner_ms = _median_ms(act, device, repeats)
    update_ms = _median_ms(update, device, repeats)
    planner_gflop, update_gflop = _gflop(act), _gflop(update)
    phases = planner_phases(act) if device.type == "cpu" else {}
    peak_fp32 = matmul_peak_gflops(device, torch.float32)
    peak_bf16 = matmul_peak_gflops(device, torch.bfloat16)
    planner_rate, update_rate = planner_gflop / (planner_ms / 1000), update_gflop / (update_ms / 1000)
    out: dict[str, Any] = dict(
        preset=cfg.preset, device=str(device), dtype=dtype, threads=torch.get_num_threads(),
        params=agent.wm.num_params(), planner=cfg.planner,
        planner_ms_per_action=significant(planner_ms, 4), update_ms=significant(update_ms, 4),
        train_step_ms=significant(planner_ms + update_ms, 4),
        planner_gflop=significant(planner_gflop), update_gflop=significant(update_gflop),
        planner_gflops_per_s=significant(planner_rate), update_gflops_per_s=significant(update_rate),
        matmul_peak_fp32_gflops_per_s=significant(peak_fp32), matmul_peak_bf16_gflops_per_s=significant(peak_bf16),
        # the planner against the ceiling of the dtype it runs in; the update always runs in fp32
        planner_fraction_of_peak=significant(planner_rate / (peak_bf16 if dtype == "bf16" else peak_fp32)),
        update_fraction_of_peak=significant(update_rate / peak_fp32),
        samples=cfg.num_samples, levels=cfg.num_levels, horizon=cfg.horizon, batch_size=B,
        cpu=cpu_description(), **phases,
    )
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
        out["max_memory_mb"] = significant(torch.cuda.max_memory_allocated(device) / 2**20, 4)
    else:
        import resource

        out["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def evaluation_speed(cfg: Config, episodes: int = 10, length: int = 50, seed: int = 0) -> dict[str, Any]:
    """Wall time of one evaluation (``episodes`` x ``length`` steps of cfg.task, untrained agent), run one
    episode at a time and in lock-step (`trainer.evaluate`); the returns must agree, or it raises."""
    from .envs import make_env
    from .trainer import evaluate

    env = make_env(cfg.task, action_repeat=cfg.action_repeat, episode_length=length)
    torch.manual_seed(seed)
    agent = MBDPO(cfg, env.obs_dim, env.act_dim)
    out: dict[str, Any] = dict(preset=cfg.preset, task=cfg.task, planner=cfg.planner, episodes=episodes,
                               steps=length, threads=torch.get_num_threads(), cpu=cpu_description(),
                               device=str(agent.device))
    returns = {}
    for name, lockstep in (("one_at_a_time", False), ("lockstep", True)):
        start = time.perf_counter()
        returns[name] = evaluate(agent, env, episodes, seed=seed, lockstep=lockstep)["returns"]
        out[f"{name}_s"] = significant(time.perf_counter() - start)
    if returns["one_at_a_time"] != returns["lockstep"]:
        raise RuntimeError("lock-step evaluation gave other returns than one episode at a time")
    out["speedup"] = significant(out["one_at_a_time_s"] / out["lockstep_s"])
    env.close()
    return out


def training_speed(cfg: Config, num_envs: int, steps: int = 200) -> dict[str, Any]:
    """Steady-state training speed of cfg.task with ``num_envs`` environments in lock-step: transitions
    per second over ``steps`` transitions after a short seed phase (not timed), acting, stepping and
    updating (cfg.updates_per_env_step per transition) as training does."""
    from .trainer import Trainer

    seed_steps = cfg.episode_length if cfg.variant == "release" else max(cfg.horizon, 50)
    warm = -(-(seed_steps + num_envs) // num_envs) * num_envs  # the seed phase, its burst and one planned round
    measured = -(-steps // num_envs) * num_envs
    trainer = Trainer(cfg.replace(num_envs=num_envs, seed_steps=seed_steps, eval_every=0, checkpoint_every=0,
                                  save_video=False, steps=warm + measured))
    trainer.run(steps=warm)
    start = time.perf_counter()
    trainer.run(steps=warm + measured)
    elapsed = time.perf_counter() - start
    for env in [*trainer.envs, trainer.eval_env]:
        env.close()
    return dict(preset=cfg.preset, task=cfg.task, num_envs=num_envs, updates_per_env_step=cfg.updates_per_env_step,
                transitions=measured, seconds=significant(elapsed), steps_per_s=significant(measured / elapsed),
                threads=torch.get_num_threads(), cpu=cpu_description(), device=str(trainer.agent.device))


def device_name(device: torch.device) -> str:
    """The GPU's name on CUDA, else the processor's: what a row of timings was measured on."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_description()


def training_run_speed(cfg: Config, budget_s: float | None = None, eval_episodes: int = 10) -> dict[str, Any]:
    """A whole short training run of cfg.task for cfg.steps, timed by phase (the preset's random seed
    phase, its burst of S updates, then one planner call and one update per step), and one lock-step
    evaluation of the result: what a user of a device waits for, not a kernel in isolation.

    ``budget_s`` stops the run after that many seconds, at the end of the step in progress (a burst
    runs to its end); the figures then cover the steps reached (``steps_done``)."""
    import threading

    from .trainer import Trainer, evaluate

    trainer = Trainer(cfg.replace(eval_every=0, checkpoint_every=0, save_video=False))
    device = trainer.agent.device
    first = trainer.first_update_step
    timer = threading.Timer(budget_s, trainer.stop) if budget_s else None
    marks = [time.perf_counter()]
    if timer:
        timer.start()
    try:
        # random actions (no updates); the step whose end runs the burst; the planned steps
        for target in (first, first + 1, cfg.steps):
            trainer.run(steps=target)  # a later run() would clear a stop, so a stop ends the phases here
            _sync(device)
            marks.append(time.perf_counter())
            if trainer.state == "stopped":
                break
    finally:
        if timer:
            timer.cancel()
    marks += [marks[-1]] * (4 - len(marks))  # phases a stop cut off took no time
    start, seeded, burst_end, end = marks
    online = max(0, trainer.env_step - (first + 1))
    rows = [r for r in trainer.history if r.get("kind") == "episode" and r["step"] > first + 1]
    result = evaluate(trainer.agent, trainer.eval_env, eval_episodes, seed=cfg.seed)
    for env in [*trainer.envs, trainer.eval_env]:
        env.close()
    return dict(
        preset=cfg.preset, task=cfg.task, steps=cfg.steps, steps_done=trainer.env_step, seed_steps=first + 1,
        seed_phase_s=significant(seeded - start), burst_updates=cfg.num_seed_steps,
        burst_s=significant(burst_end - seeded), online_s=significant(end - burst_end),
        online_steps=online, online_steps_per_s=significant(online / (end - burst_end)) if online else None,
        planner_ms=significant(statistics.median(r["planner_ms"] for r in rows)) if rows else None,
        update_ms=significant(statistics.median(r["update_ms"] for r in rows)) if rows else None,
        wall_s=significant(end - start), eval_episodes=eval_episodes,
        eval_return=significant(result["mean_return"]), eval_ms_per_action=significant(result["planner_ms"]),
        device=str(device), name=device_name(device), threads=torch.get_num_threads())
