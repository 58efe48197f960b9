"""A toy 2-D landscape that shows why MBDPO anchors its planner to the data (no simulator needed).

The picture a course uses: one decision over a 2-D action a in [-1, 1]^2 (horizon 1).

* A **behaviour dataset**: actions from a Gaussian blob that covers part of the square.
* A **true return** R(a): a bump whose top ``a_star`` lies inside the data (not at its densest point).
* A **learned return model**: a small torch MLP fitted to (a, R(a)) on the data. Where there is no
  data, a fitted model is unconstrained; the toy makes that error explicit and reproducible with a
  ``distractor``: near ``spurious``, far from the data, the model believes the return is
  ``distractor x`` the true best return (a smooth blend into the fit). On the data the model is
  right; off the data it has a spurious optimum. ``distractor=0`` is a landscape without the trap.
* An **energy head** F(a): a small torch MLP trained with the agent's loss (binary logistic loss;
  positives are the data; the negatives for each positive, a noisy copy of it and a uniform action
  (there is no policy prior here, and no rho weights over time),
  enter through the smooth maximum log mean exp F of the agent's default rule), standardised by the mean/std of F on the data and clipped to
  +-``energy_clip`` as in the world model.

`ToyReturn` implements the planner's `ReturnModel` protocol (horizon 1, action_dim 2), so the very
same `DiffusionPlanner` that plans for the world model searches this landscape:

    J(a) = model_return(a) + eta * clip(standardised F(a), -5, 5).

The planner z-scores J over its candidates, so only the *ratio* of the return's scale to eta
matters. ``return_scale`` sets the true best return; its default (0.05) makes the gap between the
spurious and the true peak (0.025 with the default distractor 1.5) comparable to what eta = 0.01
buys between the data (standardised F near 0) and off the data (-5): eta = 0 is fooled, 0.01 is the
paper's balance, larger eta pulls the plan towards the data's densest region (behaviour cloning).
The toy also uses a wider noise schedule than the paper (``beta_end`` 0.1 instead of 0.01): the
first level's candidates then cover the whole square, so the search is global rather than a local
walk from the warm start. Both are knobs; `sweep` measures what each eta does.
"""
from __future__ import annotations

import math

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .planner import DenoiseTrace, DiffusionPlanner, Evaluation, PlanResult

ENERGY_CLIP = 5.0


def _mlp(width: int = 64) -> nn.Sequential:
    return nn.Sequential(nn.Linear(2, width), nn.Mish(), nn.Linear(width, width), nn.Mish(), nn.Linear(width, 1))


@dataclass
class ToyConfig:
    """Knobs of the toy landscape (positions are in the action square [-1, 1]^2)."""

    seed: int = 0
    """Seed of the data, the noise on the labels and the two fitted networks."""
    n_data: int = 1000
    """Behaviour actions in the dataset."""
    data_mean: tuple[float, float] = (-0.35, -0.25)
    """Centre (and densest point) of the behaviour data."""
    data_std: tuple[float, float] = (0.28, 0.24)
    """Per-axis std of the behaviour data."""
    data_corr: float = 0.3
    """Correlation of the two axes in the behaviour data."""
    a_star: tuple[float, float] = (-0.6, 0.15)
    """Top of the true return: inside the data, away from its densest point."""
    true_width: float = 0.3
    """Width of the true return's bump."""
    true_slope: float = 0.25
    """A gentle bowl under the bump (in units of return_scale per squared distance): the data then
    shows the return falling away from a_star in every direction, so the fit extrapolates downhill."""
    return_scale: float = 0.05
    """True return at a_star; sets the return's size relative to eta x energy (see module doc)."""
    distractor: float = 1.5
    """What the learned model believes at ``spurious``, in units of return_scale (0: no trap)."""
    spurious: tuple[float, float] = (0.6, 0.55)
    """Centre of the spurious optimum (off the data)."""
    spurious_width: float = 0.22
    """Width of the spurious bump."""
    label_noise: float = 0.02
    """Std of the noise on the return labels, in units of return_scale."""
    fit_steps: int = 400
    """Full-batch Adam steps for each of the two networks."""
    width: int = 64
    """Hidden width of the two MLPs."""
    energy_noise_std: float = 0.5
    """Std of the Gaussian perturbation that makes the 'noisy copy' negatives (as in the agent)."""


