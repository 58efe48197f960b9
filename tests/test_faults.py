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


def test_a_finite_but_overflowing_observation_is_named(tiny_agent):
    obs = np.zeros(5, np.float32)
    obs[2] = 3e38
    with pytest.raises(ObservationError, match=r"too large to encode: entry \[2\]"):
        tiny_agent.act(obs, t0=True, eval_mode=True)


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
    with pytest.raises(TrainingDiverged, match="weights are not finite"):
        tiny_agent.act(np.zeros(5, np.float32), t0=True)
    assert tiny_agent.prev_plan is None


class Killed(BaseException):
    """Stands in for SIGKILL: every later file operation of the process fails too."""


@pytest.mark.parametrize("kill_at", range(1, 10))
def test_a_kill_at_any_point_of_a_save_leaves_a_consistent_run(tmp_path, monkeypatch, kill_at):
    import os

    import mbdpo_lab.checkpoint as checkpoint_module

    cfg = make_config("tiny", task="cartpole-swingup", steps=120, episode_length=30, seed_steps=30, eval_every=0,
                      checkpoint_every=60, device="cpu", batch_size=8)
    trainer = Trainer(cfg, out_dir=tmp_path)
    state = {"armed": False, "calls": 0, "dead": False}

    def deadly(name, real, partial_path=None):
        def call(*args, **kwargs):
            if state["armed"]:
                state["calls"] += 1
                if state["dead"] or state["calls"] == kill_at:
                    state["dead"] = True
                    target = partial_path(args) if partial_path else None
                    if target is not None:  # the interrupted write leaves half a file behind
                        with open(target, "wb") as fh:
                            fh.write(b"half a file")
                    raise Killed(name)
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(np, "savez", deadly("savez", np.savez, lambda a: a[0]))
    monkeypatch.setattr(checkpoint_module, "save_file", deadly("save_file", checkpoint_module.save_file,
                                                               lambda a: a[1]))
    monkeypatch.setattr(os, "replace", deadly("replace", os.replace))
    monkeypatch.setattr(os, "unlink", deadly("unlink", os.unlink))
    trainer.callbacks.append(lambda event, data: state.update(armed=True) if event == "checkpoint" else None)
    with pytest.raises(Killed):
        trainer.run()  # the first save (step 60) completes; the kill hits the second (step 120)
    monkeypatch.undo()

    resumed = Trainer.resume_from(tmp_path, steps=150)
    assert resumed.agent_step in (60, 120)
    assert len(resumed.buffer) == resumed.agent_step  # every step's transition, none lost or doubled
    assert not list((tmp_path / "checkpoints").glob("*.tmp*"))
    resumed.run()
    assert resumed.state == "finished" and len(resumed.buffer) == 150
