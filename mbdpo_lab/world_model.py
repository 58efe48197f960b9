"""The latent world model: what MBDPO's networks predict.

encoder h(o) -> z (SimNorm), dynamics d(z, a) -> z', reward R(z, a) (two-hot logits), an ensemble
of Q heads with a Polyak target copy, a tanh-Gaussian policy prior pi(z), the energy head F(z, a)
(one logit; high F = looks like the data) and, optionally, a score network s(z, x_tau, tau).

A multi-task model (``task_action_dims``: one action size per task) learns a task embedding e (TD-MPC2's,
norm at most 1) that every network reads, as in the release: the encoder [o, e], the dynamics, reward, Q
and F [z, e, a], the policy prior [z, e]. Observations are zero-padded to the largest task's, actions to
the largest action, and the entries a task does not have are masked. The task rides along with the
latent: `encode` returns [z, e, mask] and `next` keeps it, so the planner, the losses and the analyses
carry it without being told the task; `latent` gives the z part.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import Config
from .nn import (EnsembleMLP, SimNorm, TwoHot, mish, mlp, randn_blocks, release_init, rows_apart,
                 sinusoidal_embedding, zero_last_layer, zero_last_weight)


@dataclass
class PolicySample:
    """One draw from the policy prior."""

    action: torch.Tensor  # tanh-squashed sample in [-1, 1]
    mean: torch.Tensor  # tanh of the Gaussian mean (deterministic action)
    log_prob: torch.Tensor  # log density of ``action`` (with the tanh correction), [B, 1]
    scaled_entropy: torch.Tensor  # the release's entropy term: -(pre-tanh Gaussian log density) x |A|, [B, 1]


class ScoreNet(nn.Module):
    """Learned score s(z, x_tau, tau) of a whole action sequence (H x |A|).

    ``score_output="score"`` (the release): the network's output is the score. ``"mean"``: it is the
    weighted mean Abar the score implies, s = (sqrt(abar) Abar - x) / (1 - abar), so its scale is that
    of an action at every level (the score's grows like 1 / (1 - abar), ~1400 at the paper's lowest level).
    """

    def __init__(self, cfg: Config, act_dim: int, task_dim: int = 0):
        super().__init__()
        self.embed_dim, self.output = cfg.tau_embed_dim, cfg.score_output
        seq = cfg.horizon * act_dim
        self.z_in = cfg.latent_dim + task_dim  # [z, e]: the task mask that rides with a multi-task latent is cut
        self.net = mlp(self.z_in + seq + cfg.tau_embed_dim, [cfg.mlp_dim, cfg.mlp_dim], seq)
        betas = np.linspace(cfg.beta_start, cfg.beta_end, cfg.num_levels)
        self.register_buffer("alpha_bar", torch.as_tensor(np.cumprod(1 - betas), dtype=torch.float32),
                             persistent=False)

    def raw(self, z: torch.Tensor, x: torch.Tensor, level: torch.Tensor | int, apart: bool = False) -> torch.Tensor:
        """The network's own output [B, H, A]: a score, or a mean (see the class docstring).
        ``apart``: the rows are episodes in lock-step, computed as they would be alone (`rows_apart`)."""
        level = torch.as_tensor(level, device=x.device).reshape(-1)
        emb = sinusoidal_embedding(level, self.embed_dim).expand(x.shape[0], -1)
        inputs = torch.cat([z[..., :self.z_in], x.flatten(1), emb], dim=-1)
        out = rows_apart(self.net, inputs[:, None])[:, 0] if apart else self.net(inputs)
        return out.view_as(x)

    def forward(self, z: torch.Tensor, x: torch.Tensor, level: torch.Tensor | int, apart: bool = False
                ) -> torch.Tensor:
        """z [B, L], x [B, H, A], level: one for the whole batch or one per row ([B]) -> score [B, H, A]."""
        out = self.raw(z, x, level, apart)
        if self.output == "score":
            return out
        abar = self.alpha_bar[torch.as_tensor(level, device=x.device).reshape(-1)].view(-1, 1, 1)
        return (abar.sqrt() * out - x) / (1 - abar)


class WorldModel(nn.Module):
    def __init__(self, cfg: Config, obs_dim: int, act_dim: int, task_action_dims: list[int] | None = None):
        super().__init__()
        self.cfg, self.obs_dim, self.act_dim = cfg, obs_dim, act_dim
        self.num_tasks = len(task_action_dims or [])
        E = cfg.task_dim if self.num_tasks else 0
        self.latent_dim, self.task_dim = cfg.latent_dim, E
        self.context_dim = E + act_dim if self.num_tasks else 0  # [e, action mask] after z
        za = cfg.latent_dim + E + act_dim
        hidden = [cfg.mlp_dim, cfg.mlp_dim]
        release = cfg.variant == "release"
        # the release normalises the last layer of the encoder and the dynamics before SimNorm
        self.encoder = mlp(obs_dim + E, [cfg.enc_dim] * max(cfg.num_enc_layers - 1, 1), cfg.latent_dim,
                           SimNorm(cfg.simnorm_dim), out_norm=release)
        self.dynamics = mlp(za, hidden, cfg.latent_dim, SimNorm(cfg.simnorm_dim), out_norm=release)
        self.reward_head = mlp(za, hidden, cfg.num_bins)
        self.pi_head = mlp(cfg.latent_dim + E, hidden, 2 * act_dim)
        self.q_heads = EnsembleMLP(cfg.num_q, za, hidden, cfg.num_bins, dropout=cfg.dropout)
        self.energy_head = mlp(za, hidden, 1)
        self.score_net = ScoreNet(cfg, act_dim, E) if cfg.use_score_net else None
        if self.num_tasks:
            if any(not 1 <= d <= act_dim for d in task_action_dims):
                raise ValueError(f"task action sizes {task_action_dims} must lie in [1, {act_dim}]")
            self.task_emb = nn.Embedding(self.num_tasks, E, max_norm=1.0)
            nn.init.uniform_(self.task_emb.weight, -0.02, 0.02)  # TD-MPC2's (and the release's) init
            masks = torch.zeros(self.num_tasks, act_dim)
            for i, d in enumerate(task_action_dims):
                masks[i, :d] = 1.0
            self.register_buffer("action_masks", masks)
        if release:
            release_init(self)
        for head in (self.reward_head, self.q_heads, self.energy_head):
            (zero_last_weight if release else zero_last_layer)(head)
        self.target_q_heads = copy.deepcopy(self.q_heads).requires_grad_(False)
        self.two_hot = TwoHot(cfg.num_bins, cfg.vmin, cfg.vmax)
        # Running statistics of F logits (lab: on data; release: on data and negatives together), which
        # standardise F in planning.
        self.register_buffer("energy_mean", torch.zeros(()))
        self.register_buffer("energy_std", torch.ones(()))

    # --- parameters ---------------------------------------------------------------------
    def num_params(self) -> int:
        """Trainable parameters (the target copy is not counted)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @property
    def device(self) -> torch.device:
        return self.energy_mean.device

    def train(self, mode: bool = True) -> "WorldModel":
        super().train(mode)
        self.target_q_heads.train(False)
        return self

    @torch.no_grad()
    def soft_update_target(self, tau: float) -> None:
        for p, tp in zip(self.q_heads.parameters(), self.target_q_heads.parameters()):
            tp.lerp_(p, tau)

    # --- tasks --------------------------------------------------------------------------
    @torch.no_grad()
    def add_task(self, act_dim: int, init_from: int) -> int:
        """A new task (fine-tuning): its embedding starts as task ``init_from``'s; returns its index."""
        if not 1 <= act_dim <= self.act_dim:
            raise ValueError(f"the new task has {act_dim} action entries; this model takes at most {self.act_dim}")
        old = self.task_emb
        self.task_emb = nn.Embedding(old.num_embeddings + 1, old.embedding_dim, max_norm=1.0).to(old.weight.device)
        self.task_emb.weight[:-1] = old.weight
        self.task_emb.weight[-1] = old.weight[init_from]
        mask = torch.zeros(1, self.act_dim, device=self.action_masks.device)
        mask[0, :act_dim] = 1.0
        self.action_masks = torch.cat([self.action_masks, mask])  # a registered buffer: stays one
        self.num_tasks += 1
        return self.num_tasks - 1

    def context(self, task: torch.Tensor | int) -> torch.Tensor:
        """What rides after z for task indices [...]: [e (task_dim), action mask (act_dim)]."""
        task = torch.as_tensor(task, device=self.device, dtype=torch.long)
        return torch.cat([self.task_emb(task), self.action_masks[task]], dim=-1)

    def latent(self, z: torch.Tensor) -> torch.Tensor:
        """The latent state proper (what SimNorm made), without a multi-task model's task context."""
        return z[..., :self.latent_dim]

    def action_mask(self, z: torch.Tensor) -> torch.Tensor | None:
        """The action mask that rides with a multi-task latent [..., A]; None for a single-task model."""
        return z[..., self.latent_dim + self.task_dim:] if self.num_tasks else None

    def head_input(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """[z, e, a] as the heads read it; a multi-task model zeroes the action entries its task lacks."""
        if not self.num_tasks:
            return torch.cat([z, a], dim=-1)
        cut = self.latent_dim + self.task_dim
        return torch.cat([z[..., :cut], a * z[..., cut:]], dim=-1)

    def with_context(self, z_next: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """A predicted latent [..., L] carries on z's task context."""
        return torch.cat([z_next, z[..., self.latent_dim:]], dim=-1) if self.num_tasks else z_next

    # --- predictions ----------------------------------------------------------------------
    def encode(self, obs: torch.Tensor, task: torch.Tensor | int | None = None, apart: bool = False
               ) -> torch.Tensor:
        """obs [..., O] -> z [..., L]; a multi-task model needs ``task`` (one index, or one per row of the
        last batch dimension, e.g. [B] for obs [H, B, O]) and returns [z, e, mask]. ``apart``: obs [B, N, O]
        are B episodes, each computed as it would be alone (`rows_apart`)."""
        encoder = (lambda x: rows_apart(self.encoder, x)) if apart else self.encoder
        if not self.num_tasks:
            return encoder(obs)
        if task is None:
            raise ValueError("a multi-task world model encodes an observation for a task: pass task=")
        ctx = self.context(task)
        ctx = ctx.expand(*obs.shape[:-1], ctx.shape[-1])
        return torch.cat([encoder(torch.cat([obs, ctx[..., :self.task_dim]], dim=-1)), ctx], dim=-1)

    def next(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """z [N, L], a [N, A] -> z' [N, L]; or [B, N, ...] for episodes in lock-step (`rows_apart`)."""
        return self.with_context(rows_apart(self.dynamics, self.head_input(z, a)), z)

    def reward_logits(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.reward_head(self.head_input(z, a))

    def reward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Scalar predicted reward [..., 1]."""
        return self.two_hot.decode(self.reward_logits(z, a)).unsqueeze(-1)

    def energy_logit(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """F(z, a), one logit [..., 1]; the implicit energy is -F."""
        return self.energy_head(self.head_input(z, a))

    def standardised_energy(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """(F - running mean) / running std, clipped to +-energy_clip: the planner's anchor term."""
        return self.standardise_energy(self.energy_logit(z, a))

    def standardise_energy(self, logit: torch.Tensor) -> torch.Tensor:
        f = (logit.float() - self.energy_mean) / self.energy_std
        return f.clamp(-self.cfg.energy_clip, self.cfg.energy_clip)

    def q_logits(self, z: torch.Tensor, a: torch.Tensor, heads: list[int] | None = None,
                 target: bool = False) -> torch.Tensor:
        """Q logits [K or len(heads), B, bins]."""
        net = self.target_q_heads if target else self.q_heads
        return net(self.head_input(z, a), heads)

    def q(self, z: torch.Tensor, a: torch.Tensor, reduce: str = "avg", target: bool = False,
          heads: list[int] | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Scalar Q [B, 1]: ``avg`` or ``min`` of two heads (drawn at random unless given)."""
        if heads is None:
            heads = self.draw_q_heads(generator)
        values = self.two_hot.decode(self.q_logits(z, a, heads, target))  # [2, B]
        out = values.mean(0) if reduce == "avg" else values.min(0).values
        return out.unsqueeze(-1)

    def draw_q_heads(self, generator: torch.Generator | None = None) -> list[int]:
        """Two distinct Q heads at random (from ``generator`` when given)."""
        device = generator.device if generator is not None else "cpu"
        return torch.randperm(self.cfg.num_q, generator=generator, device=device)[:2].tolist()

    def pi(self, z: torch.Tensor, generator: torch.Generator | list | None = None) -> PolicySample:
        """Tanh-squashed Gaussian prior with log-std bounded to [log_std_min, log_std_max].

        z [N, L], or [B, N, L] for B episodes in lock-step with ``generator`` a list of B (`randn_blocks`).
        A multi-task model masks the action entries the task lacks (mean, log-std and noise, as the release)."""
        mask = self.action_mask(z)
        mu, log_std = rows_apart(self.pi_head, z[..., :self.latent_dim + self.task_dim]).chunk(2, dim=-1)
        lo, hi = self.cfg.log_std_min, self.cfg.log_std_max
        log_std = lo + 0.5 * (hi - lo) * (torch.tanh(log_std) + 1)
        eps = randn_blocks(mu.shape, generator, device=mu.device, dtype=mu.dtype)
        if mask is not None:
            mu, log_std, eps = mu * mask, log_std * mask, eps * mask
        pre = mu + eps * log_std.exp()
        gaussian = (-0.5 * eps.pow(2) - log_std - 0.9189385175704956).sum(-1, keepdim=True)  # log N(eps); 0.5 log 2pi
        action = torch.tanh(pre)
        # change of variables for tanh: log|d tanh(u)/du| = log(1 - tanh(u)^2)
        log_prob = gaussian - torch.log(F.relu(1 - action.pow(2)) + 1e-6).sum(-1, keepdim=True)
        # TD-MPC2's scaled entropy, written as the release computes it: -log_prob x (|A| gaussian / log_prob),
        # i.e. -|A| x the pre-tanh log density (the ratio keeps its gradient, as there)
        size = mu.shape[-1] if mask is None else mask.sum(-1, keepdim=True)  # the task's own action size
        scaled = -log_prob * (gaussian * size / (log_prob + 1e-8))
        return PolicySample(action=action, mean=torch.tanh(mu), log_prob=log_prob, scaled_entropy=scaled)


class StackedHiddenLayers:
    """The two LayerNorm-Mish hidden blocks of several same-shaped MLPs that read one input, run together.

    One matmul replaces the members' first layers and one batched matmul their second layers, with
    LayerNorm and Mish applied once to the stacked activations. Members are given as tensors
    (w1 [hidden, in], b1, g1, beta1, w2 [hidden, hidden], b2, g2, beta2), copied once: build a new
    instance after the weights change. Planning only (no gradients).
    """

    def __init__(self, members: list[tuple[torch.Tensor, ...]], ln_eps: float):
        with torch.no_grad():
            cols = list(zip(*members))
            self.w1, self.b1 = torch.cat(cols[0]), torch.cat(cols[1])  # [M * hidden, in]
            self.g1, self.beta1 = torch.stack(cols[2]), torch.stack(cols[3])  # [M, hidden]
            self.w2 = torch.stack([w.t() for w in cols[4]])  # [M, hidden, hidden]
            self.b2, self.g2, self.beta2 = (torch.stack(c).unsqueeze(1) for c in cols[5:8])  # [M, 1, hidden]
        self.m, self.hidden, self.ln_eps = len(members), members[0][0].shape[0], ln_eps

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, N, in] (B episodes, each computed as alone: `rows_apart`) -> last hidden activations of
        every member [M, B, N, hidden]."""
        b, n, h = x.shape[0], x.shape[1], self.hidden
        x = torch.baddbmm(self.b1, x, self.w1.t().expand(b, *self.w1.t().shape)).view(b, n, self.m, h)
        x = mish(torch.addcmul(self.beta1, F.layer_norm(x, (h,), eps=self.ln_eps), self.g1), episodes=b)
        x = torch.matmul(x.permute(2, 0, 1, 3), self.w2[:, None]).add_(self.b2[:, None])
        return mish(torch.addcmul(self.beta2[:, None], F.layer_norm(x, (h,), eps=self.ln_eps), self.g2[:, None]),
                    episodes=b)


class FusedStepHeads:
    """Dynamics, reward and energy MLPs, which all read [z, a], run as one stack (`StackedHiddenLayers`).

    Same numbers as `WorldModel.next / reward_logits / energy_logit` up to float rounding (a test
    checks it). Built from the current weights; build a new one after the weights change.
    """

    def __init__(self, wm: WorldModel):
        self.wm = wm
        nets = (wm.dynamics, wm.reward_head, wm.energy_head)
        for net in nets:  # [NormedLinear, NormedLinear, Linear, (SimNorm)] with blocks [Linear, LayerNorm, Mish]
            blocks = list(net[:2])
            if not all(len(b) == 3 and isinstance(b[1], nn.LayerNorm) for b in blocks):
                raise ValueError("FusedStepHeads expects two LayerNorm-Mish hidden blocks without dropout")
        self.hidden = StackedHiddenLayers(
            [(n[0][0].weight, n[0][0].bias, n[0][1].weight, n[0][1].bias,
              n[1][0].weight, n[1][0].bias, n[1][1].weight, n[1][1].bias) for n in nets], nets[0][0][1].eps)
        self.outs = [net[2:] for net in nets]  # the dynamics' tail: Linear, (LayerNorm,) SimNorm

    def __call__(self, z: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(next latent, reward logits, F logit) for z [N, L], a [N, A], or [B, N, ...] for B episodes."""
        rows = z.dim() == 2
        za = self.wm.head_input(z, a)
        x = self.hidden(za[None] if rows else za)
        out = tuple(rows_apart(tail, x[i]) for i, tail in enumerate(self.outs))
        out = (self.wm.with_context(out[0], z[None] if rows else z),) + out[1:]
        return tuple(o[0] for o in out) if rows else out


class FusedQPair:
    """Q_avg from two chosen heads of the ensemble, both heads in one stack (planning, no dropout)."""

    def __init__(self, wm: WorldModel, heads: list[int]):
        q = wm.q_heads
        if len(q.linears) != 2:
            raise ValueError("FusedQPair expects two hidden layers")
        lin, norm = q.linears, q.norms
        self.hidden = StackedHiddenLayers(
            [(lin[0].weight[h].t(), lin[0].bias[h, 0], norm[0].weight[h, 0], norm[0].bias[h, 0],
              lin[1].weight[h].t(), lin[1].bias[h, 0], norm[1].weight[h, 0], norm[1].bias[h, 0])
             for h in heads], 1e-5)
        with torch.no_grad():
            self.w_out, self.b_out = q.out.weight[heads], q.out.bias[heads]  # list indexing copies
        self.two_hot, self.wm = wm.two_hot, wm

    def __call__(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Mean of the two heads' decoded Q values: [N] for z [N, L], [B, N] for [B, N, L] (B episodes)."""
        rows = z.dim() == 2
        za = self.wm.head_input(z, a)
        hidden = self.hidden(za[None] if rows else za)  # [2, B, N, h]
        logits = torch.matmul(hidden, self.w_out[:, None]).add_(self.b_out[:, None])
        q = self.two_hot.decode(logits).mean(0)
        return q[0] if rows else q
