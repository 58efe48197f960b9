"""One typed configuration for every part of MBDPO, with named presets and overrides.

Widgets, the CLI and the notebooks all bind to these same fields, so a value means one thing
everywhere. ``make_config("cpu", eta=0.0)`` or ``make_config("paper", overrides=["eta=0"])``.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Mapping

from .errors import ConfigError


# TD-MPC2's model sizes (millions of parameters, roughly); values we set for each key.
MODEL_SIZES: dict[int, dict[str, int]] = {
    1: dict(enc_dim=256, mlp_dim=384, latent_dim=128, num_enc_layers=2, num_q=2),
    5: dict(enc_dim=256, mlp_dim=512, latent_dim=512, num_enc_layers=2, num_q=5),
    19: dict(enc_dim=1024, mlp_dim=1024, latent_dim=768, num_enc_layers=3, num_q=5),
    48: dict(enc_dim=1792, mlp_dim=1792, latent_dim=768, num_enc_layers=4, num_q=5),
    317: dict(enc_dim=4096, mlp_dim=4096, latent_dim=1376, num_enc_layers=5, num_q=8),
}


@dataclass
class Config:
    """Every knob of an MBDPO run. Defaults are the paper's online setting (preset ``paper``)."""

    # --- task and run -----------------------------------------------------------------
    task: str = "cartpole-swingup"
    """DMControl task as ``domain-task`` (``mbdpo-lab tasks`` lists them)."""
    seed: int = 1
    """Seed for torch, numpy and the environment; same seed, same device -> same numbers."""
    steps: int = 100_000
    """Environment steps to train for: calls of the action-repeated env, one act and one update each.

    This is TD-MPC2's unit and the x-axis of the published curves (1 step = action_repeat simulator steps).
    """
    action_repeat: int = 2
    """Each agent action is applied this many simulator steps."""
    episode_length: int = 500
    """Agent steps per episode (1000 simulator steps / action_repeat)."""
    num_envs: int = 1
    """Training environments run in lock-step, one batched planner call for all of them per step; each
    is one replay stream. ``steps`` counts the transitions of all of them together."""
    updates_per_env_step: float = 1.0
    """Gradient updates per collected transition (after the seed phase's burst): with num_envs=N a
    lock-step round runs N x this many (fractions carry over). 1 is TD-MPC2's and the paper's rule."""
    device: str = "auto"
    """``auto`` picks CUDA when available, else CPU; or any torch device string."""
    variant: str = "release"
    """``release``: the authors' MBDPO exactly (architecture, init, losses, planner, replay, seed phase);
    ``lab``: this project's earlier reading of it, kept for comparison. docs/algorithm.md lists every
    difference and what it measured to do."""

    # --- model size ---------------------------------------------------------------------
    model_size: int = 5
    """TD-MPC2 model size key (1, 5, 19, 48, 317); sets the dims below unless overridden."""
    enc_dim: int = 256
    """Hidden width of the observation encoder."""
    num_enc_layers: int = 2
    """Encoder depth (hidden layers = num_enc_layers - 1)."""
    mlp_dim: int = 512
    """Hidden width of dynamics, reward, Q, policy and energy MLPs (two hidden layers each)."""
    latent_dim: int = 512
    """Size of the SimNorm latent state z."""
    simnorm_dim: int = 8
    """SimNorm group size: the latent is a concatenation of softmaxes over this many entries."""
    num_q: int = 5
    """Number of Q heads in the ensemble."""
    num_bins: int = 101
    """Bins of the two-hot (symlog) discrete regression for reward and value."""
    vmin: float = -10.0
    """Lower edge of the symlog support."""
    vmax: float = 10.0
    """Upper edge of the symlog support."""
    dropout: float = 0.01
    """Dropout on the first layer of every Q head."""
    log_std_min: float = -10.0
    """Policy prior's lowest log standard deviation."""
    log_std_max: float = 2.0
    """Policy prior's highest log standard deviation."""
    use_score_net: bool = False
    """Build the score network s(z, x_tau, tau), trained (score_coef > 0) on the release's Monte-Carlo
    score targets; it can then guide the diffusion planner (score_guided) or act alone (planner=score)."""
    score_output: str = "score"
    """What the score network outputs: ``score`` (the release: the score itself, fitted by MSE to the
    Monte-Carlo score) or ``mean`` (the weighted mean Abar that score implies, fitted to the Monte-Carlo
    Abar: the same target on the scale of an action at every level)."""
    score_samples: int = 64
    """Candidate sequences of one Monte-Carlo score target (the release's diffusion_num_samples_mf)."""
    score_guided: bool = False
    """The diffusion planner moves x with the score network's output instead of the Monte-Carlo score
    (candidates are still drawn and scored, as in the release, so the trace shows both)."""
    task_dim: int = 96
    """Width of the learned task embedding of a multi-task model (TD-MPC2's and the release's 96);
    single-task models have none."""
    tau_embed_dim: int = 64
    """Width of the sinusoidal noise-level embedding of the score network."""

    # --- learning -----------------------------------------------------------------------
    batch_size: int = 256
    """Sub-trajectories per update."""
    horizon: int = 3
    """Planning and training horizon H (sub-trajectories hold H+1 observations)."""
    rho: float = 0.5
    """Temporal weight rho^t of the losses along the horizon."""
    lr: float = 3e-4
    """Adam learning rate of the world model (and of the policy prior's own Adam)."""
    enc_lr_scale: float = 0.3
    """Encoder learning rate = lr x this."""
    grad_clip_norm: float = 20.0
    """Gradient norm clip of the world-model update."""
    consistency_coef: float = 20.0
    """Weight of the latent consistency loss."""
    reward_coef: float = 0.1
    """Weight of the reward cross-entropy."""
    value_coef: float = 0.1
    """Weight of the value (TD) cross-entropy."""
    energy_coef: float = 1.0
    """Weight of the energy (contrastive, binary logistic) loss L_F."""
    score_coef: float = 0.0
    """Weight of the optional score-matching loss; needs use_score_net (0 leaves that network untrained)."""
    entropy_coef: float = 1e-4
    """Policy prior entropy bonus."""
    tau: float = 0.01
    """Polyak rate of the target Q ensemble."""
    discount: float = -1.0
    """Discount gamma; -1 derives it from episode_length (0.99 for DMControl)."""
    seed_steps: int = -1
    """Steps before learning starts; -1 means max(1000, 5 x episode_length)."""
    seed_actions: str = "random"
    """How the seed phase acts: ``random`` (uniform actions, training from scratch) or ``planner`` (the
    agent's own planner with exploration noise: fine-tuning a pretrained model, as the release does)."""
    buffer_size: int = 1_000_000
    """Replay capacity in steps. ``release``: the oldest episodes are dropped when it is full;
    ``lab``: no eviction, so steps may not exceed it."""
    energy_noise_std: float = 0.5
    """Std of the Gaussian perturbation that makes one of the three negative candidates."""
    energy_stat_momentum: float = 0.99
    """Momentum of the running mean/std of energy logits used to standardise F."""
    energy_negatives: str = "smooth"
    """Variant ``lab`` only (``release`` always trains on the hardest). How the three negative candidates enter L_F: ``smooth`` (softplus of the log-mean-exp of their
    F: the gradient goes to the hardest once F separates them, but F keeps learning while data and
    candidates look alike) or ``hardest`` (the one with the highest F, the authors' rule; it can leave F flat for tens of thousands
    of steps, see `MBDPO.energy_loss`). Configs saved before this option existed load as ``hardest``."""

    # --- planner ------------------------------------------------------------------------
    planner: str = "diffusion"
    """Actor: ``diffusion`` (MBDPO), ``mppi`` (TD-MPC2-style), ``policy`` (prior only) or ``score`` (the
    score network alone: one network call per level, no candidate rollouts; needs use_score_net)."""
    num_samples: int = 512
    """Candidate action sequences per denoising level."""
    num_levels: int = 20
    """Diffusion noise levels N (the planner runs levels N-1 .. 1)."""
    beta_start: float = 1e-4
    """First beta of the linear noise schedule."""
    beta_end: float = 1e-2
    """Last beta of the linear noise schedule."""
    num_elites: int = 64
    """Top candidates that receive weight."""
    num_pi_trajs: int = 24
    """Candidates replaced by rollouts of the policy prior through the dynamics."""
    temperature: float = 0.5
    """Diffusion planner: softmax over the elites' standardised returns / temperature. The MPPI comparison
    planner uses TD-MPC2's convention instead, exp(temperature x (return - max)) on raw returns."""
    eta: float = 0.01
    """Weight of the energy anchor in the planning return; 0 is the unanchored agent."""
    energy_clip: float = 5.0
    """Standardised energy is clipped to [-energy_clip, energy_clip] in the return."""
    exploration_std: float = 0.05
    """Gaussian noise on the executed action during training."""
    mppi_iterations: int = 6
    """Iterations of the MPPI comparison planner."""
    mppi_min_std: float = 0.05
    """Lowest sampling std of MPPI."""
    mppi_max_std: float = 2.0
    """Initial (highest) sampling std of MPPI."""
    planner_bf16: bool = False
    """Run the planner's network evaluations under bf16 autocast (fast on CPUs with AMX)."""

    # --- evaluation and logging ---------------------------------------------------------
    eval_every: int = 10_000
    """Evaluate every this many steps (0 disables periodic evaluation)."""
    eval_episodes: int = 10
    """Episodes per evaluation."""
    save_video: bool = True
    """Write an mp4 of the first evaluation episode at every evaluation."""
    video_size: int = 192
    """Height and width of evaluation videos."""
    checkpoint_every: int = 10_000
    """Write the resumable checkpoint every this many steps (0: only at the end)."""

    preset: str = field(default="paper", metadata={"internal": True})
    """Name of the preset this config was built from (informational)."""

    # ------------------------------------------------------------------------------------
    @property
    def gamma(self) -> float:
        """Discount: TD-MPC2's heuristic clip((L/5 - 1)/(L/5), 0.95, 0.995), or the set value."""
        return self.gamma_for(self.episode_length)

    def gamma_for(self, episode_length: int) -> float:
        """The discount of a task with episodes of this many steps (a multi-task model has one per task)."""
        if self.discount > 0:
            return float(self.discount)
        frac = episode_length / 5
        return float(min(max((frac - 1) / frac, 0.95), 0.995))

    @property
    def num_seed_steps(self) -> int:
        """Agent steps of uniform random actions before the first update."""
        if self.seed_steps >= 0:
            return int(self.seed_steps)
        return max(1000, 5 * self.episode_length)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Config":
        """Rebuild a config (e.g. from a checkpoint); unknown keys are an error."""
        cfg = cls()
        data = dict(data)
        data.setdefault("energy_negatives", "hardest")  # the only rule before the option existed
        data.setdefault("variant", "lab")  # every run before the release variant existed
        apply_overrides(cfg, data, _set_size=False)
        validate(cfg)
        return cfg

    def replace(self, **changes: Any) -> "Config":
        """A copy with some fields changed (validated)."""
        cfg = dataclasses.replace(self)
        apply_overrides(cfg, changes)
        validate(cfg)
        return cfg


