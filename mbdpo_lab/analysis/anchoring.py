"""What the energy anchor does: value over-estimation, action drift and cross-TD error of a planner.

MBDPO's claim: a search that is not anchored to the data drifts to actions where the
value function is unreliable, so it over-estimates value; the energy term eta * F keeps it near the
behaviour data. This module turns that claim into numbers you can compute on your own runs.

Two layers:

* **pure functions on arrays** (`discounted_return_to_go`, `value_gap`, `rms_distance`,
  `nearest_neighbour_distance`, `state_nn_distance`, `td_errors`, `episode_metrics`, `aggregate`) —
  tested on synthetic cases with known answers;
* **collection** from an agent: `collect_anchor_rollouts` runs noise-free evaluation episodes with the
  planner and records, per step, everything the metrics need; `eta_sweep` re-plans one fixed state
  for a list of eta values with the same random numbers.

Definitions, for step t of an evaluation episode of T steps, gamma = the agent's discount, H = horizon:

``return``
    sum_t r_t of the episode (what the trainer's evaluation reports).
``overestimation``
    mean_t (P_t - G_t). P_t is the planner's predicted return of the plan it chose, ``model_return``
    of `WorldModelReturn.evaluate` on the final plan with the planner's own two Q heads:
    sum_{k<H} gamma^k r_hat_k + gamma^H Q_avg(z_H, pi(z_H)) (no energy term). G_t is the realised
    discounted return from the environment from step t on (see *tail* below). Positive = the planner
    believes its plans are better than they turn out to be.
``q_overestimation``
    mean_t (Q(z_t, a_t) - G_t), Q the mean of *all* online Q heads at the executed action.
``horizon_gap``
    mean_t (sum_{k<H} gamma^k r_hat_{t,k} - sum_{k<H} gamma^k r_{t+k}): the reward model's part of
    the over-estimation over the planning horizon only (steps with H real rewards left).
``prior_distance``
    mean_t ||a_t - tanh(mu(z_t))|| / sqrt(|A|): RMS (per action dimension) distance of the executed
    action from the policy prior's mean action. 0 = the planner does what the prior would do.
``energy`` / ``energy_prior`` / ``energy_gap``
    mean_t of the planner's anchor term clip((F(z_t, a) - mean_F) / std_F, +-energy_clip) at the
    executed action / at the prior's mean action; ``energy_gap = energy_prior - energy``. High F means
    "looks like the data", so a positive gap means the planner's actions look *less* like the data
    than the prior's. Each agent is scored by its own F; `referee_energy` scores several agents'
    actions under one F, so their values share a scale.
``nn_distance``
    mean_t min_j ||a_t - b_j|| / sqrt(|A|) over all behaviour (replay) actions b_j. Weak on its own:
    the uniform seed-phase actions cover the action cube.
``state_nn_distance``
    the same, but b_j restricted to the actions of the ``k`` replay transitions whose observations
    are nearest to o_t (observations standardised by the replay's per-dimension std): "has an action
    like this ever been taken in a state like this?"
``td_plan`` / ``td_plan_abs``
    signed and absolute mean of the TD error on the planner's (executed) actions,
    delta_t = Q(z_t, a_t) - (r_t + gamma * V(z_{t+1})), z_{t+1} = h(o_{t+1}) of the *next real
    observation*, V(z') = min of two target Q heads at (z', tanh(mu(z'))) — the quantity the value
    loss regresses to, with the prior's mean action instead of a sample.
``td_prior`` / ``td_prior_abs``
    the same TD error for the policy prior's mean action at the same state: the environment is
    branched (the simulator state is saved, the prior's action applied, the reward and next
    observation read, and the state restored), so both errors use real next observations.
``cross_td_gap``
    td_plan_abs - td_prior_abs: positive = Q is less accurate on the planner's actions than on the
    prior's (the "unreliable off the data" half of the claim).

*Tail.* Evaluation episodes end at a time limit, but Q estimates an infinite discounted return. With
``tail="steady"`` (default) G_t adds gamma^(T-t) * rbar / (1 - gamma) where rbar is the mean reward of
the episode's last ``tail_window`` steps (DMControl tasks end in a steady regime: balancing, walking);
``tail="mask"`` keeps only steps whose untaken tail weight gamma^(T-t) <= ``max_tail_weight``;
``tail="none"`` uses the truncated sum as is. The choice is recorded with the metrics.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from ..episodes import Episode, run_episode
from ..planner import discounted_energy, predicted_return

# name -> (what it means, which direction is "better" for the anchoring claim: "lower", "higher", "zero")
METRICS: dict[str, tuple[str, str]] = {
    "return": ("episode return", "higher"),
    "overestimation": ("value over-estimation of the chosen plan (predicted - realised return)", "zero"),
    "q_overestimation": ("Q over-estimation at the executed action (Q - realised return)", "zero"),
    "horizon_gap": ("reward-model gap over the planning horizon (predicted - realised)", "zero"),
    "prior_distance": ("distance of executed actions from the policy prior's mean (RMS)", "lower"),
    "energy": ("standardised energy of executed actions (high = looks like the data)", "higher"),
    "energy_prior": ("standardised energy of the prior's mean actions", "higher"),
    "energy_gap": ("energy of the prior's actions - energy of the executed actions", "lower"),
    "nn_distance": ("nearest-neighbour distance of executed actions to replay actions (RMS)", "lower"),
    "state_nn_distance": ("distance to the nearest replay action taken in a similar state (RMS)", "lower"),
    "td_plan": ("signed TD error of Q on the planner's actions", "zero"),
    "td_plan_abs": ("absolute TD error of Q on the planner's actions", "lower"),
    "td_prior": ("signed TD error of Q on the policy prior's actions", "zero"),
    "td_prior_abs": ("absolute TD error of Q on the policy prior's actions", "lower"),
    "cross_td_gap": ("|TD error| on planner actions - |TD error| on prior actions", "lower"),
    "realised_return": ("realised discounted return G_t (mean over steps; the scale of the gaps)", "higher"),
}


# --- pure functions on arrays -----------------------------------------------------------------

def discounted_return_to_go(rewards: Sequence[float], gamma: float, tail: str = "steady",
                            tail_window: int | None = None) -> np.ndarray:
    """G_t = sum_{k>=0} gamma^k r_{t+k} for every t of one episode [T] (see the module's *tail*).

    ``tail="steady"`` continues the episode with the mean reward of its last ``tail_window`` steps
    (default min(T, 50)); ``"none"`` and ``"mask"`` return the truncated sum (the mask is applied by
    `realised_mask`).
    """
    r = np.asarray(rewards, np.float64)
    T = len(r)
    out = np.zeros(T)
    acc = 0.0
    for t in range(T - 1, -1, -1):
        acc = r[t] + gamma * acc
        out[t] = acc
    if tail == "steady" and T:
        window = min(T, tail_window or 50)
        rbar = float(r[-window:].mean())
        out += gamma ** (T - np.arange(T)) * rbar / (1.0 - gamma)
    elif tail not in ("steady", "none", "mask"):
        raise ValueError(f"tail must be 'steady', 'mask' or 'none', got {tail!r}")
    return out


def realised_mask(T: int, gamma: float, tail: str = "steady", max_tail_weight: float = 0.05) -> np.ndarray:
    """Steps whose realised return is trusted: all, or (``tail="mask"``) gamma^(T-t) <= max_tail_weight."""
    if tail != "mask":
        return np.ones(T, bool)
    return gamma ** (T - np.arange(T)) <= max_tail_weight


def horizon_returns(rewards: Sequence[float], gamma: float, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """sum_{k<H} gamma^k r_{t+k} for every t [T], and which t have H real rewards left."""
    r = np.asarray(rewards, np.float64)
    T = len(r)
    disc = gamma ** np.arange(horizon)
    out = np.array([float(r[t:t + horizon] @ disc[:len(r[t:t + horizon])]) for t in range(T)])
    return out, np.arange(T) + horizon <= T


def value_gap(predicted: Sequence[float], realised: Sequence[float], valid: Sequence[bool] | None = None) -> float:
    """mean(predicted - realised) over valid steps; positive = over-estimation; NaN if none are valid."""
    p, g = np.asarray(predicted, np.float64), np.asarray(realised, np.float64)
    m = np.ones(len(p), bool) if valid is None else np.asarray(valid, bool)
    return float(np.mean(p[m] - g[m])) if m.any() else float("nan")


def rms_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise ||a - b|| / sqrt(dim): an RMS distance per action dimension, comparable across tasks."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b, axis=-1) / math.sqrt(a.shape[-1])


def nearest_neighbour_distance(queries: np.ndarray, data: np.ndarray, chunk: int = 512) -> np.ndarray:
    """For each query row, the RMS distance to its nearest row of ``data`` [N]; NaN when data is empty."""
    q = torch.as_tensor(np.asarray(queries, np.float32))
    d = torch.as_tensor(np.asarray(data, np.float32))
    if len(d) == 0:
        return np.full(len(q), np.nan)
    out = [torch.cdist(q[i:i + chunk], d).min(1).values for i in range(0, len(q), chunk)]
    return (torch.cat(out).double().numpy() if out else np.zeros(0)) / math.sqrt(q.shape[-1])


def state_nn_distance(obs: np.ndarray, actions: np.ndarray, data_obs: np.ndarray, data_actions: np.ndarray,
                      k: int = 32, chunk: int = 256) -> np.ndarray:
    """Per query: min RMS action distance among the ``k`` data transitions with the nearest observations.

    Observations are standardised by the data's per-dimension std before the neighbour search.
    """
    if len(data_obs) == 0:
        return np.full(len(obs), np.nan)
    data_obs = np.asarray(data_obs, np.float32)
    scale = data_obs.std(0) + 1e-6
    center = data_obs.mean(0)
    do = torch.as_tensor((data_obs - center) / scale)
    da = torch.as_tensor(np.asarray(data_actions, np.float32))
    qo = torch.as_tensor((np.asarray(obs, np.float32) - center) / scale)
    qa = torch.as_tensor(np.asarray(actions, np.float32))
    k = min(k, len(do))
    out = []
    for i in range(0, len(qo), chunk):
        idx = torch.cdist(qo[i:i + chunk], do).topk(k, dim=1, largest=False).indices  # [n, k]
        neighbours = da[idx]  # [n, k, A]
        out.append((neighbours - qa[i:i + chunk, None]).norm(dim=-1).min(1).values)
    return torch.cat(out).double().numpy() / math.sqrt(qa.shape[-1])


def td_errors(q: Sequence[float], rewards: Sequence[float], next_values: Sequence[float], gamma: float) -> np.ndarray:
    """delta_t = q_t - (r_t + gamma * V_{t+1}); positive = Q above its one-step target."""
    return (np.asarray(q, np.float64)
            - (np.asarray(rewards, np.float64) + gamma * np.asarray(next_values, np.float64)))


# --- records --------------------------------------------------------------------------------

@dataclass
class BehaviourData:
    """Replay transitions (observation, action) that the drift metrics compare against."""

    obs: np.ndarray  # [N, O]
    actions: np.ndarray  # [N, A]

    def __len__(self) -> int:
        return len(self.actions)

    @classmethod
    def from_state_dict(cls, state: dict[str, np.ndarray], max_rows: int | None = 20_000,
                        seed: int = 0) -> "BehaviourData":
        """From `ReplayBuffer.state_dict()` or a saved ``replay.npz``: rows whose next row is the same episode."""
        episode = np.asarray(state["episode"])
        n = len(episode)
        rows = np.nonzero((episode[:-1] == episode[1:]) & (episode[:-1] >= 0))[0] if n > 1 else np.zeros(0, int)
        data = cls(np.asarray(state["obs"])[rows], np.asarray(state["action"])[rows])
        return data.subsample(max_rows, seed)

    @classmethod
    def from_buffer(cls, buffer, max_rows: int | None = 20_000, seed: int = 0) -> "BehaviourData":
        return cls.from_state_dict(buffer.state_dict(), max_rows, seed)

    @classmethod
    def load(cls, path: str | Path, max_rows: int | None = 20_000, seed: int = 0) -> "BehaviourData":
        with np.load(path, allow_pickle=False) as data:
            return cls.from_state_dict({k: data[k] for k in ("obs", "action", "episode")}, max_rows, seed)

    def subsample(self, max_rows: int | None, seed: int = 0) -> "BehaviourData":
        if max_rows is None or len(self) <= max_rows:
            return self
        idx = np.sort(np.random.default_rng(seed).choice(len(self), max_rows, replace=False))
        return BehaviourData(self.obs[idx], self.actions[idx])


@dataclass
class AnchorEpisode:
    """Per-step record of one noise-free evaluation episode (T steps)."""

    obs: np.ndarray  # [T+1, O] observations o_0 .. o_T
    actions: np.ndarray  # [T, A] executed planner actions
    rewards: np.ndarray  # [T]
    predicted_return: np.ndarray  # [T] model_return of the chosen plan (planner's heads)
    imagined_rewards: np.ndarray  # [T, H] predicted rewards along the chosen plan
    plan_energy: np.ndarray  # [T] discounted energy term of the chosen plan (before eta)
    q_value: np.ndarray  # [T] Q(z_t, a_t), mean of all online heads
    prior_mean: np.ndarray  # [T, A] tanh(mu(z_t))
    energy: np.ndarray  # [T] standardised clipped F(z_t, a_t)
    energy_prior: np.ndarray  # [T] standardised clipped F(z_t, prior mean)
    next_value: np.ndarray  # [T] V(z_{t+1}) for the TD target
    q_prior: np.ndarray  # [T] Q(z_t, prior mean)
    prior_rewards: np.ndarray  # [T] reward of the branched step with the prior's action (NaN: no branch)
    prior_next_value: np.ndarray  # [T] V(h(o'_prior)) (NaN: no branch)
    frames: np.ndarray | None = None  # [T+1, h, w, 3] uint8 when recorded

    @property
    def length(self) -> int:
        return len(self.rewards)


@dataclass
class AnchorRollouts:
    """Evaluation episodes of one agent, with what the metrics need to know about it."""

    task: str
    eta: float
    gamma: float
    horizon: int
    episodes: list[AnchorEpisode] = field(default_factory=list)

    def returns(self) -> list[float]:
        return [float(ep.rewards.sum()) for ep in self.episodes]


def episode_metrics(ep: AnchorEpisode, gamma: float, behaviour: BehaviourData | None = None,
                    tail: str = "steady", tail_window: int | None = None, max_tail_weight: float = 0.05,
                    k: int = 32) -> dict[str, float]:
    """Every metric of the module docstring for one episode (drift-to-replay is NaN without ``behaviour``)."""
    T = ep.length
    H = ep.imagined_rewards.shape[1] if ep.imagined_rewards.ndim == 2 else 0
    G = discounted_return_to_go(ep.rewards, gamma, tail, tail_window)
    valid = realised_mask(T, gamma, tail, max_tail_weight)
    real_h, valid_h = horizon_returns(ep.rewards, gamma, H) if H else (np.zeros(T), np.zeros(T, bool))
    pred_h = ep.imagined_rewards @ (gamma ** np.arange(H)) if H else np.zeros(T)
    td_plan = td_errors(ep.q_value, ep.rewards, ep.next_value, gamma)
    td_prior = td_errors(ep.q_prior, ep.prior_rewards, ep.prior_next_value, gamma)
    has_prior = np.isfinite(td_prior)
    out = dict(
        return_=float(ep.rewards.sum()),
        overestimation=value_gap(ep.predicted_return, G, valid),
        q_overestimation=value_gap(ep.q_value, G, valid),
        horizon_gap=value_gap(pred_h, real_h, valid_h),
        realised_return=float(G[valid].mean()) if valid.any() else float("nan"),
        predicted_return=float(ep.predicted_return[valid].mean()) if valid.any() else float("nan"),
        prior_distance=float(rms_distance(ep.actions, ep.prior_mean).mean()),
        energy=float(np.mean(ep.energy)),
        energy_prior=float(np.mean(ep.energy_prior)),
        energy_gap=float(np.mean(ep.energy_prior) - np.mean(ep.energy)),
        td_plan=float(td_plan.mean()),
        td_plan_abs=float(np.abs(td_plan).mean()),
        td_prior=float(td_prior[has_prior].mean()) if has_prior.any() else float("nan"),
        td_prior_abs=float(np.abs(td_prior[has_prior]).mean()) if has_prior.any() else float("nan"),
        steps=float(T),
        valid_steps=float(valid.sum()),
    )
    out["return"] = out.pop("return_")
    out["cross_td_gap"] = (float(np.abs(td_plan[has_prior]).mean()) - out["td_prior_abs"]
                           if has_prior.any() else float("nan"))
    if behaviour is not None and len(behaviour):
        out["nn_distance"] = float(nearest_neighbour_distance(ep.actions, behaviour.actions).mean())
        out["state_nn_distance"] = float(state_nn_distance(ep.obs[:-1], ep.actions, behaviour.obs,
                                                           behaviour.actions, k=k).mean())
    else:
        out["nn_distance"] = out["state_nn_distance"] = float("nan")
    return out


def aggregate(per_episode: Iterable[dict[str, float]]) -> dict[str, float]:
    """Mean over episodes of every metric, plus ``<metric>_std`` (population std across episodes)."""
    rows = list(per_episode)
    out: dict[str, float] = {"episodes": float(len(rows))}
    if not rows:
        return out
    for key in rows[0]:
        values = np.array([r[key] for r in rows], np.float64)
        finite = values[np.isfinite(values)]
        out[key] = float(finite.mean()) if len(finite) else float("nan")
        out[f"{key}_std"] = float(finite.std()) if len(finite) else float("nan")
    return out


def evaluation_metrics(rollouts: AnchorRollouts, behaviour: BehaviourData | None = None,
                       tail: str = "steady", **kwargs: Any) -> dict[str, float]:
    """`aggregate` of `episode_metrics` over the rollouts' episodes (one row of a metrics table)."""
    per_ep = [episode_metrics(ep, rollouts.gamma, behaviour, tail=tail, **kwargs) for ep in rollouts.episodes]
    return aggregate(per_ep)


# --- collection from an agent -------------------------------------------------------------

def branch_step(env, action: np.ndarray) -> tuple[np.ndarray, float]:
    """Try ``action`` from the env's current state and come back: (next observation, reward).

    Envs provide ``branch_step(action)`` (`mbdpo_lab.envs.DMControlEnv` restores its full MuJoCo
    state, so the episode continues exactly as if the branch had not happened; a test checks this).
    """
    if not hasattr(env, "branch_step"):
        raise TypeError(f"{type(env).__name__} cannot try an action and come back; give it a "
                        "branch_step(action) method or pass branch_prior=False")
    return env.branch_step(action)


def _all_heads(agent) -> torch.Tensor:
    return torch.arange(agent.cfg.num_q, device=agent.device)


@torch.no_grad()
def _values(agent, obs: np.ndarray, gen: torch.Generator) -> torch.Tensor:
    """V(h(o)) = min of two target heads at the prior's mean action (the value loss's target), [N]."""
    wm = agent.wm
    z = wm.encode(torch.as_tensor(np.asarray(obs, np.float32), device=agent.device))
    return wm.q(z, wm.pi(z, gen).mean, "min", target=True, generator=gen).squeeze(-1).float()


@torch.no_grad()
def collect_anchor_rollouts(agent, env, episodes: int = 1, seed: int = 0, branch_prior: bool = True,
                            frames: bool | int = False, frame_size: int = 96,
                            max_steps: int | None = None) -> AnchorRollouts:
    """Run noise-free evaluation episodes with the agent's planner and record every metric's inputs.

    Acting is exactly the trainer's evaluation (planner, no exploration noise, warm starts), with the
    planner asked for its trace so the chosen plan's predicted return uses the planner's own Q heads.
    ``frames`` records the first ``frames`` episodes (True: the first). Randomness comes from one
    generator seeded with ``seed``; the global torch RNG is not touched, so measuring does not change
    a training run. The agent's warm start is restored afterwards.
    """
    wm, gamma, cfg = agent.wm, agent.gamma, agent.cfg
    gen = torch.Generator(device=agent.device).manual_seed(int(seed))
    n_frames = int(frames) if not isinstance(frames, bool) else (1 if frames else 0)
    heads = _all_heads(agent)
    out = AnchorRollouts(task=getattr(env, "name", cfg.task), eta=float(cfg.eta), gamma=gamma,
                         horizon=cfg.horizon)
    for ep_i in range(episodes):
        rec: dict[str, list] = {k: [] for k in ("pred", "imag", "plan_energy", "prior_mean", "prior_rewards",
                                                "prior_next_obs")}

        def record(t: int, obs: np.ndarray, result) -> None:
            if result.trace is not None and result.trace.imagined:
                im = result.trace.imagined  # scored with the planner's own Q heads
            else:  # planners without a trace (MPPI): score the kept plan with a fresh return model
                model = agent.return_model(agent.encode(obs), generator=gen)
                im = {k: v[0].float().cpu().numpy() for k, v in model.rollout(result.plan[None]).items()}
            rec["pred"].append(predicted_return(im, gamma))
            rec["imag"].append(np.asarray(im["rewards"], np.float64))
            rec["plan_energy"].append(discounted_energy(im, gamma))
            prior = wm.pi(agent.encode(obs)[None], gen).mean[0].float().cpu().numpy()
            if branch_prior:
                p_obs, p_rew = branch_step(env, prior)
            else:
                p_obs, p_rew = np.full_like(obs, np.nan), float("nan")
            rec["prior_mean"].append(prior)
            rec["prior_rewards"].append(p_rew)
            rec["prior_next_obs"].append(p_obs)

        ep = run_episode(agent, env, gen, trace=True, max_steps=max_steps, on_plan=record,
                         frame_size=frame_size if ep_i < n_frames else None, final_frame=True)
        out.episodes.append(_finish_episode(agent, ep, rec, gen, heads, branch_prior))
    return out


@torch.no_grad()
def _finish_episode(agent, ep: Episode, rec: dict[str, list], gen: torch.Generator, heads: torch.Tensor,
                    branch_prior: bool) -> AnchorEpisode:
    """Batch the per-step network evaluations of one episode (Q, energies, TD targets)."""
    wm, dev = agent.wm, agent.device
    obs, actions = ep.obs, ep.actions
    prior = np.asarray(rec["prior_mean"], np.float32)
    z = wm.encode(torch.as_tensor(obs[:-1], device=dev))
    a_t, p_t = torch.as_tensor(actions, device=dev), torch.as_tensor(prior, device=dev)

    def npy(x: torch.Tensor) -> np.ndarray:
        return x.squeeze(-1).float().cpu().numpy().astype(np.float64)

    T = len(actions)
    if branch_prior:
        prior_next_value = npy(_values(agent, np.asarray(rec["prior_next_obs"], np.float32), gen))
    else:
        prior_next_value = np.full(T, np.nan)
    return AnchorEpisode(
        obs=obs, actions=actions, rewards=ep.rewards,
        predicted_return=np.asarray(rec["pred"], np.float64),
        imagined_rewards=np.asarray(rec["imag"], np.float64).reshape(T, -1),
        plan_energy=np.asarray(rec["plan_energy"], np.float64),
        q_value=npy(wm.q(z, a_t, "avg", heads=heads)),
        prior_mean=prior,
        energy=npy(wm.standardised_energy(z, a_t)),
        energy_prior=npy(wm.standardised_energy(z, p_t)),
        next_value=npy(_values(agent, obs[1:], gen)),
        q_prior=npy(wm.q(z, p_t, "avg", heads=heads)),
        prior_rewards=np.asarray(rec["prior_rewards"], np.float64),
        prior_next_value=prior_next_value,
        frames=ep.frames,
    )


@torch.no_grad()
def referee_energy(referee, rollouts: AnchorRollouts) -> np.ndarray:
    """Per episode [E]: mean standardised, clipped F of ``referee`` at the rollouts' (o_t, a_t).

    ``energy`` scores each agent's actions under its *own* F, trained on its own replay and with its own
    running mean and std, so two agents' values are not on one scale. Scoring every agent's executed
    actions under one referee's F (its encoder, its F head, its statistics) puts them on one scale:
    "does the anchored agent act more like the data than the unanchored one, as this F sees the data?"
    """
    wm, dev = referee.wm, referee.device
    out = []
    for ep in rollouts.episodes:
        z = wm.encode(torch.as_tensor(np.asarray(ep.obs[:-1], np.float32), device=dev))
        a = torch.as_tensor(np.asarray(ep.actions, np.float32), device=dev)
        out.append(float(wm.standardised_energy(z, a).float().mean()))
    return np.asarray(out, np.float64)


# --- eta sweep on a fixed state ----------------------------------------------------------------

DEFAULT_SWEEP_ETAS = (0.0, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


@torch.no_grad()
def eta_sweep(agent, obs: np.ndarray, etas: Iterable[float] = DEFAULT_SWEEP_ETAS, seed: int = 0,
              t0: bool = True) -> list[dict[str, Any]]:
    """Re-plan from one observation for every eta with the same random numbers.

    Every plan starts from a fresh generator seeded with ``seed`` (same Q heads, same candidate
    noise) and the same warm start (zeros when ``t0``, else the agent's current plan), so eta is
    the only thing that changes. Per eta: the chosen plan [H, A] and first action, its model return
    (predicted, no energy), its energy term (discounted standardised F, before eta), total =
    model_return + eta * energy, the RMS distance of the first action from the prior's mean, and the
    RMS distance of the plan from the first eta's plan.
    """
    rows: list[dict[str, Any]] = []
    z = agent.encode(obs)
    prior = agent.wm.pi(z[None], torch.Generator(device=agent.device).manual_seed(int(seed))).mean[0]
    prior = prior.float().cpu().numpy()
    gamma = agent.gamma
    first_plan = None
    with agent.scoped_warm_start():
        for eta in etas:
            eta = float(eta)
            if eta < 0:
                from ..config import ConfigError

                raise ConfigError(f"eta values must be >= 0, got {eta}")
            gen = torch.Generator(device=agent.device).manual_seed(int(seed))
            result = agent.plan(obs, t0=t0, trace=True, generator=gen, eta=eta, update_warm_start=False)
            tr = result.trace
            im = tr.imagined
            model_return, energy = predicted_return(im, gamma), discounted_energy(im, gamma)
            plan = np.asarray(tr.plan, np.float64)
            if first_plan is None:
                first_plan = plan
            rows.append(dict(eta=eta, plan=plan, action=plan[0], model_return=model_return, energy=energy,
                             total=model_return + eta * energy, first_energy=float(im["energies"][0]),
                             prior_distance=float(rms_distance(plan[0], prior)),
                             plan_shift=float(rms_distance(plan.ravel(), first_plan.ravel())),
                             prior_elite_share=float(tr.weights[-1][tr.is_prior].sum())))
    return rows


def sweep_observation(task: str, seed: int = 0, steps: int = 25, action_repeat: int = 2,
                      episode_length: int = 500) -> np.ndarray:
    """A fixed, agent-independent state: reset the task with ``seed`` and take ``steps`` uniform actions."""
    from ..envs import make_env

    with make_env(task, seed=seed, action_repeat=action_repeat, episode_length=max(episode_length, steps + 1)) as env:
        rng = np.random.default_rng(seed)
        obs = env.reset()
        for _ in range(steps):
            obs, _, done = env.step(env.random_action(rng))
            if done:
                break
    return obs


@torch.no_grad()
def energy_separation(agent, data: BehaviourData, seed: int = 0) -> dict[str, float]:
    """How well F tells replay actions from off-data ones, on one scale for every variant.

    At the replay's observations z = h(o): F on the replay action (data) and on the release's three
    candidates (`MBDPO.release_candidates`: a policy-prior sample, that sample plus noise, a uniform
    action). ``f_accuracy`` = 0.5 (P[F_data > 0] + P[max_k F_k < 0]), the training loss's accuracy
    against the hardest candidate; ``f_auc_uniform`` = P[F_data > F_uniform] (calibration-free);
    ``f_std_data`` = std of the raw logits on data (near 0 = a flat F, no anchor).
    """
    wm = agent.wm
    gen = torch.Generator(device=agent.device).manual_seed(int(seed))
    obs = torch.as_tensor(data.obs, device=agent.device, dtype=torch.float32)
    act = torch.as_tensor(data.actions, device=agent.device, dtype=torch.float32)
    z = wm.encode(obs)
    f_data = wm.energy_logit(z, act).squeeze(-1)
    cands = agent.release_candidates(z, gen)  # [N, 3, A]
    f_cands = torch.stack([wm.energy_logit(z, cands[:, k]).squeeze(-1) for k in range(3)])
    return dict(
        f_accuracy=float(0.5 * ((f_data > 0).float().mean() + (f_cands.max(0).values < 0).float().mean())),
        f_auc_uniform=float((f_data > f_cands[2]).float().mean()),
        f_std_data=float(f_data.std()),
    )
