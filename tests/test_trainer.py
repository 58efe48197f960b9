import csv
import math

import numpy as np
import pytest

from mbdpo_lab.checkpoint import load_checkpoint
from mbdpo_lab.config import make_config
from mbdpo_lab.trainer import RunControls, Trainer


def _cfg(**kw):
    base = dict(task="cartpole-swingup", steps=300, episode_length=50, seed_steps=100, eval_every=0,
                eval_episodes=1, device="cpu", batch_size=16)
    base.update(kw)
    return make_config("tiny", **base)


def test_same_seed_same_numbers():
    a = Trainer(_cfg(steps=200)).run()
    b = Trainer(_cfg(steps=200)).run()
    assert [r["episode_return"] for r in a.history] == [r["episode_return"] for r in b.history]
    assert a.history[-1]["value_loss"] == b.history[-1]["value_loss"]


def test_short_episodes_and_training_past_the_planned_steps_fit_the_replay():
    # every episode start takes a replay row; 5-step episodes once overflowed a replay sized for the steps
    trainer = Trainer(_cfg(steps=100, episode_length=5, seed_steps=50)).run()
    assert trainer.state == "finished" and len(trainer.buffer) == 100
    trainer.run(steps=160)  # the dashboard's "train more" goes past cfg.steps
    assert trainer.state == "finished" and len(trainer.buffer) == 160 and trainer.buffer.num_episodes >= 32


def test_step_pause_stop_resume_and_checkpoint(tmp_path):
    events = []
    trainer = Trainer(_cfg(), out_dir=tmp_path, callbacks=[lambda e, d: events.append((e, d))])
    for _ in range(60):
        trainer.step()
    assert trainer.agent_step == 60 and trainer.env_step == 60

    def stop_at_150(event, data):
        if event == "step" and data["step"] >= 150:
            trainer.stop()

    trainer.callbacks.append(stop_at_150)
    trainer.run()
    assert trainer.state == "stopped" and trainer.env_step == 150
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.safetensors")
    assert ckpt.meta["agent_step"] == 150 and ckpt.has_optimizer
    assert any(e == "checkpoint" for e, _ in events)

    resumed = Trainer.resume_from(tmp_path)
    assert resumed.env_step == 150 and resumed.buffer.num_transitions == trainer.buffer.num_transitions
    resumed.run()
    assert resumed.state == "finished" and resumed.env_step == 300
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert {"step", "eval_return", "episode_return", "energy_loss"} <= set(rows[0])
    steps = [int(r["step"]) for r in rows if r["kind"] == "episode"]
    assert steps == sorted(steps) and steps[-1] == 300


def test_ctrl_c_leaves_usable_agent_and_intact_checkpoint(tmp_path):
    trainer = Trainer(_cfg(), out_dir=tmp_path)

    def interrupt(event, data):
        if event == "step" and data["step"] >= 130:
            raise KeyboardInterrupt

    trainer.callbacks.append(interrupt)
    trainer.run()
    assert trainer.state == "stopped"
    ckpt = load_checkpoint(tmp_path / "agent.safetensors")
    action = ckpt.agent.act(np.zeros(trainer.env.obs_dim, np.float32), t0=True, eval_mode=True)
    assert np.isfinite(action).all()


def test_resumed_run_meets_new_initial_states(tmp_path):
    """A resumed segment must not replay the first segment's episode starts (pendulum learns from them)."""
    trainer = Trainer(_cfg(steps=120), out_dir=tmp_path)
    for _ in range(120):
        trainer.step()
    trainer.save()
    first_segment = trainer.buffer.obs[trainer.buffer.episode == 0][0]
    resumed = Trainer.resume_from(tmp_path, steps=130)
    resumed.run()
    episodes = resumed.buffer.episode
    start_after_resume = resumed.buffer.obs[np.flatnonzero(episodes == episodes.max())[0]]
    assert not np.allclose(start_after_resume, first_segment)


def test_resume_after_hard_kill_draws_each_step_once(tmp_path):
    """A kill after the last checkpoint must not leave the replayed steps twice in metrics.csv."""
    trainer = Trainer(_cfg(), out_dir=tmp_path)
    for _ in range(150):
        trainer.step()
    trainer.save()
    for _ in range(100):  # logged, never checkpointed: what a SIGKILL leaves behind
        trainer.step()
    logged_late = [r for r in trainer.history if r["step"] > 150]
    assert logged_late

    resumed = Trainer.resume_from(tmp_path)
    resumed.run()
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    steps = [int(r["step"]) for r in rows if r["kind"] == "episode"]
    assert steps == sorted(set(steps)) and steps[-1] == 300
    aside = list(csv.DictReader(open(tmp_path / "metrics.after_crash.csv")))
    assert [int(r["step"]) for r in aside] == [r["step"] for r in logged_late]


