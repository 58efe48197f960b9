"""DenoisingStepper / ToyLandscapeExplorer: the panels show the stored trace; knobs re-plan; bad values are refused."""
import html
import math

import numpy as np
import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("anywidget")

from mbdpo_lab import make_config  # noqa: E402  (sets up headless GL before mujoco)
from mbdpo_lab.agent import MBDPO  # noqa: E402
from mbdpo_lab.envs import make_env  # noqa: E402
from mbdpo_lab.planner import DiffusionPlanner  # noqa: E402
from mbdpo_lab.toy import make_toy  # noqa: E402
from mbdpo_lab.widgets import DenoisingStepper, ToyLandscapeExplorer, collect_rollout  # noqa: E402
from mbdpo_lab.widgets.denoising import OPACITY_BINS, figure_trace, candidate_subset  # noqa: E402


@pytest.fixture(scope="module")
def agent_and_rollout():
    cfg = make_config("tiny", task="cartpole-swingup", device="cpu", num_levels=5)
    env = make_env(cfg.task, seed=0, action_repeat=cfg.action_repeat, episode_length=cfg.episode_length)
    agent = MBDPO(cfg, env.obs_dim, env.act_dim, device="cpu")
    rollout = collect_rollout(agent, env, steps=4, seed=0, render_size=(48, 64))
    return agent, rollout


@pytest.fixture
def stepper(agent_and_rollout):
    agent, rollout = agent_and_rollout
    return DenoisingStepper(agent, rollout=rollout, state=2, max_candidates=12)


def assert_panels_show(w, k):
    """Every panel of the stepper shows exactly row k of w.trace."""
    tr = w.trace
    tau = int(tr.levels[k])
    H, A = tr.plan.shape
    subset = candidate_subset(tr, k, w.max_candidates)
    for d in range(A):
        seen = []
        for b in range(len(OPACITY_BINS)):
            line = w.fig_actions.data[w._cand_index(d, b)]
            assert line.meta["role"] == "candidates" and line.meta["bin"] == b and line.meta["dim"] == d
            for x, y, i in zip(line.x, line.y, line.customdata):
                if i is None:
                    continue
                assert y == pytest.approx(float(tr.candidates[k, i, x, d]))
                seen.append(i)
        assert sorted(set(seen)) == sorted(subset.tolist())
        np.testing.assert_allclose(figure_trace(w.fig_actions, "noisy_mean", d).y,
                                   tr.x[k, :, d] / math.sqrt(tr.alpha_bar[tau]), rtol=1e-6)
        np.testing.assert_allclose(figure_trace(w.fig_actions, "weighted_mean", d).y, tr.weighted_mean[k, :, d])
        np.testing.assert_allclose(figure_trace(w.fig_actions, "plan", d).y, tr.plan[:, d])
    np.testing.assert_array_equal(figure_trace(w.fig_scores, "all").x, tr.energy[k])
    np.testing.assert_array_equal(figure_trace(w.fig_scores, "all").y, tr.model_return[k])
    elites = tr.elite_idx[k]
    np.testing.assert_array_equal(figure_trace(w.fig_scores, "elites").y, tr.model_return[k, elites])
    np.testing.assert_array_equal(figure_trace(w.fig_scores, "elites").marker.color, tr.weights[k, elites])
    np.testing.assert_allclose(figure_trace(w.fig_scores, "weights").y, np.sort(tr.weights[k, elites])[::-1])
    ess = 1 / np.square(tr.weights[k]).sum()
    assert f"ESS {ess:.1f}" in w.fig_scores.layout.title.text
    cur = figure_trace(w.fig_schedule, "current")
    assert list(cur.x) == [tau, tau] and cur.y[0] == pytest.approx(tr.alpha_bar[tau])
    np.testing.assert_allclose(figure_trace(w.fig_schedule, "ess").y, tr.effective_sample_size())
    assert f"τ={tau}" in w.identity.value and "max |difference|" in w.identity.value
    imagined = figure_trace(w.fig_imagined, "rewards")
    gamma = w.agent.gamma
    np.testing.assert_allclose(imagined.y, tr.imagined["rewards"] * gamma ** np.arange(H), rtol=1e-6)


