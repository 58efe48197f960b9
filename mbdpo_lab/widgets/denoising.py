"""Watch the diffusion planner think, level by level (ipywidgets 8 + plotly FigureWidget).

Two widgets read the planner's `DenoiseTrace` and never re-implement the planner:

* `DenoisingStepper` - one decision of an MBDPO agent at a state of a rollout (chosen with a slider):
  candidate action sequences per action dimension, the noisy mean x_tau / sqrt(abar_tau), the weighted
  mean Abar and the final plan; model return vs energy of every candidate with the elites highlighted;
  the weights and their effective sample size; the schedule with the current level marked; the MPPI
  identity x_{tau-1} = sqrt(abar_{tau-1}) Abar; the rendered frame at that state and the imagined
  outcome of the plan; on request, every level's plan and elites executed in the simulator from that
  state (`analysis.reality`), imagined vs real. Knobs (eta, temperature, candidates, elites, levels,
  policy-prior candidates, seed) re-plan with the same seed, so a change of one knob is a controlled
  comparison.
* `ToyLandscapeExplorer` - the same panels for the 2-D toy of `mbdpo_lab.toy`: candidate clouds per
  level on the action plane over the true and the learned return's contours.

The level slider (and its linked Play button) only reads the stored trace. What the panels show is
computed by plain functions in `mbdpo_lab.analysis.denoising` (`level_view`, `candidate_subset`,
`candidate_lines`, `plan_trace`, `collect_rollout`) that tests call directly.
"""
from __future__ import annotations

import contextlib
import html
import math
import time
from typing import Any

import numpy as np

try:
    import anywidget  # noqa: F401 - plotly's FigureWidget needs it
    import ipywidgets as W
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"the widgets need the notebooks extra ({exc.name} is missing): "
                      "pip install -e '.[notebooks]' (or `make setup`)") from exc

from ..analysis.denoising import (OPACITY_BINS, PLANNER_KNOBS, Rollout, resolve_agent, candidate_lines,
                                  candidate_subset, collect_rollout, level_view, opacity_bin, plan_trace,
                                  planner_config)
from ..analysis.figures import figure_widget
from ..analysis.reality import RealityCheck, env_at, reality_check
from ..config import ConfigError, field_doc, make_config
from ..planner import DenoiseTrace, discounted_energy, predicted_return
from ..rendering import frame_png
from ..toy import ToyLandscape, make_toy, toy_planner

_KNOB_LABELS = {"eta": "η (anchor)", "temperature": "temperature", "num_samples": "candidates",
                "num_elites": "elites", "num_levels": "levels", "num_pi_trajs": "prior cands",
                "seed": "seed", "beta_end": "β_end", "distractor": "distractor"}
_INT_KNOBS = {"num_samples", "num_elites", "num_levels", "num_pi_trajs", "seed"}


def identity_html(view: dict[str, Any]) -> str:
    """The MPPI identity at this level, both sides and their difference."""
    def vec(a):
        flat = np.asarray(a).reshape(-1)
        more = " ..." if flat.size > 6 else ""
        return "[" + ", ".join(f"{v:+.3f}" for v in flat[:6]) + more + "]"

    return (f"<div style='font-family:monospace;font-size:12px'><b>MPPI identity at τ={view['tau']}</b><br>"
            f"x<sub>τ-1</sub> = {vec(view['x_next'])}<br>"
            f"√ᾱ<sub>τ-1</sub>·Ā = {vec(view['identity_rhs'])}<br>"
            f"max |difference| = {view['identity_error']:.1e}<br>"
            f"<i>the Monte-Carlo score update is an annealed re-weighting of the elites</i></div>")


# --- figures -------------------------------------------------------------------------------

def _scores_figure(title_energy: str = "standardised energy F (× η in J)") -> go.FigureWidget:
    fig = figure_widget(make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], horizontal_spacing=0.14,
                                        subplot_titles=("return vs energy (elites: colour = weight)",
                                                        "elite weights")))
    fig.add_scatter(mode="markers", name="candidates", marker=dict(size=4, color="#999", opacity=0.45),
                    meta=dict(role="all"), row=1, col=1)
    fig.add_scatter(mode="markers", name="policy prior", marker=dict(size=7, symbol="diamond-open", color="#555"),
                    meta=dict(role="prior"), row=1, col=1)
    fig.add_scatter(mode="markers", name="elites",
                    marker=dict(size=8, color=[], colorscale="Viridis", line=dict(width=0.5, color="black")),
                    meta=dict(role="elites"), row=1, col=1)
    fig.add_bar(name="elite weights", marker_color="#3a7", meta=dict(role="weights"), row=1, col=2)
    fig.update_xaxes(title_text=title_energy, row=1, col=1)
    fig.update_yaxes(title_text="model return", row=1, col=1)
    fig.update_xaxes(title_text="elite rank", row=1, col=2)
    fig.update_layout(height=370, width=500, margin=dict(l=55, r=10, t=60, b=45), showlegend=True,
                      legend=dict(orientation="h", y=-0.3, font=dict(size=10)),
                      title=dict(text="", font=dict(size=13)))
    return fig


