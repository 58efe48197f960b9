"""Anchoring metrics (synthetic cases with known answers), the paired eta experiment, its report and widget."""
from __future__ import annotations

import csv
import html
import math

import numpy as np
import pytest
import torch

from mbdpo_lab.analysis.anchoring import (AnchorEpisode, AnchorRollouts, BehaviourData, aggregate, branch_step,
                                          collect_anchor_rollouts, discounted_return_to_go, episode_metrics,
                                          eta_sweep, horizon_returns, nearest_neighbour_distance, realised_mask,
                                          referee_energy, state_nn_distance, td_errors, value_gap)
from mbdpo_lab.checkpoint import CheckpointError
from mbdpo_lab.cli import build_parser
from mbdpo_lab.trainer import replay_path
from mbdpo_lab.config import ConfigError, make_config
from mbdpo_lab.envs import UnknownTaskError, make_env
from mbdpo_lab.experiments.anchor import (CSV_COLUMNS, AnchorResult,
                                          compare_checkpoints, config_diff, cross_energy_rows, make_row,
                                          paired_configs, result_from_rows, run_compare_anchor, run_paired,
                                          metric_traces, summarise_cross_energy, sweep_agents)

GAMMA = 0.9


# --- pure functions ------------------------------------------------------------------------------

def test_return_to_go_tails():
    r = np.ones(200)
    none = discounted_return_to_go(r, GAMMA, tail="none")
    assert none[0] == pytest.approx((1 - GAMMA ** 200) / (1 - GAMMA))
    assert none[-1] == pytest.approx(1.0)
    steady = discounted_return_to_go(r, GAMMA, tail="steady")
    np.testing.assert_allclose(steady, 1 / (1 - GAMMA))  # constant reward: the infinite return exactly
    mask = realised_mask(200, GAMMA, "mask", max_tail_weight=0.05)
    k = math.ceil(math.log(0.05) / math.log(GAMMA))  # first k with gamma^k <= 0.05
    assert mask.sum() == 200 - k + 1 and mask[0] and not mask[-1]
    h, valid = horizon_returns([1.0, 2.0, 3.0, 4.0], GAMMA, 3)
    assert h[0] == pytest.approx(1 + 2 * GAMMA + 3 * GAMMA ** 2) and valid.tolist() == [True, True, False, False]
    assert value_gap([3.0, 5.0], [1.0, 1.0]) == pytest.approx(3.0)
    assert td_errors([10.0], [1.0], [5.0], GAMMA)[0] == pytest.approx(10 - (1 + GAMMA * 5))


def test_state_conditional_nn_distance_sees_what_action_nn_misses():
    rng = np.random.default_rng(0)
    # Two regions of state space; in region A the data took action -0.8, in region B +0.8.
    obs = np.concatenate([rng.normal(-3, 0.1, (200, 2)), rng.normal(3, 0.1, (200, 2))])
    acts = np.concatenate([np.full((200, 1), -0.8), np.full((200, 1), 0.8)])
    query_obs, query_act = np.array([[-3.0, -3.0]]), np.array([[0.8]])  # region A, region B's action
    assert nearest_neighbour_distance(query_act, acts)[0] == pytest.approx(0.0, abs=1e-6)
    assert state_nn_distance(query_obs, query_act, obs, acts, k=16)[0] == pytest.approx(1.6, abs=1e-5)
    assert np.isnan(nearest_neighbour_distance(query_act, np.zeros((0, 1))))[0]


