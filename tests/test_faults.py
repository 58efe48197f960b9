"""Faults are refused at the boundary with a clear error, and never damage a run's last good state."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mbdpo_lab.checkpoint import load_checkpoint
from mbdpo_lab.config import ConfigError, make_config
from mbdpo_lab.errors import ObservationError, TrainingDiverged
from mbdpo_lab.trainer import Trainer


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_non_finite_observation_is_refused_and_the_warm_start_is_kept(tiny_agent, value):
    obs = np.zeros(5, np.float32)
    tiny_agent.act(obs, t0=True, eval_mode=True)
    plan = tiny_agent.prev_plan.clone()
    bad = obs.copy()
    bad[3] = value
    for planner in ("diffusion", "mppi", "policy"):
        with pytest.raises(ObservationError, match=r"1 non-finite entry: \[3\]"):
            tiny_agent.act(bad, eval_mode=True, planner=planner)
    assert torch.equal(tiny_agent.prev_plan, plan)  # nothing of the bad step entered the warm start
    assert np.all(np.isfinite(tiny_agent.act(obs, eval_mode=True)))


def test_a_wrongly_sized_observation_and_an_unknown_planner_are_refused(tiny_agent):
    with pytest.raises(ObservationError, match="has 4 entries .* takes 5"):
        tiny_agent.act(np.zeros(4, np.float32), t0=True)
    with pytest.raises(ConfigError, match="planner must be one of"):
        tiny_agent.act(np.zeros(5, np.float32), t0=True, planner="bogus")


def test_a_diverging_update_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = make_config("tiny", task="cartpole-swingup", steps=300, episode_length=50, seed_steps=50, eval_every=0,
                      checkpoint_every=100, device="cpu", batch_size=8)
    trainer = Trainer(cfg, out_dir=tmp_path)
    update = trainer.agent.update

    def diverging_update(batch):  # at step 151 the update blows up: NaN loss and NaN weights
        losses = update(batch)
        if trainer.env_step == 151:
            with torch.no_grad():
                next(trainer.agent.wm.parameters()).fill_(float("nan"))
            losses["value_loss"] = float("nan")
        return losses

    trainer.agent.update = diverging_update
    with pytest.raises(TrainingDiverged, match="non-finite value_loss at step 151"):
        trainer.run()
    assert trainer.state == "failed" and trainer.env_step == 151
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.safetensors")
    assert ckpt.meta["agent_step"] == 100  # the periodic checkpoint before the fault, not overwritten
    assert all(bool(torch.isfinite(p).all()) for p in ckpt.agent.wm.parameters())
    with pytest.raises(TrainingDiverged, match="not overwriting"):
        trainer.save()
    resumed = Trainer.resume_from(tmp_path, steps=120)
    resumed.run()
    assert resumed.state == "finished" and all(math.isfinite(r.get("energy_loss", 0.0)) for r in resumed.history)


def test_weights_that_are_not_finite_never_plan(tiny_agent):
    with torch.no_grad():
        next(tiny_agent.wm.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="non-finite plan"):
        tiny_agent.act(np.zeros(5, np.float32), t0=True)
    assert tiny_agent.prev_plan is None
