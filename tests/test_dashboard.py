"""TrainingDashboard: the plain aggregation/throttling logic, and tiny runs driven through its public
methods (what the buttons call): start, refused second start, pause, resume, stop, checkpoint, video,
and an exception injected in the training thread."""
from __future__ import annotations

import types

import numpy as np
import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")

from mbdpo_lab.checkpoint import load_checkpoint  # noqa: E402
from mbdpo_lab.config import make_config  # noqa: E402
from mbdpo_lab.reference import reference_curve  # noqa: E402
from mbdpo_lab import devices as dmod  # noqa: E402
from mbdpo_lab.progress import (ConsoleReport, DashboardData, MetricsFeed, RateMeter, Series,  # noqa: E402
                                Throttle, eta_seconds, format_duration, phase_text, status_line)
from mbdpo_lab.trainer import fresh_run_dir  # noqa: E402
from mbdpo_lab.widgets.dashboard import TrainingDashboard  # noqa: E402
from limits import HANG_S  # noqa: E402

# A tiny run: 50-step episodes, 100 random seed steps, 1 thread.
TINY = dict(task="cartpole-swingup", preset="tiny", seed=0, device="cpu", refresh_s=0.2,
            episode_length=50, seed_steps=100, eval_episodes=1, batch_size=16)


# --- plain logic -------------------------------------------------------------------------------

def test_series_is_bounded_and_keeps_shape():
    s = Series(max_points=10)
    for i in range(1000):
        s.append(i, 2 * i)
    assert 5 <= len(s) <= 11
    assert np.allclose(np.array(s.y), 2 * np.array(s.x))  # merged buckets stay on the line
    assert s.x == sorted(s.x) and s.x[0] < 100 and s.x[-1] > 900  # the whole run, evenly
    assert np.ptp(np.diff(s.x[:-1])) <= s.stride  # equal-width buckets
    assert s.last == 2 * s.x[-1]
    v = s.version
    s.append(1001, float("nan"))  # non-finite values are not plotted
    assert s.version == v


def test_throttle_rate_eta_and_format():
    th = Throttle(1.0, clock=lambda: 0.0)
    assert th.ready(0.0) and not th.ready(0.5) and th.ready(1.0)
    rate = RateMeter(smoothing=0.5)
    assert rate.observe(0.0, 0) is None
    assert rate.observe(2.0, 100) == 50.0
    assert rate.observe(3.0, 200) == 100.0 and rate.average == 75.0
    rate.reset()  # after a pause the paused time is not counted
    assert rate.observe(100.0, 200) is None and rate.observe(101.0, 250) == 50.0
    assert eta_seconds(100, 1100, 50.0) == 20.0 and eta_seconds(0, 10, None) is None
    assert format_duration(3725) == "1:02:05" and format_duration(65) == "1:05" and format_duration(None) == "—"
    assert status_line(500, 1000, 25.0, 3.0) == ("step 500 / 1,000 (50.0%) · 25.0 steps/s · "
                                                  "planner 3.0 ms/action · ETA 0:20")


def test_phase_text_follows_the_trainer():
    cfg = make_config("tiny", seed_steps=100, eval_every=400)
    assert phase_text(10, cfg).startswith("seed phase")
    assert "updates on the seed data" in phase_text(99, cfg)
    assert phase_text(400, cfg).startswith("evaluating")
    assert phase_text(400, cfg, last_eval_step=400).startswith("learning")


def test_feed_aggregates_per_window_and_data_reports_changes():
    clock = iter([10.0, 11.0, 12.0])
    feed = MetricsFeed(clock=lambda: next(clock))
    trainer = types.SimpleNamespace(callbacks=[], agent_step=0, cfg=types.SimpleNamespace(num_seed_steps=2),
                                    agent=types.SimpleNamespace(last_plan_ms=4.0))
    feed.attach(trainer)
    assert trainer.callbacks == [feed]
    for k in range(1, 5):
        trainer.agent_step = k
        feed("step", {"step": 2 * k, "reward": 1.0, **({"value_loss": float(k), "energy_pos_logit": 1.0}
                                                       if k > 2 else {})})
    feed("episode", {"step": 8, "episode_return": 3.0, "steps_per_s": 5.0})
    feed("eval", {"step": 8, "eval_return": 7.0, "eval_return_std": 1.0, "frames": np.zeros((2, 4, 4, 3)),
                  "video": None, "returns": [7.0]})
    up = feed.drain()
    assert up.n_steps == 4 and up.step == 8 and up.agent_step == 4
    assert up.losses == {"value_loss": 3.5, "energy_pos_logit": 1.0}
    assert up.planner_ms == 4.0  # planned steps only (agent_step > seed steps)
    assert "frames" not in up.evals[0]

    data = DashboardData(max_points=50)
    data.start_clock(9.0, 0)
    changed = data.apply(up)
    assert {"losses", "energy", "returns", "video", "speed", "status"} <= changed
    assert data.step == 8 and data.losses["value_loss"].y == [3.5] and data.eval_return.y == [7.0]
    assert data.steps_per_s.y == [8.0]  # 8 steps in 1 s
    empty = feed.drain()
    assert empty.empty and empty.step == 8 and data.apply(empty) == set()