def _schedule_figure() -> go.FigureWidget:
    fig = figure_widget(make_subplots(rows=1, cols=2, horizontal_spacing=0.15,
                                        subplot_titles=("schedule", "effective sample size")))
    fig.add_scatter(mode="lines", name="ᾱ_τ", line=dict(color="#1f77b4"), meta=dict(role="abar"), row=1, col=1)
    fig.add_scatter(mode="lines", name="spread √((1-ᾱ)/ᾱ)", line=dict(color="#ff7f0e"),
                    meta=dict(role="spread"), row=1, col=1)
    fig.add_scatter(mode="markers", name="current level", marker=dict(size=11, color="red", symbol="circle-open",
                                                                      line=dict(width=2)),
                    meta=dict(role="current"), row=1, col=1)
    fig.add_scatter(mode="lines+markers", name="ESS", line=dict(color="#2ca02c"), marker=dict(size=4),
                    meta=dict(role="ess"), row=1, col=2)
    fig.add_scatter(mode="markers", name="current ESS", marker=dict(size=11, color="red", symbol="circle-open",
                                                                    line=dict(width=2)),
                    meta=dict(role="current_ess"), row=1, col=2)
    fig.update_xaxes(title_text="noise level τ", autorange="reversed")
    fig.update_layout(height=330, width=440, margin=dict(l=45, r=10, t=60, b=45),
                      legend=dict(orientation="h", y=-0.25, font=dict(size=10)))
    return fig


def figure_trace(fig: go.FigureWidget, role: str, dim: int | None = None):
    for tr in fig.data:
        meta = tr.meta or {}
        if meta.get("role") == role and (dim is None or meta.get("dim") == dim):
            return tr
    raise KeyError(role)


def _update_scores(fig: go.FigureWidget, view: dict[str, Any], eta: float, n_show: int | None = None) -> None:
    elites = view["elite_idx"]
    prior = np.nonzero(view["is_prior"])[0]
    figure_trace(fig, "all").update(x=view["energy"], y=view["model_return"])
    figure_trace(fig, "prior").update(x=view["energy"][prior], y=view["model_return"][prior])
    el = figure_trace(fig, "elites")
    el.update(x=view["energy"][elites], y=view["model_return"][elites])
    el.marker.color = view["weights"][elites]
    ew = view["elite_weights_sorted"]
    figure_trace(fig, "weights").update(x=np.arange(1, len(ew) + 1), y=ew)
    fig.layout.title.text = (f"τ={view['tau']}: J = return + η·energy, η={eta:g} — "
                             f"ESS {view['ess']:.1f} of {len(elites)} elites")


def _update_schedule_trace(fig: go.FigureWidget, trace: DenoiseTrace) -> None:
    taus = np.arange(1, len(trace.alpha_bar))
    abar = trace.alpha_bar[1:]
    figure_trace(fig, "abar").update(x=taus, y=abar)
    figure_trace(fig, "spread").update(x=taus, y=np.sqrt((1 - abar) / abar))
    figure_trace(fig, "ess").update(x=trace.levels, y=trace.effective_sample_size())
    elites = trace.elite_idx.shape[1]
    fig.update_yaxes(range=[0, 1.05 * elites], title_text=f"ESS (of {elites} elites)", row=1, col=2)


def _update_schedule_level(fig: go.FigureWidget, view: dict[str, Any]) -> None:
    figure_trace(fig, "current").update(x=[view["tau"], view["tau"]], y=[view["abar"], view["spread"]])
    figure_trace(fig, "current_ess").update(x=[view["tau"]], y=[view["ess"]])


# --- the common widget shell ---------------------------------------------------------------

