"""The exercises: a blank answer fails with a helpful message, the solution passes, and each usual mistake
is recognised and named (so the message a student reads is about their mistake)."""
from __future__ import annotations

import pytest
import torch

from mbdpo_lab.experiments import exercises as ex

CHECKS = {"reverse_step": ex.check_reverse_step, "energy_loss": ex.check_energy_loss,
          "shaped_return": ex.check_shaped_return}


def _blank(*args):
    raise NotImplementedError


@pytest.mark.parametrize("name", list(CHECKS))
def test_a_blank_exercise_fails_with_a_message_and_the_solution_passes(name):
    blank = CHECKS[name](_blank)
    assert not blank.passed and "nothing written yet" in blank.message
    assert CHECKS[name](ex.SOLUTIONS[name]).passed


@pytest.mark.parametrize("name", list(CHECKS))
def test_the_shown_solution_is_a_working_answer(name):
    """What the toggle shows, run as the student would paste it, passes the check."""
    namespace = {"torch": torch, "math": __import__("math")}
    exec(ex.solution(name), namespace)
    assert CHECKS[name](namespace[name]).passed


def _step_student(**change):
    def student(x, candidates, returns, alpha_bar, alpha, num_elites, temperature):
        case = dict(x=x, candidates=candidates, returns=returns, alpha_bar=alpha_bar, alpha=alpha,
                    num_elites=num_elites, temperature=temperature)
        return ex._step_variant(case, **change)
    return student


def _energy_student(**change):
    def student(f, z, a_data, candidates):
        return ex._energy_variant(dict(F=f, z=z, a=a_data, candidates=candidates), **change)
    return student


def _return_student(**change):
    def student(rewards, f_logits, terminal_value, gamma, eta, f_mean, f_std, f_clip):
        case = dict(rewards=rewards, logits=f_logits, terminal=terminal_value, gamma=gamma, eta=eta, mean=f_mean,
                    std=f_std, clip=f_clip)
        return ex._return_variant(case, **change)
    return student


MISTAKES = [
    (ex.check_reverse_step, _step_student(standardise=False), "standardise the returns"),
    (ex.check_reverse_step, _step_student(elites=False), "keep only the num_elites best"),
    (ex.check_reverse_step, _step_student(divide_temperature=False), "divide by it"),
    (ex.check_reverse_step, _step_student(sign=-1.0), "moved away from the good candidates"),
    (ex.check_reverse_step, _step_student(alpha_division=False), "division by sqrt(alpha)"),
    (ex.check_reverse_step, _step_student(return_mean=True), "you returned the weighted mean"),
    (ex.check_energy_loss, _energy_student(pair_shift=1), "another row's action"),
    (ex.check_energy_loss, _energy_student(sign=-1.0), "signs swapped"),
    (ex.check_energy_loss, _energy_student(pick="all"), "you used all three candidates"),
    (ex.check_energy_loss, _energy_student(pick="easiest"), "the lowest F"),
    (ex.check_energy_loss, _energy_student(reduce="sum"), "you summed over the rows"),
    (ex.check_energy_loss, _energy_student(positive=False), "the positive term is missing"),
    (ex.check_energy_loss, _energy_student(negative=False), "the negative term is missing"),
    (ex.check_shaped_return, _return_student(terminal=False), "terminal value Q(z_H, pi(z_H)) is missing"),
    (ex.check_shaped_return, _return_student(terminal_power=3), "not gamma^(H-1)"),
    (ex.check_shaped_return, _return_student(terminal_power=0), "terminal value is not discounted"),
    (ex.check_shaped_return, _return_student(standardise=False), "F is used raw"),
    (ex.check_shaped_return, _return_student(clip=False), "is not clipped"),
    (ex.check_shaped_return, _return_student(energy_discount=False), "energy term is not discounted"),
    (ex.check_shaped_return, _return_student(reward_discount=False), "rewards are not discounted"),
    (ex.check_shaped_return, _return_student(eta=False), "eta is missing"),
]


@pytest.mark.parametrize("check, student, words", MISTAKES, ids=[m[2] for m in MISTAKES])
def test_each_usual_mistake_is_named(check, student, words):
    result = check(student)
    assert not result.passed and words in result.message, result.message


def test_shapes_exceptions_and_unknown_mistakes_get_plain_words():
    shape = ex.check_reverse_step(lambda *a: torch.zeros(2))
    assert not shape.passed and "wrong shape: you returned (2,)" in shape.message
    raised = ex.check_shaped_return(lambda r, *a: r @ torch.ones(3))
    assert not raised.passed and raised.message.startswith("your function raised RuntimeError")
    other = ex.check_shaped_return(lambda r, *a: r.sum(1))
    assert not other.passed and "differ from the library's by up to" in other.message
    rows = ex.check_energy_loss(lambda f, z, a, c: torch.nn.functional.softplus(-f(z, a)))
    assert not rows.passed and "one loss per row" in rows.message
    assert "✘" in str(rows) and "not yet" in rows._repr_html_()


def test_the_solution_toggle_shows_the_code_only_when_asked():
    from mbdpo_lab.widgets.solution_toggle import SolutionToggle

    toggle = SolutionToggle("energy_loss")
    assert toggle.code.layout.display == "none" and "def energy_loss(f, z, a_data, candidates)" in toggle.code.value
    toggle.button.value = True
    assert toggle.code.layout.display == "" and toggle.button.description == "hide the solution"
    with pytest.raises(KeyError, match="choose one of"):
        ex.solution("nope")
