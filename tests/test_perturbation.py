"""A change of physics mid-episode: the parameter really changes, nothing changes before it, and the
world model's surprise shows after it."""
from __future__ import annotations

import numpy as np
import pytest

from mbdpo_lab.analysis.perturbation import perturb, run_perturbed
from mbdpo_lab.checkpoint import load_pretrained
from mbdpo_lab.envs import make_env


@pytest.fixture(scope="module")
def agent():
    return load_pretrained("cartpole-swingup", device="cpu").agent


def test_each_parameter_is_scaled_in_the_simulator():
    with make_env("cartpole-swingup") as env:
        model = env._env.physics.model
        gravity, mass, gear = model.opt.gravity.copy(), model.body_mass.copy(), model.actuator_gear[:, 0].copy()
        perturb(env, "gravity", 2.0)
        perturb(env, "mass", 3.0)
        perturb(env, "actuator_gain", 0.5)
        np.testing.assert_allclose(model.opt.gravity, 2 * gravity)
        np.testing.assert_allclose(model.body_mass, np.r_[mass[0], 3 * mass[1:]])
        np.testing.assert_allclose(model.actuator_gear[:, 0], 0.5 * gear)
        with pytest.raises(ValueError, match="parameter must be one of"):
            perturb(env, "friction", 2.0)
        with pytest.raises(ValueError, match="positive number"):
            perturb(env, "mass", 0.0)


def test_the_model_is_surprised_after_the_change_and_not_before(agent):
    changed = run_perturbed(agent, "gravity", 3.0, at_step=20, steps=40, seed=0)
    same = run_perturbed(agent, "gravity", 1.0, at_step=20, steps=40, seed=0)
    np.testing.assert_array_equal(changed.rewards[:20], same.rewards[:20])  # identical until the change
    np.testing.assert_array_equal(same.latent_error, run_perturbed(agent, "mass", 1.0, 5, 40, seed=0).latent_error)
    before, after = changed.split(changed.latent_error)
    assert after > 1.5 * before and after > 1.5 * same.split(same.latent_error)[1]
    assert changed.split(changed.reward_error)[1] > same.split(same.reward_error)[1]
    with pytest.raises(ValueError, match="at_step"):
        run_perturbed(agent, "mass", 2.0, at_step=50, steps=40)


def test_the_widget_runs_both_agents_and_marks_the_change(agent):
    pytest.importorskip("ipywidgets")
    from mbdpo_lab.widgets.perturbation import PerturbationLab

    lab = PerturbationLab({"eta=0.01": agent, "eta=0": "cartpole-swingup-eta0"}, parameter="gravity", scale=2.0,
                          at_step=10, steps=20)
    assert lab.results.children == ()
    runs = lab.run()
    assert [r.label for r in runs] == ["eta=0.01", "eta=0"] and lab.figure in lab.results.children
    assert all(len(t.y) == 20 for t in lab.figure.data) and len(lab.figure.layout.shapes) == 3
    assert "reward prediction error" in lab.table.value and "→" in lab.table.value
