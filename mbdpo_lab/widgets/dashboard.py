"""Train an MBDPO agent live from a notebook: ``TrainingDashboard`` (ipywidgets 8 + plotly FigureWidget).

The dashboard is a thin view over `Trainer`:

* training runs in a background thread (`Trainer.run`), so the notebook stays responsive;
* the trainer's callbacks feed a `MetricsFeed` (thread-safe, O(1) work per step, no plotting);
* a second thread (the *pump*) drains the feed every ``refresh_s`` seconds into `DashboardData`
  (bounded, decimated series) and redraws only the panels that changed, so plotting costs the same
  whether the agent runs 10 or 10 000 steps per second;
* Stop, Pause/Resume and failures go through the trainer's own `RunControls` (handed to a trainer
  still being built, so nothing is lost), and the state shown is the trainer's: a stop or an exception
  writes a checkpoint and leaves ``dashboard.agent`` usable; the error text is shown in the dashboard;
  Resume continues from the same step (after a failure: from the checkpoint written when it failed).

Everything that is not a widget lives below the widgets: the feed, series, rates and status line in
`mbdpo_lab.progress` (whose ``ConsoleReport`` prints the same status from a script), the device choices
in `mbdpo_lab.devices`, run directories in `mbdpo_lab.trainer`.

Usage::

    from mbdpo_lab.widgets.dashboard import TrainingDashboard
    dash = TrainingDashboard(task="cartpole-swingup", preset="cpu")
    dash            # then press Start (or call dash.start())
"""
from __future__ import annotations

import html
import math
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..analysis.figures import figure_widget
from ..config import PRESETS, Config, ConfigError, field_doc, make_config
from ..devices import device_note, device_options
from ..progress import DashboardData, MetricsFeed, Series, Throttle, phase_text, status_line
from ..reference import reference_curves
from ..rendering import release_render_contexts
from ..trainer import RunControls, fresh_run_dir
from .run_comparison import RunComparison

# Panels of the loss figure: (key reported by MBDPO.update, title).
LOSS_PANELS: tuple[tuple[str, str], ...] = (
    ("consistency_loss", "consistency"), ("reward_loss", "reward CE"), ("value_loss", "value CE"),
    ("energy_loss", "energy L_F"), ("pi_loss", "policy prior"), ("total_loss", "total (world model)"),
    ("pi_entropy", "policy entropy"), ("grad_norm", "grad norm"),
)
SCORE_PANEL = ("score_loss", "score matching")
FIRST_PUBLISHED_STEP = 100_000  # the reference curves are published every 100k environment steps


def default_out_dir(task: str, seed: int) -> Path:
    return Path("runs") / f"dashboard-{task}-{seed}"


def _returns_figure() -> go.FigureWidget:
    fig = figure_widget()
    fig.add_scatter(name="episode return (training)", mode="lines+markers", marker=dict(size=4),
                    line=dict(width=1, color="rgba(31,119,180,0.55)"))
    fig.add_scatter(name="eval return (ours)", mode="lines+markers", marker=dict(size=9, color="#d62728"),
                    line=dict(color="#d62728", width=2), error_y=dict(type="data", array=[], visible=True))
    fig.add_scatter(name="MBDPO (paper)", mode="lines+markers", line=dict(dash="dash", color="#2ca02c"),
                    marker=dict(size=6), error_y=dict(type="data", array=[], visible=True, thickness=1))
    fig.add_scatter(name="TD-MPC2 (paper)", mode="lines+markers", line=dict(dash="dot", color="#9467bd"),
                    marker=dict(size=6), error_y=dict(type="data", array=[], visible=True, thickness=1))
    fig.update_layout(height=340, width=560, margin=dict(l=50, r=20, t=40, b=40), title="return vs environment steps",
                      xaxis_title="environment steps", yaxis_title="episode return",
                      legend=dict(orientation="h", y=-0.22), yaxis=dict(range=[0, 1000]))
    return fig


