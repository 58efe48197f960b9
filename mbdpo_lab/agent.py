"""The MBDPO agent: acting with the diffusion planner and one update of all losses.

`MBDPO.update` reads top to bottom: encode and unroll, consistency / reward / value losses, the
energy (contrastive) loss, one world-model step, then the policy prior's own step and the target
Q update. `energy_loss` pairs every positive latent z_t with *its own* action a_t (both flattened
in the same time-major order); a test checks that pairing.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .config import Config
from .errors import ConfigError, ObservationError, TrainingDiverged
from .planner import (DiffusionPlanner, EpisodeBatchReturn, MPPIPlanner, PlanResult, PolicyActor, ScoreOnlyPlanner,
                      WorldModelReturn, shift_warm_start)
from .world_model import FusedStepHeads, WorldModel

PLANNERS = ("diffusion", "mppi", "policy", "score")


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` -> the current CUDA device when there is one, else the CPU; anything else is passed to
    torch. A CUDA device always comes back with its index (a bare ``cuda`` means whichever GPU is the
    calling thread's current one, which differs between threads)."""
    if str(name) == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; use device=cpu or auto")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r} requested but this machine has {torch.cuda.device_count()} CUDA "
                          "device(s); use cuda:0 or auto")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _floats(**values: torch.Tensor | float) -> dict[str, float]:
    """Scalars as Python floats, with one device-to-host transfer for all tensors (one GPU sync, not one each)."""
    keys = [k for k, v in values.items() if isinstance(v, torch.Tensor)]
    out = {k: float(v) for k, v in values.items() if not isinstance(v, torch.Tensor)}
    if keys:
        stacked = torch.stack([values[k].detach().float().reshape(()) for k in keys])
        out.update(zip(keys, stacked.cpu().tolist()))
    return {k: out[k] for k in values}


class RunningScale:
    """TD-MPC2's value scale S: running (Polyak) 5-95 percentile range of Q, at least 1."""

    def __init__(self, tau: float, device: torch.device):
        self.tau = tau
        self.value = torch.ones((), device=device)

    def update(self, q: torch.Tensor) -> None:
        q = q.detach().float().flatten()
        rng = torch.quantile(q, 0.95) - torch.quantile(q, 0.05)
        self.value.lerp_(rng.clamp(min=1.0), self.tau)


@dataclass
class EnergyLossOut:
    loss: torch.Tensor  # scalar, rho-weighted binary logistic loss
    pos_logits: torch.Tensor  # [M]
    neg_logits: torch.Tensor  # [M]
    negatives: torch.Tensor  # [M, A] the hardest negative chosen per positive


@dataclass(frozen=True)
class TaskSpec:
    """One task of a multi-task agent: its name, sizes and episode length (which sets its discount)."""

    name: str
    obs_dim: int
    act_dim: int
    episode_length: int = 500