def test_console_report_without_widgets():
    lines = []
    t = iter(np.arange(0.0, 100.0, 1.0))
    report = ConsoleReport(total=100, interval_s=5.0, print_fn=lines.append, clock=lambda: float(next(t)))
    for k in range(1, 11):
        report("step", {"step": 2 * k, "reward": 0.0, "energy_loss": 0.5})
    report("eval", {"step": 20, "eval_return": 12.5, "eval_return_std": 0.0, "returns": [12.5]})
    assert any(line.startswith("[eval] step 20: return 12.5") for line in lines)
    assert any("step 20 / 100" in line and "energy 0.5" in line for line in lines)
    assert len(lines) < 10  # throttled, not one line per step


def test_device_options_list_cuda_devices(monkeypatch):
    props = types.SimpleNamespace(name="Fake GPU", total_memory=80 * 2**30)
    monkeypatch.setattr(dmod.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(dmod.torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(dmod.torch.cuda, "get_device_properties", lambda i: props)
    opts = dmod.device_options()
    assert [v for _, v in opts] == ["cuda:0", "cuda:1", "cpu"]
    assert "Fake GPU" in opts[0][0] and "80.0 GiB" in opts[0][0]
    assert "GPU cuda:1" in dmod.device_note("cuda:1")
    monkeypatch.setattr(dmod.torch.cuda, "is_available", lambda: False)
    opts = dmod.device_options()
    assert [v for _, v in opts] == ["cpu"] and "no CUDA" in opts[0][0]
    assert "falls back to the CPU" in dmod.device_note("cpu")


def test_fresh_run_dir(tmp_path):
    assert fresh_run_dir(tmp_path / "a") == tmp_path / "a"
    (tmp_path / "a").mkdir()
    assert fresh_run_dir(tmp_path / "a") == tmp_path / "a"  # empty: reuse
    (tmp_path / "a" / "metrics.csv").write_text("x")
    assert fresh_run_dir(tmp_path / "a") == tmp_path / "a-2"


def test_bad_settings_are_refused_without_a_thread(tmp_path):
    dash = TrainingDashboard(**{**TINY, "out_dir": tmp_path / "run"})
    dash.eta_w.value = 0.0
    dash.steps_w.value = 1
    dash.task_w.value = "walker-walk"  # a valid change redraws the reference curves for that task
    assert dash.fig_returns.data[2].x[0] == 100_000
    assert dash.fig_returns.data[2].y[0] == pytest.approx(reference_curve("mbdpo", "walker-walk").at(100_000), abs=0.1)
    dash.overrides["num_elites"] = 10_000  # more elites than candidates
    assert dash.start() is False and "num_elites" in dash.message and not dash.running
    assert dash.pause() is False and dash.stop() is False
    assert dash.resume() is False and "no checkpoint" in dash.message
    with pytest.raises(Exception, match="unknown config key"):
        TrainingDashboard(**TINY, not_a_field=1)


# --- real (tiny) runs in the background thread ---------------------------------------------------

def test_start_pause_resume_stop_checkpoint_video(tmp_path):
    seen = []
    dash = TrainingDashboard(**TINY, steps=500, eval_every=200, save_video=True, video_size=48,
                             out_dir=tmp_path / "run", callbacks=[lambda e, d: seen.append((e, d.get("step")))])
    # reference curves for the task are drawn before anything runs
    names = [t.name for t in dash.fig_returns.data]
    assert "MBDPO (paper)" in names and "TD-MPC2 (paper)" in names
    assert dash.fig_returns.data[2].x[0] == 100_000  # step 0 is not drawn: no line invented from (0, 0)
    assert dash.fig_returns.data[2].y[0] == pytest.approx((878.1 + 882.9 + 882.0) / 3, abs=0.1)

    assert dash.start() is True
    assert dash.start() is False and "already in progress" in dash.message  # second Start refused
    assert dash.wait_for(lambda: dash.trainer is not None and dash.trainer.env_step >= 150, HANG_S)
    assert dash.start() is False

    assert dash.pause() is True
    assert dash.wait_for(lambda: dash.trainer.state == "paused", HANG_S)
    paused_at = dash.trainer.env_step
    assert dash.wait_for(lambda: dash.trainer.env_step != paused_at, 0.6) is False  # no progress while paused
    assert dash.state == "paused" and dash.running

    assert dash.resume() is True
    assert dash.wait_for(lambda: dash.trainer.env_step >= 250, HANG_S)  # past the eval at 200
    assert dash.stop() is True
    assert dash.wait(HANG_S)
    trainer = dash.trainer
    assert trainer.state == "stopped" and dash.state == "stopped" and not dash.running
    stopped_at = trainer.env_step

    # the counters shown match the trainer, the figures received data
    assert dash.step_counter == stopped_at == dash.data.step
    assert dash.progress_w.value == stopped_at
    assert f"{stopped_at:,}" in dash.progress_label.value
    assert len(dash.fig_returns.data[0].x) >= 3  # training episode returns
    assert len(dash.fig_returns.data[1].x) >= 1  # evaluation at step 200
    loss_x = {t.name: len(t.x) for t in dash.fig_losses.data}
    assert loss_x["energy_loss"] > 0 and loss_x["value_loss"] > 0 and loss_x["consistency_loss"] > 0
    assert all(len(t.x) > 0 for t in dash.fig_energy.data)
    assert len(dash.fig_speed.data[0].x) > 0 and len(dash.fig_speed.data[2].x) > 0  # steps/s, planner ms
    assert max(dash.fig_returns.data[1].x) <= stopped_at

    # the evaluation video is shown inline with its return
    assert dash.video_w.value[4:8] == b"ftyp" and "eval at step 200" in dash.video_caption.value

    # a checkpoint of the stopped state exists and loads; the agent stays usable
    ckpt = load_checkpoint(dash.run_dir / "checkpoints" / "last.safetensors")
    assert ckpt.meta["agent_step"] == stopped_at and ckpt.has_optimizer
    obs = trainer.env.reset()
    assert dash.agent.act(obs, t0=True, eval_mode=True).shape == (trainer.env.act_dim,)

    # Resume continues from the same step (the first new step event is the next one)
    n_seen = len(seen)
    assert dash.resume() is True
    assert dash.wait_for(lambda: dash.trainer.env_step >= stopped_at + 20, HANG_S)
    assert dash.stop() and dash.wait(HANG_S)
    new_steps = [s for e, s in seen[n_seen:] if e == "step"]
    assert dash.trainer is trainer and new_steps[0] == stopped_at + 1
    assert dash.step_counter == trainer.env_step


def test_exception_in_training_thread_surfaces_and_state_stays_consistent(tmp_path):
    fired = []

    def explode(event, data):
        if event == "step" and data["step"] == 125 and not fired:  # mid-episode, after the seed phase
            fired.append(True)
            raise ValueError("injected failure for the test")

    dash = TrainingDashboard(**TINY, steps=200, eval_every=0, out_dir=tmp_path / "run", callbacks=[explode])
    assert dash.start()
    assert dash.wait(HANG_S)
    trainer = dash.trainer
    assert trainer.state == "failed" and dash.state == "failed" and not dash.running
    assert trainer.env_step == 125 and dash.step_counter == 125
    assert "injected failure for the test" in dash.error_text
    assert "injected failure for the test" in dash.error_w.value and dash.error_w.layout.display != "none"
    assert "failed at step 125" in dash.message
    assert dash.progress_w.bar_style == "danger"
    assert not dash.resume_button.disabled and dash.stop_button.disabled

    ckpt = load_checkpoint(dash.run_dir / "checkpoints" / "last.safetensors")
    assert ckpt.meta["agent_step"] == 125
    assert np.all(np.isfinite(dash.agent.act(trainer.env.reset(), t0=True, eval_mode=True)))

    # Resume after the failure: from the checkpoint written when it failed, to the end
    assert dash.resume()
    assert dash.wait(HANG_S)
    assert dash.state == "finished" and dash.trainer.env_step == 200 and dash.error_text is None
    assert dash.error_w.layout.display == "none" and dash.step_counter == 200
    episode_steps = [r["step"] for r in dash.history if r["kind"] == "episode"]
    assert episode_steps[:2] == [50, 100] and episode_steps == sorted(episode_steps)  # the whole run
    assert load_checkpoint(dash.run_dir / "agent.safetensors").meta["agent_step"] == 200


def test_stop_while_the_run_is_being_built_is_not_lost(tmp_path):
    dash = TrainingDashboard(**TINY, steps=500, eval_every=0, out_dir=tmp_path / "run")
    assert dash.start() is True
    assert dash.stop() is True  # most likely still building the env and agent
    assert dash.wait(HANG_S)
    assert dash.state == "stopped" and dash.trainer.state == "stopped" and dash.trainer.env_step < 500
