"""Many training runs on Ray: a grid of tasks x seeds x config values, from a laptop to a cluster.

Each trial is an ordinary run directory (``OUT/<task>-<key>=<value>...-s<seed>``), so `train --resume`,
the dashboard and the curves read it unchanged. The sweep is resumable: run the same command again after
a crash (of a trial, a node or the driver) and finished trials are skipped (their ``result.json``),
interrupted ones continue from their last checkpoint, the rest start. Ray core runs the trials: locally
by default (Ray starts and stops with the command), or on an existing cluster with ``address``
(docs/performance.md, "Sweeps on a cluster").
"""
from __future__ import annotations

import csv
import itertools
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError, UsageError

RESULT = "result.json"
RESULTS_CSV = "sweep_results.csv"
SPEC = "sweep.json"


@dataclass(frozen=True)
class Trial:
    """One run of the grid."""

    task: str
    seed: int
    values: tuple[tuple[str, str], ...]  # the grid's config values of this trial, as given
    name: str

    def overrides(self, common: list[str]) -> list[str]:
        return [*common, *(f"{k}={v}" for k, v in self.values)]


@dataclass
class SweepSpec:
    """What a sweep trains: every combination of ``tasks`` x ``grid`` values x ``seeds``."""

    tasks: list[str]
    seeds: list[int]
    grid: dict[str, list[str]] = field(default_factory=dict)  # config key -> values (as on the command line)
    preset: str = "cpu"
    steps: int | None = None
    overrides: list[str] = field(default_factory=list)  # KEY=VALUE for every trial

    def trials(self) -> list[Trial]:
        keys = list(self.grid)
        out = []
        for task in self.tasks:
            for combo in itertools.product(*(self.grid[k] for k in keys)):
                values = tuple(zip(keys, combo))
                for seed in self.seeds:
                    parts = [task, *(f"{k}={v}" for k, v in values), f"s{seed}"]
                    out.append(Trial(task, seed, values, "-".join(parts)))
        return out

    def config(self, trial: Trial):
        """The trial's full config (raises ConfigError on a bad key or value)."""
        from ..config import apply_overrides, make_config, validate

        fields = {"task": trial.task, "seed": trial.seed}
        if self.steps is not None:
            fields["steps"] = self.steps
        cfg = make_config(self.preset, overrides=fields)
        apply_overrides(cfg, trial.overrides(self.overrides))
        validate(cfg)
        return cfg


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """``["eta=0,0.1", "variant=lab,release"]`` -> {"eta": ["0", "0.1"], ...}."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not vals:
            raise UsageError(f"--grid {item!r}: write KEY=V1,V2,... (e.g. --grid eta=0,0.1)")
        if key.strip() in grid:
            raise UsageError(f"--grid names {key.strip()!r} twice; give all its values in one --grid")
        grid[key.strip()] = vals
    return grid


def check_spec(spec: SweepSpec) -> list[Trial]:
    """Every trial's config is valid and every task exists, before anything starts."""
    from ..envs import resolve_task

    if not spec.tasks or not spec.seeds:
        raise UsageError("a sweep needs at least one --tasks and one --seeds")
    for task in spec.tasks:
        resolve_task(task)
    for key, flag in (("task", "--tasks"), ("seed", "--seeds"), ("steps", "--steps")):
        if key in spec.grid:
            raise UsageError(f"--grid {key}=...: give it with {flag} instead")
    trials = spec.trials()
    for trial in trials:
        spec.config(trial)
    return trials


def trial_state(run_dir: Path) -> str:
    """finished (result.json), partial (a checkpoint to resume), or new."""
    if (run_dir / RESULT).exists():
        return "finished"
    if (run_dir / "checkpoints" / "last.safetensors").exists():
        return "partial"
    return "new"


def run_trial(spec_dict: dict[str, Any], trial_dict: dict[str, Any], out: str) -> dict[str, Any]:
    """Train (or resume) one trial to the end in its run directory; returns and writes its result."""
    import os
    import socket

    from ..trainer import Trainer

    spec = SweepSpec(**spec_dict)
    trial = Trial(trial_dict["task"], trial_dict["seed"], tuple(map(tuple, trial_dict["values"])), trial_dict["name"])
    run_dir = Path(out) / trial.name
    state = trial_state(run_dir)
    if state == "finished":
        return json.loads((run_dir / RESULT).read_text())
    start = time.perf_counter()
    if state == "partial":
        trainer = Trainer.resume_from(run_dir)
    else:
        if run_dir.exists():  # started but never checkpointed: nothing to keep
            shutil.rmtree(run_dir)
        trainer = Trainer(spec.config(trial), run_dir)
    trainer.complete()
    import ray

    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""  # "" outside Ray
    ev = trainer.last_eval or {}
    result = dict(name=trial.name, task=trial.task, seed=trial.seed, **{k: v for k, v in trial.values},
                  state=trainer.state, step=trainer.env_step, eval_return=ev.get("mean_return"),
                  eval_return_std=ev.get("std_return"), wall_s=round(time.perf_counter() - start, 1),
                  resumed=state == "partial", node=node, host=socket.gethostname(), pid=os.getpid(),
                  niceness=os.nice(0))
    if trainer.state == "finished":
        (run_dir / RESULT).write_text(json.dumps(result, indent=2))
    return result