class MBDPO:
    """World model + energy + planner; `act` for the environment, `update` for learning.

    ``tasks`` makes it multi-task (`WorldModel`): obs_dim and act_dim are then the largest task's, every
    call that sees an observation names its task, and batches carry ``task`` [B]."""

    def __init__(self, cfg: Config, obs_dim: int, act_dim: int, device: str | torch.device | None = None,
                 tasks: list[TaskSpec] | None = None):
        self.cfg = cfg
        self.device = resolve_device(cfg.device) if device is None else torch.device(device)
        self.tasks = [t if isinstance(t, TaskSpec) else TaskSpec(**t) for t in (tasks or [])]
        if self.tasks and (obs_dim, act_dim) != (max(t.obs_dim for t in self.tasks),
                                                 max(t.act_dim for t in self.tasks)):
            raise ConfigError(f"a multi-task agent's obs_dim and act_dim are its largest task's "
                              f"({max(t.obs_dim for t in self.tasks)}, {max(t.act_dim for t in self.tasks)}), "
                              f"got {obs_dim} and {act_dim}")
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.wm = WorldModel(cfg, obs_dim, act_dim, [t.act_dim for t in self.tasks] or None).to(self.device)
        self.task_gammas = torch.tensor([cfg.gamma_for(t.episode_length) for t in self.tasks], device=self.device)
        self.bound_task: int | None = None  # a multi-task agent fine-tuned on one task acts for it by default
        self._build_optimizers()
        self.q_scale = RunningScale(cfg.tau, self.device)
        self.diffusion = DiffusionPlanner.from_config(cfg)
        self.mppi = MPPIPlanner.from_config(cfg)
        self.score_only = ScoreOnlyPlanner.from_config(cfg)
        self.policy_actor = PolicyActor(self.wm)
        self.prev_plan: torch.Tensor | None = None
        self.last_plan_ms = 0.0
        self.wm.eval()

    def _build_optimizers(self) -> None:
        cfg = self.cfg
        enc_params = list(self.wm.encoder.parameters())
        enc_ids = {id(p) for p in enc_params}
        pi_ids = {id(p) for p in self.wm.pi_head.parameters()}
        rest = [p for p in self.wm.parameters() if p.requires_grad and id(p) not in enc_ids | pi_ids]
        # The fused kernel does the same arithmetic as the per-tensor loop in one pass (~2x faster here).
        fused = self.device.type in ("cpu", "cuda")
        self.optim = torch.optim.Adam([
            {"params": enc_params, "lr": cfg.lr * cfg.enc_lr_scale},
            {"params": rest, "lr": cfg.lr},
        ], lr=cfg.lr, fused=fused)
        self.pi_optim = torch.optim.Adam(self.wm.pi_head.parameters(), lr=cfg.lr, eps=1e-5, fused=fused)

    def add_task(self, spec: TaskSpec, init_from: int | str) -> int:
        """Fine-tuning on a task the model has not seen, as the release does it: a new task embedding
        initialised from ``init_from``'s, fresh optimisers; the agent then acts for it (`bound_task`)."""
        if not self.tasks:
            raise ConfigError("only a multi-task (pretrained) agent takes a new task")
        if spec.name in [t.name for t in self.tasks]:
            raise ConfigError(f"{spec.name} is already one of this agent's tasks; train it with --resume instead")
        if spec.obs_dim > self.obs_dim or spec.act_dim > self.act_dim:
            raise ConfigError(f"{spec.name} has {spec.obs_dim} observations and {spec.act_dim} actions; this model "
                              f"takes at most {self.obs_dim} and {self.act_dim}")
        source = self.task_index(init_from)
        index = self.wm.add_task(spec.act_dim, source)
        self.tasks.append(spec)
        self.task_gammas = torch.cat([self.task_gammas,
                                      torch.tensor([self.cfg.gamma_for(spec.episode_length)], device=self.device)])
        self._build_optimizers()
        self.bound_task = index
        return index

    @property
    def gamma(self) -> float:
        return self.cfg.gamma

    def task_index(self, task: int | str | None) -> int | None:
        """A task of a multi-task agent by index or name (None for a single-task agent)."""
        if not self.tasks:
            if task is not None:
                raise ConfigError(f"this agent is single-task ({self.cfg.task}); do not pass a task")
            return None
        names = [t.name for t in self.tasks]
        if task is None and self.bound_task is not None:
            return self.bound_task
        if task is None:
            raise ConfigError(f"a multi-task agent acts for one of its tasks: pass task= ({', '.join(names)})")
        if isinstance(task, str) and task in names:
            return names.index(task)
        if isinstance(task, (int, np.integer)) and 0 <= task < len(names):
            return int(task)
        raise ConfigError(f"task {task!r} is not one of this multi-task agent's: {', '.join(names)}")

    def gamma_of(self, task: int | None) -> float:
        return self.gamma if task is None else float(self.task_gammas[task])

    def action_size(self, task: int | str | None = None) -> int:
        """The action entries the environment of ``task`` takes (a multi-task model's are padded)."""
        return self.act_dim if not self.tasks else self.tasks[self.task_index(task)].act_dim

    # --- acting ----------------------------------------------------------------------------
    def return_model(self, z0: torch.Tensor, eta: float | None = None,
                     generator: torch.Generator | None = None, step_heads: FusedStepHeads | None = None,
                     task: int | None = None) -> WorldModelReturn:
        return WorldModelReturn(self.wm, z0, self.cfg.eta if eta is None else eta, self.gamma_of(task),
                                generator=generator, bf16=self.cfg.planner_bf16,
                                redraw_heads=self.cfg.variant == "release", step_heads=step_heads)

    @torch.no_grad()
    def encode(self, obs: np.ndarray | torch.Tensor, task: int | str | None = None) -> torch.Tensor:
        """One observation [obs_dim] -> latent [L]."""
        return self.encode_batch([obs], None if task is None else [task])[0]

    @torch.no_grad()
    def encode_observations(self, obs: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Recorded observations [..., O] of the agent's task -> latents [..., L] in one pass (the analyses'
        way in); a multi-task agent pads them and encodes them for its bound task."""
        x = torch.as_tensor(np.asarray(obs, np.float32) if not isinstance(obs, torch.Tensor) else obs,
                            device=self.device, dtype=torch.float32)
        if not self.tasks:
            return self.wm.encode(x)
        task = self.task_index(None)
        pad = self.obs_dim - x.shape[-1]
        if pad:
            x = torch.cat([x, x.new_zeros(*x.shape[:-1], pad)], -1)
        return self.wm.encode(x, task)

    @torch.no_grad()
    def encode_batch(self, observations, tasks: list | None = None) -> torch.Tensor:
        """Observations (one per episode) -> latents [B, L]; each checked at the boundary."""
        idx = [self.task_index(t) for t in (tasks or [None] * len(observations))]
        arr = np.stack([self.check_observation(o, t) for o, t in zip(observations, idx)])
        task = torch.as_tensor(idx, device=self.device)[:, None] if self.tasks else None
        z = self.wm.encode(torch.as_tensor(arr, device=self.device)[:, None], task, apart=True)[:, 0]  # each as alone
        if not bool(torch.isfinite(z).all()):
            if not all(bool(torch.isfinite(p).all()) for p in self.wm.encoder.parameters()):
                raise TrainingDiverged("the encoder's weights are not finite (a diverged run?); load an earlier "
                                       "checkpoint")
            i = int(np.abs(arr).max(0).argmax())
            raise ObservationError(f"observation too large to encode: entry [{i}] = {np.abs(arr).max(0)[i]:.3g} "
                                   "overflows the encoder; check the environment (a simulation that blew up?)")
        return z

    def check_observation(self, obs: np.ndarray | torch.Tensor, task: int | None = None) -> np.ndarray:
        """The observation as float32 [obs_dim]; a wrong size or a non-finite entry is refused here, at the
        boundary, so nothing non-finite reaches the planner's warm start. A multi-task agent's (``task``
        given) is its task's size, zero-padded here to the largest."""
        if isinstance(obs, torch.Tensor):
            obs = obs.detach().cpu().numpy()
        arr = np.asarray(obs, np.float32)
        if task is None and self.tasks:
            task = self.task_index(None)  # the bound task; refused when there is none
        size, name = (self.obs_dim, self.cfg.task) if task is None else (self.tasks[task].obs_dim, self.tasks[task].name)
        if arr.size != size:
            raise ObservationError(f"observation has {arr.size} entries (shape {arr.shape}), this agent takes "
                                   f"{size} (task {name}); pass the task's flat observation")
        arr = arr.reshape(-1)
        if arr.size < self.obs_dim:
            arr = np.concatenate([arr, np.zeros(self.obs_dim - arr.size, np.float32)])
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            shown = ", ".join(f"[{i}]={arr[i]}" for i in bad[:5]) + (" ..." if bad.size > 5 else "")
            raise ObservationError(f"observation has {bad.size} non-finite entr{'y' if bad.size == 1 else 'ies'}: "
                                   f"{shown}; check the environment (a simulation that blew up?)")
        return arr

    @torch.no_grad()
    def plan(self, obs: np.ndarray, t0: bool, planner: str | None = None, trace: bool = False,
             generator: torch.Generator | None = None, update_warm_start: bool = True,
             planner_obj: DiffusionPlanner | None = None, eta: float | None = None,
             task: int | str | None = None) -> PlanResult:
        """Plan from an observation; ``t0`` marks an episode start (warm start from zeros)."""
        result = self.plan_batch([obs], [None if t0 else self.prev_plan], [generator], planner=planner,
                                 trace=trace, planner_obj=planner_obj, eta=eta,
                                 tasks=None if task is None else [task])[0]
        if update_warm_start:
            self.prev_plan = result.plan
        return result

    @torch.no_grad()
    def plan_batch(self, observations, previous_plans: list[torch.Tensor | None], generators: list,
                   planner: str | None = None, trace: bool = False, planner_obj: DiffusionPlanner | None = None,
                   eta: float | None = None, tasks: list | None = None) -> list[PlanResult]:
        """One decision for each of B episodes in lock-step: one batched search, each episode with its own
        previous plan (None at its start) and generator, so each gets what `plan` would give it alone.
        Leaves ``prev_plan`` alone. A multi-task agent takes each episode's task."""
        kind = planner or self.cfg.planner
        if kind not in PLANNERS:
            raise ConfigError(f"planner must be one of {', '.join(PLANNERS)}, got {kind!r}")
        z0 = self.encode_batch(observations, tasks)
        idx = [self.task_index(t) for t in (tasks or [None] * len(observations))]
        warm = torch.stack([shift_warm_start(p, self.cfg.horizon, self.act_dim, self.device) for p in previous_plans])
        if kind == "policy":
            actions = self.policy_actor.act(z0, eval_mode=True, generator=list(generators))
            results = [PlanResult(plan=w, action=a) for w, a in zip(warm, actions)]
        else:
            if kind == "score" and self.wm.score_net is None:
                raise ConfigError("planner=score needs a score network; this agent has none (use_score_net=false)")
            search = planner_obj or {"diffusion": self.diffusion, "mppi": self.mppi, "score": self.score_only}[kind]
            heads = FusedStepHeads(self.wm)  # the weights stay fixed during the decision: stacked once
            model = EpisodeBatchReturn([self.return_model(z, eta, g, step_heads=heads, task=i)
                                        for z, g, i in zip(z0, generators, idx)])
            results = search.plan_batch(model, warm, trace=trace)
        if not all(bool(torch.isfinite(r.plan).all() and torch.isfinite(r.action).all()) for r in results):
            raise TrainingDiverged("the planner produced a non-finite plan from a finite observation: the "
                                   "model's weights are not finite (a diverged run?); load an earlier checkpoint")
        return results

    @contextlib.contextmanager
    def scoped_warm_start(self, start: np.ndarray | torch.Tensor | None = None):
        """Plan inside the block without changing the caller's warm start: it is restored on exit.

        ``start`` (a plan [H, A]) is the warm start inside the block; None keeps the current one.
        """
        saved = self.prev_plan
        if start is not None:
            self.prev_plan = torch.as_tensor(start, device=self.device, dtype=torch.float32)
        try:
            yield self
        finally:
            self.prev_plan = saved

    @torch.no_grad()
    def act(self, obs: np.ndarray, t0: bool = False, eval_mode: bool = False, planner: str | None = None,
            generator: torch.Generator | None = None, task: int | str | None = None) -> np.ndarray:
        """Action in [-1, 1]; adds N(0, exploration_std^2) noise unless ``eval_mode``. A multi-task agent
        acts for ``task`` and returns that task's action size."""
        kind = planner or self.cfg.planner
        start = time.perf_counter()
        if kind == "policy" and not eval_mode:
            action = self.policy_actor.act(self.encode(obs, task), eval_mode=False, generator=generator)
        else:
            action = self.plan(obs, t0, planner=kind, generator=generator, task=task).action
        if not eval_mode and kind != "policy":
            noise = torch.randn(action.shape, generator=generator, device=action.device)
            action = action + self.cfg.exploration_std * noise
        out = action.clamp(-1, 1).float().cpu().numpy()
        self.last_plan_ms = 1000 * (time.perf_counter() - start)
        return out[:self.action_size(task)]

    @torch.no_grad()
    def act_batch(self, observations, previous_plans: list[torch.Tensor | None], planner: str | None = None
                  ) -> tuple[np.ndarray, list[torch.Tensor | None]]:
        """Exploring actions [B, A] for B training environments in lock-step (one batched search, noise
        as in `act`), and each environment's plan, its next warm start (None for the policy actor).

        The randomness is the global torch stream, as in training with one environment."""
        kind = planner or self.cfg.planner
        start = time.perf_counter()
        if kind == "policy":
            actions = self.policy_actor.act(self.encode_batch(observations), eval_mode=False)
            plans: list[torch.Tensor | None] = [None] * len(observations)
        else:
            results = self.plan_batch(observations, previous_plans, [None] * len(observations), planner=kind)
            actions = torch.stack([r.action for r in results])
            actions = actions + self.cfg.exploration_std * torch.randn(actions.shape, device=actions.device)
            plans = [r.plan for r in results]
        out = actions.clamp(-1, 1).float().cpu().numpy()
        self.last_plan_ms = 1000 * (time.perf_counter() - start) / len(observations)
        return out, plans

    # --- learning ---------------------------------------------------------------------------
    def energy_loss(self, z: torch.Tensor, a: torch.Tensor, weights: torch.Tensor | None = None,
                    candidates: torch.Tensor | None = None) -> EnergyLossOut:
        """Binary logistic loss of F: positives (z_i, a_i) vs three negative candidates at z_i.

        z [M, latent] (detached) and a [M, A] are paired row by row. Candidates per row: a sample of
        the policy prior, the data action plus N(0, 0.5^2) noise (clipped), and a uniform action.
        ``energy_negatives="hardest"`` (the authors' rule) trains on the one with the highest current F.
        ``"smooth"`` (default) uses softplus(log mean_k exp F_k): once F tells the candidates apart
        its gradient lands on the hardest one, as before, but while they look alike it is spread
        evenly. The argmax instead always pushes down whichever candidate F happens to rank first,
        which penalises any action dependence of F in proportion to its spread; when one candidate
        (the uniform one) is distributed like the data, as in the seed phase, the best response is a
        flat F, and F stayed flat for 3.5k-27k steps in our runs (docs/algorithm.md, "The energy head").
        ``candidates`` [3, M, A] replaces the three draws (the exercises check against fixed ones).
        """
        wm, cfg = self.wm, self.cfg
        z = z.detach()
        M = a.shape[0]
        with torch.no_grad():
            cands = candidates if candidates is not None else torch.stack([
                wm.pi(z).action,
                (a + cfg.energy_noise_std * torch.randn_like(a)).clamp(-1, 1),
                torch.rand_like(a) * 2 - 1,
            ])  # [3, M, A]
        rows = torch.arange(M, device=a.device)
        if cfg.energy_negatives == "smooth":
            logits = wm.energy_logit(torch.cat([z, z, z, z]), torch.cat([a, cands.flatten(0, 1)])).squeeze(-1)
            pos, cand_logits = logits[:M], logits[M:].view(3, M)
            neg_term = F.softplus(torch.logsumexp(cand_logits, 0) - math.log(3))  # log-mean-exp
            hardest = cand_logits.detach().argmax(0)
            neg = cand_logits[hardest, rows]
        else:
            with torch.no_grad():
                hardest = wm.energy_logit(z.expand(3, *z.shape), cands).squeeze(-1).argmax(0)
            pos, neg = wm.energy_logit(torch.cat([z, z]), torch.cat([a, cands[hardest, rows]])).squeeze(-1).chunk(2)
            neg_term = F.softplus(neg)
        per_pair = F.softplus(-pos) + neg_term
        loss = per_pair.mean() if weights is None else (per_pair * weights).sum() / weights.sum()
        return EnergyLossOut(loss, pos.detach(), neg.detach(), cands[hardest, rows])

    def energy_loss_release(self, z: torch.Tensor, a: torch.Tensor,
                            candidates: torch.Tensor | None = None) -> EnergyLossOut:
        """L_F as the release computes it (`_contrastive_loss`), with one correction: row i pairs z_i with
        its own action a_i (the release pairs time-major latents with batch-major actions).

        Candidates at z_i: a policy-prior sample a_pi, clip(a_pi + 0.5 N(0, I)) and a uniform action;
        the one with the highest current F is the negative. Loss 0.5 (BCE(F+, 1) + BCE(F-, 0)),
        unweighted over t. ``candidates`` [M, 3, A] replaces the three draws (the exercises check against
        fixed ones).
        """
        wm = self.wm
        z = z.detach()
        rows = torch.arange(a.shape[0], device=a.device)
        with torch.no_grad():
            cands = self.release_candidates(z) if candidates is None else candidates  # [M, 3, A]
            cand_logits = wm.energy_logit(z.unsqueeze(1).expand(-1, 3, -1).flatten(0, 1),
                                          cands.flatten(0, 1)).view(-1, 3)
            negatives = cands[rows, cand_logits.argmax(1)]
        pos = wm.energy_logit(z, a).squeeze(-1)
        neg = wm.energy_logit(z, negatives).squeeze(-1)
        loss = 0.5 * (F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
                      + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg)))
        return EnergyLossOut(loss, pos.detach(), neg.detach(), negatives)

    @torch.no_grad()
    def release_candidates(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The release's three off-data candidates at each latent z [M, L] -> [M, 3, A]: a policy-prior
        sample, that sample plus energy_noise_std N(0, I) (clipped), and a uniform action."""
        pi_a = self.wm.pi(z, generator).action
        noise = torch.randn(pi_a.shape, generator=generator, device=pi_a.device, dtype=pi_a.dtype)
        noisy = (pi_a + self.cfg.energy_noise_std * noise).clamp(-1, 1)
        uniform = (2.0 * torch.rand(pi_a.shape, generator=generator, device=pi_a.device, dtype=pi_a.dtype)
                   - 1.0).clamp(-1, 1)
        return torch.stack([pi_a, noisy, uniform], 1)

    @torch.no_grad()
    def _update_energy_stats_release(self, logits: torch.Tensor) -> None:
        """The release's statistics: positives and negatives together, biased std, floor 1e-6."""
        m = self.cfg.energy_stat_momentum
        self.wm.energy_mean.mul_(m).add_(logits.mean() * (1 - m))
        self.wm.energy_std.mul_(m).add_(logits.std(unbiased=False).clamp(min=1e-6) * (1 - m))

    @torch.no_grad()
    def _update_energy_stats(self, pos_logits: torch.Tensor) -> None:
        m = self.cfg.energy_stat_momentum
        self.wm.energy_mean.mul_(m).add_((1 - m) * pos_logits.mean())
        # one pair (batch 1, horizon 1) has no unbiased std; use the biased one there instead of NaN
        std = pos_logits.std(unbiased=pos_logits.numel() > 1)
        self.wm.energy_std.mul_(m).add_((1 - m) * std.clamp(min=1e-3))

    def to_batch(self, sample: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """A replay sample on the agent's device; to a GPU through pinned memory, without blocking."""
        keys = [k for k in ("obs", "action", "reward", "task") if k in sample]
        if self.device.type != "cuda":
            return {k: torch.as_tensor(sample[k], device=self.device) for k in keys}
        return {k: torch.as_tensor(sample[k]).pin_memory().to(self.device, non_blocking=True) for k in keys}

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One gradient step of every loss on a time-major batch (obs [H+1,B,.], action/reward [H,B])."""
        cfg, wm = self.cfg, self.wm
        obs, action, reward = batch["obs"], batch["action"], batch["reward"]
        task = batch.get("task") if self.tasks else None  # [B] task indices of a multi-task batch
        if self.tasks and task is None and self.bound_task is not None:  # fine-tuning: every sample is its task
            task = torch.full((action.shape[1],), self.bound_task, dtype=torch.long, device=self.device)
        if self.tasks and task is None:
            raise ValueError("a multi-task agent's batch carries task [B] (EpisodeDataset.sample gives it)")
        H = action.shape[0]
        rho = cfg.rho ** torch.arange(H, device=self.device, dtype=torch.float32)
        gamma = self.gamma if task is None else self.task_gammas[task].view(1, -1, 1)  # per sample's task
        wm.train()

        release = cfg.variant == "release"
        with torch.no_grad():
            next_z = wm.encode(obs[1:], task)  # [H, B, L] stop-gradient targets h(o_{t+1})
            next_a = wm.pi(next_z).action
            # the release: min of the *first two* target heads; lab: of two drawn at random
            td_target = reward.unsqueeze(-1) + gamma * wm.q(
                next_z.flatten(0, 1), next_a.flatten(0, 1), "min", target=True,
                heads=[0, 1] if release else None).view(H, -1, 1)

        z = wm.encode(obs[0], task)
        zs = [z]
        consistency = 0.0
        for t in range(H):
            z = wm.next(z, action[t])
            consistency = consistency + rho[t] * F.mse_loss(wm.latent(z), wm.latent(next_z[t]))
            zs.append(z)
        zs_t = torch.stack(zs)  # [H+1, B, L]
        _zs = zs_t[:-1]

        flat_z, flat_a = _zs.flatten(0, 1), action.flatten(0, 1)
        w_flat = rho.repeat_interleave(action.shape[1])  # rho^t for each flattened (t, b) row
        reward_ce = wm.two_hot.cross_entropy(wm.reward_logits(flat_z, flat_a), reward.flatten(0, 1))
        q_logits = wm.q_logits(flat_z, flat_a)  # [K, H*B, bins]
        value_ce = wm.two_hot.cross_entropy(q_logits, td_target.flatten(0, 1).squeeze(-1).expand(cfg.num_q, -1))
        reward_loss = (reward_ce * w_flat).sum() / action.shape[1] / H
        value_loss = (value_ce * w_flat).sum() / action.shape[1] / H / cfg.num_q
        consistency = consistency / H

        energy = self.energy_loss_release(flat_z, flat_a) if release else self.energy_loss(flat_z, flat_a, w_flat)
        total = (cfg.consistency_coef * consistency + cfg.reward_coef * reward_loss
                 + cfg.value_coef * value_loss + cfg.energy_coef * energy.loss)
        score_loss = torch.zeros((), device=self.device)
        if wm.score_net is not None and cfg.score_coef > 0:
            score_loss = self.score_loss(zs_t[0, :1])
            total = total + cfg.score_coef * score_loss

        self.optim.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            [p for g in self.optim.param_groups for p in g["params"]], cfg.grad_clip_norm)
        self.optim.step()
        if release:
            self._update_energy_stats_release(torch.cat([energy.pos_logits, energy.neg_logits]))
        else:
            self._update_energy_stats(energy.pos_logits)

        pi_loss, entropy = self.update_policy(zs_t.detach())
        wm.soft_update_target(cfg.tau)
        wm.eval()
        pos, neg = energy.pos_logits, energy.neg_logits
        return _floats(
            consistency_loss=consistency, reward_loss=reward_loss,
            value_loss=value_loss, energy_loss=energy.loss, score_loss=score_loss,
            pi_loss=pi_loss, pi_entropy=entropy, total_loss=total,
            grad_norm=grad_norm, energy_pos_logit=pos.mean(), energy_neg_logit=neg.mean(),
            energy_accuracy=0.5 * ((pos > 0).float().mean() + (neg < 0).float().mean()),
            energy_mean=wm.energy_mean, energy_std=wm.energy_std, q_scale=self.q_scale.value,
        )

    def update_policy(self, zs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Maximise rho-weighted Q_avg(z, pi(z)) / S + entropy_coef * entropy (separate Adam)."""
        cfg, wm = self.cfg, self.wm
        T = zs.shape[0]
        sample = wm.pi(zs.flatten(0, 1))
        # The objective differentiates Q with respect to its action input only: with the Q heads
        # frozen, backward skips their weight gradients (a third of the Q backward).
        wm.q_heads.requires_grad_(False)
        try:
            q = wm.q(zs.flatten(0, 1), sample.action, "avg").view(T, -1)
        finally:
            wm.q_heads.requires_grad_(True)
        self.q_scale.update(q[0])
        # the release uses TD-MPC2's scaled entropy (|A| x the pre-tanh Gaussian's); lab the tanh-corrected one
        entropy = (sample.scaled_entropy if self.cfg.variant == "release" else -sample.log_prob).view(T, -1)
        rho = cfg.rho ** torch.arange(T, device=self.device, dtype=torch.float32)
        objective = q / self.q_scale.value + cfg.entropy_coef * entropy
        loss = -(objective.mean(1) * rho).mean()
        self.pi_optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(wm.pi_head.parameters(), cfg.grad_clip_norm)
        self.pi_optim.step()
        return loss.detach(), entropy.mean().detach()

    @torch.no_grad()
    def score_target(self, z0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The release's Monte-Carlo score targets at latents z0 [B, L] (the release uses one, B = 1).

        Per row: a random level tau and a noisy sequence x ~ N(0, I); ``score_samples`` candidates
        around x / sqrt(abar) scored by the energy-shaped model return, softmax-weighted (all of them,
        standardised returns / temperature) into Abar; target (sqrt(abar) Abar - x) / (1 - abar).
        Returns (x [B, H, A], tau [B], target [B, H, A]).
        """
        cfg, B, S = self.cfg, z0.shape[0], self.cfg.score_samples
        tau = torch.randint(1, cfg.num_levels, (B,), device=self.device)
        abar = torch.as_tensor(self.diffusion.alpha_bar, device=self.device, dtype=torch.float32)[tau].view(B, 1, 1)
        x = torch.randn(B, cfg.horizon, self.act_dim, device=self.device)
        eps = torch.randn(B, S, cfg.horizon, self.act_dim, device=self.device)
        cands = (x.unsqueeze(1) / abar.sqrt().unsqueeze(1)
                 + ((1 - abar) / abar).sqrt().unsqueeze(1) * eps).clamp(-1, 1)  # [B, S, H, A]
        model = self.return_model(z0.repeat_interleave(S, 0))
        values = model.evaluate(cands.flatten(0, 1)).total.nan_to_num(0.0).view(B, S)
        logits = (values - values.mean(1, keepdim=True)) / (values.std(1, keepdim=True) + 1e-6)
        weights = torch.softmax(logits / max(cfg.temperature, 1e-6), dim=1)
        mean = torch.einsum("bn,bnha->bha", weights, cands)
        return x, tau, (-x + abar.sqrt() * mean) / (1.0 - abar + 1e-8)

    def score_loss(self, z0: torch.Tensor) -> torch.Tensor:
        """MSE of the score network against `score_target` at z0 [B, L] (the update passes one latent, as
        the release does; the gradient reaches the encoder through z0, as there)."""
        x, tau, target = self.score_target(z0)
        net = self.wm.score_net
        if net.output == "score":
            return F.mse_loss(net(z0, x, tau), target)
        abar = net.alpha_bar[tau].view(-1, 1, 1)  # fit the mean Abar the target implies
        return F.mse_loss(net.raw(z0, x, tau), (target * (1 - abar) + x) / abar.sqrt())

    # --- state for checkpoints ---------------------------------------------------------------
    def tensors(self, include_optimizer: bool = False, acting_only: bool = False) -> dict[str, torch.Tensor]:
        out = {f"wm.{k}": v for k, v in self.wm.state_dict().items()
               if not (acting_only and k.startswith("target_q_heads."))}
        out["q_scale"] = self.q_scale.value.reshape(1)
        if include_optimizer:
            for name, opt in (("optim", self.optim), ("pi_optim", self.pi_optim)):
                for i, state in opt.state_dict()["state"].items():
                    for key, value in state.items():
                        out[f"{name}.{i}.{key}"] = torch.as_tensor(value).reshape(-1) if key == "step" else value
        return {k: v.detach().contiguous().cpu() for k, v in out.items()}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        wm_state = {k[3:]: v for k, v in tensors.items() if k.startswith("wm.")}
        if not any(k.startswith("target_q_heads.") for k in wm_state):  # acting-only checkpoint
            wm_state.update({"target_q_heads." + k[len("q_heads."):]: v for k, v in wm_state.items()
                             if k.startswith("q_heads.")})
        self.wm.load_state_dict(wm_state, strict=True)
        self.q_scale.value.copy_(tensors["q_scale"].reshape(()))
        for name, opt in (("optim", self.optim), ("pi_optim", self.pi_optim)):
            keys = [k for k in tensors if k.startswith(name + ".")]
            if not keys:
                continue
            sd = opt.state_dict()
            state: dict[int, dict[str, torch.Tensor]] = {}
            for k in keys:
                _, i, key = k.split(".", 2)
                v = tensors[k].to(self.device)
                state.setdefault(int(i), {})[key] = v.reshape(()) if key == "step" else v
            sd["state"] = state
            opt.load_state_dict(sd)
