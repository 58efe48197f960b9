"""Every shipped agent loads, matches its checksum and acts; export writes a truthful entry."""
import json
import os

import numpy as np
import pytest

from mbdpo_lab.checkpoint import PRETRAINED_DIR, file_sha256, load_pretrained, read_manifest
from mbdpo_lab.pretrained import docs_note, evaluate_checkpoint, export_run

MANIFEST = read_manifest()


def test_manifest_lists_shipped_agents():
    assert MANIFEST, "mbdpo_lab/data/pretrained/manifest.json lists no agents"
    total = sum((PRETRAINED_DIR / e["file"]).stat().st_size for e in MANIFEST.values())
    assert total < 30 * 2**20
    for name, entry in MANIFEST.items():
        for key in ("task", "preset", "eta", "seed", "steps", "wall_time_s", "device", "eval_return_mean",
                    "eval_return_std", "sha256", "command"):
            assert key in entry, (name, key)
        assert entry["command"].startswith("mbdpo-lab train ")


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_pretrained_loads_checks_sha_and_runs_one_episode(name):
    entry = MANIFEST[name]
    assert file_sha256(PRETRAINED_DIR / entry["file"]) == entry["sha256"]
    ckpt = load_pretrained(name, device="cpu")
    assert ckpt.agent.cfg.task == entry["task"] and ckpt.agent.cfg.eta == entry["eta"]
    result = evaluate_checkpoint(PRETRAINED_DIR / entry["file"], episodes=1)
    assert np.isfinite(result["mean_return"])


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("MBDPO_SLOW"), reason="opt-in: set MBDPO_SLOW=1 (minutes per agent)")
@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_pretrained_return_matches_manifest(name):
    entry = MANIFEST[name]
    result = evaluate_checkpoint(PRETRAINED_DIR / entry["file"], episodes=entry["eval_episodes"])
    assert result["mean_return"] == pytest.approx(entry["eval_return_mean"], abs=max(25.0, 0.05 * entry["eval_return_mean"]))


def test_export_run_writes_manifest_entry(tmp_path):
    from mbdpo_lab.config import make_config
    from mbdpo_lab.trainer import Trainer

    cfg = make_config("tiny", task="pendulum-swingup", steps=100, episode_length=50, seed_steps=100,
                      eval_every=0, device="cpu", eta=0.0)
    Trainer(cfg, out_dir=tmp_path / "run").run()
    entry = export_run(tmp_path / "run", "pend-tiny", directory=tmp_path / "assets", episodes=1)
    manifest = json.loads((tmp_path / "assets" / "manifest.json").read_text())["agents"]
    assert manifest["pend-tiny"] == entry
    assert entry["steps"] == 100 and entry["eta"] == 0.0 and entry["preset"] == "tiny"
    assert "--set eta=0.0" in entry["command"] and "--task pendulum-swingup" in entry["command"]
    assert load_pretrained("pend-tiny", directory=tmp_path / "assets").agent.cfg.eta == 0.0


def test_export_refuses_bad_names_and_replaces_only_when_asked(tmp_path):
    from mbdpo_lab.checkpoint import CheckpointError
    from mbdpo_lab.config import make_config
    from mbdpo_lab.trainer import Trainer

    cfg = make_config("tiny", task="pendulum-swingup", steps=60, episode_length=30, seed_steps=30,
                      eval_every=0, device="cpu")
    Trainer(cfg, out_dir=tmp_path / "run").run()
    shelf = tmp_path / "shelf"
    for bad in ("../../x", "a/b", "Upper", "", ".hidden", "x" * 65):
        with pytest.raises(CheckpointError, match="not allowed"):
            export_run(tmp_path / "run", bad, directory=shelf, episodes=1)
    assert not shelf.exists() or not any(shelf.iterdir())  # nothing written for a refused name
    first = export_run(tmp_path / "run", "pend", directory=shelf, episodes=1)
    before = (shelf / "manifest.json").read_text(), (shelf / "pend.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="--replace"):
        export_run(tmp_path / "run", "pend", directory=shelf, episodes=1)
    assert ((shelf / "manifest.json").read_text(), (shelf / "pend.safetensors").read_bytes()) == before
    manifest = json.loads((shelf / "manifest.json").read_text())
    manifest["agents"]["pend"]["note"] = docs_note("pend")  # written by hand beside a shipped agent
    (shelf / "manifest.json").write_text(json.dumps(manifest))
    again = export_run(tmp_path / "run", "pend", directory=shelf, episodes=1, replace=True)
    assert json.loads((shelf / "manifest.json").read_text())["agents"]["pend"] == again
    assert again["note"] == docs_note("pend")  # the replaced agent keeps its pointer to its training notes
    assert first["steps"] == again["steps"] == 60


def test_a_manifest_entry_cannot_point_outside_its_folder(tmp_path):
    from mbdpo_lab.checkpoint import CheckpointError

    shelf = tmp_path / "shelf"
    shelf.mkdir()
    (tmp_path / "outside.safetensors").write_bytes(b"not even a checkpoint")
    for file in ("../outside.safetensors", "/etc/passwd", "manifest.json"):
        (shelf / "manifest.json").write_text(json.dumps({"agents": {"x": {"file": file, "sha256": "0"}}}))
        with pytest.raises(CheckpointError, match="inside"):
            load_pretrained("x", directory=shelf)


GENERALISTS = read_manifest(section="generalists")


@pytest.mark.parametrize("name", sorted(GENERALISTS))
def test_shipped_generalist_loads_checks_sha_and_acts_for_each_task(name, capsys):
    from mbdpo_lab.analysis.task_map import acting_for
    from mbdpo_lab.cli import main

    entry = GENERALISTS[name]
    assert file_sha256(PRETRAINED_DIR / entry["file"]) == entry["sha256"]
    assert entry["command"].startswith("mbdpo-lab pretrain ") and entry["dataset_command"].startswith("mbdpo-lab collect ")
    agent = load_pretrained(name, device="cpu").agent
    assert [t.name for t in agent.tasks] == entry["tasks"] and agent.wm.num_params() == entry["parameters"]
    assert entry["normalised_score"] == pytest.approx(np.mean([m for m, _ in entry["eval_returns"].values()]) / 10,
                                                      abs=0.01)
    for task in agent.tasks:
        with acting_for(agent, task.name):
            action = agent.act(np.zeros(task.obs_dim, np.float32), t0=True, eval_mode=True)
        assert action.shape == (task.act_dim,) and np.all(np.abs(action) <= 1)
    assert main(["pretrained"]) == 0 and f"{name}\t{len(entry['tasks'])} tasks" in capsys.readouterr().out