def field_names() -> list[str]:
    return [f.name for f in fields(Config)]


def field_doc(name: str) -> str:
    """The docstring of a field (read from the source), for widget tooltips and --help."""
    return _FIELD_DOCS.get(name, "")


def _read_field_docs() -> dict[str, str]:
    import ast
    import inspect

    docs: dict[str, str] = {}
    try:
        tree = ast.parse(inspect.getsource(Config))
    except (OSError, TypeError):  # pragma: no cover - source not available
        return docs
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr):
            if isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                docs[node.target.id] = nxt.value.value  # type: ignore[attr-defined]
    return docs


_FIELD_DOCS = _read_field_docs()


PRESETS: dict[str, dict[str, Any]] = {
    # Everything as in the paper's online DMControl setting.
    "paper": dict(model_size=5),
    # Learns an easy task on 2 CPU cores in well under an hour (tuned by measurement, docs/results.md).
    "cpu": dict(
        model_size=1,
        enc_dim=128,
        mlp_dim=256,
        latent_dim=128,
        num_q=2,
        num_samples=128,
        num_levels=6,
        num_elites=16,
        num_pi_trajs=8,
        batch_size=128,
        steps=50_000,
        eval_every=10_000,
        checkpoint_every=5_000,
    ),
    # For tests and smoke runs: seconds per run.
    "tiny": dict(
        model_size=1,
        enc_dim=32,
        mlp_dim=32,
        latent_dim=16,
        num_q=2,
        num_samples=32,
        num_levels=4,
        num_elites=8,
        num_pi_trajs=4,
        batch_size=32,
        steps=1_000,
        episode_length=100,
        seed_steps=200,
        eval_every=500,
        eval_episodes=2,
        checkpoint_every=0,
        save_video=False,
        video_size=64,
    ),
}