def toy_planner(num_samples: int = 256, num_levels: int = 20, num_elites: int = 32, num_pi_trajs: int = 0,
                temperature: float = 0.5, beta_start: float = 1e-4, beta_end: float = 0.1) -> DiffusionPlanner:
    """The agent's `DiffusionPlanner` with the toy's defaults (a schedule wide enough to be global)."""
    return DiffusionPlanner(num_samples=num_samples, num_levels=num_levels, num_elites=num_elites,
                            num_pi_trajs=num_pi_trajs, temperature=temperature, beta_start=beta_start,
                            beta_end=beta_end)


class ToyLandscape:
    """Data, true return, fitted return model (+ distractor) and energy head; see the module doc."""

    def __init__(self, cfg: ToyConfig | None = None, **changes):
        cfg = cfg or ToyConfig()
        for key, value in changes.items():
            if not hasattr(cfg, key):
                raise ValueError(f"unknown toy setting {key!r}")
            setattr(cfg, key, value)
        self.cfg = cfg
        gen = torch.Generator().manual_seed(cfg.seed)
        self.a_star = torch.tensor(cfg.a_star, dtype=torch.float32)
        self.spurious = torch.tensor(cfg.spurious, dtype=torch.float32)
        self.data = self._sample_data(gen)
        self.data_np = self.data.numpy()
        # behaviour-cloning prior: a Gaussian fitted to the data (the toy's "policy prior")
        self.prior_mean = self.data.mean(0)
        self.prior_chol = torch.linalg.cholesky(torch.cov(self.data.T) + 1e-5 * torch.eye(2))
        with torch.random.fork_rng():
            torch.manual_seed(cfg.seed)
            self.return_net = self._fit_return(gen)
            self.energy_net = self._fit_energy(gen)
        with torch.no_grad():
            f = self.energy_net(self.data).squeeze(-1)
        self.energy_mean, self.energy_std = float(f.mean()), float(f.std().clamp(min=1e-3))
        self._grid: dict[str, np.ndarray] | None = None

    # --- the pieces ------------------------------------------------------------------------
    def _sample_data(self, gen: torch.Generator) -> torch.Tensor:
        c = self.cfg
        sx, sy = c.data_std
        cov = torch.tensor([[sx * sx, c.data_corr * sx * sy], [c.data_corr * sx * sy, sy * sy]])
        eps = torch.randn((c.n_data, 2), generator=gen)
        return (torch.tensor(c.data_mean) + eps @ torch.linalg.cholesky(cov).T).clamp(-1, 1)

    def true_return(self, a: torch.Tensor) -> torch.Tensor:
        """R(a) for a [..., 2]: a bump of height return_scale at a_star over a gentle bowl."""
        c = self.cfg
        d2 = ((a - self.a_star) ** 2).sum(-1)
        return c.return_scale * (torch.exp(-d2 / (2 * c.true_width ** 2)) - c.true_slope * d2)

    def distractor_mask(self, a: torch.Tensor) -> torch.Tensor:
        """Where the learned model's off-data error lives: 1 at ``spurious``, ~0 on the data."""
        c = self.cfg
        if c.distractor <= 0:
            return torch.zeros(a.shape[:-1])
        d2 = ((a - self.spurious) ** 2).sum(-1)
        return torch.exp(-d2 / (2 * c.spurious_width ** 2))

    def _fit_return(self, gen: torch.Generator) -> nn.Module:
        c = self.cfg
        x = self.data
        y = (self.true_return(x) + c.label_noise * c.return_scale * torch.randn(x.shape[0], generator=gen))
        y = y / c.return_scale  # fit in units of return_scale (well-conditioned)
        net = _mlp(c.width)
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        for _ in range(c.fit_steps):
            loss = F.mse_loss(net(x).squeeze(-1), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        self.return_fit_loss = float(loss.detach())
        return net.requires_grad_(False)

    def _fit_energy(self, gen: torch.Generator) -> nn.Module:
        """The agent's contrastive energy loss, with a state-less F(a)."""
        c = self.cfg
        net = _mlp(c.width)
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        pos = self.data
        for _ in range(c.fit_steps):
            with torch.no_grad():
                noisy = (pos + c.energy_noise_std * torch.randn(pos.shape, generator=gen)).clamp(-1, 1)
                uniform = torch.rand(pos.shape, generator=gen) * 2 - 1
                cands = torch.stack([noisy, uniform])
            smooth_max = torch.logsumexp(net(cands).squeeze(-1), 0) - math.log(2)
            loss = F.softplus(-net(pos)).mean() + F.softplus(smooth_max).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        self.energy_fit_loss = float(loss.detach())
        return net.requires_grad_(False)

    @torch.no_grad()
    def learned_return(self, a: torch.Tensor) -> torch.Tensor:
        """The planner's model return: the fit (right on the data), blended near ``spurious`` into
        an optimistic belief of ``distractor x return_scale`` (the error off the data)."""
        c = self.cfg
        fit = self.return_net(a).squeeze(-1) * c.return_scale
        m = self.distractor_mask(a)
        return (1 - m) * fit + m * c.distractor * c.return_scale

    @torch.no_grad()
    def energy(self, a: torch.Tensor) -> torch.Tensor:
        """Standardised F clipped to +-5: the anchor term (high = looks like the data)."""
        f = self.energy_net(a).squeeze(-1)
        return ((f - self.energy_mean) / self.energy_std).clamp(-ENERGY_CLIP, ENERGY_CLIP)

    # --- measuring a plan ----------------------------------------------------------------------
    def distance_to_data(self, a: np.ndarray | torch.Tensor, k: int = 10) -> np.ndarray:
        """Mean distance from each point [..., 2] to its k nearest behaviour actions."""
        pts = torch.as_tensor(np.asarray(a, np.float32)).reshape(-1, 2)
        d = torch.cdist(pts, self.data)
        return d.topk(k, largest=False).values.mean(-1).numpy().reshape(np.shape(a)[:-1])

    def best_on_grid(self, n: int = 201) -> np.ndarray:
        """The true return's argmax on an n x n grid of the square."""
        g = torch.linspace(-1, 1, n)
        pts = torch.stack(torch.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2)
        return pts[self.true_return(pts).argmax()].numpy()

    def grid(self, n: int = 81) -> dict[str, np.ndarray]:
        """Contour data: axis ``g`` and [n, n] arrays (row = a1, column = a0) of the three surfaces."""
        if self._grid is None or self._grid["g"].shape[0] != n:
            g = torch.linspace(-1, 1, n)
            pts = torch.stack(torch.meshgrid(g, g, indexing="xy"), -1)
            self._grid = dict(g=g.numpy(), true=self.true_return(pts).numpy(),
                              learned=self.learned_return(pts).numpy(), energy=self.energy(pts).numpy())
        return self._grid

    def set_distractor(self, distractor: float) -> None:
        """Change the model's belief at the spurious point (no re-fit: the error is explicit)."""
        self.cfg.distractor = float(distractor)
        self._grid = None

    # --- planning ------------------------------------------------------------------------------
    def return_model(self, eta: float) -> "ToyReturn":
        return ToyReturn(self, eta)

    def plan(self, eta: float = 0.01, seed: int = 0, planner: DiffusionPlanner | None = None,
             trace: bool = True, warm_start: np.ndarray | None = None) -> PlanResult:
        """One decision of the diffusion planner on this landscape (warm start 0 unless given)."""
        planner = planner or toy_planner()
        warm = torch.zeros(1, 2) if warm_start is None else torch.as_tensor(warm_start, dtype=torch.float32).reshape(1, 2)
        gen = torch.Generator().manual_seed(int(seed))
        return planner.plan(self.return_model(eta), warm, generator=gen, trace=trace)

    def outcome(self, plan: np.ndarray | torch.Tensor) -> dict[str, float]:
        """Where a plan [1, 2] landed: distances to the data / optimum / trap, true and model returns."""
        a = torch.as_tensor(np.asarray(plan, np.float32)).reshape(1, 2)
        return dict(a0=float(a[0, 0]), a1=float(a[0, 1]),
                    distance_to_data=float(self.distance_to_data(a)[0]),
                    distance_to_optimum=float((a[0] - self.a_star).norm()),
                    distance_to_spurious=float((a[0] - self.spurious).norm()),
                    true_return=float(self.true_return(a)[0]), model_return=float(self.learned_return(a)[0]),
                    energy=float(self.energy(a)[0]))

    def sweep(self, etas=(0.0, 0.01, 0.1, 1.0), seeds=(0, 1, 2, 3, 4),
              planner: DiffusionPlanner | None = None) -> list[dict[str, float]]:
        """Plan once per (eta, planner seed) and measure the outcome; one row each."""
        rows = []
        for eta in etas:
            for seed in seeds:
                res = self.plan(eta, seed, planner, trace=False)
                rows.append(dict(eta=float(eta), seed=int(seed), **self.outcome(res.plan)))
        return rows


def summarise_sweep(rows: list[dict[str, float]]) -> list[dict[str, float]]:
    """Mean / min / max over seeds of each eta's distance to the data and true return."""
    out = []
    for eta in sorted({r["eta"] for r in rows}):
        sel = [r for r in rows if r["eta"] == eta]
        dist = np.array([r["distance_to_data"] for r in sel])
        ret = np.array([r["true_return"] for r in sel])
        out.append(dict(eta=eta, seeds=len(sel), distance_to_data=float(dist.mean()),
                        distance_to_data_max=float(dist.max()), true_return=float(ret.mean()),
                        true_return_min=float(ret.min()),
                        trapped=int(sum(r["distance_to_spurious"] < 0.3 for r in sel))))
    return out


class ToyReturn:
    """`ReturnModel` of the toy: J(a) = learned return + eta * clipped standardised F (horizon 1)."""

    horizon = 1
    action_dim = 2

    def __init__(self, toy: ToyLandscape, eta: float):
        self.toy, self.eta = toy, float(eta)

    def evaluate(self, actions: torch.Tensor) -> Evaluation:
        a = actions[:, 0, :].float()
        model_return = self.toy.learned_return(a)
        energy = self.toy.energy(a)
        return Evaluation(total=model_return + self.eta * energy, model_return=model_return, energy=energy)

    def prior_candidates(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """n draws of the behaviour-cloning prior (a Gaussian fitted to the data)."""
        if n <= 0:
            return None
        eps = torch.randn((n, 2), generator=generator)
        return (self.toy.prior_mean + eps @ self.toy.prior_chol.T).clamp(-1, 1).reshape(n, 1, 2)

    @torch.no_grad()
    def rollout(self, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the trace stores as the plan's imagined outcome (and the truth, for teaching)."""
        a = actions[:, 0, :].float()
        return dict(rewards=self.toy.learned_return(a)[:, None], energies=self.toy.energy(a)[:, None],
                    true_return=self.toy.true_return(a), distance_to_data=torch.as_tensor(self.toy.distance_to_data(a)))


def make_toy(seed: int = 0, distractor: float = 1.5, **changes) -> ToyLandscape:
    """The default landscape (a trap when ``distractor`` > 0); fits in about a second on a CPU."""
    return ToyLandscape(ToyConfig(seed=seed, distractor=distractor), **changes)


def mppi_identity_error(trace: DenoiseTrace) -> np.ndarray:
    """[L] max |x_{tau-1} - sqrt(abar_{tau-1}) Abar| per level (0 up to float error)."""
    abar_prev = trace.alpha_bar[trace.levels - 1]
    rhs = np.sqrt(abar_prev)[:, None, None] * trace.weighted_mean
    return np.abs(trace.x_next - rhs).reshape(len(trace.levels), -1).max(-1)


__all__ = ["ToyConfig", "ToyLandscape", "ToyReturn", "make_toy", "toy_planner", "summarise_sweep",
           "mppi_identity_error", "ENERGY_CLIP"]
