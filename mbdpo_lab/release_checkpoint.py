"""Published TD-MPC2 and MBDPO checkpoints, converted into ours without running their pickles.

Their files are ``torch.save({"model": state_dict})`` of a world model whose Q ensemble is a
tensordict (keys such as ``_Qs.params.0.weight`` holding all heads stacked, plus ``__batch_size`` /
``__device`` entries). We read them only with ``torch.load(weights_only=True)``, which refuses any
pickle that would construct an arbitrary object, infer the architecture from the tensor shapes, and
rename every tensor onto our `WorldModel` (variant ``release``: same layers, same order).

What their checkpoints do not hold, the converted agent starts from the release's own initial values:
the running statistics of F (mean 0, std 1: the release keeps them on the agent, not in the model, so
its own `load` resets them too) and the value scale S (1). A TD-MPC2 model has no F head: it is built
with a zero F and plans with eta = 0.
"""
from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from .config import MODEL_SIZES, Config, make_config
from .errors import CheckpointError

FORMATS = ("tdmpc2", "mbdpo")

# their module -> ours
_MLPS = {"_encoder.state": "encoder", "_dynamics": "dynamics", "_reward": "reward_head", "_pi": "pi_head",
         "_F": "energy_head", "_score": "score_net.net"}


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``model`` state dict of a published checkpoint, loaded with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} not found (pass the .pt file of a TD-MPC2 or MBDPO checkpoint)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} was refused: it is not a plain tensor checkpoint, and loading it would run "
                              f"code from the file ({first[:160]}). Only torch files of tensors are imported") from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({exc})") from None
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not any(isinstance(k, str) and k.startswith("_encoder.") for k in obj):
        raise CheckpointError(f"{path} does not hold a TD-MPC2/MBDPO world model (expected {{'model': state_dict}} "
                              "with _encoder.* keys)")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _blocks(sd: dict[str, torch.Tensor], prefix: str) -> int:
    idx = {int(m.group(1)) for k in sd if (m := re.fullmatch(re.escape(prefix) + r"\.(\d+)\.weight", k))}
    if not idx:
        raise CheckpointError(f"the checkpoint has no {prefix}.* layers")
    return max(idx) + 1


def infer_config(sd: dict[str, torch.Tensor], fmt: str, task: str) -> tuple[Config, int, int]:
    """(config, obs_dim, act_dim) of the model the tensors describe."""
    if fmt not in FORMATS:
        raise CheckpointError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if any(k.startswith("_task_emb.") for k in sd):
        raise CheckpointError("this is a multi-task checkpoint (it has a task embedding); only single-task "
                              "checkpoints can be imported")
    if any(k.startswith("_termination.") for k in sd):
        raise CheckpointError("this checkpoint was trained for an episodic task (it has a termination head), which "
                              "mbdpo-lab does not model")
    has_f = "_F.0.weight" in sd
    if fmt == "mbdpo" and not has_f:
        raise CheckpointError("this checkpoint has no energy head F: it is a TD-MPC2 model; use --format tdmpc2")
    if fmt == "tdmpc2" and has_f:
        raise CheckpointError("this checkpoint has an energy head F: it is an MBDPO model; use --format mbdpo")
    enc_n = _blocks(sd, "_encoder.state")
    obs_dim = sd["_encoder.state.0.weight"].shape[1]
    enc_dim = sd["_encoder.state.0.weight"].shape[0]
    latent = sd[f"_encoder.state.{enc_n - 1}.weight"].shape[0]
    mlp_dim, za = sd["_dynamics.0.weight"].shape
    act_dim = za - latent
    num_q = sd["_Qs.params.0.weight"].shape[0]
    num_bins = sd[f"_reward.{_blocks(sd, '_reward') - 1}.weight"].shape[0]
    values: dict[str, Any] = dict(enc_dim=enc_dim, num_enc_layers=enc_n, mlp_dim=mlp_dim, latent_dim=latent,
                                  num_q=num_q, num_bins=num_bins, variant="release", device="cpu")
    if "log_std_min" in sd and "log_std_dif" in sd:
        lo = float(sd["log_std_min"])
        values.update(log_std_min=lo, log_std_max=lo + float(sd["log_std_dif"]))
    if "_score.0.weight" in sd:
        out = sd[f"_score.{_blocks(sd, '_score') - 1}.weight"].shape[0]
        values.update(use_score_net=True, horizon=out // act_dim,
                      tau_embed_dim=sd["_score.0.weight"].shape[1] - latent - out)
    if fmt == "tdmpc2":
        values["eta"] = 0.0
    size = next((k for k, dims in MODEL_SIZES.items()
                 if all(values.get(d) == v for d, v in dims.items())), None)
    try:
        cfg = make_config("paper", **({"model_size": size} if size else {}), task=task)
        cfg = cfg.replace(**values)
    except Exception as exc:  # a shape no config can describe
        raise CheckpointError(f"the checkpoint's shapes do not describe a model mbdpo-lab can build ({exc})") from None
    return cfg, obs_dim, act_dim