def _parse_value(name: str, raw: Any, current: Any) -> Any:
    """Convert a CLI string (or any value) to the field's type."""
    if not isinstance(raw, str):
        if isinstance(current, bool):
            if isinstance(raw, bool):
                return raw
            raise ConfigError(f"{name} must be true or false, got {raw!r}")
        if isinstance(current, int) and not isinstance(current, bool):
            if isinstance(raw, float) and raw.is_integer():
                return int(raw)
            if isinstance(raw, int) and not isinstance(raw, bool):
                return raw
            raise ConfigError(f"{name} must be an integer, got {raw!r}")
        if isinstance(current, float):
            if isinstance(raw, (int, float)) and not isinstance(raw, bool):
                return float(raw)
            raise ConfigError(f"{name} must be a number, got {raw!r}")
        if isinstance(current, str) and not isinstance(raw, str):
            raise ConfigError(f"{name} must be a string, got {raw!r}")
        return raw
    text = raw.strip()
    try:
        if isinstance(current, bool):
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(current, int):
            value = float(text.replace("_", ""))
            if not value.is_integer():
                raise ValueError
            return int(value)
        if isinstance(current, float):
            return float(text)
    except ValueError:
        kind = type(current).__name__
        raise ConfigError(f"{name} expects a {kind}, got {raw!r}") from None
    return text


