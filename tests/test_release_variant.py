"""Variant ``release``: the rules of the authors' code that the golden fixtures cannot see (they need
real randomness, a training loop or a replay), each checked so that dropping it fails a test."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mbdpo_lab.agent import MBDPO
from mbdpo_lab.buffer import ReplayBuffer
from mbdpo_lab.checkpoint import load_checkpoint, save_checkpoint
from mbdpo_lab.config import Config, make_config
from mbdpo_lab.trainer import Trainer


def tiny(**kw) -> Config:
    return make_config("tiny", device="cpu", **kw)


def _episode(buf, ep, length):
    buf.start_episode(np.array([ep, 0], np.float32))
    for t in range(length):
        buf.add(np.array([t], np.float32), 0.0, np.array([ep, t + 1], np.float32))


# --- replay ------------------------------------------------------------------------------------

def test_release_replay_samples_an_episode_only_once_it_is_complete():
    buf = ReplayBuffer(obs_dim=2, act_dim=1, capacity=100, horizon=2, seed=0, release=True)
    _episode(buf, 0, 6)
    with pytest.raises(RuntimeError, match="no complete"):
        buf.sample(4)
    buf.end_episode()
    _episode(buf, 1, 6)  # in progress: not sampled yet
    assert set(buf.sample(500)["obs"][0, :, 0]) == {0.0}
    buf.end_episode()
    assert set(buf.sample(500)["obs"][0, :, 0]) == {0.0, 1.0}
    lab = ReplayBuffer(obs_dim=2, act_dim=1, capacity=100, horizon=2, seed=0)
    _episode(lab, 0, 6)
    assert lab.sample(4)["obs"].shape == (3, 4, 2)  # lab: the current episode at once


def test_release_replay_drops_the_oldest_episode_when_full_and_resumes_mid_episode():
    buf = ReplayBuffer(obs_dim=2, act_dim=1, capacity=12, horizon=2, seed=0, release=True, initial_rows=4)
    for ep in range(3):
        _episode(buf, ep, 5)
        buf.end_episode()
    assert buf.num_transitions == 10 and buf.num_episodes == 3  # the first episode made room for the third
    assert set(buf.sample(500)["obs"][0, :, 0]) == {1.0, 2.0}
    s = buf.sample(500)
    assert (np.diff(s["obs"][..., 1], axis=0) == 1).all() and (s["obs"][..., 0] == s["obs"][0, :, 0]).all()
    _episode(buf, 3, 3)  # made room by dropping episode 1; mid-episode, its starts are pending ...
    other = ReplayBuffer(obs_dim=2, act_dim=1, capacity=12, horizon=2, seed=0, release=True)
    other.load_state_dict(buf.state_dict())  # ... and stay pending in a resumed buffer
    assert set(other.sample(500)["obs"][0, :, 0]) == {2.0}
    other.end_episode()
    assert set(other.sample(2000)["obs"][0, :, 0]) == {2.0, 3.0}
    lab = ReplayBuffer(obs_dim=2, act_dim=1, capacity=12, horizon=2, seed=0)
    with pytest.raises(MemoryError):
        for ep in range(3):
            _episode(lab, ep, 5)


# --- the training loop -------------------------------------------------------------------------

@pytest.mark.parametrize("variant, first_update", [("lab", 149), ("release", 150)])
def test_seed_phase_acts_at_random_through_its_last_step_then_updates(variant, first_update):
    cfg = tiny(variant=variant, seed_steps=150, steps=160, eval_every=0)
    trainer = Trainer(cfg)
    planned, updated = [], []
    act, update = trainer.agent.act, trainer.agent.update
    trainer.agent.act = lambda *a, **k: (planned.append(trainer.agent_step), act(*a, **k))[1]
    trainer.agent.update = lambda batch: (updated.append(trainer.agent_step), update(batch))[1]
    for _ in range(cfg.steps):
        trainer.step()
    assert planned[0] == first_update + 1  # the planner acts from the step after the first updates
    # all S seed updates run right after step `first_update` (the counter has moved past it)
    assert updated[:cfg.num_seed_steps] == [first_update + 1] * cfg.num_seed_steps
    assert updated[cfg.num_seed_steps] == first_update + 2


def test_release_td_target_uses_the_first_two_target_heads():
    seen = []
    for variant in ("release", "lab"):
        agent = MBDPO(tiny(variant=variant, num_q=4), 3, 1)
        q = agent.wm.q

        def spy(*args, **kwargs):
            if kwargs.get("target"):
                seen.append((variant, kwargs.get("heads")))
            return q(*args, **kwargs)

        agent.wm.q = spy
        H, B = agent.cfg.horizon, 4
        agent.update(dict(obs=torch.randn(H + 1, B, 3), action=torch.rand(H, B, 1) * 2 - 1, reward=torch.rand(H, B)))
    assert seen == [("release", [0, 1]), ("lab", None)]


def test_release_planner_redraws_heads_and_prior_candidates_at_every_level():
    for variant, expect_prior_calls in (("release", 3), ("lab", 1)):
        agent = MBDPO(tiny(variant=variant, num_levels=4, num_pi_trajs=2, num_q=4), 3, 1)
        drawn, prior_calls = [], []
        draw = agent.wm.draw_q_heads
        agent.wm.draw_q_heads = lambda g=None: (drawn.append(1), draw(g))[1]
        model = agent.return_model(agent.encode(np.zeros(3, np.float32)))
        prior = model.prior_candidates
        model.prior_candidates = lambda n, g=None: (prior_calls.append(n), prior(n, g))[1]
        agent.diffusion.plan(model, torch.zeros(agent.cfg.horizon, 1))
        assert len(prior_calls) == expect_prior_calls
        # release: one draw when the return model is built and one per level; lab: only the first
        assert len(drawn) == (1 + 3 if variant == "release" else 1), variant


# --- the model -----------------------------------------------------------------------------------

def test_release_initialisation_and_layers():
    torch.manual_seed(0)
    wm = MBDPO(make_config("cpu", variant="release", device="cpu"), 5, 1).wm
    w = wm.dynamics[0][0].weight.detach()
    assert abs(float(w.std()) - 0.02) < 0.002 and float(wm.dynamics[0][0].bias.detach().abs().max()) == 0.0
    assert isinstance(wm.encoder[-2], torch.nn.LayerNorm) and isinstance(wm.dynamics[-2], torch.nn.LayerNorm)
    assert float(wm.reward_head[-1].weight.detach().abs().max()) == 0 and float(wm.energy_head[-1].weight.detach().abs().max()) == 0
    assert float(wm.q_heads.out.weight.detach().abs().max()) == 0
    assert float(wm.q_heads.out.bias.detach().abs().max()) > 0  # the release's Q heads keep PyTorch's default init
    assert float(wm.q_heads.linears[0].weight.detach().std()) > 0.03
    lab = MBDPO(make_config("cpu", variant="lab", device="cpu"), 5, 1).wm
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in (lab.encoder[-2], lab.dynamics[-2]))
    assert float(lab.q_heads.out.bias.detach().abs().max()) == 0


def test_variant_is_kept_by_checkpoints_and_old_ones_load_as_lab(tmp_path):
    agent = MBDPO(tiny(variant="release"), 3, 1)
    loaded = load_checkpoint(save_checkpoint(agent, tmp_path / "a.safetensors")).agent
    assert loaded.cfg.variant == "release" and isinstance(loaded.wm.encoder[-2], torch.nn.LayerNorm)
    with pytest.raises(Exception, match="variant"):
        load_checkpoint(tmp_path / "a.safetensors", overrides=["variant=lab"])
    old = tiny().to_dict()
    del old["variant"]
    assert Config.from_dict(old).variant == "lab"


def test_score_network_trains_and_acts_alone_and_as_guide():
    cfg = tiny(variant="release", use_score_net=True, score_coef=1.0, seed_steps=100, steps=200, eval_every=0)
    trainer = Trainer(cfg).run()
    losses = [r["score_loss"] for r in trainer.history if r["kind"] == "episode" and "score_loss" in r]
    assert losses and all(np.isfinite(losses)) and losses[-1] > 0
    agent, obs = trainer.agent, trainer.env.reset()
    calls = []
    net = agent.wm.score_net.forward
    agent.wm.score_net.forward = lambda *a, **kw: (calls.append(1), net(*a, **kw))[1]
    action = agent.act(obs, t0=True, eval_mode=True, planner="score")
    assert action.shape == (1,) and len(calls) == cfg.num_levels - 1  # one network call per level
    calls.clear()
    agent.diffusion.score_guided = True
    result = agent.plan(obs, t0=True, trace=True)
    assert len(calls) == cfg.num_levels - 1
    # guided: x moves by the network's score, not the Monte-Carlo one the trace's weights give
    np.testing.assert_allclose(result.trace.score[-1],
                               agent.wm.score_net(agent.encode(obs)[None], torch.as_tensor(result.trace.x[-1])[None],
                                                  1)[0].detach().numpy(), rtol=1e-4, atol=1e-4)