def synthetic_episode(action: float, T: int = 300, bonus: float = 1.0, noise: float = 0.0,
                      rng: np.random.Generator | None = None) -> AnchorEpisode:
    """A one-dimensional task with known answers.

    True reward r(a) = 1 - a^2 at every state; the data's actions (and the prior's mean) are a = 0.
    The learned model is too optimistic off the data: it believes r_hat(a) = 1 - a^2 + bonus*|a|
    forever, so Q_hat(a) = r_hat(a) / (1 - gamma), and V(z') = Q_hat(0) = 1 / (1 - gamma).
    An unanchored planner maximises r_hat: a = bonus / 2. With bonus = 1 it takes a = 0.5: believed
    1.25 per step, realised 0.75, so over-estimation = 0.5 / (1 - gamma) = 5 at gamma 0.9; the TD error
    of its action is Q_hat(0.5) - (0.75 + gamma * 10) = 12.5 - 9.75 = 2.75, and 0 for the prior's.
    """
    rng = rng or np.random.default_rng(0)
    a = np.full((T, 1), action) + noise * rng.standard_normal((T, 1))
    r_true = 1 - a[:, 0] ** 2
    r_hat = r_true + bonus * np.abs(a[:, 0])
    q_hat = r_hat / (1 - GAMMA)
    v = np.full(T, 1 / (1 - GAMMA))
    obs = rng.normal(0, 1, (T + 1, 2))
    return AnchorEpisode(
        obs=obs, actions=a, rewards=r_true, predicted_return=q_hat, imagined_rewards=np.stack([r_hat] * 3, 1),
        plan_energy=-np.abs(a[:, 0]) / 0.1, q_value=q_hat, prior_mean=np.zeros((T, 1)),
        energy=np.clip(-np.abs(a[:, 0]) / 0.1, -5, 5), energy_prior=np.zeros(T), next_value=v,
        q_prior=v.copy(), prior_rewards=np.ones(T), prior_next_value=v.copy())


def behaviour(rng=None) -> BehaviourData:
    rng = rng or np.random.default_rng(1)
    return BehaviourData(rng.normal(0, 1, (500, 2)), np.zeros((500, 1)))  # the data's actions: a = 0


def test_synthetic_overoptimistic_q_known_answers():
    unanchored = episode_metrics(synthetic_episode(0.5), GAMMA, behaviour())
    anchored = episode_metrics(synthetic_episode(0.0), GAMMA, behaviour())
    # Value over-estimation: sign and magnitude.
    assert unanchored["overestimation"] == pytest.approx(5.0)
    assert unanchored["q_overestimation"] == pytest.approx(5.0)
    assert anchored["overestimation"] == pytest.approx(0.0, abs=1e-9)
    discount_h = sum(GAMMA ** k for k in range(3))
    assert unanchored["horizon_gap"] == pytest.approx(0.5 * discount_h)
    # Drift: from the prior's mean, from the replay actions, and in energy.
    assert unanchored["prior_distance"] == pytest.approx(0.5)
    assert anchored["prior_distance"] == pytest.approx(0.0)
    assert unanchored["nn_distance"] == pytest.approx(0.5, abs=1e-6)
    assert unanchored["state_nn_distance"] == pytest.approx(0.5, abs=1e-6)
    assert anchored["nn_distance"] == pytest.approx(0.0, abs=1e-6)
    assert unanchored["energy"] == pytest.approx(-5.0) and anchored["energy"] == pytest.approx(0.0)
    assert unanchored["energy_gap"] == pytest.approx(5.0)
    # Cross-TD: Q is wrong on the planner's off-data action, right on the prior's.
    assert unanchored["td_plan"] == pytest.approx(2.75) and unanchored["td_prior"] == pytest.approx(0.0)
    assert unanchored["cross_td_gap"] == pytest.approx(2.75)
    assert anchored["cross_td_gap"] == pytest.approx(0.0)
    assert unanchored["return"] == pytest.approx(300 * 0.75) and anchored["return"] == pytest.approx(300.0)


def _rows(label, eta, action, episodes=4, noise=0.02, seed=0):
    rng = np.random.default_rng(seed)
    per = [episode_metrics(synthetic_episode(action, T=120, noise=noise, rng=rng), GAMMA, behaviour())
           for _ in range(episodes)]
    return make_row(label, eta, 1000, aggregate(per), "steady")


