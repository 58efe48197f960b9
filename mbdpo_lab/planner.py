"""MBDPO's planner: model-based diffusion over a short action sequence.

Read top to bottom: the noise schedule, one reverse step (`DiffusionPlanner.reverse_step`), the loop
over levels (`DiffusionPlanner.plan`), and the energy-shaped return it maximises (`WorldModelReturn`).
Two comparison actors search the same return: `MPPIPlanner` (TD-MPC2-style) and `PolicyActor`.

The planner only needs a *return model* (`ReturnModel`): anything that scores a batch of action
sequences. The world model is one (`WorldModelReturn`); the toy landscape in `mbdpo_lab.toy` is
another, so both run exactly this code.

Teaching note: with the Monte-Carlo score s = (sqrt(abar_tau) Abar - x) / (1 - abar_tau), the update
x <- (x + (1 - abar_tau) s) / sqrt(alpha_tau) collapses to x_{tau-1} = sqrt(abar_{tau-1}) Abar: an
MPPI-like re-weighting whose sampling spread is fixed by the schedule. `DenoiseTrace` records both
sides so a test (and the denoising widget) can show the identity.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field, fields
from typing import Protocol

import numpy as np
import torch
from torch.profiler import record_function as phase  # named phases for `mbdpo-lab bench`

from .config import Config
from .nn import randn_blocks
from .world_model import FusedQPair, FusedStepHeads, WorldModel


# --- what the planner searches ---------------------------------------------------------------

@dataclass
class Evaluation:
    """Scores of N candidate sequences (all [N] tensors)."""

    total: torch.Tensor  # J(A) = model_return + eta * energy: what is maximised
    model_return: torch.Tensor  # discounted predicted rewards + terminal value
    energy: torch.Tensor  # discounted sum of standardised, clipped F (0 where there is no anchor)


class ReturnModel(Protocol):
    """Anything the planner can search: scores action sequences in [-1, 1]^(H x A)."""

    horizon: int
    action_dim: int

    def evaluate(self, actions: torch.Tensor) -> Evaluation:
        """actions [N, H, A] -> Evaluation with [N] tensors."""

    def prior_candidates(self, n: int, generator: torch.Generator | None) -> torch.Tensor | None:
        """Up to n sequences proposed by a prior (the policy prior), or None."""


class BatchReturnModel(Protocol):
    """What the planners search internally: B episodes' returns at once, each with its own generator.

    A single `ReturnModel` is a batch of one (`OneEpisode`); `EpisodeBatchReturn` plans B episodes in
    lock-step (evaluation), giving each the numbers it would get alone.
    """

    horizon: int
    action_dim: int
    generators: list  # one torch.Generator (or None) per episode

    def evaluate(self, actions: torch.Tensor) -> Evaluation:
        """actions [B, N, H, A] -> Evaluation with [B, N] tensors."""

    def prior_candidates(self, n: int) -> torch.Tensor | None:
        """[B, n, H, A] prior sequences (each episode's from its own generator), or None."""


class WorldModelReturn:
    """The energy-shaped model return J(A) from latent z0:

    J(A) = sum_t gamma^t [r(z_t, a_t) + eta * clip(standardised F(z_t, a_t))] + gamma^H Q_avg(z_H, pi(z_H)).

    ``redraw_heads=False`` (variant lab): the two Q heads of Q_avg are drawn once per decision, so
    every level scores with the same function and the policy-prior candidates (drawn once) need
    scoring only once. ``True`` (the release): two heads are drawn at every `evaluate`.
    """

    def __init__(self, wm: WorldModel, z0: torch.Tensor, eta: float, gamma: float,
                 generator: torch.Generator | None = None, bf16: bool = False, redraw_heads: bool = False,
                 step_heads: FusedStepHeads | None = None):
        # one latent [L] for every candidate, or one per candidate [N, L] (batched score targets)
        self.wm, self.z0, self.eta, self.gamma = wm, z0.reshape(-1, z0.shape[-1]), float(eta), float(gamma)
        self.horizon, self.action_dim = wm.cfg.horizon, wm.act_dim
        self.generator = generator
        self.redraw_heads = redraw_heads
        self.bf16 = bf16
        # the weights stay fixed while this decision is planned: stack them once
        self.step_heads = step_heads or FusedStepHeads(wm)
        self._q_pairs: dict[tuple[int, ...], FusedQPair] = {}
        self.heads = wm.draw_q_heads(generator)

    @property
    def heads(self) -> list[int]:
        """The two Q heads of the terminal value."""
        return self._heads

    @heads.setter
    def heads(self, heads: list[int]) -> None:
        self._heads = list(heads)
        key = tuple(self._heads)
        if key not in self._q_pairs:
            self._q_pairs[key] = FusedQPair(self.wm, self._heads)
        self.q_pair = self._q_pairs[key]

    def rollout(self, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Imagine sequences [N, H, A] through the dynamics; per-step rewards, energies, latents."""
        out = _imagine(self, self.z0.expand(actions.shape[0], -1)[None], actions[None], self.generator,
                       lambda z, a: self.q_pair(z, a))
        return {k: v[0] for k, v in out.items()}

    def evaluate(self, actions: torch.Tensor) -> Evaluation:
        if self.redraw_heads:
            self.heads = self.wm.draw_q_heads(self.generator)
        return _evaluation(self.rollout(actions), self.eta, self.gamma)

    @torch.no_grad()
    def learned_score(self, x: torch.Tensor, tau: int) -> torch.Tensor:
        """The score network's estimate s(z0, x, tau) [H, A] (planner=score, score_guided)."""
        return _learned_score(self.wm, self.z0[:1], x.unsqueeze(0), tau)[0]

    @torch.no_grad()
    def prior_candidates(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        if n <= 0:
            return None
        return _prior_rollouts(self, self.z0.expand(n, -1)[None], generator)[0]


class EpisodeBatchReturn:
    """The return models of B episodes planned in lock-step: one stacked rollout of all their candidates,
    while each episode keeps its own generator and Q heads, so it gets exactly what it would get alone."""

    def __init__(self, models: list[WorldModelReturn]):
        first = models[0]
        if len({m.gamma for m in models}) > 1:
            raise ValueError("episodes planned in one lock-step batch share a discount; plan tasks with "
                             "different discounts in separate batches")
        self.models, self.wm, self.eta, self.gamma = models, first.wm, first.eta, first.gamma
        self.horizon, self.action_dim, self.bf16 = first.horizon, first.action_dim, first.bf16
        self.step_heads = first.step_heads
        self.generators = [m.generator for m in models]
        self.z0 = torch.cat([m.z0 for m in models])  # [B, L]

    def episode(self, b: int) -> WorldModelReturn:
        return self.models[b]

    def evaluate(self, actions: torch.Tensor) -> Evaluation:
        for m in self.models:
            if m.redraw_heads:
                m.heads = self.wm.draw_q_heads(m.generator)
        z = self.z0[:, None].expand(-1, actions.shape[1], -1)
        return _evaluation(_imagine(self, z, actions, self.generators, self._terminal), self.eta, self.gamma)

    def _terminal(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Q_avg [B, N], each episode with its own pair of heads (episodes sharing a pair in one call)."""
        out = torch.empty(z.shape[:2], device=z.device)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, m in enumerate(self.models):
            groups.setdefault(tuple(sorted(m.heads)), []).append(i)
        for rows in groups.values():
            idx = torch.as_tensor(rows, device=z.device)
            out[idx] = self.models[rows[0]].q_pair(z[idx], a[idx]).float()
        return out

    @torch.no_grad()
    def prior_candidates(self, n: int) -> torch.Tensor | None:
        if n <= 0:
            return None
        return _prior_rollouts(self, self.z0[:, None].expand(-1, n, -1), self.generators)

    @torch.no_grad()
    def learned_score(self, x: torch.Tensor, tau: int) -> torch.Tensor:
        return _learned_score(self.wm, self.z0, x, tau)


class OneEpisode:
    """A single-episode `ReturnModel` (the toy landscape, a test's model) seen as a batch of one."""

    def __init__(self, model: ReturnModel, generator: torch.Generator | None):
        self.model, self.generators = model, [generator]
        self.horizon, self.action_dim = model.horizon, model.action_dim
        self.eta = float(getattr(model, "eta", 0.0))

    def episode(self, b: int) -> ReturnModel:
        return self.model

    def evaluate(self, actions: torch.Tensor) -> Evaluation:
        ev = self.model.evaluate(actions[0])
        return Evaluation(ev.total[None], ev.model_return[None], ev.energy[None])

    def prior_candidates(self, n: int) -> torch.Tensor | None:
        prior = self.model.prior_candidates(n, self.generators[0])
        return None if prior is None else prior[None]

    def learned_score(self, x: torch.Tensor, tau: int) -> torch.Tensor:
        return self.model.learned_score(x[0], tau)[None]


def _autocast(ret, device: torch.device):
    if not ret.bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@torch.no_grad()
def _imagine(ret, z: torch.Tensor, actions: torch.Tensor, generator, terminal_q) -> dict[str, torch.Tensor]:
    """Roll B episodes' rows z [B, N, L] under actions [B, N, H, A]: latents, rewards, standardised
    energies and the terminal value ``terminal_q(z_H, pi(z_H))`` ([B, N]); ``generator`` (one, or one
    per episode) draws the policy's noise."""
    wm = ret.wm
    latents, reward_logits, energy_logits = [z], [], []
    with _autocast(ret, z.device):
        for t in range(ret.horizon):
            with phase("rollout"):  # dynamics, reward and energy in one fused pass
                z, r_logits, f_logit = ret.step_heads(z, actions[:, :, t])
            reward_logits.append(r_logits)
            energy_logits.append(f_logit)
            latents.append(z)
        with phase("heads"):  # decoded once for all steps
            rewards = wm.two_hot.decode(torch.stack(reward_logits, 2)).float()
            energies = wm.standardise_energy(torch.cat(energy_logits, 2)).float()
            terminal = terminal_q(z, wm.pi(z, generator).action).float()
    return dict(latents=torch.stack(latents, 2).float(), rewards=rewards, energies=energies,
                terminal_value=terminal)


def _evaluation(out: dict[str, torch.Tensor], eta: float, gamma: float) -> Evaluation:
    horizon = out["rewards"].shape[-1]
    disc = gamma ** torch.arange(horizon, device=out["rewards"].device, dtype=torch.float32)
    model_return = (out["rewards"] * disc).sum(-1) + gamma ** horizon * out["terminal_value"]
    energy = (out["energies"] * disc).sum(-1)
    return Evaluation(total=model_return + eta * energy, model_return=model_return, energy=energy)


def _prior_rollouts(ret, z: torch.Tensor, generator) -> torch.Tensor:
    """[B, N, H, A] sequences of the policy prior rolled through the dynamics from rows z [B, N, L]."""
    actions = []
    with _autocast(ret, z.device):
        for _ in range(ret.horizon):
            a = ret.wm.pi(z, generator).action
            actions.append(a.float())
            z = ret.wm.next(z, a)
    return torch.stack(actions, 2)


def _learned_score(wm: WorldModel, z0: torch.Tensor, x: torch.Tensor, tau: int) -> torch.Tensor:
    if wm.score_net is None:
        raise ValueError("this model has no score network (use_score_net=false)")
    return wm.score_net(z0, x, tau, apart=True)


def predicted_return(imagined: dict[str, np.ndarray], gamma: float) -> float:
    """The model return of one imagined plan: sum_t gamma^t r_t + gamma^H Q(z_H, pi(z_H)) (no energy)."""
    rewards = np.asarray(imagined["rewards"], np.float64)
    disc = gamma ** np.arange(len(rewards))
    return float(rewards @ disc + gamma ** len(rewards) * float(imagined["terminal_value"]))


def discounted_energy(imagined: dict[str, np.ndarray], gamma: float) -> float:
    """The energy term of one imagined plan, before eta: sum_t gamma^t clip(standardised F_t)."""
    energies = np.asarray(imagined["energies"], np.float64)
    return float(energies @ gamma ** np.arange(len(energies)))


# --- the record of one decision ------------------------------------------------------------

@dataclass
class DenoiseTrace:
    """Everything one diffusion decision computed, level by level (numpy, level axis first).

    Row k holds noise level ``levels[k]`` (levels run N-1 down to 1). Widgets read this record and
    never re-run the planner. Shapes: L levels, N candidates, E elites, H horizon, A action dims.
    """

    levels: np.ndarray  # [L] noise level tau of each row
    alpha_bar: np.ndarray  # [N_levels] cumulative product of alphas, indexed by tau
    spread: np.ndarray  # [L] candidate std around x/sqrt(abar): sqrt((1 - abar)/abar)
    warm_start: np.ndarray  # [H, A] shifted previous plan the search started from
    x: np.ndarray  # [L, H, A] noisy mean x_tau entering each level
    candidates: np.ndarray  # [L, N, H, A] sampled (and policy-prior) sequences
    is_prior: np.ndarray  # [N] True for policy-prior candidates
    total_return: np.ndarray  # [L, N] J = model_return + eta * energy
    model_return: np.ndarray  # [L, N]
    energy: np.ndarray  # [L, N] discounted standardised-F term (before eta)
    weights: np.ndarray  # [L, N] softmax weights (0 outside the elites)
    elite_idx: np.ndarray  # [L, E] indices of the elites
    weighted_mean: np.ndarray  # [L, H, A] Abar
    score: np.ndarray  # [L, H, A] Monte-Carlo score estimate
    x_next: np.ndarray  # [L, H, A] x_{tau-1} after the update
    plan: np.ndarray  # [H, A] final plan clip(x_0)
    eta: float
    temperature: float
    imagined: dict[str, np.ndarray] = field(default_factory=dict)  # rollout of the final plan

    def level_index(self, tau: int) -> int:
        return int(np.nonzero(self.levels == tau)[0][0])

    def effective_sample_size(self) -> np.ndarray:
        """[L] 1 / sum w^2 of the elite weights: how many candidates really shape Abar."""
        return 1.0 / np.square(self.weights).sum(-1)

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {f.name: np.asarray(getattr(self, f.name)) for f in fields(self) if f.name != "imagined"}
        out.update({f"imagined_{k}": v for k, v in self.imagined.items()})
        return out


@dataclass
class PlanResult:
    plan: torch.Tensor  # [H, A] the sequence kept as the next warm start
    action: torch.Tensor  # [A] first action (before exploration noise)
    trace: DenoiseTrace | None = None


# --- the diffusion planner -------------------------------------------------------------------

@dataclass
class StepResult:
    """One level for B episodes (batch axis first)."""

    candidates: torch.Tensor  # [B, N, H, A]
    evaluation: Evaluation  # [B, N]
    weights: torch.Tensor  # [B, N], zero outside elites
    elite_idx: torch.Tensor  # [B, E]
    weighted_mean: torch.Tensor  # [B, H, A]
    score: torch.Tensor
    x_next: torch.Tensor


def _as_batch(model, generator: torch.Generator | None):
    """A batch model as it is; a single-episode `ReturnModel` as a batch of one."""
    return model if hasattr(model, "generators") else OneEpisode(model, generator)


def _elite_mean(weights: torch.Tensor, candidates: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """sum_e w_e A_e per episode: weights [B, E], candidates [B, N, H, A], idx [B, E] -> [B, H, A]."""
    elites = torch.stack([c[i] for c, i in zip(candidates, idx)])
    return torch.einsum("be,beha->bha", weights, elites)


class DiffusionPlanner:
    """Reverse diffusion over A in [-1, 1]^(H x A) with a Monte-Carlo score from model returns.

    ``release=True`` follows the authors' code where it differs from the lab variant: every level
    draws a full set of candidates and overwrites the first ``num_pi_trajs`` with fresh policy-prior
    rollouts, scores them in one call (so the Q heads are redrawn per level), replaces NaN returns by
    0, and standardises with the unbiased std, falling back to 1 when it is below 1e-4.
    ``score_guided=True`` moves x with the model's learned score instead of the Monte-Carlo one.

    `plan` makes one decision; `plan_batch` makes one for each of B episodes in lock-step (every
    tensor gets a leading episode axis, every random draw comes from that episode's generator).
    """

    def __init__(self, num_samples: int = 512, num_levels: int = 20, num_elites: int = 64,
                 num_pi_trajs: int = 24, temperature: float = 0.5, beta_start: float = 1e-4,
                 beta_end: float = 1e-2, release: bool = False, score_guided: bool = False):
        self.num_samples, self.num_levels, self.num_elites = num_samples, num_levels, num_elites
        self.num_pi_trajs, self.temperature = num_pi_trajs, temperature
        self.release, self.score_guided = release, score_guided
        betas = np.linspace(beta_start, beta_end, num_levels)
        self.alpha = 1.0 - betas
        self.alpha_bar = np.cumprod(self.alpha)

    @classmethod
    def from_config(cls, cfg: Config) -> "DiffusionPlanner":
        return cls(cfg.num_samples, cfg.num_levels, cfg.num_elites, cfg.num_pi_trajs, cfg.temperature,
                   cfg.beta_start, cfg.beta_end, release=cfg.variant == "release", score_guided=cfg.score_guided)

    def spread(self, tau: int) -> float:
        """Std of candidates around x / sqrt(abar_tau) at level tau."""
        abar = self.alpha_bar[tau]
        return math.sqrt((1 - abar) / abar)

    def _candidates(self, x: torch.Tensor, tau: int, model: BatchReturnModel, prior: torch.Tensor | None,
                    prior_eval: Evaluation | None) -> tuple[torch.Tensor, Evaluation]:
        """This level's candidates [B, N, H, A] (policy-prior ones first) and their scores [B, N]."""
        n_prior = 0 if prior is None else prior.shape[1]
        n_draw = self.num_samples if self.release else self.num_samples - n_prior
        with phase("candidates"):
            eps = randn_blocks((x.shape[0], n_draw, *x.shape[1:]), model.generators, device=x.device, dtype=x.dtype)
            sampled = (x[:, None] / math.sqrt(self.alpha_bar[tau]) + self.spread(tau) * eps).clamp(-1, 1)
        if self.release:  # the release draws all, overwrites the first ones, scores all in one call
            if prior is not None:
                sampled[:, :n_prior] = prior
            ev = model.evaluate(sampled)
            return sampled, Evaluation(*(v.nan_to_num(0.0) for v in (ev.total, ev.model_return, ev.energy)))
        ev = model.evaluate(sampled)
        if prior is None:
            return sampled, ev
        return torch.cat([prior, sampled], 1), Evaluation(*(torch.cat([a, b], 1) for a, b in zip(
            (prior_eval.total, prior_eval.model_return, prior_eval.energy), (ev.total, ev.model_return, ev.energy))))

    def _standardise(self, total: torch.Tensor) -> torch.Tensor:
        """Per episode (rows of [B, N])."""
        mean = total.mean(-1, keepdim=True)
        if self.release:  # (one candidate has no std: the release would give NaN there, we use 1)
            std = total.std(-1, keepdim=True) if total.shape[-1] > 1 else torch.ones_like(mean)
            return (total - mean) / torch.where(std >= 1e-4, std, torch.ones_like(std))
        return (total - mean) / (total.std(-1, unbiased=False, keepdim=True) + 1e-8)

    def reverse_step(self, x: torch.Tensor, tau: int, model: BatchReturnModel, prior: torch.Tensor | None,
                     prior_eval: Evaluation | None) -> StepResult:
        """One level for x [B, H, A]: sample around x/sqrt(abar), score, re-weight the elites, move x to tau-1."""
        abar, alpha = float(self.alpha_bar[tau]), float(self.alpha[tau])
        candidates, ev = self._candidates(x, tau, model, prior, prior_eval)
        with phase("weighting"):
            standardised = self._standardise(ev.total)
            elite_vals, elite_idx = torch.topk(standardised, self.num_elites, dim=-1)
            logits = elite_vals / self.temperature
            elite_w = torch.softmax(logits - logits.amax(-1, keepdim=True) if self.release else logits, dim=-1)
            weights = torch.zeros_like(standardised).scatter_(-1, elite_idx, elite_w)
            weighted_mean = _elite_mean(elite_w, candidates, elite_idx)
            if self.release:  # the release's expression, with its 1e-8
                score = (-x + math.sqrt(abar) * weighted_mean) / (1.0 - abar + 1e-8)
            else:
                score = (math.sqrt(abar) * weighted_mean - x) / (1 - abar)
            if self.score_guided:
                score = model.learned_score(x, tau)
            x_next = (x + (1 - abar) * score) / math.sqrt(alpha)
        return StepResult(candidates, ev, weights, elite_idx, weighted_mean, score, x_next)

    @torch.no_grad()
    def plan(self, model: ReturnModel | BatchReturnModel, warm_start: torch.Tensor,
             generator: torch.Generator | None = None, trace: bool = False) -> PlanResult:
        """One decision from warm_start [H, A] (``generator`` feeds a single-episode model's draws)."""
        return self.plan_batch(_as_batch(model, generator), warm_start[None], trace=trace)[0]

    @torch.no_grad()
    def plan_batch(self, model: BatchReturnModel, warm_starts: torch.Tensor, trace: bool = False) -> list[PlanResult]:
        """Denoise each episode's x from sqrt(abar_T) * warm_start [B, H, A] down to level 0, in lock-step;
        ``trace`` records every level (of a batch of one)."""
        top = self.num_levels - 1
        x = math.sqrt(self.alpha_bar[top]) * warm_starts
        n_prior = min(self.num_pi_trajs, self.num_samples)
        prior = prior_eval = None
        if n_prior > 0 and not self.release:  # lab: one set of prior rollouts, scored once
            prior = model.prior_candidates(n_prior)
            prior_eval = model.evaluate(prior) if prior is not None else None
        rows: list[dict[str, torch.Tensor]] = []
        for tau in range(top, 0, -1):
            if n_prior > 0 and self.release:  # the release: fresh rollouts at every level
                prior = model.prior_candidates(n_prior)
            step = self.reverse_step(x, tau, model, prior, prior_eval)
            if trace:
                rows.append(dict(x=x[0], candidates=step.candidates[0], total_return=step.evaluation.total[0],
                                 model_return=step.evaluation.model_return[0], energy=step.evaluation.energy[0],
                                 weights=step.weights[0], elite_idx=step.elite_idx[0],
                                 weighted_mean=step.weighted_mean[0], score=step.score[0], x_next=step.x_next[0]))
            x = step.x_next
        plans = x.clamp(-1, 1)
        results = [PlanResult(plan=p, action=p[0]) for p in plans]
        if trace:
            results[0].trace = self._make_trace(rows, warm_starts[0], plans[0], model.episode(0), n_prior)
        return results

    def _make_trace(self, rows, warm_start, plan, model, n_prior) -> DenoiseTrace:
        def stack(key):
            return torch.stack([r[key] for r in rows]).float().cpu().numpy()

        levels = np.arange(self.num_levels - 1, 0, -1)
        is_prior = np.zeros(self.num_samples, dtype=bool)
        is_prior[:n_prior] = True
        imagined = {}
        if hasattr(model, "rollout"):
            imagined = {k: v[0].float().cpu().numpy() for k, v in model.rollout(plan[None]).items()}
        return DenoiseTrace(
            levels=levels, alpha_bar=self.alpha_bar.copy(),
            spread=np.array([self.spread(int(t)) for t in levels]),
            warm_start=warm_start.float().cpu().numpy(), x=stack("x"), candidates=stack("candidates"),
            is_prior=is_prior, total_return=stack("total_return"), model_return=stack("model_return"),
            energy=stack("energy"), weights=stack("weights"),
            elite_idx=torch.stack([r["elite_idx"] for r in rows]).cpu().numpy(),
            weighted_mean=stack("weighted_mean"), score=stack("score"), x_next=stack("x_next"),
            plan=plan.float().cpu().numpy(), eta=float(getattr(model, "eta", 0.0)),
            temperature=self.temperature, imagined=imagined)


class ScoreOnlyPlanner(DiffusionPlanner):
    """The amortised policy: the same reverse diffusion moved by the score network alone, one network
    call per level and no candidate rollouts (the release's score-only inference)."""

    @torch.no_grad()
    def plan_batch(self, model: BatchReturnModel, warm_starts: torch.Tensor, trace: bool = False) -> list[PlanResult]:
        x = math.sqrt(self.alpha_bar[self.num_levels - 1]) * warm_starts
        for tau in range(self.num_levels - 1, 0, -1):
            score = model.learned_score(x, tau)
            x = (x + (1 - float(self.alpha_bar[tau])) * score) / math.sqrt(float(self.alpha[tau]))
        return [PlanResult(plan=p, action=p[0]) for p in x.clamp(-1, 1)]


def shift_warm_start(previous: torch.Tensor | None, horizon: int, action_dim: int,
                     device: torch.device | str) -> torch.Tensor:
    """Previous plan shifted one step with a zero appended; zeros at an episode's start."""
    warm = torch.zeros(horizon, action_dim, device=device)
    if previous is not None:
        warm[:-1] = previous[1:]
    return warm


# --- comparison actors on the same return --------------------------------------------------

class MPPIPlanner:
    """TD-MPC2's MPPI: iterate a Gaussian over sequences towards the exp-weighted elites."""

    def __init__(self, num_samples: int = 512, iterations: int = 6, num_elites: int = 64,
                 num_pi_trajs: int = 24, temperature: float = 0.5, min_std: float = 0.05,
                 max_std: float = 2.0):
        self.num_samples, self.iterations, self.num_elites = num_samples, iterations, num_elites
        self.num_pi_trajs, self.temperature = num_pi_trajs, temperature
        self.min_std, self.max_std = min_std, max_std

    @classmethod
    def from_config(cls, cfg: Config) -> "MPPIPlanner":
        return cls(cfg.num_samples, cfg.mppi_iterations, cfg.num_elites, cfg.num_pi_trajs,
                   cfg.temperature, cfg.mppi_min_std, cfg.mppi_max_std)

    @torch.no_grad()
    def plan(self, model: ReturnModel | BatchReturnModel, warm_start: torch.Tensor,
             generator: torch.Generator | None = None, trace: bool = False) -> PlanResult:
        return self.plan_batch(_as_batch(model, generator), warm_start[None])[0]

    @torch.no_grad()
    def plan_batch(self, model: BatchReturnModel, warm_starts: torch.Tensor, trace: bool = False) -> list[PlanResult]:
        """One decision per episode, in lock-step (warm_starts [B, H, A])."""
        mean = warm_starts.clone()
        std = torch.full_like(mean, self.max_std)
        n_prior = min(self.num_pi_trajs, self.num_samples)
        prior = model.prior_candidates(n_prior) if n_prior > 0 else None
        prior_eval = model.evaluate(prior) if prior is not None else None
        for _ in range(self.iterations):
            eps = randn_blocks((mean.shape[0], self.num_samples - n_prior, *mean.shape[1:]), model.generators,
                               device=mean.device, dtype=mean.dtype)
            sampled = (mean[:, None] + std[:, None] * eps).clamp(-1, 1)
            values = model.evaluate(sampled).total
            candidates = sampled
            if prior is not None:
                candidates = torch.cat([prior, sampled], 1)
                values = torch.cat([prior_eval.total, values], 1)
            elite_vals, idx = torch.topk(values, self.num_elites, dim=-1)
            elites = torch.stack([c[i] for c, i in zip(candidates, idx)])  # [B, E, H, A]
            w = torch.exp(self.temperature * (elite_vals - elite_vals.amax(-1, keepdim=True)))
            w = w / w.sum(-1, keepdim=True)
            mean = torch.einsum("be,beha->bha", w, elites)
            spread = torch.einsum("be,beha->bha", w, (elites - mean[:, None]) ** 2)
            std = torch.sqrt(spread).clamp(self.min_std, self.max_std)
        choices = [torch.multinomial(wb, 1, generator=g)[0] for wb, g in zip(w, model.generators)]
        return [PlanResult(plan=m, action=e[c][0]) for m, e, c in zip(mean, elites, choices)]


class PolicyActor:
    """Acts with the policy prior alone (its mean in evaluation, a sample in training)."""

    def __init__(self, wm: WorldModel):
        self.wm = wm

    @torch.no_grad()
    def act(self, z0: torch.Tensor, eval_mode: bool, generator: torch.Generator | list | None = None) -> torch.Tensor:
        """z0 [L] -> [A], or z0 [B, L] with one generator per episode -> [B, A]."""
        sample = self.wm.pi(z0.reshape(-1, 1, z0.shape[-1]), generator)  # each episode's row apart
        action = (sample.mean if eval_mode else sample.action)[:, 0]
        return action if z0.dim() > 1 else action[0]