def write_results(out: Path) -> Path:
    """``sweep_results.csv``: one row per finished trial, from their result.json files."""
    rows = [json.loads(p.read_text()) for p in sorted(out.glob(f"*/{RESULT}"))]
    path = out / RESULTS_CSV
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _remember_spec(out: Path, spec: SweepSpec) -> None:
    """The first run writes sweep.json; a rerun must ask for the same sweep (it may add seeds or tasks)."""
    path = out / SPEC
    new = asdict(spec)
    if path.exists():
        old = json.loads(path.read_text())
        same = {k: old.get(k) for k in ("preset", "steps", "overrides")} == {k: new[k] for k in ("preset", "steps", "overrides")}
        if not same or set(old.get("grid", {})) != set(new["grid"]):
            raise UsageError(f"{out} holds another sweep ({path.name}: preset {old.get('preset')}, steps "
                             f"{old.get('steps')}, grid keys {sorted(old.get('grid', {}))}); choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(new, indent=2))


def run_sweep(spec: SweepSpec, out: str | Path, address: str | None = None, num_cpus: int | None = None,
              cpus_per_trial: float = 1, gpus_per_trial: float = 0,
              on_result: Callable[[dict[str, Any], int, int], None] | None = None) -> list[dict[str, Any]]:
    """Run every trial not yet finished on Ray; results (also in OUT/sweep_results.csv) in grid order."""
    out = Path(out)
    trials = check_spec(spec)
    _remember_spec(out, spec)
    pending = [t for t in trials if trial_state(out / t.name) != "finished"]
    done = {t.name: json.loads((out / t.name / RESULT).read_text()) for t in trials if t not in pending}
    if pending:
        _run_on_ray(spec, out, pending, address, num_cpus, cpus_per_trial, gpus_per_trial, done, on_result,
                    total=len(trials))
    write_results(out)
    return [done[t.name] for t in trials if t.name in done]


def _check_reachable(address: str) -> None:
    """Fail in seconds, with a line that says what to do, when nothing listens at HOST:PORT (Ray itself
    keeps retrying for minutes)."""
    import socket

    host, _, port = address.rpartition(":")
    if address.startswith("ray://") or address == "auto":
        return  # Ray client / the local cluster's recorded address: leave it to Ray
    if not host or not port.isdigit():
        raise UsageError(f"--address {address!r}: give HOST:PORT of a Ray head node (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise UsageError(f"could not start or reach the Ray cluster at {address} ({exc.strerror or exc}); start one "
                         "with `ray start --head` or drop --address") from None


def _run_on_ray(spec, out, pending, address, num_cpus, cpus_per_trial, gpus_per_trial, done, on_result, total):
    import logging
    import os

    import ray

    if address:
        _check_reachable(address)
    try:
        if address:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        else:
            # Ray starts its workers 15 nice levels below the raylet (its worker_niceness): beside any other busy
            # process a trial would then get a sliver of the CPU (measured: 12%, 680 ms per planner call
            # instead of 72). Trials are the work here, so they run at the sweep's own niceness.
            os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.ERROR,
                     log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise UsageError(f"could not start or reach {where} ({str(exc).splitlines()[0][:160]}); "
                         "start one with `ray start --head` or drop --address") from None
    try:
        available = ray.cluster_resources()
        if available.get("CPU", 0) < cpus_per_trial or available.get("GPU", 0) < gpus_per_trial:
            raise ConfigError(f"each trial asks for {cpus_per_trial} CPU and {gpus_per_trial} GPU, the cluster has "
                              f"{available.get('CPU', 0):g} CPU and {available.get('GPU', 0):g} GPU; lower "
                              "--cpus-per-trial / --gpus-per-trial")
        task = ray.remote(num_cpus=cpus_per_trial, num_gpus=gpus_per_trial, max_retries=0)(run_trial)
        spec_dict = asdict(spec)
        refs = {task.remote(spec_dict, asdict(t), str(out.resolve())): t for t in pending}
        failures = []
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            trial = refs.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayError as exc:
                last = [line for line in str(exc).strip().splitlines() if line.strip()][-1]
                result = dict(name=trial.name, task=trial.task, seed=trial.seed, state="failed", error=last[:300])
                failures.append(result)
            if result.get("state") == "finished":
                done[trial.name] = result
                write_results(out)
            if on_result is not None:
                on_result(result, len(done), total)
        if failures:
            names = ", ".join(f["name"] for f in failures)
            raise UsageError(f"{len(failures)} trial(s) did not finish ({names}): {failures[0]['error']}; the rest "
                             "are kept: fix the cause and run the same command again to resume")
    finally:
        ray.shutdown()