def test_summary_states_the_effect_and_no_measurable_difference():
    rows = [_rows("eta=0", 0.0, 0.5, seed=1), _rows("eta=0.01", 0.01, 0.0, seed=2)]
    result = result_from_rows("synthetic", rows)
    assert result.labels == ["eta=0", "eta=0.01"]
    assert "reduced both over-estimation and drift" in result.summary
    by = {v["metric"]: v for v in result.verdicts}
    assert by["overestimation"]["verdict"] == "better" and by["prior_distance"]["verdict"] == "better"
    assert by["overestimation"]["difference"] == pytest.approx(-5.0, abs=0.3)

    same = [_rows("eta=0", 0.0, 0.3, seed=3), _rows("eta=0.01", 0.01, 0.3, seed=4)]
    result = result_from_rows("synthetic", same)
    assert "no measurable difference to over-estimation or drift" in result.summary
    assert {v["verdict"] for v in result.verdicts if v["metric"] != "return"} <= {"none"}

    one = [_rows("eta=0", 0.0, 0.5, episodes=1), _rows("eta=0.01", 0.01, 0.0, episodes=1)]
    assert "cannot tell" in result_from_rows("synthetic", one).summary


class _Referee:
    """An energy head with a known answer: F(z, a) = -|a - centre| / 0.1 (its data sit at a = centre)."""

    device = torch.device("cpu")

    def __init__(self, centre: float):
        self.wm = self
        self.centre = centre

    def encode(self, obs):
        return obs

    def standardised_energy(self, z, a):
        return (-(a[:, 0] - self.centre).abs() / 0.1).clamp(-5, 5)


def _rollouts(action: float, episodes: int = 3, seed: int = 0) -> AnchorRollouts:
    rng = np.random.default_rng(seed)
    eps = [synthetic_episode(action, T=50, noise=0.01, rng=rng) for _ in range(episodes)]
    return AnchorRollouts("synthetic", 0.0, GAMMA, 3, eps)


def test_one_referee_f_scores_both_agents_actions_on_one_scale():
    # The unanchored agent acts at a = 0.5, the anchored one at the data's a = 0.
    rollouts = {"eta=0": _rollouts(0.5), "eta=0.01": _rollouts(0.0, seed=1)}
    assert referee_energy(_Referee(0.0), rollouts["eta=0"]) == pytest.approx([-5.0] * 3, abs=0.1)  # at the clip
    assert referee_energy(_Referee(0.0), rollouts["eta=0.01"]) == pytest.approx([-0.08] * 3, abs=0.05)
    # Two referees that both put the data near 0: every F agrees that the anchor reduced drift.
    refs = {"eta=0": _Referee(0.05), "eta=0.01": _Referee(0.0)}
    rows = cross_energy_rows(refs, rollouts)
    assert {(r["referee"], r["actor"]) for r in rows} == {(a, b) for a in refs for b in rollouts}
    text, verdicts = summarise_cross_energy(rows, ["eta=0", "eta=0.01"])
    assert "action drift under one F" in text and "reduced under every F" in text
    assert [v["verdict"] for v in verdicts] == ["better", "better"]
    assert {v["referee"] for v in verdicts} == set(refs)
    # A referee whose data sit at 0.5 sees it the other way round: the verdict is "mixed", not "reduced".
    rows = cross_energy_rows({"eta=0": _Referee(0.5), "eta=0.01": _Referee(0.0)}, rollouts)
    text, _ = summarise_cross_energy(rows, ["eta=0", "eta=0.01"])
    assert "mixed" in text and "reduced" not in text.splitlines()[0]
    # Agents that act alike: no measurable difference.
    same = {"eta=0": _rollouts(0.2, seed=2), "eta=0.01": _rollouts(0.2, seed=3)}
    text, _ = summarise_cross_energy(cross_energy_rows(refs, same), ["eta=0", "eta=0.01"])
    assert "no measurable difference" in text.splitlines()[0]


# --- collection from a real env and agent ---------------------------------------------------------

def test_branch_step_leaves_the_episode_unchanged():
    rng = np.random.default_rng(0)
    a_env, b_env = (make_env("cartpole-swingup", seed=5, episode_length=20) for _ in range(2))
    a_env.reset(), b_env.reset()
    for _ in range(20):
        action = a_env.random_action(rng)
        branch_step(a_env, -action)
        got, want = a_env.step(action), b_env.step(action)
        assert np.array_equal(got[0], want[0]) and got[1:] == want[1:]


