"""Exercises on the paper's three ideas, each checked against the library on fixed inputs.

A student writes one function per exercise (notebook 07); `check_*` runs it on inputs where the
library's own code gives the answer and says in words what is wrong: the shape, a sign, a missing
term, the wrong pairing. The words come from running the usual mistakes through the same inputs: when
the student's output matches one of them, that mistake is named. ``solution(name)`` shows a worked
answer (the notebook's toggle); the check never uses it, only the library.

1. `reverse_step`: one level of the planner, the Monte-Carlo score (`DiffusionPlanner.reverse_step`).
2. `energy_loss`: L_F with correct pairing and the hardest negative (`MBDPO.energy_loss_release`, the default).
3. `shaped_return`: the energy-shaped return J of candidates (`planner._evaluation`, `standardise_energy`).
"""
from __future__ import annotations

import html
import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..agent import MBDPO
from ..config import make_config
from ..planner import DiffusionPlanner, Evaluation, OneEpisode, _evaluation

TOLERANCE = 1e-4


@dataclass
class CheckResult:
    """What a check found: ``passed`` and a message for the student."""

    exercise: str
    passed: bool
    message: str

    def __str__(self) -> str:
        return f"{'✔' if self.passed else '✘'} {self.exercise}: {self.message}"

    def _repr_html_(self) -> str:
        colour = "#1b7f3b" if self.passed else "#b00020"
        return (f"<div style='border-left:4px solid {colour};padding:4px 10px'><b style='color:{colour}'>"
                f"{'✔ correct' if self.passed else '✘ not yet'}</b> — {html.escape(self.message)}</div>")


def _run(exercise: str, fn: Callable, *args) -> tuple[Any, CheckResult | None]:
    """Call the student's function; a blank exercise or an exception becomes a message, not a traceback."""
    try:
        with torch.no_grad():
            return fn(*args), None
    except NotImplementedError:
        return None, CheckResult(exercise, False, "nothing written yet: put your code in place of `raise NotImplementedError`, run that cell, then this one.")
    except Exception as exc:  # noqa: BLE001 - the student sees what went wrong in one line
        return None, CheckResult(exercise, False, f"your function raised {type(exc).__name__}: {exc}")


def _compare(exercise: str, out: Any, want: torch.Tensor, mistakes: dict[str, torch.Tensor], what: str,
             success: str) -> CheckResult:
    """Pass when ``out`` equals ``want``; else name the shape problem or the mistake it matches."""
    if not isinstance(out, torch.Tensor):
        return CheckResult(exercise, False, f"return a torch tensor ({what}), got {type(out).__name__}.")
    if tuple(out.shape) != tuple(want.shape):
        return CheckResult(exercise, False, f"wrong shape: you returned {tuple(out.shape)}, {what} has shape "
                                            f"{tuple(want.shape)}.")
    out = out.detach().float()
    if torch.allclose(out, want, atol=TOLERANCE, rtol=TOLERANCE):
        return CheckResult(exercise, True, success)
    for hint, value in mistakes.items():
        if value.shape == out.shape and torch.allclose(out, value, atol=TOLERANCE, rtol=TOLERANCE):
            return CheckResult(exercise, False, hint)
    gap = float((out - want).abs().max())
    return CheckResult(exercise, False, f"the numbers differ from the library's by up to {gap:.3g}; "
                                        "compare each step with the formula above the exercise.")


# --- 1. one reverse diffusion step with the Monte-Carlo score -----------------------------------------

class _Bowl:
    """A known return landscape for the check: J(A) = -||A - target||^2 over a 3-step, 2-D plan."""

    horizon, action_dim, eta = 3, 2, 0.0

    def __init__(self) -> None:
        self.target = torch.tensor([[0.5, -0.3], [0.2, 0.1], [-0.4, 0.6]])

    def evaluate(self, actions: torch.Tensor) -> Evaluation:
        total = -((actions - self.target) ** 2).sum((-1, -2))
        return Evaluation(total, total, torch.zeros_like(total))

    def prior_candidates(self, n, generator=None):
        return None


def reverse_step_case(seed: int = 0) -> dict[str, Any]:
    """Inputs of one planner level and the library's answer for them."""
    planner = DiffusionPlanner(num_samples=64, num_levels=10, num_elites=8, num_pi_trajs=0, temperature=0.5)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((3, 2), generator=gen) * 2 - 1
    tau = 6
    step = planner.reverse_step(x[None], tau, OneEpisode(_Bowl(), gen), None, None)
    return dict(x=x, candidates=step.candidates[0], returns=step.evaluation.total[0],
                alpha_bar=float(planner.alpha_bar[tau]), alpha=float(planner.alpha[tau]),
                num_elites=planner.num_elites, temperature=planner.temperature, want=step.x_next[0])