class _TraceExplorer(W.VBox):
    """Level slider + Play over a stored trace, and knobs that re-plan (validated, refused politely)."""

    knob_names: tuple[str, ...] = ()

    def __init__(self, knobs: dict[str, Any], max_candidates: int = 48, **kwargs):
        super().__init__(**kwargs)
        self.max_candidates = max_candidates
        self.trace: DenoiseTrace | None = None
        self.view: dict[str, Any] | None = None
        self.last_plan_ms = 0.0
        self.last_level_ms = 0.0
        self.replans = 0
        self._busy = False
        self.status = W.HTML(value="")
        self.level = W.IntSlider(value=0, min=0, max=0, description="level", continuous_update=True,
                                 readout=False, layout=W.Layout(width="360px"))
        self.level_label = W.HTML(layout=W.Layout(width="330px"))
        self.play = W.Play(value=0, min=0, max=0, interval=500, description="play the denoising")
        self._play_link = W.link((self.play, "value"), (self.level, "value"))
        self.knobs: dict[str, W.Widget] = {}
        self.valid_knobs: dict[str, Any] = dict(knobs)
        for name in self.knob_names:
            cls = W.IntText if name in _INT_KNOBS else W.FloatText
            w = cls(value=knobs[name], description=_KNOB_LABELS.get(name, name),
                    tooltip=field_doc(name) or name, style={"description_width": "initial"},
                    layout=W.Layout(width="150px"))
            w.observe(self._on_knob, names="value")
            self.knobs[name] = w
        self.level.observe(self._on_level, names="value")

    # subclasses: compute a trace for knob values; draw trace-wide and per-level panels
    def _compute_trace(self, knobs: dict[str, Any]) -> DenoiseTrace:
        raise NotImplementedError

    def _validate(self, knobs: dict[str, Any]) -> None:
        planner_config(make_config("paper"), knobs)

    def _draw_trace(self) -> None:
        raise NotImplementedError

    def _draw_level(self, view: dict[str, Any]) -> None:
        raise NotImplementedError

    # --- knobs ---------------------------------------------------------------------------
    def knob_values(self) -> dict[str, Any]:
        return {name: w.value for name, w in self.knobs.items()}

    def _message(self, text: str, kind: str = "info") -> None:
        color = {"info": "#333", "error": "#b00020", "ok": "#1b5e20"}[kind]
        self.status.value = f"<span style='color:{color}'>{text}</span>"

    def _on_knob(self, change) -> None:
        if self._busy:
            return
        owner = change["owner"]
        name = next(n for n, w in self.knobs.items() if w is owner)
        values = self.knob_values()
        try:
            self._validate(values)
        except (ConfigError, ValueError) as exc:
            self._refuse(name, change["new"], str(exc))
            return
        self.replan(values)

    def _refuse(self, name: str, bad: Any, reason: str) -> None:
        kept = self.valid_knobs[name]
        self._busy = True
        try:
            self.knobs[name].value = kept
        finally:
            self._busy = False
        self._message(f"⚠ refused {_KNOB_LABELS.get(name, name)} = {html.escape(repr(bad))}: "
                      f"{html.escape(reason)} — kept {kept!r}.", "error")

    def set_knobs(self, **values: Any) -> bool:
        """Change several knobs at once (one re-plan); False (and a message) if refused."""
        merged = {**self.knob_values(), **values}
        try:
            self._validate(merged)
        except (ConfigError, ValueError) as exc:
            self._message(f"⚠ refused {html.escape(repr(values))}: {html.escape(str(exc))}", "error")
            return False
        self._busy = True
        try:
            for k, v in values.items():
                self.knobs[k].value = v
        finally:
            self._busy = False
        return self.replan(merged)

    def replan(self, knobs: dict[str, Any] | None = None) -> bool:
        """Plan once with a trace (the only place the planner runs) and redraw every panel."""
        knobs = self.knob_values() if knobs is None else knobs
        start = time.perf_counter()
        try:
            trace = self._compute_trace(knobs)
        except (ConfigError, ValueError) as exc:
            self._message(f"⚠ refused: {html.escape(str(exc))}", "error")
            return False
        except Exception as exc:  # noqa: BLE001 - shown in the widget, not as a traceback
            self._message(f"⚠ planning failed: {type(exc).__name__}: {html.escape(str(exc))}", "error")
            return False
        self.last_plan_ms = 1000 * (time.perf_counter() - start)
        self.trace, self.valid_knobs = trace, dict(knobs)
        self.replans += 1
        last = len(trace.levels) - 1
        keep = min(self.level.value, last)
        self._busy = True
        try:
            self.level.max = self.play.max = last
            self.level.value = self.play.value = keep
        finally:
            self._busy = False
        self._draw_trace()
        self.show_level(keep)
        self._message(f"planned in {self.last_plan_ms:.0f} ms: {len(trace.levels)} denoising steps "
                      f"(τ = {int(trace.levels[0])} … 1 of the {len(trace.alpha_bar)} noise levels) × "
                      f"{trace.candidates.shape[1]} candidates (seed fixed, so one knob = a controlled change)",
                      "ok")
        return True

    # --- the level slider ---------------------------------------------------------------
    def _on_level(self, change) -> None:
        if not self._busy and self.trace is not None:
            self.show_level(int(change["new"]))

    def show_level(self, k: int) -> None:
        """Draw trace row k (reads the stored trace only)."""
        start = time.perf_counter()
        view = level_view(self.trace, k, self.max_candidates)
        self.view = view
        tau, top = view["tau"], int(self.trace.levels[0])
        where = "· noisiest" if tau == top else ("· last: Ā becomes the plan" if tau == 1 else "")
        self.level_label.value = f"<b>τ = {tau}</b> · denoising step {k + 1} of {len(self.trace.levels)} {where}"
        self._draw_level(view)
        self.last_level_ms = 1000 * (time.perf_counter() - start)

    def set_level(self, k: int) -> None:
        self.level.value = k

    def time_level_slider(self, repeats: int = 1) -> np.ndarray:
        """ms from a level-slider change to every figure updated (Python side: the observers,
        the level view and the FigureWidget updates), once per level, each from another level."""
        n = len(self.trace.levels)
        start_k = self.level.value
        out = []
        for _ in range(repeats):
            for k in range(n):
                self.level.value = (k + 1) % n if n > 1 else k  # move away first
                t = time.perf_counter()
                self.level.value = k
                out.append(1000 * (time.perf_counter() - t))
        self.level.value = start_k
        return np.asarray(out)


