"""The planner as shipped equals a plain, literal implementation of the planner in docs/algorithm.md (fp32, fixed seed).

The reference below is written for clarity, not speed: every Q head is evaluated and then two are
picked, each candidate's return is a plain loop, and the level update uses the score formula
literally. Any optimisation of the shipped planner must keep this test green.
"""
import math

import numpy as np
import torch

from mbdpo_lab.agent import MBDPO
from mbdpo_lab.config import make_config


def reference_plan(agent: MBDPO, obs: np.ndarray, warm: torch.Tensor, seed: int):
    cfg, wm = agent.cfg, agent.wm
    gen = torch.Generator().manual_seed(seed)
    gamma = cfg.gamma
    z0 = wm.encode(torch.as_tensor(obs).reshape(1, -1))
    heads = torch.randperm(cfg.num_q, generator=gen)[:2].tolist()
    betas = np.linspace(cfg.beta_start, cfg.beta_end, cfg.num_levels)
    alphas = 1 - betas
    abar = np.cumprod(alphas)

    def q_avg(z, a):
        logits = wm.q_heads(torch.cat([z, a], -1))  # all heads
        values = wm.two_hot.decode(logits)  # [K, N]
        return values[heads].mean(0)

    def returns(actions):
        n = actions.shape[0]
        z = z0.repeat(n, 1)
        model_return = torch.zeros(n)
        energy = torch.zeros(n)
        for t in range(cfg.horizon):
            a = actions[:, t]
            model_return += gamma ** t * wm.two_hot.decode(wm.reward_logits(z, a))
            f = (wm.energy_logit(z, a).squeeze(-1) - wm.energy_mean) / wm.energy_std
            energy += gamma ** t * f.clamp(-cfg.energy_clip, cfg.energy_clip)
            z = wm.next(z, a)
        model_return += gamma ** cfg.horizon * q_avg(z, wm.pi(z, gen).action)
        return model_return + cfg.eta * energy

    # policy-prior candidates, drawn once
    z = z0.repeat(cfg.num_pi_trajs, 1)
    prior = []
    for _ in range(cfg.horizon):
        a = wm.pi(z, gen).action
        prior.append(a)
        z = wm.next(z, a)
    prior = torch.stack(prior, 1)
    prior_j = returns(prior)

    x = math.sqrt(abar[-1]) * warm
    for tau in range(cfg.num_levels - 1, 0, -1):
        eps = torch.randn((cfg.num_samples - cfg.num_pi_trajs, cfg.horizon, agent.act_dim), generator=gen)
        sampled = torch.clamp(x / math.sqrt(abar[tau]) + math.sqrt((1 - abar[tau]) / abar[tau]) * eps, -1, 1)
        cands = torch.cat([prior, sampled])
        j = torch.cat([prior_j, returns(sampled)])
        js = (j - j.mean()) / (j.std(unbiased=False) + 1e-8)
        order = torch.argsort(js, descending=True)[: cfg.num_elites]
        w = torch.softmax(js[order] / cfg.temperature, 0)
        a_bar = (w[:, None, None] * cands[order]).sum(0)
        score = (math.sqrt(abar[tau]) * a_bar - x) / (1 - abar[tau])
        x = (x + (1 - abar[tau]) * score) / math.sqrt(alphas[tau])
    return x.clamp(-1, 1)


@torch.no_grad()
def test_shipped_planner_matches_reference(monkeypatch):
    import mbdpo_lab.nn as nets

    cfg = make_config("tiny", variant="lab", device="cpu", num_samples=64, num_levels=6, num_elites=8, num_pi_trajs=4,
                      eta=0.3, num_q=4)
    torch.manual_seed(0)
    agent = MBDPO(cfg, obs_dim=5, act_dim=2)
    for head in (agent.wm.reward_head, agent.wm.energy_head):
        torch.nn.init.normal_(head[-1].weight, std=0.5)  # non-trivial reward and energy
    torch.nn.init.normal_(agent.wm.q_heads.out.weight, std=0.5)
    agent.wm.energy_mean.fill_(0.2)
    agent.wm.energy_std.fill_(0.7)
    obs = np.linspace(-1, 1, 5).astype(np.float32)
    warm = torch.tensor([[0.3, -0.2], [0.1, 0.5], [0.0, 0.0]])
    for seed in (0, 1, 2):
        with monkeypatch.context() as m:  # the reference with ATen's Mish, the planner with the one-exp one
            m.setattr(nets, "ONE_EXP_MISH", False)
            expected = reference_plan(agent, obs, warm, seed)
        monkeypatch.setattr(nets, "_MIN_NUMEL", 0)
        agent.prev_plan = torch.cat([torch.zeros(1, 2), warm[:2]])  # shifted one step, this is `warm`
        got = agent.plan(obs, t0=False, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(got.plan, expected, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_fused_step_heads_equal_the_separate_networks():
    from mbdpo_lab.world_model import FusedStepHeads

    cfg = make_config("tiny", variant="lab", device="cpu")
    torch.manual_seed(3)
    wm = MBDPO(cfg, obs_dim=5, act_dim=2).wm
    for layer in (wm.reward_head[-1], wm.energy_head[-1]):
        torch.nn.init.normal_(layer.weight, std=0.5)
    for norm in (wm.dynamics[0][1], wm.reward_head[1][1], wm.energy_head[0][1]):
        torch.nn.init.normal_(norm.weight)  # non-trivial LayerNorm affines, different per head
        torch.nn.init.normal_(norm.bias)
    z = wm.encode(torch.randn(64, 5))
    a = torch.rand(64, 2) * 2 - 1
    nxt, reward_logits, f = FusedStepHeads(wm)(z, a)
    torch.testing.assert_close(nxt, wm.next(z, a), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(reward_logits, wm.reward_logits(z, a), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(f, wm.energy_logit(z, a), rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_fused_q_pair_equals_the_two_chosen_heads():
    from mbdpo_lab.world_model import FusedQPair

    cfg = make_config("tiny", variant="lab", device="cpu", num_q=5)
    torch.manual_seed(4)
    wm = MBDPO(cfg, obs_dim=5, act_dim=2).wm.eval()
    torch.nn.init.normal_(wm.q_heads.out.weight, std=0.5)
    for norm in wm.q_heads.norms:
        torch.nn.init.normal_(norm.weight)
        torch.nn.init.normal_(norm.bias)
    z = wm.encode(torch.randn(64, 5))
    a = torch.rand(64, 2) * 2 - 1
    for heads in ([3, 1], [0, 4]):
        expected = wm.two_hot.decode(wm.q_heads(torch.cat([z, a], -1)))[heads].mean(0)  # all heads, then pick
        torch.testing.assert_close(FusedQPair(wm, heads)(z, a), expected, rtol=1e-5, atol=1e-5)