def _step_variant(c: dict[str, Any], standardise=True, elites=True, divide_temperature=True,
                  sign=1.0, alpha_division=True, return_mean=False) -> torch.Tensor:
    """The reverse step with one part changed: the mistakes the check recognises."""
    r = c["returns"]
    s = (r - r.mean()) / (r.std(unbiased=False) + 1e-8) if standardise else r
    k = c["num_elites"] if elites else len(r)
    vals, idx = torch.topk(s, k)
    w = torch.softmax(vals / c["temperature"] if divide_temperature else vals * c["temperature"], 0)
    mean = torch.einsum("e,eha->ha", w, c["candidates"][idx])
    if return_mean:
        return mean
    abar = c["alpha_bar"]
    score = sign * (math.sqrt(abar) * mean - c["x"]) / (1 - abar)
    moved = c["x"] + (1 - abar) * score
    return moved / math.sqrt(c["alpha"]) if alpha_division else moved


def check_reverse_step(fn: Callable) -> CheckResult:
    """Check ``fn(x, candidates, returns, alpha_bar, alpha, num_elites, temperature) -> x_next``."""
    name = "one reverse diffusion step"
    c = reverse_step_case()
    out, problem = _run(name, fn, c["x"].clone(), c["candidates"].clone(), c["returns"].clone(), c["alpha_bar"],
                        c["alpha"], c["num_elites"], c["temperature"])
    if problem:
        return problem
    mistakes = {
        "the elites are weighted by their raw returns: standardise the returns first (subtract their mean, "
        "divide by their std), so the temperature means the same at every level.": _step_variant(c, standardise=False),
        "you weighted all the candidates: keep only the num_elites best (torch.topk) and give the rest weight 0.":
            _step_variant(c, elites=False),
        "the temperature multiplies the returns: divide by it (a low temperature makes the weights sharper).":
            _step_variant(c, divide_temperature=False),
        "x moved away from the good candidates: the score points from x towards sqrt(alpha_bar) * (elite mean), "
        "score = (sqrt(alpha_bar) * mean - x) / (1 - alpha_bar).": _step_variant(c, sign=-1.0),
        "almost: the step ends with a division by sqrt(alpha) (the DDPM update x <- (x + (1 - alpha_bar) score) "
        "/ sqrt(alpha)).": _step_variant(c, alpha_division=False),
        "you returned the weighted mean of the elites: x only moves part of the way there; compute the score "
        "and take the step.": _step_variant(c, return_mean=True),
    }
    return _compare(name, out, c["want"], mistakes, "the next x, [H, A]",
                    "your step matches the planner's: elites, weights, Monte-Carlo score and the DDPM update.")


# --- 2. the energy loss with correct pairing ----------------------------------------------------------

def energy_case(seed: int = 0) -> dict[str, Any]:
    """A small agent's F, a batch of (z, a) pairs, three candidates per row, and the library's loss."""
    torch.manual_seed(seed)
    agent = MBDPO(make_config("tiny", device="cpu", energy_negatives="hardest"), 4, 2)
    with torch.no_grad():  # a trained-looking F: data actions near +0.5, not flat
        agent.wm.energy_head[-1].weight.normal_(0, 0.3)
    gen = torch.Generator().manual_seed(seed)
    M, L = 16, agent.cfg.latent_dim
    z = torch.softmax(torch.randn((M, L), generator=gen), -1)
    a = (torch.randn((M, 2), generator=gen) * 0.3 + 0.5).clamp(-1, 1)
    cands = torch.rand((3, M, 2), generator=gen) * 2 - 1

    def f(zz: torch.Tensor, aa: torch.Tensor) -> torch.Tensor:
        return agent.wm.energy_logit(zz, aa).squeeze(-1)

    with torch.no_grad():
        want = agent.energy_loss_release(z, a, candidates=cands.transpose(0, 1)).loss
    return dict(F=f, z=z, a=a, candidates=cands, want=want)


