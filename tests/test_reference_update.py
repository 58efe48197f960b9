"""One MBDPO update as shipped equals a plain, literal implementation of the update in docs/algorithm.md (fp32, fixed seed).

The reference loops over time steps and Q heads, scores positives and negatives of the energy head
in separate calls and uses the textbook (unfused) Adam. The shipped update batches all of that; any
optimisation of it must keep this test green. Random draws happen in the same order in both.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mbdpo_lab.agent import MBDPO
from mbdpo_lab.config import make_config


def reference_update(agent: MBDPO, optim, pi_optim, batch) -> dict[str, float]:
    cfg, wm = agent.cfg, agent.wm
    obs, action, reward = batch["obs"], batch["action"], batch["reward"]
    H, B = action.shape[:2]
    K = cfg.num_q
    rho = [cfg.rho ** t for t in range(H)]
    wm.train()

    def q_values(net, z, a):  # every head, decoded to scalars: [K, N]
        return wm.two_hot.decode(net(torch.cat([z, a], -1)))

    with torch.no_grad():
        next_z = wm.encoder(obs[1:])
        next_a = wm.pi(next_z).action
        heads = torch.randperm(K)[:2].tolist()
        target_q = q_values(wm.target_q_heads, next_z.flatten(0, 1), next_a.flatten(0, 1))[heads].min(0).values
        td = (reward.flatten() + agent.gamma * target_q).view(H, B)

    zs = [wm.encoder(obs[0])]
    consistency = 0.0
    for t in range(H):
        zs.append(wm.dynamics(torch.cat([zs[t], action[t]], -1)))
        consistency = consistency + rho[t] * ((zs[t + 1] - next_z[t]) ** 2).mean()
    reward_loss, value_loss = 0.0, 0.0
    for t in range(H):
        za = torch.cat([zs[t], action[t]], -1)
        reward_loss = reward_loss + rho[t] * wm.two_hot.cross_entropy(wm.reward_head(za), reward[t]).mean()
        q_logits = wm.q_heads(za)
        for k in range(K):
            value_loss = value_loss + rho[t] * wm.two_hot.cross_entropy(q_logits[k], td[t]).mean()

    # energy: rows in time-major order; candidates = (prior sample, noisy data, uniform)
    z_rows = torch.cat(zs[:-1]).detach()
    a_rows = action.flatten(0, 1)
    w_rows = torch.tensor(rho).repeat_interleave(B)
    with torch.no_grad():
        candidates = [wm.pi(z_rows).action,
                      (a_rows + cfg.energy_noise_std * torch.randn_like(a_rows)).clamp(-1, 1),
                      torch.rand_like(a_rows) * 2 - 1]
    pos = wm.energy_head(torch.cat([z_rows, a_rows], -1)).squeeze(-1)
    if cfg.energy_negatives == "hardest":  # the candidate with the highest current F
        with torch.no_grad():
            scores = torch.stack([wm.energy_head(torch.cat([z_rows, c], -1)).squeeze(-1) for c in candidates])
            hardest = scores.argmax(0)
            negatives = torch.stack([candidates[int(hardest[i])][i] for i in range(len(a_rows))])
        neg_term = F.softplus(wm.energy_head(torch.cat([z_rows, negatives], -1)).squeeze(-1))
    else:  # smooth maximum of the three: log of the mean of exp F
        scores = torch.stack([wm.energy_head(torch.cat([z_rows, c], -1)).squeeze(-1) for c in candidates])
        neg_term = F.softplus(torch.log(torch.exp(scores).mean(0)))
    energy_loss = ((F.softplus(-pos) + neg_term) * w_rows).sum() / w_rows.sum()

    total = (cfg.consistency_coef * consistency / H + cfg.reward_coef * reward_loss / H
             + cfg.value_coef * value_loss / (H * K) + cfg.energy_coef * energy_loss)
    optim.zero_grad()
    total.backward()
    torch.nn.utils.clip_grad_norm_([p for g in optim.param_groups for p in g["params"]], cfg.grad_clip_norm)
    optim.step()
    with torch.no_grad():
        m = cfg.energy_stat_momentum
        wm.energy_mean.copy_(m * wm.energy_mean + (1 - m) * pos.mean())
        wm.energy_std.copy_(m * wm.energy_std + (1 - m) * pos.std().clamp(min=1e-3))

    # policy prior: maximise Q_avg / S + entropy bonus on the detached latents
    z_all = torch.stack(zs).detach()
    sample = wm.pi(z_all.flatten(0, 1))
    heads = torch.randperm(K)[:2].tolist()
    q = q_values(wm.q_heads, z_all.flatten(0, 1), sample.action)[heads].mean(0).view(H + 1, B)
    agent.q_scale.update(q[0])
    entropy = -sample.log_prob.view(H + 1, B)
    objective = q / agent.q_scale.value + cfg.entropy_coef * entropy
    pi_loss = -sum(cfg.rho ** t * objective[t].mean() for t in range(H + 1)) / (H + 1)
    pi_optim.zero_grad()
    pi_loss.backward()
    torch.nn.utils.clip_grad_norm_(wm.pi_head.parameters(), cfg.grad_clip_norm)
    pi_optim.step()
    with torch.no_grad():
        for p, tp in zip(wm.q_heads.parameters(), wm.target_q_heads.parameters()):
            tp.copy_(tp + cfg.tau * (p - tp))
    wm.eval()
    return dict(consistency_loss=float(consistency.detach() / H), energy_loss=float(energy_loss.detach()),
                pi_loss=float(pi_loss.detach()))


def _agent(cfg) -> MBDPO:
    """Same seed, same weights; output layers not zero, so no gradient is pure rounding noise
    (Adam would blow such noise up to a full step of size lr and the comparison would be meaningless)."""
    torch.manual_seed(0)
    agent = MBDPO(cfg, obs_dim=5, act_dim=2)
    for layer in (agent.wm.reward_head[-1], agent.wm.energy_head[-1], agent.wm.q_heads.out):
        torch.nn.init.normal_(layer.weight, std=0.5)
        torch.nn.init.normal_(layer.bias, std=0.5)
    agent.wm.target_q_heads.load_state_dict(agent.wm.q_heads.state_dict())
    return agent


@pytest.mark.parametrize("energy_negatives", ["smooth", "hardest"])
def test_shipped_update_matches_reference(monkeypatch, energy_negatives):
    import mbdpo_lab.nn as nets

    cfg = make_config("tiny", variant="lab", device="cpu", num_q=4, dropout=0.0, batch_size=16, energy_negatives=energy_negatives)
    shipped, plain = (_agent(cfg) for _ in range(2))
    wm = plain.wm
    enc = list(wm.encoder.parameters())
    enc_ids, pi_ids = {id(p) for p in enc}, {id(p) for p in wm.pi_head.parameters()}
    rest = [p for p in wm.parameters() if p.requires_grad and id(p) not in enc_ids | pi_ids]
    optim = torch.optim.Adam([{"params": enc, "lr": cfg.lr * cfg.enc_lr_scale}, {"params": rest, "lr": cfg.lr}],
                             lr=cfg.lr, foreach=False)
    pi_optim = torch.optim.Adam(wm.pi_head.parameters(), lr=cfg.lr, eps=1e-5, foreach=False)

    rng = np.random.default_rng(0)
    H, B = cfg.horizon, cfg.batch_size
    for step in range(3):
        batch = dict(obs=torch.as_tensor(rng.normal(size=(H + 1, B, 5)), dtype=torch.float32),
                     action=torch.as_tensor(rng.uniform(-1, 1, size=(H, B, 2)), dtype=torch.float32),
                     reward=torch.as_tensor(rng.uniform(0, 1, size=(H, B)), dtype=torch.float32))
        torch.manual_seed(100 + step)
        with monkeypatch.context() as m:  # the shipped update with its one-exp Mish on every block
            m.setattr(nets, "_MIN_NUMEL", 0)
            got = shipped.update(batch)
        torch.manual_seed(100 + step)
        with monkeypatch.context() as m:  # the reference with ATen's Mish
            m.setattr(nets, "ONE_EXP_MISH", False)
            expected = reference_update(plain, optim, pi_optim, batch)
        for key, value in expected.items():
            assert abs(got[key] - value) <= 1e-5 * max(1.0, abs(value)), (step, key, got[key], value)
    for (name, p), q in zip(shipped.wm.state_dict().items(), plain.wm.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=lambda m: f"{name}: {m}")