def test_level_slider_shows_trace_rows_without_replanning(stepper, monkeypatch):
    trace, replans = stepper.trace, stepper.replans
    assert len(trace.levels) == 4  # num_levels=5 -> levels 4..1
    monkeypatch.setattr(DiffusionPlanner, "plan", lambda *a, **k: pytest.fail("the slider re-planned"))
    for k in [3, 0, 2, 1]:
        stepper.level.value = k
        assert_panels_show(stepper, k)
    stepper.play.value = 3  # Play is linked to the slider
    assert stepper.level.value == 3
    assert_panels_show(stepper, 3)
    assert stepper.trace is trace and stepper.replans == replans
    assert (stepper.time_level_slider() >= 0).all()


def test_knob_change_replans_and_updates_every_panel(stepper):
    first = stepper.trace
    stepper.level.value = 1
    stepper.knobs["eta"].value = 1.0
    assert stepper.trace is not first and stepper.trace.eta == 1.0 and "planned" in stepper.status.value
    assert_panels_show(stepper, 1)
    stepper.knobs["num_samples"].value = 20
    assert stepper.trace.candidates.shape[1] == 20
    assert len(figure_trace(stepper.fig_scores, "all").x) == 20
    assert_panels_show(stepper, 1)
    stepper.knobs["num_levels"].value = 3
    assert len(stepper.trace.levels) == 2 and stepper.level.max == 1
    assert_panels_show(stepper, stepper.level.value)
    # same seed: undoing the changes gives back the first trace exactly (a controlled comparison)
    assert stepper.set_knobs(eta=first.eta, num_samples=32, num_levels=5)
    np.testing.assert_array_equal(stepper.trace.candidates, first.candidates)
    np.testing.assert_array_equal(stepper.trace.plan, first.plan)


@pytest.mark.parametrize("name, bad, reason", [
    ("num_samples", 0, "num_samples must be >= 1"),
    ("num_elites", 1000, "num_elites must be in"),
    ("temperature", 0.0, "temperature must be > 0"),
    ("eta", -1.0, "eta must be >= 0"),
    ("num_levels", 1, "num_levels must be >= 2"),
])
def test_invalid_value_is_refused_with_a_message(stepper, name, bad, reason):
    trace, old = stepper.trace, stepper.knobs[name].value
    stepper.knobs[name].value = bad  # must not raise
    shown = html.unescape(stepper.status.value)
    assert "refused" in shown and reason in shown
    assert stepper.knobs[name].value == old and stepper.trace is trace
    assert not stepper.set_knobs(**{name: bad}) and stepper.trace is trace


def test_state_slider_replans_at_that_state(stepper, agent_and_rollout):
    _, rollout = agent_and_rollout
    stepper.state.value = 0
    assert stepper.trace.warm_start.any() == False  # noqa: E712 - episode start: zeros
    stepper.state.value = 3
    np.testing.assert_allclose(stepper.trace.warm_start[:-1], rollout.warm_plans[3][1:])
    if rollout.frames is not None:
        from mbdpo_lab.rendering import frame_png

        assert stepper.frame.value == frame_png(rollout.frames[3])
    else:
        assert "rendering" in stepper.frame_caption.value


def test_toy_explorer_panels_and_knobs():
    toy = make_toy(seed=0, fit_steps=60, n_data=300)
    w = ToyLandscapeExplorer(toy, num_samples=64, num_levels=6, num_elites=8)
    tr = w.trace
    for k in range(len(tr.levels)):
        w.level.value = k
        cand = figure_trace(w.fig_plane, "candidates")
        np.testing.assert_array_equal(cand.x, tr.candidates[k, :, 0, 0])
        np.testing.assert_array_equal(cand.y, tr.candidates[k, :, 0, 1])
        np.testing.assert_array_equal(cand.marker.color, tr.weights[k])
        np.testing.assert_array_equal(figure_trace(w.fig_scores, "all").y, tr.model_return[k])
        mean = figure_trace(w.fig_plane, "weighted_mean")
        assert (mean.x[0], mean.y[0]) == pytest.approx(tuple(tr.weighted_mean[k, 0]))
    learned_before = np.array(figure_trace(w.fig_plane, "learned").z)
    w.knobs["distractor"].value = 0.0
    assert w.trace is not tr and not np.array_equal(figure_trace(w.fig_plane, "learned").z, learned_before)
    w.knobs["distractor"].value = -1.0
    assert "refused" in w.status.value and w.knobs["distractor"].value == 0.0
    w.knobs["beta_end"].value = 2.0
    assert "refused" in w.status.value