def _energy_variant(c: dict[str, Any], pair_shift: int = 0, sign: float = 1.0, pick: str = "hardest",
                    reduce: str = "mean", positive: bool = True, negative: bool = True,
                    half: bool = True) -> torch.Tensor:
    f, z, a, cands = c["F"], c["z"], c["a"], c["candidates"]
    rows = torch.arange(len(a))
    pos = f(z, a.roll(pair_shift, 0))
    cand_f = torch.stack([f(z, cands[k]) for k in range(3)])
    if pick == "all":
        neg_term = F.softplus(sign * cand_f).mean(0)
    else:
        which = cand_f.argmax(0) if pick == "hardest" else cand_f.argmin(0)
        neg_term = F.softplus(sign * cand_f[which, rows])
    per = (F.softplus(-sign * pos) if positive else 0) + (neg_term if negative else 0)
    return (0.5 if half else 1.0) * (per.sum() if reduce == "sum" else per.mean())


def check_energy_loss(fn: Callable) -> CheckResult:
    """Check ``fn(f, z, a_data, candidates) -> loss``: f(z, a) gives F's logits [M]; candidates [3, M, A]."""
    name = "the energy loss"
    c = energy_case()
    out, problem = _run(name, fn, c["F"], c["z"].clone(), c["a"].clone(), c["candidates"].clone())
    if problem:
        return problem
    if isinstance(out, torch.Tensor) and out.dim() == 1 and len(out) == len(c["a"]):
        return CheckResult(name, False, "you returned one loss per row: average them into one number (.mean()).")
    mistakes = {
        "the positives pair each latent with another row's action: F(z_i, a_i) must score row i's own action "
        "(this is the pairing mistake the release makes; the loss then teaches F nothing about the data).":
            _energy_variant(c, pair_shift=1),
        "signs swapped: data actions should get a high F, so the positive term is softplus(-F(z, a_data)) and the "
        "negative term softplus(F(z, a_negative)).": _energy_variant(c, sign=-1.0),
        "you used all three candidates: the rule trains on the hardest one, the candidate with the highest F "
        "in each row.": _energy_variant(c, pick="all"),
        "you picked the candidate with the lowest F (the easiest): take the one F rates highest, the hardest.":
            _energy_variant(c, pick="easiest"),
        "you summed over the rows: take the mean, so the loss does not grow with the batch size.":
            _energy_variant(c, reduce="sum"),
        "the positive term is missing: without softplus(-F(z, a_data)) F can make every action look bad.":
            _energy_variant(c, positive=False),
        "the negative term is missing: without softplus(F(z, a_negative)) F can make every action look good.":
            _energy_variant(c, negative=False),
        "twice the library's loss: it is the average of the two binary cross-entropies, "
        "0.5 (mean softplus(-F_positive) + mean softplus(F_negative)).": _energy_variant(c, half=False),
    }
    if isinstance(out, torch.Tensor) and out.dim() == 1 and out.numel() == 1:
        out = out[0]
    return _compare(name, out, c["want"], mistakes, "one number",
                    "your loss matches the library's: row-wise pairs, the hardest negative, the average of two "
                    "binary cross-entropies.")


# --- 3. the energy-shaped return J ------------------------------------------------------------------------

def shaped_return_case(seed: int = 0) -> dict[str, Any]:
    """Imagined rewards, raw F logits and terminal values of N candidates, F's running statistics, and J."""
    gen = torch.Generator().manual_seed(seed)
    N, H = 6, 4
    rewards = torch.rand((N, H), generator=gen)
    logits = torch.randn((N, H), generator=gen) * 4 + 1.0
    terminal = torch.rand(N, generator=gen) * 20
    gamma, eta, mean, std, clip = 0.9, 0.5, 0.7, 1.6, 2.0
    energies = ((logits - mean) / std).clamp(-clip, clip)
    want = _evaluation(dict(rewards=rewards, energies=energies, terminal_value=terminal), eta, gamma).total
    return dict(rewards=rewards, logits=logits, terminal=terminal, gamma=gamma, eta=eta, mean=mean, std=std,
                clip=clip, want=want)


def _return_variant(c: dict[str, Any], terminal_power: int | None = None, terminal: bool = True,
                    standardise: bool = True, clip: bool = True, energy_discount: bool = True,
                    reward_discount: bool = True, eta: bool = True) -> torch.Tensor:
    H = c["rewards"].shape[1]
    disc = c["gamma"] ** torch.arange(H, dtype=torch.float32)
    f = (c["logits"] - c["mean"]) / c["std"] if standardise else c["logits"]
    f = f.clamp(-c["clip"], c["clip"]) if clip else f
    power = H if terminal_power is None else terminal_power
    value = (c["rewards"] * (disc if reward_discount else 1)).sum(1)
    value = value + (c["gamma"] ** power * c["terminal"] if terminal else 0)
    return value + (c["eta"] if eta else 1.0) * (f * (disc if energy_discount else 1)).sum(1)