def apply_overrides(cfg: Config, overrides: Mapping[str, Any] | Iterable[str], *, _set_size: bool = True) -> Config:
    """Set fields from a mapping or from ``key=value`` strings; unknown keys list close matches.

    Setting ``model_size`` first applies that size's dims, then any explicit dims win.
    """
    if not isinstance(overrides, Mapping):
        pairs: dict[str, Any] = {}
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} is not of the form key=value (e.g. eta=0)")
            key, value = item.split("=", 1)
            pairs[key.strip()] = value
        overrides = pairs
    names = field_names()
    for key in overrides:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see `mbdpo-lab config` for all keys"
            raise ConfigError(f"unknown config key {key!r}{hint}")
    items = dict(overrides)
    if _set_size and "model_size" in items:
        size = _parse_value("model_size", items.pop("model_size"), cfg.model_size)
        _apply_model_size(cfg, size)
    for key, raw in items.items():
        setattr(cfg, key, _parse_value(key, raw, getattr(cfg, key)))
    return cfg


def _apply_model_size(cfg: Config, size: int) -> None:
    if size not in MODEL_SIZES:
        raise ConfigError(f"model_size must be one of {sorted(MODEL_SIZES)}, got {size}")
    cfg.model_size = size
    for key, value in MODEL_SIZES[size].items():
        setattr(cfg, key, value)