def test_eta_sweep_same_noise_and_energy_grows_with_eta(tiny_cfg):
    env = make_env("cartpole-swingup", seed=0, episode_length=20)
    from mbdpo_lab.agent import MBDPO

    torch.manual_seed(0)
    agent = MBDPO(tiny_cfg, env.obs_dim, env.act_dim)
    with torch.no_grad():  # give F a shape so the anchor has something to pull towards
        agent.wm.energy_head[-1].weight.normal_(0, 1.0)
    obs = env.reset()
    rows = eta_sweep(agent, obs, [0.0, 0.0, 1000.0], seed=3)
    assert [r["eta"] for r in rows] == [0.0, 0.0, 1000.0]
    np.testing.assert_array_equal(rows[0]["plan"], rows[1]["plan"])  # same seed, same plan
    assert rows[2]["energy"] > rows[0]["energy"]
    assert rows[2]["plan_shift"] > 0 and rows[0]["plan_shift"] == 0
    assert agent.prev_plan is None  # the sweep leaves the warm start alone


# --- the paired experiment -------------------------------------------------------------------------

def _tiny(**kw):
    base = dict(task="cartpole-swingup", steps=120, episode_length=30, seed_steps=100, eval_every=60,
                eval_episodes=1, batch_size=16, device="cpu")
    base.update(kw)
    return make_config("tiny", **base)


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("anchor")
    result = run_paired(_tiny(), out, metric_episodes=2, frame_size=32, sweep_etas=(0.0, 0.01, 1.0),
                        sweep_step=5)
    return out, result


def test_pair_differs_only_in_eta(paired):
    out, result = paired
    cfgs = paired_configs(_tiny(), eta_large=0.5)
    assert config_diff(cfgs[0], cfgs[1]) == {"eta": (0.0, 0.01)}
    assert config_diff(cfgs[1], cfgs[2]) == {"eta": (0.01, 0.5)}
    a, b = (result.configs[label] for label in result.labels)
    assert config_diff(a, b) == {"eta": (0.0, 0.01)}
    # Same seed: the same seed-phase data in both replays.
    ra, rb = (np.load(replay_path(out / d)) for d in ("eta0", "eta0.01"))
    seed_rows = _tiny().num_seed_steps
    np.testing.assert_array_equal(ra["action"][:seed_rows], rb["action"][:seed_rows])
    np.testing.assert_array_equal(ra["obs"][:seed_rows], rb["obs"][:seed_rows])
    with pytest.raises(ConfigError, match="larger than the default eta"):
        paired_configs(_tiny(), eta_large=0.001)
    with pytest.raises(ConfigError, match="eta > 0"):
        paired_configs(_tiny(eta=0.0))


def test_measuring_does_not_change_training(paired):
    from mbdpo_lab.trainer import Trainer

    _, result = paired
    alone = Trainer(_tiny()).run()  # eta=0.01 without the anchoring callback
    with_cb = [r for r in result.history if r["agent"] == "eta=0.01"]
    assert [r["episode_return"] for r in alone.history if r["kind"] == "episode"] == \
        [r["episode_return"] for r in with_cb if r["kind"] == "episode"]


def test_metrics_csv_has_a_row_per_evaluation_per_agent(paired):
    out, result = paired
    rows = list(csv.DictReader(open(out / "anchor_metrics.csv")))
    assert list(rows[0]) == CSV_COLUMNS
    assert sorted((r["agent"], int(r["step"])) for r in rows) == \
        [("eta=0", 60), ("eta=0", 120), ("eta=0.01", 60), ("eta=0.01", 120)]
    for r in rows:
        assert int(r["episodes"]) == 2
        for key in ("overestimation", "prior_distance", "energy", "state_nn_distance", "td_plan_abs",
                    "td_prior_abs", "cross_td_gap", "return"):
            assert math.isfinite(float(r[key])), key
    loaded = AnchorResult.load(out)
    assert loaded.labels == result.labels and len(loaded.rows) == 4
    # Both agents' final actions scored under both agents' F, saved and read back.
    assert len(result.cross_energy) == 4 and loaded.cross_energy == result.cross_energy
    assert all(math.isfinite(r["energy"]) and r["episodes"] == 2 for r in result.cross_energy)
    assert "action drift under one F" in result.summary
    assert set(loaded.sweeps) == set(result.labels) and len(loaded.sweeps["eta=0"]) == 3
    np.testing.assert_allclose(loaded.sweeps["eta=0"][1]["plan"], result.sweeps["eta=0"][1]["plan"], atol=1e-5)


