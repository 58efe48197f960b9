"""`mbdpo-lab sweep`: the grid, resuming after a crash, and a real two-node Ray cluster on loopback."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mbdpo_lab.errors import ConfigError, UsageError
from mbdpo_lab.experiments.sweep import (RESULT, SweepSpec, check_spec, parse_grid, run_sweep, run_trial,
                                         trial_state)
from mbdpo_lab.trainer import Trainer

BIN = Path(sys.executable).parent
FAST = ["eval_every=120", "eval_episodes=1", "episode_length=40", "seed_steps=60", "save_video=false"]


def spec(**kw) -> SweepSpec:
    base = dict(tasks=["cartpole-swingup"], seeds=[1], preset="tiny", steps=120, overrides=list(FAST))
    return SweepSpec(**{**base, **kw})


def test_the_grid_crosses_tasks_values_and_seeds_with_readable_names():
    s = spec(tasks=["cartpole-swingup", "reacher-easy"], seeds=[1, 2], grid=parse_grid(["eta=0,0.1"]))
    names = [t.name for t in s.trials()]
    assert len(names) == len(set(names)) == 8
    assert "reacher-easy-eta=0.1-s2" in names
    cfg = s.config(next(t for t in s.trials() if t.name == "reacher-easy-eta=0.1-s2"))
    assert (cfg.task, cfg.seed, cfg.eta, cfg.steps, cfg.episode_length) == ("reacher-easy", 2, 0.1, 120, 40)


@pytest.mark.parametrize("items,message", [
    (["eta"], "KEY=V1,V2"), (["eta="], "KEY=V1,V2"), (["eta=0", "eta=1"], "twice")])
def test_bad_grid_items_say_how_to_write_them(items, message):
    with pytest.raises(UsageError, match=message):
        parse_grid(items)


def test_every_trial_is_checked_before_anything_starts():
    with pytest.raises(ConfigError):
        check_spec(spec(grid={"no_such_key": ["1"]}))
    with pytest.raises(ConfigError):
        check_spec(spec(grid={"eta": ["0", "minus one"]}))
    with pytest.raises(UsageError, match="--seeds"):
        check_spec(spec(grid={"seed": ["1", "2"]}))


def test_a_trial_resumes_from_its_checkpoint_and_a_finished_one_is_kept(tmp_path):
    s = spec(overrides=[*FAST, "checkpoint_every=60"])
    trial = s.trials()[0]
    run_dir = tmp_path / trial.name
    Trainer(s.config(trial), run_dir).run(steps=60)  # the "crash": 60 of 120 steps, one checkpoint
    assert trial_state(run_dir) == "partial"
    result = run_trial(vars(s), vars(trial), str(tmp_path))
    assert result["resumed"] and result["step"] == 120 and result["state"] == "finished"
    evals = [r for r in csv.DictReader(open(run_dir / "metrics.csv")) if r["kind"] == "eval"]
    assert [int(r["step"]) for r in evals] == [120]
    before = (run_dir / "metrics.csv").stat().st_mtime_ns
    assert run_trial(vars(s), vars(trial), str(tmp_path)) == result  # finished: read back, not trained again
    assert (run_dir / "metrics.csv").stat().st_mtime_ns == before


def test_a_rerun_skips_finished_trials_and_refuses_another_sweep_in_the_same_folder(tmp_path):
    s = spec(seeds=[1, 2])
    first = s.trials()[0]
    run_trial(vars(s), vars(first), str(tmp_path))
    (tmp_path / "sweep.json").write_text(json.dumps(vars(s)))
    # with one trial finished, the sweep runs only the other (a local Ray instance)
    results = run_sweep(s, tmp_path, num_cpus=1)
    assert [r["name"] for r in results] == [t.name for t in s.trials()]
    assert results[0]["pid"] != results[1]["pid"]
    assert results[1]["niceness"] == os.nice(0)  # a Ray worker, yet not starved below the sweep (Ray's default: +15)
    rows = list(csv.DictReader(open(tmp_path / "sweep_results.csv")))
    assert len(rows) == 2
    with pytest.raises(UsageError, match="another sweep"):
        run_sweep(spec(seeds=[1, 2], steps=200), tmp_path, num_cpus=1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_nodes(address: str, n: int, timeout: float = 90) -> None:
    probe = ("import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
             "print(sum(1 for node in ray.nodes() if node['Alive']))")
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = subprocess.run([sys.executable, "-c", probe, address], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(n)]:
            return
        time.sleep(2)
    raise AssertionError(f"the Ray cluster at {address} did not reach {n} nodes: {out.stderr[-500:]}")


def test_a_sweep_runs_across_a_two_node_ray_cluster(tmp_path):
    """A head and a worker node on loopback, one CPU each: two one-CPU trials must land on both."""
    # Ray's sockets live under its temp dir, and a unix socket path may not exceed 107 bytes
    ray_tmp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    port = _free_port()
    address = f"127.0.0.1:{port}"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_DOCKER_CPU_WARNING": "1"}
    common = ["--block", "--num-cpus", "1", "--num-gpus", "0", "--object-store-memory", str(80 * 2**20),
              "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    nodes = [subprocess.Popen([str(BIN / "ray"), "start", "--head", "--port", str(port), "--include-dashboard=false",
                               "--temp-dir", str(ray_tmp), *common],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        _wait_for_nodes(address, 1)
        nodes.append(subprocess.Popen([str(BIN / "ray"), "start", "--address", address, *common],
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
        _wait_for_nodes(address, 2)
        out = tmp_path / "sweep"
        cmd = [str(BIN / "mbdpo-lab"), "sweep", "--tasks", "cartpole-swingup", "--seeds", "1", "2", "--preset", "tiny",
               "--steps", "120", "--out", str(out), "--address", address, *(a for kv in FAST for a in ("--set", kv))]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        rows = list(csv.DictReader(open(out / "sweep_results.csv")))
        assert sorted(r["name"] for r in rows) == ["cartpole-swingup-s1", "cartpole-swingup-s2"]
        assert len({r["node"] for r in rows}) == 2, rows  # one trial on each node
        for r in rows:
            assert (out / r["name"] / RESULT).exists() and (out / r["name"] / "agent.safetensors").exists()
    finally:
        for proc in reversed(nodes):  # stopped by PID: each `ray start --block` takes its node down with it
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in nodes:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_an_unreachable_cluster_is_one_line_and_exit_2(tmp_path):
    cmd = [str(BIN / "mbdpo-lab"), "sweep", "--tasks", "cartpole-swingup", "--seeds", "1", "--preset", "tiny",
           "--out", str(tmp_path / "s"), "--address", f"127.0.0.1:{_free_port()}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    assert done.returncode == 2, done.stderr[-1000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("mbdpo-lab sweep: error: could not start or reach the Ray cluster"), lines
    assert "Traceback" not in done.stderr