def validate(cfg: Config) -> None:
    """Refuse values the algorithm cannot run with, saying which and why."""
    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise ConfigError(msg)

    for f in fields(cfg):
        value = getattr(cfg, f.name)
        need(not isinstance(value, float) or math.isfinite(value), f"{f.name} must be a finite number, got {value}")
    need(cfg.seed >= 0, f"seed must be >= 0, got {cfg.seed}")
    need(re.fullmatch(r"auto|cpu|mps|(cuda|xpu)(:\d+)?", cfg.device) is not None,
         f"device must be auto, cpu, cuda, cuda:N (or mps, xpu), got {cfg.device!r}")
    # planner sizes: at least one sampled candidate per level besides the policy-prior ones
    need(cfg.num_samples >= 1, f"num_samples must be >= 1, got {cfg.num_samples}")
    need(cfg.num_levels >= 2, f"num_levels must be >= 2 (levels N-1..1 are run), got {cfg.num_levels}")
    need(1 <= cfg.num_elites <= cfg.num_samples,
         f"num_elites must be in [1, num_samples={cfg.num_samples}], got {cfg.num_elites}")
    need(0 <= cfg.num_pi_trajs < cfg.num_samples,
         f"num_pi_trajs must be in [0, num_samples - 1 = {cfg.num_samples - 1}] (the planner needs at least "
         f"one sampled candidate per level), got {cfg.num_pi_trajs}; lower num_pi_trajs or raise num_samples")
    need(cfg.temperature > 0, f"temperature must be > 0, got {cfg.temperature}")
    need(0 < cfg.beta_start < cfg.beta_end < 1,
         f"need 0 < beta_start < beta_end < 1, got beta_start={cfg.beta_start}, beta_end={cfg.beta_end}")
    need(cfg.variant in ("release", "lab"), f"variant must be release or lab, got {cfg.variant!r}")
    need(cfg.planner in ("diffusion", "mppi", "policy", "score"),
         f"planner must be diffusion, mppi, policy or score, got {cfg.planner!r}")
    need(cfg.use_score_net or not (cfg.planner == "score" or cfg.score_guided),
         "planner=score and score_guided=true act with the score network, which is not built; "
         "add --set use_score_net=true (and score_coef=1 to train it)")
    need(cfg.score_output in ("score", "mean"), f"score_output must be score or mean, got {cfg.score_output!r}")
    need(cfg.score_samples >= 2, f"score_samples must be >= 2 (their returns are standardised), got {cfg.score_samples}")
    need(cfg.mppi_iterations >= 1, f"mppi_iterations must be >= 1, got {cfg.mppi_iterations}")
    need(0 < cfg.mppi_min_std <= cfg.mppi_max_std,
         f"need 0 < mppi_min_std <= mppi_max_std, got {cfg.mppi_min_std} and {cfg.mppi_max_std}")
    need(cfg.eta >= 0, f"eta must be >= 0 (0 is the unanchored agent), got {cfg.eta}")
    need(cfg.energy_clip > 0, f"energy_clip must be > 0, got {cfg.energy_clip}")
    need(cfg.exploration_std >= 0, f"exploration_std must be >= 0, got {cfg.exploration_std}")
    # networks
    for name in ("enc_dim", "mlp_dim", "latent_dim", "num_enc_layers", "simnorm_dim"):
        need(getattr(cfg, name) >= 1, f"{name} must be >= 1, got {getattr(cfg, name)}")
    need(cfg.latent_dim % cfg.simnorm_dim == 0,
         f"latent_dim ({cfg.latent_dim}) must be a multiple of simnorm_dim ({cfg.simnorm_dim})")
    need(cfg.num_q >= 2, f"num_q must be >= 2 (two heads are drawn), got {cfg.num_q}")
    need(cfg.num_bins >= 2 and cfg.vmin < cfg.vmax,
         f"need num_bins >= 2 and vmin < vmax, got num_bins={cfg.num_bins}, vmin={cfg.vmin}, vmax={cfg.vmax}")
    need(0 <= cfg.dropout < 1, f"dropout must be in [0, 1), got {cfg.dropout}")
    need(cfg.log_std_min < cfg.log_std_max,
         f"log_std_min ({cfg.log_std_min}) must be below log_std_max ({cfg.log_std_max})")
    need(cfg.tau_embed_dim >= 2 and cfg.tau_embed_dim % 2 == 0,
         f"tau_embed_dim must be even and >= 2 (sine and cosine halves), got {cfg.tau_embed_dim}")
    need(cfg.score_coef <= 0 or cfg.use_score_net,
         f"score_coef={cfg.score_coef} trains the score network, which is not built; add --set use_score_net=true")
    # learning
    need(cfg.horizon >= 1, f"horizon must be >= 1, got {cfg.horizon}")
    need(cfg.batch_size >= 1 and cfg.steps >= 0 and cfg.episode_length >= cfg.horizon + 1,
         "batch_size >= 1, steps >= 0 and episode_length > horizon are required")
    need(cfg.lr > 0 and cfg.enc_lr_scale > 0 and cfg.grad_clip_norm > 0,
         f"lr, enc_lr_scale and grad_clip_norm must be > 0, got {cfg.lr}, {cfg.enc_lr_scale}, {cfg.grad_clip_norm}")
    need(0 <= cfg.rho <= 1, f"rho must be in [0, 1], got {cfg.rho}")
    need(0 <= cfg.tau <= 1, f"tau (the Polyak rate) must be in [0, 1], got {cfg.tau}")
    need(0 <= cfg.energy_stat_momentum < 1, f"energy_stat_momentum must be in [0, 1), got {cfg.energy_stat_momentum}")
    need(cfg.energy_noise_std >= 0, f"energy_noise_std must be >= 0, got {cfg.energy_noise_std}")
    need(cfg.discount == -1 or 0 < cfg.discount <= 1,
         f"discount must be in (0, 1], or -1 to derive it from episode_length, got {cfg.discount}")
    need(cfg.seed_steps == -1 or cfg.seed_steps >= cfg.horizon,
         f"seed_steps must be >= horizon ({cfg.horizon}: the first update needs one sub-trajectory), or -1 for "
         f"max(1000, 5 x episode_length), got {cfg.seed_steps}")
    need(cfg.variant == "lab" or cfg.buffer_size >= cfg.episode_length, f"buffer_size ({cfg.buffer_size}) must hold one episode "
         f"({cfg.episode_length} steps)")
    need(cfg.variant == "release" or cfg.steps <= cfg.buffer_size,
         f"steps={cfg.steps} exceeds buffer_size={cfg.buffer_size}: the replay keeps every step and never "
         "drops old ones (variant=lab); raise buffer_size (about obs_dim x 4 bytes per step), train fewer steps, "
         "or use variant=release (drops the oldest episodes)")
    need(cfg.variant == "lab" or cfg.num_seed_steps >= cfg.num_envs * cfg.episode_length,
         f"variant=release samples completed episodes only, so the seed phase ({cfg.num_seed_steps} steps over "
         f"{cfg.num_envs} environment(s)) must cover one episode in each ({cfg.num_envs} x {cfg.episode_length} "
         f"steps); raise seed_steps")
    need(cfg.task_dim >= 1, f"task_dim must be >= 1, got {cfg.task_dim}")
    need(cfg.seed_actions in ("random", "planner"), f"seed_actions must be random or planner, got {cfg.seed_actions!r}")
    need(cfg.energy_negatives in ("hardest", "smooth"),
         f"energy_negatives must be hardest or smooth, got {cfg.energy_negatives!r}")
    # the run
    need(cfg.num_envs >= 1, f"num_envs must be >= 1, got {cfg.num_envs}")
    need(cfg.updates_per_env_step > 0, f"updates_per_env_step must be > 0, got {cfg.updates_per_env_step}")
    need(cfg.action_repeat >= 1, f"action_repeat must be >= 1, got {cfg.action_repeat}")
    need(cfg.eval_episodes >= 1, f"eval_episodes must be >= 1, got {cfg.eval_episodes}")
    need(cfg.eval_every >= 0 and cfg.checkpoint_every >= 0,
         f"eval_every and checkpoint_every must be >= 0 (0: never / only at the end), got "
         f"{cfg.eval_every} and {cfg.checkpoint_every}")
    need(cfg.video_size >= 16 and cfg.video_size % 2 == 0,
         f"video_size must be an even number of pixels >= 16 (mp4 needs even sizes), got {cfg.video_size}")

def make_config(preset: str = "paper", overrides: Mapping[str, Any] | Iterable[str] | None = None,
                **kwargs: Any) -> Config:
    """Build a config from a named preset, then ``overrides`` (dict or key=value list), then kwargs."""
    if preset not in PRESETS:
        close = difflib.get_close_matches(preset, PRESETS, n=3, cutoff=0.3)
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}"
                          + (f" (did you mean {close[0]}?)" if close else ""))
    cfg = Config()
    values = dict(PRESETS[preset])
    size = values.pop("model_size", 5)
    _apply_model_size(cfg, size)
    apply_overrides(cfg, values, _set_size=False)
    cfg.preset = preset
    if overrides:
        apply_overrides(cfg, overrides)
    if kwargs:
        apply_overrides(cfg, kwargs)
    validate(cfg)
    return cfg