def check_shaped_return(fn: Callable) -> CheckResult:
    """Check ``fn(rewards, f_logits, terminal_value, gamma, eta, f_mean, f_std, f_clip) -> J [N]``."""
    name = "the energy-shaped return"
    c = shaped_return_case()
    out, problem = _run(name, fn, c["rewards"].clone(), c["logits"].clone(), c["terminal"].clone(), c["gamma"],
                        c["eta"], c["mean"], c["std"], c["clip"])
    if problem:
        return problem
    H = c["rewards"].shape[1]
    mistakes = {
        "the terminal value Q(z_H, pi(z_H)) is missing: it stands for every reward after the horizon.":
            _return_variant(c, terminal=False),
        f"the terminal value comes after H = {H} steps: discount it by gamma^H, not gamma^(H-1).":
            _return_variant(c, terminal_power=H - 1),
        "the terminal value is not discounted: multiply it by gamma^H.": _return_variant(c, terminal_power=0),
        "F is used raw: standardise it with its running statistics, (F - f_mean) / f_std, before clipping.":
            _return_variant(c, standardise=False),
        "the standardised F is not clipped: clamp it to [-f_clip, f_clip], so one odd action cannot dominate.":
            _return_variant(c, clip=False),
        "the energy term is not discounted: weight F at step t by gamma^t, like the rewards.":
            _return_variant(c, energy_discount=False),
        "the rewards are not discounted: weight the reward at step t by gamma^t.": _return_variant(c, reward_discount=False),
        "eta is missing: the anchor enters as eta x (discounted energy); eta = 0 is the unanchored planner.":
            _return_variant(c, eta=False),
    }
    return _compare(name, out, c["want"], mistakes, "one J per candidate, [N]",
                    "your J matches the planner's: discounted rewards, the terminal value, and eta x the discounted, "
                    "standardised, clipped energy.")


# --- worked answers ----------------------------------------------------------------------------------------

def _solution_reverse_step(x, candidates, returns, alpha_bar, alpha, num_elites, temperature):
    standardised = (returns - returns.mean()) / (returns.std(unbiased=False) + 1e-8)
    elite_values, elite_idx = torch.topk(standardised, num_elites)
    weights = torch.softmax(elite_values / temperature, dim=0)
    mean = (weights[:, None, None] * candidates[elite_idx]).sum(0)
    score = (math.sqrt(alpha_bar) * mean - x) / (1 - alpha_bar)
    return (x + (1 - alpha_bar) * score) / math.sqrt(alpha)


def _solution_energy_loss(f, z, a_data, candidates):
    rows = torch.arange(len(a_data))
    positive = f(z, a_data)  # row i: its own latent and its own action
    candidate_f = torch.stack([f(z, c) for c in candidates])  # [3, M]
    negative = candidate_f[candidate_f.argmax(0), rows]  # the hardest candidate of each row
    softplus = torch.nn.functional.softplus
    return 0.5 * (softplus(-positive).mean() + softplus(negative).mean())  # the mean of the two BCEs


def _solution_shaped_return(rewards, f_logits, terminal_value, gamma, eta, f_mean, f_std, f_clip):
    H = rewards.shape[1]
    discount = gamma ** torch.arange(H, dtype=rewards.dtype)
    energy = ((f_logits - f_mean) / f_std).clamp(-f_clip, f_clip)
    model_return = (rewards * discount).sum(1) + gamma ** H * terminal_value
    return model_return + eta * (energy * discount).sum(1)


SOLUTIONS = {"reverse_step": _solution_reverse_step, "energy_loss": _solution_energy_loss,
             "shaped_return": _solution_shaped_return}


def solution(name: str) -> str:
    """The worked answer of exercise ``name`` as source code (the notebook prints it behind a toggle)."""
    if name not in SOLUTIONS:
        raise KeyError(f"no exercise {name!r}; choose one of {', '.join(SOLUTIONS)}")
    source = inspect.getsource(SOLUTIONS[name])
    return source.replace(f"def _solution_{name}(", f"def {name}(")
