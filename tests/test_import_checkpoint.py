"""`mbdpo-lab import-checkpoint`: published TD-MPC2 / MBDPO checkpoints (fixtures written by the authors'
code, `scripts/make_release_fixtures.py`) become agents that evaluate and drive the widgets; a pickle that
would run code is refused before it runs."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mbdpo_lab.checkpoint import load_checkpoint
from mbdpo_lab.cli import main
from mbdpo_lab.errors import CheckpointError
from mbdpo_lab.release_checkpoint import import_release_checkpoint, load_state_dict

FIXTURES = Path(__file__).parent / "fixtures" / "release"
SMALL_PLANNER = ["--set", "num_samples=32", "--set", "num_elites=8", "--set", "num_levels=4",
                 "--set", "num_pi_trajs=4"]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = tmp_path_factory.mktemp("imported")
    for fmt in ("mbdpo", "tdmpc2"):
        assert main(["import-checkpoint", str(FIXTURES / f"{fmt}.pt"), "--format", fmt, "--task", "reacher-easy",
                     "--out", str(out / fmt)]) == 0
    return out


def test_imported_mbdpo_agent_computes_what_the_release_computed(imported):
    agent = load_checkpoint(imported / "mbdpo.safetensors").agent
    golden = load_file(str(FIXTURES / "outputs.safetensors"))
    assert agent.cfg.variant == "release" and agent.cfg.eta == 0.01 and agent.wm.score_net is not None
    with torch.no_grad():
        z = agent.wm.encode(golden["in_obs"])
        torch.testing.assert_close(z, golden["z"], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(agent.wm.q_logits(z, golden["in_act"]), golden["q_all"], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(agent.wm.energy_logit(z, golden["in_act"]), golden["f"], rtol=1e-4, atol=1e-5)
    # what the release does not store starts where the release's own load leaves it
    assert float(agent.wm.energy_mean) == 0.0 and float(agent.wm.energy_std) == 1.0


def test_imported_tdmpc2_agent_plans_unanchored_and_says_so(imported, capsys):
    agent = load_checkpoint(imported / "tdmpc2.safetensors").agent
    assert agent.cfg.eta == 0.0 and agent.wm.score_net is None
    golden = load_file(str(FIXTURES / "outputs.safetensors"))  # what TD-MPC2's own code computed
    with torch.no_grad():
        z = agent.wm.encode(golden["in_obs"])
        torch.testing.assert_close(z, golden["tdmpc2_z"], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(agent.wm.reward_logits(z, golden["in_act"]), golden["tdmpc2_reward"],
                                   rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(agent.wm.q_logits(z, golden["in_act"]), golden["tdmpc2_q_all"], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(agent.wm.pi(z).mean, golden["tdmpc2_pi_mean"], rtol=1e-4, atol=1e-5)
    main(["import-checkpoint", str(FIXTURES / "tdmpc2.pt"), "--format", "tdmpc2", "--task", "reacher-easy",
          "--out", str(imported / "again")])
    assert "eta = 0" in capsys.readouterr().err


@pytest.mark.parametrize("fmt, planner", [("mbdpo", "diffusion"), ("mbdpo", "score"), ("tdmpc2", "diffusion")])
def test_eval_runs_on_an_imported_agent(imported, capsys, fmt, planner):
    assert main(["eval", "--checkpoint", str(imported / f"{fmt}.safetensors"), "--episodes", "1",
                 "--planner", planner, *SMALL_PLANNER]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["task"] == "reacher-easy" and np.isfinite(result["mean_return"])


def test_both_widgets_open_an_imported_agent(imported):
    pytest.importorskip("ipywidgets")
    from mbdpo_lab.analysis import collect_latents
    from mbdpo_lab.envs import make_env
    from mbdpo_lab.widgets import DenoisingStepper
    from mbdpo_lab.widgets.latent_explorer import LatentExplorer

    agent = load_checkpoint(imported / "mbdpo.safetensors",
                            overrides=["num_samples=32", "num_elites=8", "num_levels=4", "num_pi_trajs=4"]).agent
    stepper = DenoisingStepper(agent, task="reacher-easy", steps=3, seed=0, max_candidates=8)
    assert stepper.trace is not None and stepper.trace.candidates.shape[1] == 32
    with make_env("reacher-easy", seed=0) as env:
        rollouts = collect_latents(agent, env, episodes=2, max_steps=12, seed=0)
    explorer = LatentExplorer({"imported": rollouts}, method="pca")
    assert explorer.projection().real[0].shape == (13, 2)


def test_a_pickle_that_would_run_code_is_refused_before_it_runs(tmp_path, capsys):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    bad = tmp_path / "evil.pt"
    torch.save({"model": {"_encoder.state.0.weight": torch.zeros(2, 2), "x": Payload()}}, bad)
    with pytest.raises(CheckpointError, match="refused"):
        load_state_dict(bad)
    assert main(["import-checkpoint", str(bad), "--format", "mbdpo", "--task", "reacher-easy",
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "would run code" in err[0]
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()


@pytest.mark.parametrize("case, phrase", [
    ("wrong-format", "use --format tdmpc2"),
    ("wrong-task", "pass the task it was trained on"),
    ("not-a-model", "does not hold a TD-MPC2/MBDPO world model"),
    ("missing", "not found"),
    ("exists", "exists; choose another --out"),
])
def test_bad_imports_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, case, phrase):
    src, fmt, task, out = FIXTURES / "tdmpc2.pt", "tdmpc2", "reacher-easy", tmp_path / "out.safetensors"
    if case == "wrong-format":
        fmt = "mbdpo"
    elif case == "wrong-task":
        task = "cartpole-swingup"
    elif case == "not-a-model":
        src = tmp_path / "plain.pt"
        torch.save({"weights": torch.zeros(3)}, src)
    elif case == "missing":
        src = tmp_path / "nothing.pt"
    elif case == "exists":
        out.write_text("keep me")
    assert main(["import-checkpoint", str(src), "--format", fmt, "--task", task, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and phrase in err[0], err
    assert (case == "exists" and out.read_text() == "keep me") or not out.exists()


def test_the_importer_checks_shapes_against_the_task():
    with pytest.raises(CheckpointError, match="6 observation and 2 action"):
        import_release_checkpoint(FIXTURES / "mbdpo.pt", "mbdpo", "cartpole-swingup", 5, 1)