def test_html_report_is_self_contained_and_has_the_summary(paired):
    out, result = paired
    text = (out / "anchor_report.html").read_text()
    first = result.summary.splitlines()[0]
    assert html.escape(first) in text
    assert "no measurable difference" in text or "higher by" in text or "lower by" in text
    assert len(text) > 1_000_000 and "<script src" not in text  # plotly.js inlined: opens offline
    assert "data:video/mp4;base64," in text
    assert (out / "videos" / "eta0.mp4").exists()
    assert "under eta=0.01&#x27;s F" in text or "under eta=0.01's F" in text


def test_widget_builds_from_result_and_shows_the_data(paired):
    pytest.importorskip("ipywidgets")
    from mbdpo_lab.widgets.anchor_comparison import AnchorComparison

    out, result = paired
    w = AnchorComparison.from_dir(out)
    assert set(w.videos) == set(result.labels)
    assert all(type(v).__name__ == "Video" and len(v.value) > 0 for v in w.videos.values())
    assert "What the numbers show" in w.summary_w.value
    w.set_metric("prior_distance")
    shown = {t.name: list(t.y) for t in w.fig_metric.data}
    for label in result.labels:
        want = [r["prior_distance"] for r in result.agent_rows(label)]
        np.testing.assert_allclose(shown[label], want, rtol=1e-6)
    w.metric_w.value = "overestimation"
    assert "over-estimation" in w.fig_metric.layout.title.text
    w.set_sweep_quantity("energy")
    assert [t.name for t in w.fig_sweep.data] == result.labels
    assert list(w.fig_sweep.data[0].x) == ["0", "0.01", "1"]
    assert len(w.fig_returns.data) >= 2


def test_compare_checkpoints_measures_two_trained_agents(paired, tmp_path):
    out, _ = paired
    result = compare_checkpoints([str(out / "eta0.01"), str(out / "eta0" / "agent.safetensors")], tmp_path / "ck",
                                 episodes=2, sweep_etas=(0.0, 0.1), sweep_step=3, video=False)
    assert result.labels == ["eta=0", "eta=0.01"] and result.mode == "checkpoints"
    assert [r["step"] for r in result.rows] == [120, 120]
    assert not any("differs" in n for n in result.notes), result.notes
    assert len(result.cross_energy) == 4 and "action drift under one F" in result.summary
    assert all(math.isfinite(r["state_nn_distance"]) for r in result.rows)  # replay found beside the run
    assert any(r["kind"] == "eval" for r in result.history)
    assert (tmp_path / "ck" / "anchor_report.html").exists()
    # The sweep re-plans a state the agents know: step 3 of the unanchored agent's first evaluation episode.
    state = result.sweep_state
    assert state["source"] == "step 3 of eta=0's first evaluation episode" and state["step"] == 3
    agent = result.agents["eta=0"]
    env = make_env(agent.cfg.task, seed=20_000, action_repeat=agent.cfg.action_repeat,
                   episode_length=agent.cfg.episode_length)
    again = collect_anchor_rollouts(agent, env, 1, seed=20_000, max_steps=3)
    np.testing.assert_allclose(state["obs"], again.episodes[0].obs[3], atol=1e-5)
    # Without an evaluation episode (a run stopped early) it falls back to random actions after a reset.
    sweep_agents(result, {}, (0.0, 0.1), 3, seed=0)
    assert "uniform random actions" in result.sweep_state["source"]
    assert set(result.sweeps) == {"eta=0", "eta=0.01"} and len(result.sweeps["eta=0"]) == 2


def _args(*argv):
    return build_parser().parse_args(["compare-anchor", *argv])


