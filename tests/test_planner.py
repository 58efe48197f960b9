"""The diffusion planner on analytic returns with known answers."""
import math

import numpy as np
import pytest
import torch

from mbdpo_lab.agent import MBDPO
from mbdpo_lab.config import make_config
from mbdpo_lab.planner import DiffusionPlanner, Evaluation, shift_warm_start


class Quadratic:
    """J(A) = -sum (A - target)^2: optimum at ``target``."""

    def __init__(self, target):
        self.target = torch.as_tensor(target, dtype=torch.float32)
        self.horizon, self.action_dim = self.target.shape

    def evaluate(self, actions):
        j = -((actions - self.target) ** 2).sum((1, 2))
        return Evaluation(total=j, model_return=j, energy=torch.zeros_like(j))

    def prior_candidates(self, n, generator=None):
        return None


def test_plan_lands_on_quadratic_optimum():
    target = [[0.6, -0.4], [0.2, 0.5], [-0.7, 0.1]]
    planner = DiffusionPlanner(num_samples=512, num_levels=20, num_elites=64, num_pi_trajs=0)
    gen = torch.Generator().manual_seed(0)
    # The Monte-Carlo planner keeps sqrt(abar) of the elite mean; iterate a few decisions
    # (each warm-started from the last), as it does over an episode at a fixed state.
    plan = torch.zeros(3, 2)
    for _ in range(5):
        plan = planner.plan(Quadratic(target), plan, gen).plan
    assert torch.allclose(plan, torch.tensor(target), atol=0.05), plan


def test_single_decision_moves_towards_optimum_from_far_warm_start():
    target = torch.full((3, 1), 0.8)
    planner = DiffusionPlanner(num_samples=256, num_levels=20, num_elites=32, num_pi_trajs=0)
    res = planner.plan(Quadratic(target), torch.full((3, 1), -0.8), torch.Generator().manual_seed(1))
    assert (res.plan - target).abs().max() < (torch.full((3, 1), -0.8) - target).abs().max()


def test_trace_identity_x_prev_equals_sqrt_abar_times_weighted_mean():
    planner = DiffusionPlanner(num_samples=128, num_levels=10, num_elites=16, num_pi_trajs=0)
    res = planner.plan(Quadratic(np.full((3, 2), 0.3)), torch.zeros(3, 2), torch.Generator().manual_seed(0),
                       trace=True)
    tr = res.trace
    assert tr.x.shape == (9, 3, 2) and tr.candidates.shape == (9, 128, 3, 2)
    for k, tau in enumerate(tr.levels):
        expected = math.sqrt(tr.alpha_bar[tau - 1]) * tr.weighted_mean[k]
        np.testing.assert_allclose(tr.x_next[k], expected, rtol=1e-5, atol=1e-6)
        # the next level starts from x_next
        if k + 1 < len(tr.levels):
            np.testing.assert_allclose(tr.x[k + 1], tr.x_next[k])
        # weights: softmax over elites only, summing to one
        assert np.isclose(tr.weights[k].sum(), 1.0, atol=1e-5)
        assert (tr.weights[k] > 0).sum() <= 16
        assert set(np.nonzero(tr.weights[k])[0]) <= set(tr.elite_idx[k])
    np.testing.assert_allclose(tr.plan, np.clip(tr.x_next[-1], -1, 1))
    # the first level starts from sqrt(abar_T) * warm start
    np.testing.assert_allclose(tr.x[0], 0.0)


class FlatReturnWithEnergy:
    """A sparse task far from any reward: the model return is the same for every candidate, while
    the energy prefers ``data_action`` (the actions the replay holds)."""

    def __init__(self, data_action, eta):
        self.data_action = torch.as_tensor(data_action, dtype=torch.float32)
        self.horizon, self.action_dim = self.data_action.shape
        self.eta = eta

    def evaluate(self, actions):
        energy = -((actions - self.data_action) ** 2).sum((1, 2))
        model_return = torch.zeros_like(energy)
        return Evaluation(total=model_return + self.eta * energy, model_return=model_return, energy=energy)

    def prior_candidates(self, n, generator=None):
        return None


def test_flat_model_return_leaves_the_anchor_in_charge_at_any_eta():
    """J is standardised before the softmax, so where the model return is flat (pendulum far from
    upright) even a tiny eta ranks the candidates by energy alone and the plan imitates the data;
    with eta = 0 nothing ranks them and the plan wanders from decision to decision, pulled nowhere."""
    data = torch.full((3, 1), 0.7)
    planner = DiffusionPlanner(num_samples=128, num_levels=6, num_elites=16, num_pi_trajs=0, beta_end=0.035)

    def plan_after(eta, seed, decisions=6):
        gen, plan = torch.Generator().manual_seed(seed), torch.zeros(3, 1)
        for _ in range(decisions):
            plan = planner.plan(FlatReturnWithEnergy(data, eta), plan, gen).plan
        return plan

    for seed in range(3):
        tiny_eta, large_eta = plan_after(1e-3, seed), plan_after(10.0, seed)
        torch.testing.assert_close(tiny_eta, large_eta)  # the scale of eta does not matter here
        assert (tiny_eta - data).abs().max() < 0.1, tiny_eta
    unanchored = torch.stack([plan_after(0.0, seed)[0, 0] for seed in range(24)])
    assert unanchored.mean().abs() < 0.2, unanchored  # no pull towards the data (or anywhere)
    assert unanchored.std() > 0.1, unanchored  # but not standing still either