def test_exception_in_training_is_reported_and_state_kept(tmp_path):
    errors = []
    trainer = Trainer(_cfg(), out_dir=tmp_path, callbacks=[lambda e, d: errors.append(d) if e == "error" else None])

    def boom(event, data):
        if event == "step" and data["step"] >= 120:
            raise ValueError("injected")

    trainer.callbacks.append(boom)
    with pytest.raises(ValueError):
        trainer.run()
    assert trainer.state == "failed" and "injected" in errors[0]["error"]
    assert load_checkpoint(tmp_path / "checkpoints" / "last.safetensors").meta["agent_step"] == 120
    trainer.callbacks.pop()
    trainer.run()  # the same trainer can carry on
    assert trainer.state == "finished"


def test_tiny_training_has_finite_losses_and_rising_return():
    cfg = make_config("tiny", task="cartpole-swingup", steps=1500, episode_length=100, seed_steps=200,
                      eval_every=1500, eval_episodes=3, device="cpu", seed=1)
    trainer = Trainer(cfg).run()
    episodes = [r for r in trainer.history if r["kind"] == "episode"]
    after_seed_phase = [r for r in episodes if r["step"] > trainer.first_update_step + 1]
    assert len(after_seed_phase) >= 10
    for row in after_seed_phase:
        for key in ("consistency_loss", "reward_loss", "value_loss", "energy_loss", "pi_loss"):
            assert math.isfinite(row[key]), key
    random_phase = np.mean([r["episode_return"] for r in episodes[:2]])
    learned = trainer.last_eval["mean_return"]
    assert learned > random_phase + 10, (random_phase, learned)


def test_stop_interrupts_an_evaluation_without_recording_it(tmp_path):
    trainer = Trainer(_cfg(eval_every=100, eval_episodes=3), out_dir=tmp_path)

    def stop_inside_eval(event, data):
        if event == "step" and data["step"] == 100:
            trainer.stop()  # the evaluation due at this step sees the flag and gives up

    trainer.callbacks.append(stop_inside_eval)
    trainer.run()
    assert trainer.state == "stopped" and trainer.env_step == 100
    assert not [r for r in trainer.history if r["kind"] == "eval"]


def test_a_stop_requested_before_the_run_is_honoured_and_the_next_run_continues():
    controls = RunControls()
    controls.stop()  # e.g. Stop pressed in the dashboard while the trainer was still being built
    trainer = Trainer(_cfg(), controls=controls)
    trainer.run()
    assert trainer.state == "stopped" and trainer.env_step == 0
    trainer.run(steps=20)  # Resume: the honoured stop is forgotten
    assert trainer.state == "finished" and trainer.env_step == 20
    controls.pause()
    assert trainer.controls.pause_requested  # the trainer reads the very controls it was given


def test_seed_phase_burst_reports_its_updates_as_they_run():
    """The burst of S updates that ends the seed phase takes minutes on a CPU: the trainer reports it
    while it runs, and the dashboard's data draws those losses at their update numbers."""
    from mbdpo_lab.progress import DashboardData, MetricsFeed

    cfg = make_config("tiny", task="pendulum-swingup", steps=0, seed_steps=50, episode_length=50)
    events = []
    trainer = Trainer(cfg, callbacks=[lambda event, data: events.append((event, dict(data)))])
    feed = MetricsFeed().attach(trainer)
    while trainer.agent_step <= trainer.first_update_step:
        trainer.step()
    burst = [d for e, d in events if e == "seed_updates"]
    assert burst and burst[-1]["done"] == burst[-1]["of"] == cfg.num_seed_steps
    assert [d["done"] for d in burst] == sorted(d["done"] for d in burst)
    assert all(np.isfinite(d["total_loss"]) for d in burst)
    data = DashboardData()
    changed = data.apply(feed.drain())
    assert "losses" in changed
    xs = [x for x, _ in zip(data.losses["total_loss"]._x, data.losses["total_loss"]._y)]
    assert xs[0] <= burst[0]["done"] and max(xs) <= cfg.num_seed_steps + 1
    assert data.seed_updates is None  # the burst ended: the phase line goes back to the step phases


def test_a_run_from_an_older_version_keeps_its_metrics_columns(tmp_path):
    """Columns added later (e.g. eval_success) must not shift the rows of a file written before them."""
    import csv

    first = Trainer(_cfg(steps=100, eval_every=50), out_dir=tmp_path)
    first.run()
    path = tmp_path / "metrics.csv"
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    old = [c for c in rows[0] if c not in ("episode_success", "eval_success")]
    with open(path, "w", newline="") as fh:  # as an older version wrote it
        writer = csv.DictWriter(fh, fieldnames=old, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    resumed = Trainer.resume_from(tmp_path, steps=200)
    resumed.run()
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        after = list(reader)
    assert reader.fieldnames == old and len(after) > len(rows)
    for row in after:
        assert row["kind"] in ("episode", "eval") and float(row["step"]) > 0  # nothing shifted into the wrong column