def convert(sd: dict[str, torch.Tensor], cfg: Config) -> dict[str, torch.Tensor]:
    """Rename (and reshape) their tensors onto our `WorldModel` state dict (variant release)."""
    out: dict[str, torch.Tensor] = {}
    for theirs, ours in _MLPS.items():
        if f"{theirs}.0.weight" not in sd:
            continue
        n = _blocks(sd, theirs)
        for i in range(n):
            last = i == n - 1
            for key, name in (("weight", "weight"), ("bias", "bias")):
                out[f"{ours}.{i}.{name}" if last else f"{ours}.{i}.0.{name}"] = sd[f"{theirs}.{i}.{key}"]
                ln = f"{theirs}.{i}.ln.{key}"
                if ln in sd:  # a hidden block's LayerNorm, or the last layer's before SimNorm
                    out[f"{ours}.{i + 1}.{name}" if last else f"{ours}.{i}.1.{name}"] = sd[ln]
    for theirs, ours in (("_Qs.params", "q_heads"), ("_target_Qs_params", "target_q_heads")):
        if f"{theirs}.0.weight" not in sd:
            continue
        n = _blocks(sd, theirs)
        for i in range(n):
            lin = f"{ours}.out" if i == n - 1 else f"{ours}.linears.{i}"
            out[f"{lin}.weight"] = sd[f"{theirs}.{i}.weight"].transpose(1, 2)
            out[f"{lin}.bias"] = sd[f"{theirs}.{i}.bias"].unsqueeze(1)
            if i < n - 1:
                out[f"{ours}.norms.{i}.weight"] = sd[f"{theirs}.{i}.ln.weight"].unsqueeze(1)
                out[f"{ours}.norms.{i}.bias"] = sd[f"{theirs}.{i}.ln.bias"].unsqueeze(1)
    return {k: v.detach().float().contiguous() for k, v in out.items()}


def import_release_checkpoint(path: str | Path, fmt: str, task: str, obs_dim: int | None = None,
                              act_dim: int | None = None, **overrides: Any):
    """A ready agent (variant release) from a published checkpoint, and notes on what it lacks.

    ``obs_dim`` / ``act_dim``: the task's sizes, checked against the checkpoint's; ``overrides`` change
    acting knobs of the config (planner sizes, eta, ...).
    """
    sd = load_state_dict(path)
    cfg, ck_obs, ck_act = infer_config(sd, fmt, task)
    if (obs_dim, act_dim) != (None, None) and (obs_dim, act_dim) != (ck_obs, ck_act):
        raise CheckpointError(f"the checkpoint's model takes {ck_obs} observation and {ck_act} action entries, "
                              f"task {task} has {obs_dim} and {act_dim}; pass the task it was trained on")
    if overrides:
        cfg = cfg.replace(**overrides)
    return build_agent(sd, cfg, ck_obs, ck_act, fmt), _notes(fmt)


def _notes(fmt: str) -> list[str]:
    notes = ["F's running mean/std and the value scale are not stored in the release's checkpoints: they start "
             "at 0, 1 and 1, as after the release's own load"]
    if fmt == "tdmpc2":
        notes.append("a TD-MPC2 model has no energy head F: this agent plans with eta = 0 (unanchored)")
    return notes


def build_agent(sd: dict[str, torch.Tensor], cfg: Config, obs_dim: int, act_dim: int, fmt: str = "mbdpo"):
    """Our agent (variant release) holding the converted tensors of ``sd``."""
    from .agent import MBDPO

    agent = MBDPO(cfg, obs_dim, act_dim, device="cpu")
    state = agent.wm.state_dict()
    converted = convert(sd, cfg)
    missing = sorted(k for k in state if k not in converted and not k.startswith(("energy_", "energy_head.")))
    if missing:
        raise CheckpointError(f"the checkpoint lacks tensors this model needs: {', '.join(missing[:6])}")
    for k, v in converted.items():
        if k not in state or state[k].shape != v.shape:
            raise CheckpointError(f"tensor {k} has shape {tuple(v.shape)}, the inferred model expects "
                                  f"{tuple(state[k].shape) if k in state else 'no such tensor'}")
    state.update(converted)
    agent.wm.load_state_dict(state)
    return agent