class GradedReturnWithEnergy(FlatReturnWithEnergy):
    """The same energy, but the model return is graded: it peaks at ``best_action`` (the pendulum
    once its value has spread below the top: pumping torques far from the data)."""

    def __init__(self, data_action, best_action, eta):
        super().__init__(data_action, eta)
        self.best_action = torch.as_tensor(best_action, dtype=torch.float32)

    def evaluate(self, actions):
        energy = super().evaluate(actions).energy
        model_return = -((actions - self.best_action) ** 2).sum((1, 2))
        return Evaluation(total=model_return + self.eta * energy, model_return=model_return, energy=energy)


def test_graded_model_return_outweighs_a_small_anchor():
    """The other side of the flat case: where the return is graded, the default eta barely moves the
    plan from the return's optimum (the shipped unanchored pendulum agent swings up as well with
    eta = 0.01); only a large eta pulls it onto the data."""
    data, best = torch.full((3, 1), 0.7), torch.full((3, 1), -0.8)
    planner = DiffusionPlanner(num_samples=128, num_levels=6, num_elites=16, num_pi_trajs=0, beta_end=0.035)

    def plan_after(eta, seed, decisions=6):
        gen, plan = torch.Generator().manual_seed(seed), torch.zeros(3, 1)
        for _ in range(decisions):
            plan = planner.plan(GradedReturnWithEnergy(data, best, eta), plan, gen).plan
        return plan

    for seed in range(3):
        # the optimum of J moves from -0.8 to (-0.8 + eta 0.7) / (1 + eta): -0.785 at 0.01, 0.685 at 100
        assert (plan_after(0.0, seed) - best).abs().max() < 0.1
        assert (plan_after(0.01, seed) - best).abs().max() < 0.1
        assert (plan_after(100.0, seed) - data).abs().max() < 0.1


def test_warm_start_is_shifted_previous_plan():
    prev = torch.arange(6, dtype=torch.float32).view(3, 2)
    warm = shift_warm_start(prev, 3, 2, "cpu")
    assert torch.equal(warm, torch.tensor([[2.0, 3.0], [4.0, 5.0], [0.0, 0.0]]))
    assert torch.equal(shift_warm_start(None, 3, 2, "cpu"), torch.zeros(3, 2))


def test_agent_uses_previous_plan_as_warm_start(tiny_agent):
    obs = np.zeros(5, np.float32)
    first = tiny_agent.plan(obs, t0=True, trace=True)
    np.testing.assert_array_equal(first.trace.warm_start, 0.0)
    second = tiny_agent.plan(obs, t0=False, trace=True)
    expected = np.concatenate([first.plan.numpy()[1:], np.zeros((1, 2), np.float32)])
    np.testing.assert_allclose(second.trace.warm_start, expected)
    again = tiny_agent.plan(obs, t0=True, trace=True)  # new episode: zeros again
    np.testing.assert_array_equal(again.trace.warm_start, 0.0)


@pytest.mark.parametrize("variant", ["release", "lab"])
def test_policy_prior_candidates_enter_every_level(variant):
    torch.manual_seed(0)
    tiny_agent = MBDPO(make_config("tiny", variant=variant, device="cpu"), obs_dim=5, act_dim=2)
    res = tiny_agent.plan(np.zeros(5, np.float32), t0=True, trace=True)
    tr = res.trace
    n_prior = tiny_agent.cfg.num_pi_trajs
    assert tr.is_prior[:n_prior].all() and not tr.is_prior[n_prior:].any()
    prior = tr.candidates[:, :n_prior]
    same = np.allclose(prior, np.broadcast_to(prior[0], prior.shape))
    # lab draws the prior rollouts once per decision; the release redraws them at every level
    assert same == (variant == "lab")
    assert set(tr.imagined) >= {"latents", "rewards", "energies", "terminal_value"}
    assert tr.imagined["latents"].shape == (tiny_agent.cfg.horizon + 1, tiny_agent.cfg.latent_dim)


def test_eta_changes_objective_only_through_energy(tiny_agent):
    z0 = tiny_agent.encode(np.zeros(5, np.float32))
    actions = torch.rand(16, tiny_agent.cfg.horizon, 2) * 2 - 1
    with torch.no_grad():
        tiny_agent.wm.energy_head[-1].bias.fill_(1.0)  # give F something to say
        torch.manual_seed(0)
        e0 = tiny_agent.return_model(z0, eta=0.0, generator=torch.Generator().manual_seed(3)).evaluate(actions)
        e1 = tiny_agent.return_model(z0, eta=0.5, generator=torch.Generator().manual_seed(3)).evaluate(actions)
    torch.testing.assert_close(e0.total, e0.model_return)
    torch.testing.assert_close(e1.total, e1.model_return + 0.5 * e1.energy)
    assert (e1.energy.abs() <= tiny_agent.cfg.energy_clip * 3).all()


def test_comparison_actors_run_on_same_world_model(tiny_agent):
    obs = np.zeros(5, np.float32)
    for planner in ("diffusion", "mppi", "policy"):
        a = tiny_agent.act(obs, t0=True, eval_mode=True, planner=planner)
        assert a.shape == (2,) and np.all(np.abs(a) <= 1)
