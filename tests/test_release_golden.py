"""Variant ``release`` against the authors' code itself: fixtures recorded from the release (commit
5ff5a06) by `scripts/make_release_fixtures.py`, replayed here with the same weights, inputs and fixed
noise patterns (`release_noise`). The weights come in through our importer of published checkpoints."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mbdpo_lab.release_checkpoint import build_agent, convert, infer_config, load_state_dict
from release_noise import fixed_noise

FIXTURES = Path(__file__).parent / "fixtures" / "release"
TOL = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def golden():
    return load_file(str(FIXTURES / "outputs.safetensors"))


def make_agent():
    sd = load_state_dict(FIXTURES / "mbdpo.pt")
    cfg, obs_dim, act_dim = infer_config(sd, "mbdpo", "reacher-easy")
    # the fixture's planner, batch and noise settings (scripts/make_release_fixtures.py, TINY)
    cfg = cfg.replace(num_levels=4, num_samples=16, num_elites=4, num_pi_trajs=3, score_samples=8, batch_size=4,
                      dropout=0.0, score_coef=1.0)
    agent = build_agent(sd, cfg, obs_dim, act_dim)
    agent.wm.energy_mean.fill_(0.2)
    agent.wm.energy_std.fill_(1.5)
    return agent, sd


def test_the_fixture_describes_a_release_model():
    agent, _ = make_agent()
    cfg = agent.cfg
    assert (cfg.variant, agent.obs_dim, agent.act_dim, cfg.latent_dim, cfg.mlp_dim, cfg.num_q, cfg.horizon) == (
        "release", 6, 2, 16, 32, 3, 3)
    # the encoder and dynamics end Linear -> LayerNorm -> SimNorm, as the release builds them
    assert isinstance(agent.wm.encoder[-2], torch.nn.LayerNorm) and isinstance(agent.wm.dynamics[-2], torch.nn.LayerNorm)


def test_every_network_gives_the_release_outputs(golden):
    agent, _ = make_agent()
    wm = agent.wm
    obs, act = golden["in_obs"], golden["in_act"]
    with torch.no_grad(), fixed_noise():
        z = wm.encode(obs)
        sample = wm.pi(z)
        score = wm.score_net(z[:1], golden["in_score_x"], 2)
        outputs = dict(z=z, next=wm.next(z, act), reward=wm.reward_logits(z, act), q_all=wm.q_logits(z, act),
                       pi_action=sample.action, pi_mean=sample.mean, pi_scaled_entropy=sample.scaled_entropy,
                       pi_entropy=-sample.log_prob, f=wm.energy_logit(z, act), score=score)
    for key, value in outputs.items():
        torch.testing.assert_close(value, golden[key], **TOL, msg=lambda m: f"{key}: {m}")


def test_the_monte_carlo_score_target_is_the_releases(golden):
    agent, _ = make_agent()
    with torch.no_grad(), fixed_noise():
        z0 = agent.wm.encode(golden["in_obs"][:1])
        x, tau, target = agent.score_target(z0)
    assert tau.tolist() == [int(golden["score_target_tau"])]
    torch.testing.assert_close(x[0], golden["score_target_x"], **TOL)
    torch.testing.assert_close(target[0], golden["score_target"], rtol=1e-4, atol=1e-3)  # targets are ~1/(1-abar) large


def test_one_update_has_the_releases_losses_gradients_and_energy_statistics(golden):
    agent, sd = make_agent()
    grads: dict[str, torch.Tensor] = {}

    def recorder(module_params):
        def step():
            grads.update({n: p.grad.detach().clone() for n, p in module_params if p.grad is not None})
        return step

    agent.optim.step = recorder(list(agent.wm.named_parameters()))
    agent.pi_optim.step = recorder([("pi_head." + n, p) for n, p in agent.wm.pi_head.named_parameters()])
    batch = dict(obs=golden["batch_obs"], action=golden["batch_action"], reward=golden["batch_reward"].squeeze(-1))
    with fixed_noise():
        losses = agent.update(batch)
    for ours, theirs in (("consistency_loss", "consistency_loss"), ("reward_loss", "reward_loss"),
                         ("value_loss", "value_loss"), ("energy_loss", "contrastive_loss"),
                         ("score_loss", "score_loss"), ("total_loss", "total_loss"), ("grad_norm", "grad_norm"),
                         ("pi_loss", "pi_loss"), ("q_scale", "pi_scale")):
        assert losses[ours] == pytest.approx(float(golden[f"loss_{theirs}"]), rel=1e-4, abs=1e-6), ours
    theirs = convert({k[len("grad."):]: v for k, v in golden.items() if k.startswith("grad.")}, agent.cfg)
    assert set(theirs) == set(grads), set(theirs) ^ set(grads)
    for name, g in theirs.items():
        torch.testing.assert_close(grads[name], g, rtol=1e-3, atol=1e-5, msg=lambda m: f"grad of {name}: {m}")
    torch.testing.assert_close(agent.wm.energy_mean.reshape(1), golden["contrastive_mean"], **TOL)
    torch.testing.assert_close(agent.wm.energy_std.reshape(1), golden["contrastive_std"], **TOL)


@pytest.mark.parametrize("guided", [False, True], ids=["monte-carlo-score", "score-guided"])
def test_one_plan_has_the_releases_candidates_values_and_action(golden, guided):
    agent, _ = make_agent()
    agent.cfg = agent.cfg.replace(score_guided=guided)
    agent.diffusion.score_guided = guided
    agent.prev_plan = golden["plan_prev_mean"].clone()
    # the release planned after the recorded update, with F's statistics as that update left them
    agent.wm.energy_mean.copy_(golden["contrastive_mean"].reshape(()))
    agent.wm.energy_std.copy_(golden["contrastive_std"].reshape(()))
    with fixed_noise():
        result = agent.plan(golden["in_obs"][0].numpy(), t0=False, trace=True)
    trace, key = result.trace, "guided_plan" if guided else "plan"
    torch.testing.assert_close(torch.as_tensor(trace.candidates), golden[f"{key}_candidates"], **TOL)
    torch.testing.assert_close(torch.as_tensor(trace.total_return), golden[f"{key}_values"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(result.plan, golden[f"{key}_x0"], **TOL)
    torch.testing.assert_close(result.action, golden[f"{key}_action"], **TOL)


def test_the_lab_variant_differs_where_the_docs_say(golden):
    """The golden tests can fail: the lab variant's TD target, entropy and energy loss give other numbers."""
    agent, _ = make_agent()
    lab = agent.cfg.replace(variant="lab")
    agent.cfg = lab
    batch = dict(obs=golden["batch_obs"], action=golden["batch_action"], reward=golden["batch_reward"].squeeze(-1))
    with fixed_noise():
        losses = agent.update(batch)
    assert losses["energy_loss"] != pytest.approx(float(golden["loss_contrastive_loss"]), rel=1e-3)
    assert losses["pi_loss"] != pytest.approx(float(golden["loss_pi_loss"]), rel=1e-3)