def _losses_figure(panels: tuple[tuple[str, str], ...]) -> go.FigureWidget:
    cols = 4
    rows = math.ceil(len(panels) / cols)
    fig = figure_widget(make_subplots(rows=rows, cols=cols, subplot_titles=[t for _, t in panels],
                                        horizontal_spacing=0.07, vertical_spacing=0.2))
    for i, (key, _) in enumerate(panels):
        fig.add_scatter(name=key, mode="lines", line=dict(width=1.5), showlegend=False,
                        row=i // cols + 1, col=i % cols + 1)
    fig.update_layout(height=150 * rows + 60, width=980, margin=dict(l=45, r=10, t=50, b=30),
                      title=dict(text="losses by update (one update per environment step after the seed phase; "
                                      "the seed phase's burst first)", y=0.99, font_size=12))
    fig.update_annotations(font_size=11)
    return fig


def _energy_figure() -> go.FigureWidget:
    fig = figure_widget(make_subplots(specs=[[{"secondary_y": True}]]))
    fig.add_scatter(name="F(z, a) data (positives)", mode="lines", line=dict(color="#2ca02c"))
    fig.add_scatter(name="F(z, a⁻) hardest negatives", mode="lines", line=dict(color="#d62728"))
    fig.add_scatter(name="running mean of F (positives)", mode="lines", line=dict(color="#7f7f7f", dash="dot"))
    fig.add_scatter(name="accuracy (right axis)", mode="lines", line=dict(color="#1f77b4", width=1),
                    secondary_y=True)
    fig.update_layout(height=320, width=430, margin=dict(l=50, r=50, t=40, b=40),
                      title="energy F: positive vs negative logits",
                      legend=dict(orientation="h", y=-0.3, font_size=10), xaxis_title="environment steps")
    fig.update_yaxes(title_text="logit", secondary_y=False)
    fig.update_yaxes(title_text="accuracy", range=[0, 1], secondary_y=True)
    return fig


def _speed_figure() -> go.FigureWidget:
    fig = figure_widget(make_subplots(rows=1, cols=2, subplot_titles=["environment steps / s",
                                                                         "ms per action / update"],
                                        horizontal_spacing=0.15))
    fig.add_scatter(name="steps/s (live)", mode="lines", line=dict(color="#1f77b4"), row=1, col=1)
    fig.add_scatter(name="steps/s (per episode)", mode="markers", marker=dict(color="#ff7f0e", size=6), row=1, col=1)
    fig.add_scatter(name="planner ms/action", mode="lines", line=dict(color="#2ca02c"), row=1, col=2)
    fig.add_scatter(name="planner ms (eval)", mode="markers", marker=dict(color="#d62728", size=7), row=1, col=2)
    fig.add_scatter(name="update ms", mode="lines+markers", line=dict(color="#9467bd", dash="dot"),
                    marker=dict(size=4), row=1, col=2)
    fig.update_layout(height=320, width=440, margin=dict(l=50, r=20, t=40, b=40),
                      legend=dict(orientation="h", y=-0.3, font_size=10))
    # log scale: the seed phase (random actions) runs 10-100x faster than planning + updating
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    return fig


def _set_xy(trace, series: Series) -> None:
    trace.x, trace.y = series.x, series.y


class TrainingDashboard(W.VBox):
    """Start, watch, pause, resume and stop an MBDPO training run from a notebook.

    Parameters mirror `make_config`: ``task``, ``preset``, ``steps`` (default: the preset's), ``seed``,
    ``device`` (``auto`` = first CUDA device, else CPU), ``eta``; any other `Config` field can be passed
    as a keyword (e.g. ``eval_every=5000, save_video=True``) and applies on top of the chosen preset.
    ``comparison_root`` is where the "Compare runs" section looks for runs to set side by side.
    ``out_dir`` is the run directory (default ``runs/dashboard-<task>-<seed>``; a fresh sibling
    ``...-2`` is used when it already holds a run). ``refresh_s`` is the redraw period; ``callbacks``
    are extra trainer callbacks (they receive the same events as the panels).

    Programmatic use (what the buttons call): `start`, `pause`, `resume`, `stop`, `wait`, `flush`.
    After a run: ``trainer``, ``agent``, ``run_dir``, ``history``, ``data``; ``error_text`` holds the
    traceback when training failed.
    """

    def __init__(self, task: str = "cartpole-swingup", preset: str = "cpu", steps: int | None = None,
                 seed: int = 1, device: str = "auto", eta: float | None = None,
                 out_dir: str | Path | None = None, refresh_s: float = 0.75, max_points: int = 600,
                 callbacks: Iterable[Callable[[str, dict[str, Any]], None]] | None = None,
                 comparison_root: str | Path = "runs", **overrides: Any):
        super().__init__(layout=W.Layout(width="100%"))
        from ..envs import list_tasks

        make_config(preset, task=task, **overrides)  # fail fast on a bad preset or override key
        self.overrides = dict(overrides)
        self.refresh_s = float(refresh_s)
        self.max_points = max_points
        self.user_callbacks = list(callbacks or [])
        self.trainer = None
        self.run_dir: Path | None = None
        self.error_text: str | None = None
        self.message = ""
        self.data = DashboardData(max_points)
        self.feed = MetricsFeed()
        self._out_dir = Path(out_dir) if out_dir else None
        self._lock = threading.RLock()
        self._flush_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._pump: threading.Thread | None = None
        self.controls = RunControls()  # pause/stop requests of the current run, also while it is being built
        self._flush_throttle = Throttle(min(0.25, self.refresh_s))
        self._video_cache: dict[int, str] = {}
        self._suppress_pick = False
        self.last_exception: BaseException | None = None
        self.pump_error: str | None = None
        self.step_counter = 0
        self.flush_count = 0
        self.flush_seconds = 0.0

        # --- controls ------------------------------------------------------------------------
        style = {"description_width": "initial"}
        tasks = list_tasks()
        if task not in tasks:
            tasks = [task] + tasks  # let make_env give the readable error at Start
        self.task_w = W.Dropdown(options=tasks, value=task, description="task", style=style,
                                 tooltip=field_doc("task"), layout=W.Layout(width="250px"))
        self.preset_w = W.Dropdown(options=list(PRESETS), value=preset, description="preset", style=style,
                                   layout=W.Layout(width="150px"))
        base = make_config(preset, task=task, **overrides)
        self.steps_w = W.BoundedIntText(value=steps if steps is not None else base.steps, min=1, max=10**9,
                                        step=1000, description="env steps", style=style,
                                        tooltip=field_doc("steps"), layout=W.Layout(width="190px"))
        self.seed_w = W.IntText(value=seed, description="seed", style=style, tooltip=field_doc("seed"),
                                layout=W.Layout(width="110px"))
        self.eta_w = W.BoundedFloatText(value=base.eta if eta is None else eta, min=0.0, max=100.0, step=0.005,
                                        description="η (anchor)", style=style, tooltip=field_doc("eta"),
                                        layout=W.Layout(width="150px"))
        options = device_options()
        values = [v for _, v in options]
        if device == "auto":
            device = values[0]
        elif device not in values:
            options.append((device, device))
        self.device_w = W.Dropdown(options=options, value=device, description="device", style=style,
                                   tooltip=field_doc("device"), layout=W.Layout(width="380px"))
        self.out_w = W.Text(value=str(self._out_dir or ""), placeholder=str(default_out_dir(task, seed)),
                            description="run dir", style=style, layout=W.Layout(width="380px"))
        self.device_note = W.HTML()
        self._config_widgets = [self.task_w, self.preset_w, self.steps_w, self.seed_w, self.eta_w,
                                self.device_w, self.out_w]
        self.preset_w.observe(self._on_preset, names="value")
        self.task_w.observe(self._on_task, names="value")
        self.seed_w.observe(self._on_task, names="value")
        self.device_w.observe(lambda _: self._show_device(), names="value")
        self.steps_w.observe(lambda _: self._set_x_view(), names="value")

        def button(text, style_name, icon, handler, tip):
            b = W.Button(description=text, button_style=style_name, icon=icon, tooltip=tip,
                         layout=W.Layout(width="110px"))
            b.on_click(lambda _b: handler())
            return b

        self.start_button = button("Start", "success", "play", self.start, "start a new run with these settings")
        self.pause_button = button("Pause", "warning", "pause", self.pause, "pause after the current step")
        self.resume_button = button("Resume", "info", "step-forward", self.resume,
                                    "continue the paused/stopped run from the same step")
        self.stop_button = button("Stop", "danger", "stop", self.stop, "stop after the current step and write a checkpoint")
        self.state_w = W.HTML()
        self.message_w = W.HTML()
        self.progress_w = W.FloatProgress(value=0, min=0, max=1, bar_style="info", layout=W.Layout(width="320px"))
        self.progress_label = W.HTML()
        self.phase_w = W.HTML()
        self.error_w = W.HTML(layout=W.Layout(display="none"))
        # short runs (tests, demos) start zoomed to themselves; the paper's first point is at 100k
        self.x_view = W.ToggleButtons(options=[("paper scale", "paper"), ("this run", "run")],
                                      value="paper" if self.steps_w.value >= 20_000 else "run", description="x-axis", style={"button_width": "112px"},
                                      tooltip="the reference curves are published every 100k environment steps",
                                      layout=W.Layout(width="360px", flex="0 0 360px"))
        self.x_view.observe(lambda _: self._set_x_view(), names="value")

        # --- panels --------------------------------------------------------------------------
        self.fig_returns = _returns_figure()
        self.loss_panels = LOSS_PANELS + ((SCORE_PANEL,) if base.use_score_net else ())
        self.fig_losses = _losses_figure(self.loss_panels)
        self.fig_energy = _energy_figure()
        self.fig_speed = _speed_figure()
        # placed in the video box on the first evaluation (an empty <video> makes the browser log an error)
        self.video_w = W.Video(value=b"", format="mp4", autoplay=True, loop=True, controls=True,
                               layout=W.Layout(width="280px"))
        self.video_caption = W.HTML("<i>the rollout video of each evaluation appears here</i>")
        self.video_pick = W.Dropdown(options=[], description="eval at step", style=style,
                                     layout=W.Layout(width="230px", display="none"))
        self.video_pick.observe(self._on_video_pick, names="value")
        self.reference_note = W.HTML()
        self.video_box = W.VBox([self.video_caption, self.video_pick], layout=W.Layout(width="300px"))

        # other runs (this one among them once it has evaluated), arms of seeds with their bands
        self.comparison = RunComparison(comparison_root)
        self.comparison_box = W.Accordion(children=[self.comparison], titles=("Compare runs (arms over seeds)",))
        header = W.HTML("<h3 style='margin:4px 0'>MBDPO training dashboard</h3>"
                        "<span style='color:#555'>Start trains in a background thread; the panels refresh "
                        f"every {self.refresh_s:g} s. Dashed lines: the paper's curves (mean of 3 seeds) for "
                        "the same task.</span>")
        self.children = [
            header,
            W.HBox([self.task_w, self.preset_w, self.steps_w, self.seed_w, self.eta_w],
                   layout=W.Layout(flex_flow="row wrap")),
            W.HBox([self.device_w, self.out_w], layout=W.Layout(flex_flow="row wrap")),
            self.device_note,
            W.HBox([self.start_button, self.pause_button, self.resume_button, self.stop_button, self.state_w],
                   layout=W.Layout(align_items="center")),
            self.message_w,
            W.HBox([self.progress_w, self.progress_label], layout=W.Layout(align_items="center")),
            self.phase_w,
            self.error_w,
            W.HBox([self.x_view, self.reference_note], layout=W.Layout(align_items="center")),
            W.HBox([self.fig_returns, self.video_box], layout=W.Layout(flex_flow="row wrap")),
            self.fig_losses,
            W.HBox([self.fig_energy, self.fig_speed], layout=W.Layout(flex_flow="row wrap")),
            self.comparison_box,
        ]
        self._show_device()
        self._draw_reference()
        self._set_state_badge()
        self._update_progress()

    # --- public API -----------------------------------------------------------------------------
    @property
    def agent(self):
        """The trainer's agent (usable after a stop or a failure), or None before the first Start."""
        return self.trainer.agent if self.trainer is not None else None

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.trainer.history if self.trainer is not None else []

    @property
    def running(self) -> bool:
        """True while a training thread exists (running, starting or paused)."""
        return self._worker is not None and self._worker.is_alive()

    @property
    def state(self) -> str:
        """idle, starting, running, paused, stopped, finished or failed."""
        with self._lock:
            if self.running and self.trainer is None:
                return "starting"
            if self.trainer is None:
                return "failed" if self.error_text else "idle"
            if self.running and self.controls.pause_requested:
                return "paused"
            if self.running:
                return "running" if self.trainer.state in ("running", "idle", "paused") else self.trainer.state
            if self.error_text:
                return "failed"
            return self.trainer.state

    def config(self) -> Config:
        """The config the next Start would use (validated)."""
        return make_config(self.preset_w.value, task=self.task_w.value, steps=int(self.steps_w.value),
                           seed=int(self.seed_w.value), eta=float(self.eta_w.value), device=self.device_w.value,
                           **self.overrides)

    def start(self) -> bool:
        """Start a new run with the current settings; refused (returns False) while a run is in progress."""
        from ..trainer import Trainer

        self._join_finished_pump()
        with self._lock:
            if self.running:
                self._say(f"Start refused: a run is already in progress (state: {self.state}). "
                          "Pause, Resume or Stop it first; Start begins a new run.", "warn")
                return False
            try:
                cfg = self.config()
            except ConfigError as exc:
                self._say(f"Start refused: {html.escape(str(exc))}", "error")
                return False
            run_dir = fresh_run_dir(Path(self.out_w.value) if self.out_w.value.strip()
                                    else default_out_dir(cfg.task, cfg.seed))
            self.trainer = None
            self.run_dir = run_dir
            self.error_text = None
            self.data = DashboardData(self.max_points)
            self.feed = MetricsFeed()
            self._video_cache = {}
            self._reset_panels()
            self._draw_reference()

            controls = self.controls = RunControls()

            def make():
                return Trainer(cfg, run_dir, callbacks=list(self.user_callbacks), controls=controls)

            self._launch(make, f"Started a new run in <code>{html.escape(str(run_dir))}</code> "
                               f"on {html.escape(cfg.device)}.")
            return True

    def pause(self) -> bool:
        with self._lock:
            if not self.running:
                self._say("Pause ignored: nothing is training.", "warn")
                return False
            if self.trainer is None:
                self._say("Pause ignored: the run is still starting (building the environment and agent).", "warn")
                return False
            self.controls.pause()
            self._say("Pausing after the current step (an evaluation in progress finishes first). "
                      "Resume continues from the same step.")
        self._sync_controls()
        return True

    def resume(self) -> bool:
        """Continue a paused run, a stopped run (same trainer, same step), or a failed/on-disk run
        from its last checkpoint."""
        from ..trainer import Trainer

        self._join_finished_pump()
        with self._lock:
            if self.running:
                if self.controls.pause_requested and self.trainer is not None:
                    self.controls.resume()
                    self.data.start_clock(time.perf_counter(), self.trainer.env_step)
                    self._say(f"Resumed at step {self.trainer.env_step:,}.")
                    self._sync_controls()
                    return True
                self._say("Resume ignored: the run is already running.", "warn")
                return False
            trainer = self.trainer
            if trainer is not None and trainer.state in ("stopped", "paused", "idle") and not trainer.done:
                self.controls = trainer.controls
                self._launch(None, f"Resumed at step {trainer.env_step:,}.")
                return True
            if trainer is not None and trainer.done:
                self._say(f"Nothing to resume: the run finished its {trainer.cfg.steps:,} steps. "
                          "Start a new run (with more steps) instead.", "warn")
                return False
            run_dir = self.run_dir or (Path(self.out_w.value) if self.out_w.value.strip()
                                       else default_out_dir(self.task_w.value, int(self.seed_w.value)))
            ckpt = run_dir / "checkpoints" / "last.safetensors"
            if not ckpt.exists():
                self._say(f"Nothing to resume: no checkpoint at <code>{html.escape(str(ckpt))}</code>. "
                          "Press Start.", "warn")
                return False
            steps = int(self.steps_w.value) if trainer is None else trainer.cfg.steps
            callbacks = list(self.user_callbacks)
            earlier = list(trainer.history) if trainer is not None else []
            self.run_dir = run_dir
            self.error_text = None

            controls = self.controls = RunControls()
            self.trainer = None  # the view shows "starting" until the resumed trainer exists

            device = self.device_w.value

            def make():
                resumed = Trainer.resume_from(run_dir, steps=steps, callbacks=callbacks, controls=controls,
                                              device=device)
                # keep the rows before the checkpoint, so `history` covers the whole run (as metrics.csv does)
                resumed.history = [r for r in earlier if r["step"] <= resumed.env_step] + resumed.history
                return resumed

            why = "after the failure " if trainer is not None else ""
            self._launch(make, f"Resuming {why}from the checkpoint in <code>{html.escape(str(run_dir))}</code> "
                               "(a fresh episode starts at the saved step).")
            return True

    def stop(self) -> bool:
        with self._lock:
            if not self.running:
                self._say("Stop ignored: nothing is training.", "warn")
                return False
            self.controls.stop()  # a trainer still being built sees it when it starts
            self._say("Stopping after the current step (an evaluation in progress finishes first); "
                      "a checkpoint will be written.")
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the training thread and the final redraw are done; True when they are."""
        worker, pump = self._worker, self._pump
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in (worker, pump):
            if thread is not None:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
                if thread.is_alive():
                    return False
        return True

    def wait_for(self, condition: Callable[[], bool], timeout: float = 30.0, poll: float = 0.05) -> bool:
        """Poll ``condition`` until True (or ``timeout`` seconds); for scripts and tests."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(poll)
        return bool(condition())

    def flush(self, force: bool = True) -> set[str]:
        """Drain the feed and redraw the panels that changed (the pump calls this every refresh_s)."""
        if not force and not self._flush_throttle.ready():
            return set()
        with self._flush_lock:
            t0 = time.perf_counter()
            changed = self.data.apply(self.feed.drain())
            if "returns" in changed:
                self._draw_returns()
            if "losses" in changed:
                self._draw_losses()
            if "energy" in changed:
                self._draw_energy()
            if "speed" in changed:
                self._draw_speed()
            if "video" in changed:
                self._draw_video()
            self._update_progress()
            self._sync_controls()
            self.flush_count += 1
            self.flush_seconds += time.perf_counter() - t0
        return changed

    # --- threads --------------------------------------------------------------------------------
    def _join_finished_pump(self) -> None:
        """When the worker has ended, let its pump finish the final redraw before a new run begins."""
        worker, pump = self._worker, self._pump
        if pump is not None and (worker is None or not worker.is_alive()) and pump is not threading.current_thread():
            pump.join(10)

    def _launch(self, make_trainer: Callable[[], Any] | None, message: str) -> None:
        """Run (make_trainer() or self.trainer).run() in a worker thread, with a pump thread redrawing."""
        if self.trainer is not None:
            self.data.start_clock(time.perf_counter(), self.trainer.env_step)
        worker = threading.Thread(target=self._work, args=(make_trainer,), name="mbdpo-dashboard-train", daemon=True)
        pump = threading.Thread(target=self._pump_loop, args=(worker,), name="mbdpo-dashboard-pump", daemon=True)
        self._worker, self._pump = worker, pump
        self.error_text = None
        self._show_error(None)
        self._say(message)
        self._sync_controls()
        worker.start()
        pump.start()

    def _work(self, make_trainer: Callable[[], Any] | None) -> None:
        trainer = None
        try:
            if make_trainer is not None:
                trainer = make_trainer()
                with self._lock:
                    self.feed.attach(trainer)
                    self.trainer = trainer
                    self.data.start_clock(time.perf_counter(), trainer.env_step)
            else:
                trainer = self.trainer
            trainer.run()
        except BaseException as exc:  # noqa: BLE001 - shown in the dashboard, never lost
            self.error_text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            self.last_exception = exc
        finally:
            if trainer is not None:
                try:
                    release_render_contexts(trainer.env, trainer.eval_env)
                except Exception:  # noqa: BLE001 - never mask the run's own outcome
                    pass

    def _pump_loop(self, worker: threading.Thread) -> None:
        while worker.is_alive():
            worker.join(self.refresh_s)
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - a drawing problem must not end the pump
                self.pump_error = traceback.format_exc()
        self._finish()

    def _finish(self) -> None:
        """After the worker ended: final redraw, final message, error panel."""
        self.flush()
        trainer = self.trainer
        ckpt = f"<code>{html.escape(str(self.run_dir / 'checkpoints' / 'last.safetensors'))}</code>" \
            if self.run_dir else "none"
        if self.error_text:
            step = trainer.env_step if trainer is not None else 0
            saved = trainer is not None and (self.run_dir / "checkpoints" / "last.safetensors").exists()
            self._show_error(self.error_text, step, saved)
            if trainer is None:
                self._say("The run could not start; see the error below.", "error")
            else:
                self._say(f"Training failed at step {step:,}. "
                          + (f"Checkpoint of that state: {ckpt}. " if saved else "No checkpoint could be written. ")
                          + "The agent stays usable as this dashboard's <code>.agent</code>; Resume continues from the "
                          "checkpoint.", "error")
        elif trainer is not None and trainer.state == "stopped":
            self._say(f"Stopped at step {trainer.env_step:,}; checkpoint {ckpt}. The agent is "
                      "this dashboard's <code>.agent</code>; Resume continues from this step.", "ok")
        elif trainer is not None and trainer.state == "finished":
            last = self.data.eval_return.last
            self._say(f"Finished {trainer.env_step:,} steps"
                      + (f" (last eval return {last:.1f})" if last is not None else "")
                      + f"; agent saved to <code>{html.escape(str(self.run_dir / 'agent.safetensors'))}</code>.", "ok")
        self.comparison.rescan()  # this run is one to compare now
        self._sync_controls()

    # --- drawing ---------------------------------------------------------------------------------
    def _reset_panels(self) -> None:
        for fig in (self.fig_returns, self.fig_losses, self.fig_energy, self.fig_speed):
            with fig.batch_update():
                for tr in fig.data:
                    if tr.name and ("paper" in tr.name):
                        continue
                    tr.x, tr.y = [], []
        self.video_box.children = (self.video_caption, self.video_pick)
        self.video_pick.options = []
        self.video_pick.layout.display = "none"
        self.video_caption.value = "<i>the rollout video of each evaluation appears here</i>"

    def _target_steps(self) -> int:
        return self.trainer.cfg.steps if self.trainer is not None else int(self.steps_w.value)

    def _draw_reference(self) -> None:
        task = self.trainer.cfg.task if self.trainer is not None else self.task_w.value
        try:
            curves = reference_curves(task)
        except FileNotFoundError as exc:
            curves = {}
            self.reference_note.value = f"<span style='color:#b00020'>{html.escape(str(exc))}</span>"
        with self.fig_returns.batch_update():
            for idx, method in ((2, "mbdpo"), (3, "tdmpc2")):
                trace = self.fig_returns.data[idx]
                curve = curves.get(method)
                if curve is None:
                    trace.x, trace.y, trace.error_y.array = [], [], []
                    continue
                keep = curve.steps > 0  # (0, 0) is no measurement; a line from it would invent one
                trace.x, trace.y = curve.steps[keep].tolist(), curve.mean[keep].round(1).tolist()
                trace.error_y.array = curve.std[keep].round(1).tolist()
                trace.customdata = np.stack([curve.seeds[keep], curve.std[keep].round(1)], 1).tolist()
                trace.hovertemplate = (f"{curve.label}<br>%{{x:,}} steps: %{{y:.0f}} ± %{{customdata[1]:.0f}} "
                                       "(mean ± std over %{customdata[0]} seeds)<extra></extra>")
        if curves:
            bits = [f"{c.label.replace(' (paper)', '')} {c.at(FIRST_PUBLISHED_STEP):.0f}" for c in curves.values()
                    if FIRST_PUBLISHED_STEP in c.steps]
            self.reference_note.value = (f"<span style='color:#555'>published eval return on {html.escape(task)} "
                                         f"at 100k steps (mean of 3 seeds; published every 100k): "
                                         f"{', '.join(bits)}</span>")
        elif not self.reference_note.value.startswith("<span style='color:#b00020'"):
            self.reference_note.value = (f"<span style='color:#555'>no published curve for "
                                         f"{html.escape(task)} in mbdpo_lab/data/reference/paper_curves.csv</span>")
        self._set_x_view()

    def _set_x_view(self) -> None:
        """'this run' follows the run (the steps so far, with room to grow, up to its target) so the first
        episodes are not squeezed into the left edge of a 50k axis; 'paper scale' shows the published
        points at 100k."""
        target = self._target_steps()
        if self.x_view.value == "run":
            done = self.trainer.env_step if self.trainer is not None else 0
            chunk = max(1000, target // 20)  # grows in chunks, so the axis is not redrawn every step
            right = min(1.05 * target, chunk * math.ceil(max(1.2 * done, 1) / chunk))
        else:
            right = 1.1 * max(target, FIRST_PUBLISHED_STEP)
        if tuple(self.fig_returns.layout.xaxis.range or ()) != (0, right):
            self.fig_returns.update_xaxes(range=[0, right])

    def _draw_returns(self) -> None:
        d = self.data
        if self.x_view.value == "run":
            self._set_x_view()
        with self.fig_returns.batch_update():
            _set_xy(self.fig_returns.data[0], d.episode_return)
            _set_xy(self.fig_returns.data[1], d.eval_return)
            self.fig_returns.data[1].error_y.array = list(d.eval_std[-len(d.eval_return):])

    def _draw_losses(self) -> None:
        with self.fig_losses.batch_update():
            for trace, (key, _) in zip(self.fig_losses.data, self.loss_panels):
                series = self.data.losses.get(key)
                if series is not None:
                    _set_xy(trace, series)

    def _draw_energy(self) -> None:
        e = self.data.energy
        with self.fig_energy.batch_update():
            for trace, key in zip(self.fig_energy.data,
                                  ("energy_pos_logit", "energy_neg_logit", "energy_mean", "energy_accuracy")):
                _set_xy(trace, e[key])

    def _draw_speed(self) -> None:
        d = self.data
        with self.fig_speed.batch_update():
            for trace, series in zip(self.fig_speed.data, (d.steps_per_s, d.episode_steps_per_s, d.planner_ms,
                                                           d.eval_planner_ms, d.update_ms)):
                _set_xy(trace, series)

    def _draw_video(self) -> None:
        points = self.data.eval_points
        if not points:
            return
        for row in points:
            if row.get("video"):
                self._video_cache[int(row["step"])] = row["video"]
        if self._video_cache:
            opts = [(f"{s:,}", s) for s in sorted(self._video_cache)]
            self._suppress_pick = True  # follow the latest evaluation; read one mp4, not every option's
            try:
                self.video_pick.options = opts
                self.video_pick.value = opts[-1][1]
            finally:
                self._suppress_pick = False
            self.video_pick.layout.display = ""
            self._show_video(opts[-1][1])
        else:
            row = points[-1]
            self.video_caption.value = (
                f"<b>eval at step {int(row['step']):,}</b>: return {row['eval_return']:.1f} "
                f"± {row.get('eval_return_std') or 0:.1f}<br><i>no video: save_video is off in this config "
                "(pass save_video=True to the dashboard)</i>")

    def _on_video_pick(self, change) -> None:
        if change["new"] is not None and not self._suppress_pick:
            self._show_video(int(change["new"]))

    def _show_video(self, step: int) -> None:
        path = self._video_cache.get(step)
        row = next((r for r in self.data.eval_points if int(r["step"]) == step), None)
        if path is None or row is None:
            return
        try:
            self.video_w.value = Path(path).read_bytes()
            if self.video_w not in self.video_box.children:
                self.video_box.children = (self.video_caption, self.video_pick, self.video_w)
            note = ""
        except OSError as exc:
            note = f"<br><span style='color:#b00020'>video unreadable: {html.escape(str(exc))}</span>"
        rets = row.get("returns") or []
        self.video_caption.value = (f"<b>eval at step {step:,}</b>: return {row['eval_return']:.1f} "
                                    f"± {row.get('eval_return_std') or 0:.1f} over {len(rets) or '?'} episodes "
                                    f"(video: first episode{f', return {rets[0]:.1f}' if rets else ''}){note}")

    def _update_progress(self) -> None:
        target = self._target_steps()
        step = self.trainer.env_step if (self.trainer is not None and not self.running) else self.data.step
        self.progress_w.max = max(target, 1)
        self.progress_w.value = min(step, target)
        rate = self.data.rate.average
        line = status_line(step, target, rate, self.data.planner_ms.last if self.data.planner_ms else None)
        if self.trainer is not None and (self.controls.pause_requested or not self.running):
            line = line.rsplit(" · ETA", 1)[0] + f" · {self.state}"
        self.step_counter = step
        if self.trainer is not None and self.agent is not None and self.agent.device.type == "cuda":
            dev = self.agent.device
            line += (f" · GPU memory {torch.cuda.memory_allocated(dev) / 2**30:.2f} / "
                     f"{torch.cuda.get_device_properties(dev).total_memory / 2**30:.0f} GiB")
        self.progress_label.value = f"<span style='font-family:monospace'>{line}</span>"
        if self.trainer is not None and self.running and not self.controls.pause_requested:
            last_eval = int(self.data.eval_points[-1]["step"]) if self.data.eval_points else None
            text = phase_text(step, self.trainer.cfg, last_eval, self.data.seed_updates)
            self.phase_w.value = f"<span style='color:#555'>{html.escape(text)}</span>"
        else:
            self.phase_w.value = ""
        self.progress_w.bar_style = {"failed": "danger", "finished": "success", "stopped": "warning"}.get(
            self.state, "info")

    def _set_state_badge(self) -> None:
        state = self.state
        color = {"running": "#1f77b4", "starting": "#1f77b4", "paused": "#ff7f0e", "stopped": "#7f7f7f",
                 "finished": "#2ca02c", "failed": "#d62728", "idle": "#7f7f7f"}.get(state, "#333")
        self.state_w.value = (f"<span style='background:{color};color:white;border-radius:4px;padding:2px 8px;"
                              f"margin-left:8px'>{state}</span>")

    def _sync_controls(self) -> None:
        running = self.running
        for w in self._config_widgets:
            w.disabled = running
        self.pause_button.disabled = not running or self.controls.pause_requested
        self.stop_button.disabled = not running
        trainer = self.trainer
        self.resume_button.disabled = not ((running and self.controls.pause_requested) or (
            not running and (self.error_text is not None or (trainer is not None and not trainer.done))))
        self._set_state_badge()

    def _say(self, text: str, kind: str = "info") -> None:
        self.message = text
        color = {"info": "#333", "warn": "#b36b00", "error": "#b00020", "ok": "#1b5e20"}[kind]
        self.message_w.value = f"<span style='color:{color}'>{text}</span>"

    def _show_error(self, text: str | None, step: int = 0, saved: bool = False) -> None:
        if not text:
            self.error_w.value = ""
            self.error_w.layout.display = "none"
            return
        last = text.strip().splitlines()[-1]
        self.error_w.value = (
            "<div style='border:1px solid #d62728;background:#fdecea;padding:6px 10px;border-radius:4px'>"
            f"<b style='color:#b00020'>training stopped by an error at step {step:,}:</b> "
            f"<code>{html.escape(last)}</code>"
            f"<details><summary>traceback</summary><pre style='font-size:11px;white-space:pre-wrap'>"
            f"{html.escape(text)}</pre></details></div>")
        self.error_w.layout.display = ""

    def _show_device(self) -> None:
        try:
            self.device_note.value = f"<span style='color:#555'>{html.escape(device_note(self.device_w.value))}</span>"
        except (RuntimeError, AssertionError, ValueError) as exc:
            self.device_note.value = f"<span style='color:#b00020'>{html.escape(str(exc))}</span>"

    def _on_preset(self, change) -> None:
        cfg = make_config(change["new"], task=self.task_w.value, **self.overrides)
        self.steps_w.value = cfg.steps
        self.eta_w.value = cfg.eta
        self._set_x_view()

    def _on_task(self, _change) -> None:
        self.out_w.placeholder = str(default_out_dir(self.task_w.value, int(self.seed_w.value)))
        if self.trainer is None:
            self._draw_reference()
        elif self.trainer.cfg.task != self.task_w.value:
            self._say(f"The panels show the last run on {html.escape(self.trainer.cfg.task)}; Start trains "
                      f"a new agent on {html.escape(self.task_w.value)}.")