# --- the agent's stepper -----------------------------------------------------------------------

class DenoisingStepper(_TraceExplorer):
    """Step through one decision of an MBDPO agent's diffusion planner (see the module doc).

    ``agent``: an MBDPO agent, a Checkpoint, a pretrained name or a ``.safetensors`` path. The
    widget runs the agent noise-free for ``steps`` steps in ``env`` (made from the agent's task
    when not given) and plans again, with a trace, at the state chosen with the state slider.
    """

    knob_names = ("eta", "temperature", "num_samples", "num_elites", "num_levels", "num_pi_trajs", "seed")

    def __init__(self, agent, env=None, *, task: str | None = None, steps: int = 40, seed: int = 0,
                 state: int = 0, rollout: Rollout | None = None, render_size: tuple[int, int] | None = (192, 256),
                 max_candidates: int = 48, **knobs: Any):
        self.agent = resolve_agent(agent)
        cfg = self.agent.cfg
        values = {k: getattr(cfg, k) for k in PLANNER_KNOBS}
        values["seed"] = seed
        values.update(knobs)
        super().__init__(values, max_candidates=max_candidates)
        # the physics check rebuilds the rollout's environment from its seed (a caller's env or rollout is unknown)
        self._env_seed = seed if env is None and rollout is None else None
        self._task = task or cfg.task
        if rollout is None:
            from ..envs import make_env

            # an env made here is closed afterwards; one passed in stays the caller's
            source = contextlib.nullcontext(env) if env is not None else make_env(
                task or cfg.task, seed=seed, action_repeat=cfg.action_repeat, episode_length=cfg.episode_length)
            with source as run_env:
                rollout = collect_rollout(self.agent, run_env, steps=steps, seed=seed, render_size=render_size)
        self.rollout = rollout
        self.reality: RealityCheck | None = None
        self.state = W.IntSlider(value=min(state, len(rollout) - 1), min=0, max=len(rollout) - 1,
                                 description="state t", continuous_update=False, layout=W.Layout(width="360px"))
        self.state.observe(lambda _change: self.replan(), names="value")
        self._build_figures()
        self.frame = W.Image(format="png", layout=W.Layout(width=f"{(render_size or (0, 256))[1]}px"))
        self.frame_caption = W.HTML()
        self.identity = W.HTML(layout=W.Layout(width="330px"))
        knob_box = W.HBox(list(self.knobs.values()), layout=W.Layout(flex_flow="row wrap"))
        task_name = html.escape(getattr(env, "name", cfg.task) if env is not None else cfg.task)
        header = W.HTML(f"<h3 style='margin:4px 0'>Denoising stepper — {task_name}, one decision of the "
                        f"diffusion planner</h3>")
        wrap = W.Layout(flex_flow="row wrap")
        self.children = [
            header,
            W.HBox([self.state, self.play, self.level, self.level_label], layout=wrap),
            knob_box,
            self.status,
            self.fig_actions,
            W.HBox([self.fig_scores, self.fig_schedule], layout=wrap),
            W.HBox([W.VBox([self.frame, self.frame_caption], layout=W.Layout(width="270px")),
                    self.fig_imagined, self.identity], layout=wrap),
            self.physics_box,
        ]
        self.replan()

    def _build_figures(self) -> None:
        act_dim, horizon = self.agent.act_dim, self.agent.cfg.horizon
        cols = min(act_dim, 3)
        rows = math.ceil(act_dim / cols)
        fig = figure_widget(make_subplots(rows=rows, cols=cols, subplot_titles=[f"action dim {d}" for d in range(act_dim)],
                                            horizontal_spacing=0.06, vertical_spacing=0.12))
        for d in range(act_dim):
            r, c = d // cols + 1, d % cols + 1
            first = d == 0
            for b, op in enumerate(OPACITY_BINS):
                fig.add_scatter(mode="lines+markers", line=dict(color="#4060c0", width=1.2), marker=dict(size=3),
                                opacity=op, name="candidates" if b == 0 else "elites (opacity ∝ weight)",
                                legendgroup="cands", showlegend=first and b in (0, 4),
                                meta=dict(role="candidates", dim=d, bin=b), row=r, col=c)
            fig.add_scatter(mode="lines+markers", name="x_τ/√ᾱ_τ (noisy mean)", line=dict(color="black", dash="dash"),
                            showlegend=first, meta=dict(role="noisy_mean", dim=d), row=r, col=c)
            fig.add_scatter(mode="lines+markers", name="Ā (weighted mean)", line=dict(color="#d62728", width=3),
                            showlegend=first, meta=dict(role="weighted_mean", dim=d), row=r, col=c)
            fig.add_scatter(mode="lines+markers", name="final plan", line=dict(color="#2ca02c", width=3, dash="dot"),
                            marker=dict(symbol="star", size=9), showlegend=first, meta=dict(role="plan", dim=d),
                            row=r, col=c)
        fig.update_yaxes(range=[-1.08, 1.08])
        fig.update_xaxes(tickmode="array", tickvals=list(range(horizon)), title_text="horizon step t")
        fig.update_layout(height=260 * rows + 90, width=860, margin=dict(l=40, r=10, t=90, b=40),
                          legend=dict(orientation="h", yanchor="top", y=1.0, yref="container", x=0,
                                      font=dict(size=11)), title=None)
        self.fig_actions = fig
        self.fig_scores = _scores_figure()
        self.fig_schedule = _schedule_figure()
        # the terminal value is usually far larger than one step's reward: its own panel and axis,
        # so the per-step reward and energy bars stay readable
        img = figure_widget(make_subplots(rows=1, cols=2, column_widths=[0.72, 0.28], horizontal_spacing=0.16,
                                          subplot_titles=("per imagined step", "terminal value")))
        img.add_bar(name="predicted reward γ^t r_t", meta=dict(role="rewards"), row=1, col=1)
        img.add_bar(name="γ^t η·energy_t", meta=dict(role="energies"), row=1, col=1)
        img.add_bar(name="γ^H Q(z_H, π)", meta=dict(role="terminal"), marker_color="#2ca02c", row=1, col=2)
        img.update_layout(height=340, width=470, barmode="group", margin=dict(l=45, r=10, t=95, b=40),
                          title=dict(text="imagined outcome of the final plan", font=dict(size=13)),
                          legend=dict(orientation="h", y=-0.18, font=dict(size=10)))
        self.fig_imagined = img
        self._build_physics_panel()

    # --- the planner checked against physics --------------------------------------------------------
    def _build_physics_panel(self) -> None:
        self.physics_button = W.Button(description="check against physics", icon="flask",
                                       tooltip="execute every level's plan and elites in the simulator from this state",
                                       layout=W.Layout(width="220px", min_width="220px"))
        self.physics_button.on_click(lambda _b: self.check_physics())
        self.physics_caption = W.HTML("<i>Does the model's optimism survive reality? Press the button: each "
                                      "level's plan and its elites run for H steps in the simulator from this "
                                      "state (restored after each), and the real return is set beside the "
                                      "imagined one.</i>")
        fig = figure_widget(make_subplots(rows=1, cols=2, horizontal_spacing=0.14, column_widths=[0.55, 0.45],
                                          subplot_titles=("each level's plan: imagined vs real",
                                                          "this level's elites")))
        fig.add_scatter(mode="lines+markers", name="imagined (model)", line=dict(color="#4060c0", width=2.5),
                        meta=dict(role="imagined"), row=1, col=1)
        fig.add_scatter(mode="lines+markers", name="real (simulator)", line=dict(color="#d62728", width=2.5),
                        meta=dict(role="real"), row=1, col=1)
        fig.add_scatter(mode="markers", name="elites", marker=dict(color="#2ca02c", size=7),
                        meta=dict(role="elites"), row=1, col=2)
        fig.add_scatter(mode="lines", name="real = imagined", line=dict(color="#888", dash="dot"),
                        meta=dict(role="diagonal"), row=1, col=2)
        fig.update_xaxes(title_text="noise level τ (the search runs right to left)", autorange="reversed", row=1, col=1)
        fig.update_yaxes(title_text="return over H steps + γ^H V", row=1, col=1)
        fig.update_xaxes(title_text="imagined return", row=1, col=2)
        fig.update_yaxes(title_text="real return", row=1, col=2)
        fig.update_layout(height=330, width=860, margin=dict(l=50, r=10, t=60, b=45),
                          legend=dict(orientation="h", y=-0.28, font=dict(size=11)))
        self.fig_physics = fig
        self.filmstrip = W.Image(format="png", layout=W.Layout(width="860px"))
        # shown from the first check on: an empty figure in the page would look like a broken panel
        self.physics_results = W.VBox([])
        self.physics_box = W.VBox([W.HTML("<b>The planner checked against physics</b>"),
                                   W.HBox([self.physics_button, self.physics_caption],
                                          layout=W.Layout(align_items="center")),
                                   self.physics_results])

    def check_physics(self) -> RealityCheck | None:
        """Run the reality check of the current decision and draw it (see `analysis.reality`)."""
        if self._env_seed is None:
            self.physics_caption.value = ("<span style='color:#b00020'>unavailable: this stepper was given its "
                                          "own environment or rollout, whose states cannot be rebuilt here</span>")
            return None
        t, ro = self.state.value, self.rollout
        env = env_at(self.agent, self._task, self._env_seed, ro.actions[:t])
        try:
            size = (72, 96) if ro.frames is not None else None
            self.reality = reality_check(self.agent, env, self.trace, ro.obs[t], t, frame_size=size)
        finally:
            env.close()
        self._draw_physics()
        return self.reality

    def _draw_physics(self) -> None:
        check = self.reality
        if check is None:
            return
        levels = check.levels.astype(int).tolist()
        with self.fig_physics.batch_update():
            figure_trace(self.fig_physics, "imagined").update(x=levels, y=check.imagined_return.round(2))
            figure_trace(self.fig_physics, "real").update(x=levels, y=check.real_return.round(2))
        self._draw_physics_level(self.level.value)
        gap = check.plan_imagined - check.plan_real
        verdict = ("the model promised more than physics gave" if gap > 0 else
                   "physics gave at least what the model promised")
        self.physics_caption.value = (f"state t={check.t}: the final plan was imagined to earn "
                                      f"<b>{check.plan_imagined:.1f}</b> and earned <b>{check.plan_real:.1f}</b> in the "
                                      f"simulator ({verdict}; gap {gap:+.1f}). Real = the same H actions "
                                      "executed, plus γ^H times the model's value of the real last state.")
        if check.frames is not None:
            self.filmstrip.value = frame_png(np.concatenate(list(check.frames), axis=1))
        self.filmstrip.layout.display = "" if check.frames is not None else "none"
        self.physics_results.children = (self.fig_physics, self.filmstrip)

    def _draw_physics_level(self, k: int) -> None:
        check = self.reality
        if check is None or k >= len(check.levels):
            return
        x, y = check.elite_imagined[k], check.elite_real[k]
        lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        with self.fig_physics.batch_update():
            figure_trace(self.fig_physics, "elites").update(x=x.round(2), y=y.round(2))
            figure_trace(self.fig_physics, "diagonal").update(x=[lo, hi], y=[lo, hi])
            self.fig_physics.layout.annotations[1].text = f"the elites of level τ={int(check.levels[k])}"

    def _validate(self, knobs: dict[str, Any]) -> None:
        planner_config(self.agent.cfg, knobs)

    def _compute_trace(self, knobs: dict[str, Any]) -> DenoiseTrace:
        t = self.state.value
        return plan_trace(self.agent, self.rollout.obs[t], self.rollout.warm_plans[t], knobs, seed=knobs["seed"])

    def _draw_trace(self) -> None:
        trace, t = self.trace, self.state.value
        gamma, horizon = self.agent.gamma, self.agent.cfg.horizon
        if self.reality is not None:  # checked once: keep the check with the decision shown
            self.check_physics()
        im = trace.imagined
        steps = [f"t={i}" for i in range(horizon)]
        disc = gamma ** np.arange(horizon)
        with self.fig_imagined.batch_update():
            figure_trace(self.fig_imagined, "rewards").update(x=steps, y=im["rewards"] * disc)
            figure_trace(self.fig_imagined, "energies").update(x=steps, y=trace.eta * im["energies"] * disc)
            figure_trace(self.fig_imagined, "terminal").update(
                x=[f"t={horizon}"], y=[gamma ** horizon * float(im["terminal_value"])])
            j = predicted_return(im, gamma) + trace.eta * discounted_energy(im, gamma)
            r_sum = float((im["rewards"] * disc).sum())
            e_sum = float(trace.eta * (im["energies"] * disc).sum())
            q_term = gamma ** horizon * float(im["terminal_value"])
            self.fig_imagined.layout.title.text = (f"imagined outcome of the final plan: J = {j:.2f}<br>"
                                                   f"<span style='font-size:11px'>= rewards {r_sum:.2f} + "
                                                   f"η·energy {e_sum:.3g} + terminal {q_term:.2f}</span>")
        with self.fig_schedule.batch_update():
            _update_schedule_trace(self.fig_schedule, trace)
        with self.fig_actions.batch_update():
            for d in range(trace.plan.shape[1]):
                figure_trace(self.fig_actions, "plan", d).update(x=np.arange(horizon), y=trace.plan[:, d])
        ro = self.rollout
        if ro.frames is not None:
            self.frame.value = frame_png(ro.frames[t])
            self.frame_caption.value = (f"state t={t}: the real environment (reward {ro.rewards[t]:.2f}); "
                                        f"executed action {[round(float(a), 2) for a in ro.actions[t]]}")
        else:
            self.frame_caption.value = ("<span style='color:#b00020'>no frame: rendering is unavailable"
                                        f"</span><pre style='font-size:10px'>{html.escape(ro.render_error[:400])}</pre>")

    def _draw_level(self, view: dict[str, Any]) -> None:
        trace = self.trace
        horizon = trace.candidates.shape[2]
        steps = np.arange(horizon)
        with self.fig_actions.batch_update():
            for d in range(trace.plan.shape[1]):
                for b, group in enumerate(candidate_lines(trace, view["k"], d, view["subset"])):
                    tr = self.fig_actions.data[self._cand_index(d, b)]
                    tr.update(x=group["x"], y=group["y"], customdata=group["customdata"])
                figure_trace(self.fig_actions, "noisy_mean", d).update(x=steps, y=view["noisy_mean"][:, d])
                figure_trace(self.fig_actions, "weighted_mean", d).update(x=steps, y=view["weighted_mean"][:, d])
        with self.fig_scores.batch_update():
            _update_scores(self.fig_scores, view, trace.eta)
        with self.fig_schedule.batch_update():
            _update_schedule_level(self.fig_schedule, view)
        self.identity.value = identity_html(view)
        if self.reality is not None and self.reality.t == self.state.value:
            self._draw_physics_level(view["k"])

    def _cand_index(self, dim: int, b: int) -> int:
        return dim * (len(OPACITY_BINS) + 3) + b


