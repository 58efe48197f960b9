"""Every configuration that `validate()` accepts can act and update; what cannot run is refused.

Hypothesis draws configurations of the tiny sizes, edge values included (one candidate, elites =
samples, prior candidates = samples - 1, horizon 1, batch 1, two levels, two bins ...), and each one
acts with every planner, in training and evaluation mode, and runs one update.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mbdpo_lab.agent import MBDPO
from mbdpo_lab.config import ConfigError, make_config
from mbdpo_lab.trainer import Trainer


@st.composite
def tiny_configs(draw):
    simnorm = draw(st.sampled_from([1, 2, 4, 8]))
    num_samples = draw(st.integers(1, 24))
    horizon = draw(st.integers(1, 4))
    use_score_net = draw(st.booleans())
    variant = draw(st.sampled_from(["lab", "release"]))
    episode_length = horizon + 1 + draw(st.integers(0, 3))
    values = dict(
        variant=variant, score_guided=use_score_net and draw(st.booleans()), score_samples=draw(st.integers(2, 5)),
        enc_dim=draw(st.integers(1, 24)), mlp_dim=draw(st.integers(1, 24)),
        num_enc_layers=draw(st.integers(1, 3)), simnorm_dim=simnorm,
        latent_dim=simnorm * draw(st.integers(1, 4)), num_q=draw(st.integers(2, 4)),
        num_bins=draw(st.integers(2, 11)), dropout=draw(st.sampled_from([0.0, 0.01, 0.5])),
        horizon=horizon, batch_size=draw(st.integers(1, 6)), rho=draw(st.sampled_from([0.0, 0.5, 1.0])),
        num_samples=num_samples, num_elites=draw(st.integers(1, num_samples)),
        num_pi_trajs=draw(st.integers(0, num_samples - 1)), num_levels=draw(st.integers(2, 5)),
        temperature=draw(st.sampled_from([1e-3, 0.5, 10.0])), eta=draw(st.sampled_from([0.0, 0.01, 100.0])),
        energy_negatives=draw(st.sampled_from(["smooth", "hardest"])),
        mppi_iterations=draw(st.integers(1, 3)), planner_bf16=draw(st.booleans()),
        use_score_net=use_score_net, score_coef=draw(st.sampled_from([0.0, 1.0])) if use_score_net else 0.0,
        tau_embed_dim=draw(st.sampled_from([2, 8])), episode_length=episode_length,
        # the release samples completed episodes only, so its seed phase covers one
        seed_steps=episode_length if variant == "release" else horizon, device="cpu",
    )
    return make_config("tiny", **values), draw(st.integers(1, 6)), draw(st.integers(1, 3))


# The configuration of the report that opened this test (prior candidates = samples - 1 now; = samples is refused).
EDGE = dict(num_samples=32, num_pi_trajs=31, num_elites=8, device="cpu")


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(tiny_configs())
@example((make_config("tiny", **EDGE), 5, 2))
@example((make_config("tiny", variant="lab", num_samples=1, num_elites=1, num_pi_trajs=0, horizon=1, batch_size=1,
                      num_levels=2, num_bins=2, episode_length=2, seed_steps=1, device="cpu"), 1, 1))
@example((make_config("tiny", variant="release", num_samples=1, num_elites=1, num_pi_trajs=0, horizon=1,
                      batch_size=1, num_levels=2, num_bins=2, episode_length=2, seed_steps=2, use_score_net=True,
                      score_coef=1.0, score_guided=True, score_samples=2, device="cpu"), 1, 1))
def test_every_valid_config_acts_and_updates(drawn):
    cfg, obs_dim, act_dim = drawn
    torch.manual_seed(0)
    agent = MBDPO(cfg, obs_dim, act_dim)
    obs = np.random.default_rng(0).standard_normal(obs_dim).astype(np.float32)
    for planner in ("diffusion", "mppi", "policy") + (("score",) if cfg.use_score_net else ()):
        for t0, eval_mode in ((True, False), (False, True), (False, False)):
            action = agent.act(obs, t0=t0, eval_mode=eval_mode, planner=planner)
            assert action.shape == (act_dim,) and np.all(np.isfinite(action)), (planner, action)
            assert np.all(np.abs(action) <= 1)
    H, B = cfg.horizon, cfg.batch_size
    batch = dict(obs=torch.randn(H + 1, B, obs_dim), action=torch.rand(H, B, act_dim) * 2 - 1,
                 reward=torch.rand(H, B))
    losses = agent.update(batch)
    bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
    assert not bad, bad
    assert agent.act(obs, t0=True, eval_mode=True).shape == (act_dim,)


@pytest.mark.parametrize("overrides", [
    dict(variant="lab", num_samples=2, num_pi_trajs=1, num_elites=2, horizon=1, episode_length=2, seed_steps=1,
         batch_size=1),
    dict(variant="lab", num_samples=4, num_pi_trajs=0, num_elites=1, horizon=4, episode_length=5, seed_steps=4,
         batch_size=3),
    dict(variant="release", num_samples=2, num_pi_trajs=1, num_elites=2, horizon=1, episode_length=2, seed_steps=2,
         batch_size=1, buffer_size=4),
])
def test_edge_configs_train_through_the_seed_phase(overrides):
    """The whole loop (seed phase, first updates, acting) with the smallest runs validate() allows."""
    cfg = make_config("tiny", task="pendulum-swingup", steps=3 * overrides["episode_length"], eval_every=0,
                      device="cpu", **overrides)
    trainer = Trainer(cfg).run()
    assert trainer.state == "finished" and trainer.agent_step == cfg.steps
    updates = [r for r in trainer.history if r["kind"] == "episode" and "energy_loss" in r]
    assert updates and all(math.isfinite(r["energy_loss"]) for r in updates)


@pytest.mark.parametrize("overrides, names", [
    (dict(num_samples=32, num_pi_trajs=32, num_elites=8), "num_pi_trajs"),
    (dict(num_samples=8, num_elites=9), "num_elites"),
    (dict(num_bins=1), "num_bins"),
    (dict(tau_embed_dim=7), "tau_embed_dim"),
    (dict(seed_steps=2, horizon=3), "seed_steps"),
    (dict(mppi_min_std=1.0, mppi_max_std=0.5), "mppi_min_std"),
    (dict(log_std_min=2.0, log_std_max=-2.0), "log_std_min"),
    (dict(discount=0.0), "discount"),
    (dict(video_size=63), "video_size"),
    (dict(dropout=1.0), "dropout"),
    (dict(energy_stat_momentum=1.0), "energy_stat_momentum"),
    (dict(variant="release", seed_steps=50, episode_length=100), "seed phase"),
    (dict(variant="paper"), "variant"),
    (dict(planner="score"), "use_score_net"),
    (dict(score_guided=True), "use_score_net"),
    (dict(use_score_net=True, score_samples=1), "score_samples"),
])
def test_configs_that_cannot_run_are_refused_with_what_to_change(overrides, names):
    with pytest.raises(ConfigError, match=names):
        make_config("tiny", **overrides)
