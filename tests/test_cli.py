import json
import math
import subprocess
import sys

import pytest

from mbdpo_lab.cli import main
from limits import HANG_S


def run_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "mbdpo_lab.cli", *args], capture_output=True, text=True,
                          timeout=HANG_S)
    return proc.returncode, proc.stdout, proc.stderr


def test_tasks_lists_names(capsys):
    assert main(["tasks"]) == 0
    assert "cartpole-swingup" in capsys.readouterr().out.split()


@pytest.mark.parametrize("args, message", [
    (["train", "--task", "cartpole-swingupp", "--out", "x"], "unknown task"),
    (["train", "--out", "x", "--set", "num_sample=4"], "did you mean num_samples"),
    (["train", "--out", "x", "--set", "eta"], "key=value"),
    (["eval", "--checkpoint", "missing.safetensors"], "not found"),
    (["eval", "--checkpoint", "no-such-pretrained"], "not found"),
])
def test_bad_input_exits_nonzero_with_one_line(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err


def test_train_eval_bench_end_to_end(tmp_path):
    out = tmp_path / "run"
    code, stdout, stderr = run_cli("train", "--task", "pendulum-swingup", "--preset", "tiny", "--steps", "200",
                                   "--out", str(out), "--no-progress", "--set", "episode_length=50",
                                   "--set", "seed_steps=100", "--set", "eval_every=200", "--set", "save_video=true")
    assert code == 0, stderr
    assert (out / "config.json").exists() and (out / "agent.safetensors").exists()
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "step" in header and "eval_return" in header
    assert list((out / "videos").glob("*.mp4"))
    code, stdout, stderr = run_cli("eval", "--checkpoint", str(out / "agent.safetensors"), "--episodes", "2",
                                   "--planner", "mppi", "--set", "eta=0", "--video", str(tmp_path / "v.mp4"))
    assert code == 0, stderr
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["episodes"] == 2 and {"mean_return", "std_return"} <= set(result) and result["eta"] == 0
    assert (tmp_path / "v.mp4").stat().st_size > 1000
    # a second train into the same directory is refused instead of overwriting
    code, _, stderr = run_cli("train", "--preset", "tiny", "--out", str(out))
    assert code == 2 and "--resume" in stderr
    code, stdout, stderr = run_cli("bench", "--preset", "tiny", "--repeats", "2")
    assert code == 0, stderr
    bench = json.loads(stdout)
    assert {"planner_ms_per_action", "update_ms", "params", "device"} <= set(bench)
    # figures are measured, never judged: only that each is a positive, finite number (no speed, no ratio)
    for key in ("planner_ms_per_action", "update_ms", "planner_gflops_per_s", "update_gflops_per_s",
                "planner_fraction_of_peak", "update_fraction_of_peak", "matmul_peak_fp32_gflops_per_s"):
        assert math.isfinite(bench[key]) and bench[key] > 0, (key, bench[key])
    assert bench["params"] > 0


def test_bench_keeps_significant_digits_of_small_ratios():
    from mbdpo_lab.bench import significant

    assert significant(0.000123456) == 0.000123 and significant(1234.5678, 4) == 1235.0
    assert significant(3e-9) > 0