def test_cli_bad_input_raises_clear_errors(tmp_path):
    out = str(tmp_path / "x")
    with pytest.raises(UnknownTaskError, match="cartpole-swingup"):
        run_compare_anchor(_args("--task", "cartpole-swingupp", "--preset", "tiny", "--out", out))
    with pytest.raises(ConfigError, match="eta-large"):
        run_compare_anchor(_args("--preset", "tiny", "--eta-large", "0.001", "--out", out))
    with pytest.raises(ConfigError, match="sweep-etas"):
        run_compare_anchor(_args("--preset", "tiny", "--sweep-etas", "a,b", "--out", out))
    with pytest.raises(CheckpointError, match="not found"):
        run_compare_anchor(_args("--checkpoints", str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"),
                                 "--out", out))
    with pytest.raises(ConfigError, match="two or more checkpoints"):
        run_compare_anchor(_args("--checkpoints", "a", "--out", out))
    with pytest.raises(ConfigError, match="unknown config key"):
        run_compare_anchor(_args("--preset", "tiny", "--set", "etaa=1", "--out", out))


def test_arms_of_seeds_are_compared_by_their_intervals_over_seeds():
    """Between arms of several seeds a difference counts only when the 95% CIs over seeds do not overlap."""
    from mbdpo_lab.experiments.anchor.verdicts import compare_metric

    def row(agent, point, low, high):
        return dict(agent=agent, episodes=5, seeds=3, **{"return": point, "return_std": 10.0, "return_low": low,
                                                         "return_high": high})

    apart = compare_metric("return", row("eta=0", 500, 450, 550), row("eta=0.01", 700, 650, 750))
    assert apart["verdict"] == "better" and apart["seeds"] == (3, 3)
    touching = compare_metric("return", row("eta=0", 500, 450, 660), row("eta=0.01", 700, 650, 750))
    assert touching["verdict"] == "none"  # std over seeds (10) would have called it; the CIs overlap
    one_seed = compare_metric("return", dict(row("eta=0", 500, 450, 660), seeds=1), row("eta=0.01", 700, 650, 750))
    assert one_seed["verdict"] == "better" and "seeds" not in one_seed  # back to the per-episode rule


def test_compare_checkpoints_takes_seeds_of_two_arms(paired, tmp_path):
    from mbdpo_lab.trainer import Trainer

    out, _ = paired
    for eta in (0.0, 0.01):
        Trainer(_tiny(seed=2, eta=eta), out_dir=tmp_path / f"eta{eta:g}-s2").run()
    runs = [str(out / "eta0"), str(out / "eta0.01"), str(tmp_path / "eta0-s2"), str(tmp_path / "eta0.01-s2")]
    result = compare_checkpoints(runs, tmp_path / "arms", episodes=2, sweep_etas=(0.0, 0.1), sweep_step=3,
                                 video=False)
    assert result.labels == ["eta=0", "eta=0.01"] and result.over_seeds
    assert result.members == {"eta=0": [runs[0], runs[2]], "eta=0.01": [runs[1], runs[3]]}
    for r in result.rows:
        assert r["seeds"] == 2 and r["episodes"] == 2
        for m in ("return", "overestimation", "prior_distance"):
            assert r[f"{m}_low"] <= r[m] <= r[f"{m}_high"], m
    assert "seeds per arm" in result.summary.splitlines()[0]
    assert "95% bootstrap CIs over seeds" in result.summary
    # the CSV keeps the intervals, and the figures draw them as asymmetric error bars
    loaded = AnchorResult.load(tmp_path / "arms")
    assert loaded.over_seeds and loaded.interval("eta=0", "return") == (result.rows[0]["return_low"],
                                                                         result.rows[0]["return_high"])
    bars = metric_traces(loaded, "overestimation")
    assert all(b["error_y"]["symmetric"] is False for b in bars)
    assert "IQM and 95% CI over seeds" in (tmp_path / "arms" / "anchor_report.html").read_text()
    with pytest.raises(ConfigError, match="two or more checkpoints"):
        compare_checkpoints(runs[:1], None)
