"""Every bad command line ends with exit status 2, one line that says what to change, no traceback,
and leaves the files it was given as they were. A new flag without handling shows up as a new row here."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mbdpo_lab.checkpoint import PRETRAINED_DIR
from mbdpo_lab.cli import main

SHIPPED = PRETRAINED_DIR / "cartpole-swingup.safetensors"

# (arguments, a phrase the message must contain); {tmp} is a fresh folder, {file} a plain file in it
CASES = [
    (["eval", "--checkpoint", "cartpole-swingup", "--episodes", "0"], "--episodes: must be >= 1"),
    (["eval", "--checkpoint", "cartpole-swingup", "--seed", "-1"], "--seed: must be >= 0"),
    (["eval", "--checkpoint", "cartpole-swingup", "--set", "eta=inf"], "eta must be a finite number"),
    (["eval", "--checkpoint", "cartpole-swingup", "--set", "task=walker-walk"], "task cannot be changed"),
    (["eval", "--checkpoint", "cartpole-swingup", "--set", "mlp_dim=64"], "mlp_dim cannot be changed"),
    (["eval", "--checkpoint", "{tmp}"], "agent.safetensors"),
    (["eval", "--checkpoint", "{file}"], "not"),
    (["eval", "--checkpoint", "cartpole-swingup", "--planner", "bogus"], "invalid choice"),
    (["train", "--out", "{tmp}/r", "--set", "lr=nan"], "lr must be a finite number"),
    (["train", "--out", "{tmp}/r", "--set", "simnorm_dim=0"], "simnorm_dim must be >= 1"),
    (["train", "--out", "{tmp}/r", "--set", "dropout=2"], "dropout must be in [0, 1)"),
    (["train", "--out", "{tmp}/r", "--set", "mppi_iterations=0"], "mppi_iterations must be >= 1"),
    (["train", "--out", "{tmp}/r", "--set", "vmin=11"], "vmin < vmax"),
    (["train", "--out", "{tmp}/r", "--set", "eval_every=-10"], "eval_every and checkpoint_every must be >= 0"),
    (["train", "--out", "{tmp}/r", "--set", "mppi_min_std=3"], "mppi_min_std <= mppi_max_std"),
    (["train", "--out", "{tmp}/r", "--set", "num_pi_trajs=512"], "num_pi_trajs must be in"),
    (["train", "--out", "{tmp}/r", "--steps", "-5"], "--steps: must be >= 0"),
    (["bench", "--repeats", "0"], "--repeats: must be >= 1"),
    (["latents", "--checkpoint", "cartpole-swingup", "--out", "{tmp}/l", "--episodes", "0"], "--episodes: must be >= 1"),
    (["export", "--run", "{tmp}", "--name", "x"], "no agent.safetensors"),
    (["anchor-table", "{tmp}"], "no anchor_metrics.csv"),
    (["config", "--preset", "cpuu"], "unknown preset"),
    (["book", "--out", "{tmp}/b", "--notebooks", "{tmp}"], "no lesson notebooks"),
    (["train", "--out", "{tmp}/r", "--set", "task_dim=0"], "task_dim must be >= 1"),
    (["eval", "--checkpoint", "cartpole-swingup", "--video", "{tmp}/no/such/dir/v.mp4"], "cannot write there"),
    (["eval", "--checkpoint", "cartpole-swingup", "--video", "{tmp}/v.gif"], "name it something.mp4"),
    (["train", "--preset", "tiny", "--out", "{file}"], "is a file"),
    (["latents", "--checkpoint", "cartpole-swingup", "--out", "{file}"], "is a file"),
    (["latents", "--checkpoint", "cartpole-swingup", "nosuch", "--out", "{tmp}/l"], "checkpoint not found: nosuch"),
    (["train", "--out", "{tmp}", "--resume"], "nothing to resume"),
    (["eval", "--checkpoint", "cartpole-swingup", "--device", "banana"], "device must be auto, cpu, cuda"),
    (["train", "--out", "{tmp}/r", "--set", "device=cuda:99"], "cuda:99"),
    (["lessons", "--build", "tuor"], "no lesson data named 'tuor'; choose from tour"),
]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("args, phrase", CASES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in CASES])
def test_bad_command_line_exits_2_with_one_line(args, phrase, tmp_path, capsys):
    (tmp_path / "plain.txt").write_text("not a checkpoint")
    args = [a.replace("{tmp}", str(tmp_path)).replace("{file}", str(tmp_path / "plain.txt")) for a in args]
    shipped = _digest(SHIPPED)
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2, (code, err)
    last = err.splitlines()[-1]
    assert phrase in err and "Traceback" not in err, err
    assert "error" in last  # the line that says what is wrong is the last one
    assert _digest(SHIPPED) == shipped
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())  # nothing written for a refusal


def test_missing_ffmpeg_is_found_before_any_episode_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg anywhere
    assert main(["eval", "--checkpoint", "cartpole-swingup", "--video", str(tmp_path / "v.mp4")]) == 3
    assert main(["train", "--preset", "tiny", "--out", str(tmp_path / "r"), "--set", "save_video=true"]) == 3
    err = capsys.readouterr().err
    assert err.count("needs ffmpeg on PATH") == 2 and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_broken_manifest_and_replay_are_reported_not_raised(tmp_path):
    import json

    from mbdpo_lab.checkpoint import CheckpointError, read_manifest
    from mbdpo_lab.config import make_config
    from mbdpo_lab.trainer import Trainer, replay_path

    (tmp_path / "manifest.json").write_text("{ not json")
    with pytest.raises(CheckpointError, match="not a valid manifest"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"agents": ["a list"]}))
    with pytest.raises(CheckpointError, match="not a valid manifest"):
        read_manifest(tmp_path)
    cfg = make_config("tiny", task="pendulum-swingup", steps=40, episode_length=20, seed_steps=20, eval_every=0,
                      device="cpu")
    Trainer(cfg, out_dir=tmp_path / "run").run()
    replay_path(tmp_path / "run").write_bytes(b"PK not a zip")
    assert main(["train", "--out", str(tmp_path / "run"), "--resume", "--steps", "60"]) == 2
