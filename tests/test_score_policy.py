"""`mbdpo-lab score-policy`: a score network fitted to an agent on the release's Monte-Carlo targets learns
them, and acting with it alone is measured against the full planner."""
from __future__ import annotations

import csv

import torch

from mbdpo_lab.agent import MBDPO
from mbdpo_lab.checkpoint import load_checkpoint, save_checkpoint
from mbdpo_lab.cli import main
from mbdpo_lab.config import make_config
from mbdpo_lab.experiments.score_policy import attach_score_network, fit_score_network


def test_fitting_learns_the_monte_carlo_targets_and_the_mean_output_learns_them_faster():
    errors = {}
    for output in ("score", "mean"):
        torch.manual_seed(0)
        agent = MBDPO(make_config("tiny", device="cpu"), 5, 1)
        attach_score_network(agent, output)
        latents = agent.wm.encode(torch.randn(64, 5)).detach()
        torch.manual_seed(1)
        x, tau, target = agent.score_target(latents)  # held out: never seen by the fit

        def error():
            with torch.no_grad():
                return float(torch.nn.functional.mse_loss(agent.wm.score_net(latents, x, tau), target))

        before = error()
        fit = fit_score_network(agent, latents, updates=300, batch_size=32, log_every=100)
        errors[output] = error()
        assert len(fit.losses) == 3 and errors[output] < before, output
    # the release's raw score grows like 1 / (1 - abar): 300 updates barely move it; its mean is learnt
    assert errors["mean"] < errors["score"] / 3, errors


def test_score_policy_command_writes_an_agent_and_both_planners_rows(tmp_path, capsys):
    agent = MBDPO(make_config("tiny", device="cpu", task="pendulum-swingup"), 3, 1)
    ckpt = save_checkpoint(agent, tmp_path / "a.safetensors")
    out = tmp_path / "sp"
    assert main(["score-policy", "--checkpoint", str(ckpt), "--out", str(out), "--updates", "5",
                 "--batch-size", "4", "--fit-episodes", "1", "--episodes", "1", "--no-progress"]) == 0
    with open(out / "score_policy.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["planner"] for r in rows] == ["diffusion", "score"]
    assert all(float(r["ms_per_action"]) > 0 for r in rows)
    fitted = load_checkpoint(out / "agent.safetensors").agent
    assert fitted.wm.score_net is not None and fitted.cfg.use_score_net