# --- the toy landscape explorer -----------------------------------------------------------------

class ToyLandscapeExplorer(_TraceExplorer):
    """The same planner on the 2-D toy: candidate clouds per level over the return contours."""

    knob_names = ("eta", "temperature", "num_samples", "num_elites", "num_levels", "num_pi_trajs",
                  "beta_end", "distractor", "seed")

    def __init__(self, toy: ToyLandscape | None = None, *, eta: float = 0.01, seed: int = 0,
                 max_candidates: int = 1024, **knobs: Any):
        self.toy = toy or make_toy()
        defaults = toy_planner()
        values = dict(eta=eta, temperature=defaults.temperature, num_samples=defaults.num_samples,
                      num_elites=defaults.num_elites, num_levels=defaults.num_levels,
                      num_pi_trajs=defaults.num_pi_trajs, beta_end=0.1, distractor=self.toy.cfg.distractor,
                      seed=seed)
        values.update(knobs)
        super().__init__(values, max_candidates=max_candidates)
        self._build_figures()
        self.outcome = W.HTML()
        header = W.HTML("<h3 style='margin:4px 0'>Toy landscape — why MBDPO anchors the planner to the data</h3>"
                        "<div style='font-size:12px'>Grey dots: behaviour data. Blue fill: the learned return "
                        "(right on the data, a spurious optimum ✕ off it). Orange dashes: the true return "
                        "(top ★). Green line: where the energy says 'this looks like data' (standardised "
                        "F = -2). Candidates are coloured and made opaque by their weight.</div>")
        knob_box = W.HBox(list(self.knobs.values()), layout=W.Layout(flex_flow="row wrap"))
        wrap = W.Layout(flex_flow="row wrap")
        self.children = [header, W.HBox([self.play, self.level, self.level_label], layout=wrap), knob_box,
                         self.status,
                         W.HBox([self.fig_plane, W.VBox([self.fig_scores, self.fig_schedule, self.outcome],
                                                        layout=W.Layout(width="480px"))], layout=wrap)]
        self.replan()

    def _validate(self, knobs: dict[str, Any]) -> None:
        planner_config(make_config("paper"), knobs)
        if not knobs["distractor"] >= 0:
            raise ValueError(f"distractor must be >= 0 (0 removes the trap), got {knobs['distractor']}")

    def _compute_trace(self, knobs: dict[str, Any]) -> DenoiseTrace:
        self._validate(knobs)
        if knobs["distractor"] != self.toy.cfg.distractor:
            self.toy.set_distractor(knobs["distractor"])
        planner = toy_planner(knobs["num_samples"], knobs["num_levels"], knobs["num_elites"],
                              knobs["num_pi_trajs"], knobs["temperature"], beta_end=knobs["beta_end"])
        return self.toy.plan(knobs["eta"], seed=knobs["seed"], planner=planner, trace=True).trace

    def _build_figures(self) -> None:
        toy = self.toy
        g = toy.grid()
        fig = figure_widget()
        fig.add_contour(x=g["g"], y=g["g"], z=g["learned"], colorscale="Blues", opacity=0.55, showscale=False,
                        contours=dict(showlines=False), name="learned return", hoverinfo="skip",
                        meta=dict(role="learned"))
        fig.add_contour(x=g["g"], y=g["g"], z=g["true"], contours=dict(coloring="none", showlabels=False),
                        line=dict(color="#e07000", dash="dash", width=1.2), ncontours=8, showscale=False,
                        name="true return", hoverinfo="skip", meta=dict(role="true"))
        fig.add_contour(x=g["g"], y=g["g"], z=g["energy"],
                        contours=dict(coloring="none", start=-2, end=-2, size=1),
                        line=dict(color="#1b9e3a", width=2.5), showscale=False, name="energy = -2",
                        hoverinfo="skip", meta=dict(role="energy"))
        sub = toy.data_np[:: max(1, len(toy.data_np) // 300)]
        fig.add_scatter(x=sub[:, 0], y=sub[:, 1], mode="markers", name="behaviour data",
                        marker=dict(size=3, color="#777"), meta=dict(role="data"))
        fig.add_scatter(mode="markers", name="candidates (τ)",
                        marker=dict(size=6, color=[], colorscale="Viridis", cmin=0, opacity=[],
                                    line=dict(width=0)),
                        meta=dict(role="candidates"))
        fig.add_scatter(mode="lines+markers", name="x_τ/√ᾱ_τ over levels", line=dict(color="black", width=1),
                        marker=dict(size=4), meta=dict(role="path"))
        fig.add_scatter(mode="markers", name="x_τ/√ᾱ_τ (now)", marker=dict(size=12, color="black", symbol="circle-open",
                                                                         line=dict(width=2)),
                        meta=dict(role="noisy_mean"))
        fig.add_scatter(mode="markers", name="Ā (weighted mean)", marker=dict(size=12, color="#d62728", symbol="x"),
                        meta=dict(role="weighted_mean"))
        fig.add_scatter(mode="markers", name="final plan", marker=dict(size=16, color="#2ca02c", symbol="star",
                                                                        line=dict(width=1, color="black")),
                        meta=dict(role="plan"))
        fig.add_scatter(x=[float(toy.a_star[0])], y=[float(toy.a_star[1])], mode="markers", name="true optimum",
                        marker=dict(size=16, color="gold", symbol="star", line=dict(width=1, color="black")),
                        meta=dict(role="a_star"))
        fig.add_scatter(x=[float(toy.spurious[0])], y=[float(toy.spurious[1])], mode="markers",
                        name="spurious optimum", marker=dict(size=14, color="#b00020", symbol="x-thin-open",
                                                             line=dict(width=3)),
                        meta=dict(role="spurious"))
        fig.update_xaxes(range=[-1.05, 1.05], title_text="action a₀", constrain="domain")
        fig.update_yaxes(range=[-1.05, 1.05], title_text="action a₁", scaleanchor="x", scaleratio=1)
        fig.update_layout(height=600, width=520, margin=dict(l=50, r=10, t=40, b=40),
                          legend=dict(orientation="h", y=-0.12, font=dict(size=10)),
                          title=dict(text="", font=dict(size=13)))
        self.fig_plane = fig
        self.fig_scores = _scores_figure()
        self.fig_schedule = _schedule_figure()
        self.fig_scores.update_layout(width=470)
        self.fig_schedule.update_layout(width=470, height=290)

    def _draw_trace(self) -> None:
        trace, toy = self.trace, self.toy
        g = toy.grid()
        path = trace.x / np.sqrt(trace.alpha_bar[trace.levels])[:, None, None]
        with self.fig_plane.batch_update():
            figure_trace(self.fig_plane, "learned").z = g["learned"]
            figure_trace(self.fig_plane, "path").update(x=np.append(path[:, 0, 0], trace.plan[0, 0]),
                                                          y=np.append(path[:, 0, 1], trace.plan[0, 1]))
            figure_trace(self.fig_plane, "plan").update(x=[trace.plan[0, 0]], y=[trace.plan[0, 1]])
            figure_trace(self.fig_plane, "spurious").visible = toy.cfg.distractor > 0  # no trap, no marker
        with self.fig_schedule.batch_update():
            _update_schedule_trace(self.fig_schedule, trace)
        out = toy.outcome(trace.plan)
        verdict = ("<b style='color:#b00020'>trapped at the spurious optimum</b>" if out["distance_to_spurious"] < 0.3
                   else "<b style='color:#1b5e20'>on the data</b>" if out["distance_to_data"] < 0.1
                   else "<b>off the data</b>")
        self.outcome.value = (
            f"<div style='font-size:12px'>final plan a = ({out['a0']:+.2f}, {out['a1']:+.2f}) — {verdict}<br>"
            f"distance to the data {out['distance_to_data']:.3f} · true return {out['true_return']:.4f} "
            f"(best {toy.cfg.return_scale:.4f}) · model return {out['model_return']:.4f} · "
            f"standardised energy {out['energy']:+.2f}</div>")

    def _draw_level(self, view: dict[str, Any]) -> None:
        trace = self.trace
        cand = view["candidates"][:, 0, :]
        w = view["weights"]
        wmax = float(w.max()) or 1.0
        opacity = np.where(w > 0, 0.35 + 0.65 * w / wmax, 0.12)
        with self.fig_plane.batch_update():
            c = figure_trace(self.fig_plane, "candidates")
            c.update(x=cand[:, 0], y=cand[:, 1], customdata=np.arange(len(cand)))
            c.marker.color = w
            c.marker.opacity = opacity
            c.marker.cmax = wmax
            figure_trace(self.fig_plane, "noisy_mean").update(x=[view["noisy_mean"][0, 0]], y=[view["noisy_mean"][0, 1]])
            figure_trace(self.fig_plane, "weighted_mean").update(x=[view["weighted_mean"][0, 0]],
                                                                  y=[view["weighted_mean"][0, 1]])
            self.fig_plane.layout.title.text = (f"τ={view['tau']}: candidates ~ x/√ᾱ ± {view['spread']:.2f}, "
                                                f"η={trace.eta:g}")
        with self.fig_scores.batch_update():
            _update_scores(self.fig_scores, view, trace.eta)
        with self.fig_schedule.batch_update():
            _update_schedule_level(self.fig_schedule, view)


__all__ = ["DenoisingStepper", "ToyLandscapeExplorer", "Rollout", "collect_rollout", "plan_trace",
           "planner_config", "level_view", "candidate_subset", "candidate_lines", "opacity_bin",
           "identity_html", "figure_trace", "OPACITY_BINS"]
