"""Checkpoints that cannot run code when loaded: one safetensors file that describes itself.

Layout: safetensors tensors (weights, and optionally optimiser state) whose header metadata holds
``config`` (JSON), ``meta`` (JSON: task, steps, eval return, code version, obs/act dims) and
``sha256`` over config + meta + every tensor's bytes. Loading recomputes that digest, so a flipped
byte anywhere, a truncated file or an edited config is refused with a clear message. Files are
written to a temporary name and renamed, so an interrupted save never leaves a broken checkpoint.

`load_pretrained(name)` reads ``mbdpo_lab/data/pretrained/manifest.json`` and checks the file's sha256.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from . import __version__
from .agent import MBDPO, resolve_device
from .config import Config, ConfigError
from .data import data_dir
from .errors import CheckpointError

FORMAT = "mbdpo-lab/1"
PRETRAINED_DIR = data_dir("pretrained")


@dataclass
class Checkpoint:
    agent: MBDPO
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    has_optimizer: bool = False


def _digest(config_json: str, meta_json: str, tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    h.update(config_json.encode())
    h.update(b"\0")
    h.update(meta_json.encode())
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(agent: MBDPO, path: str | Path, meta: dict[str, Any] | None = None,
                    include_optimizer: bool = False, acting_only: bool = False) -> Path:
    """Write ``path`` (.safetensors) atomically; returns the path.

    ``include_optimizer`` adds Adam state (to resume training); ``acting_only`` drops the target Q
    copy (rebuilt from the online heads on load), for small shipped agents.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = agent.tensors(include_optimizer=include_optimizer, acting_only=acting_only)
    full_meta = {"format": FORMAT, "code_version": __version__, "obs_dim": agent.obs_dim,
                 "act_dim": agent.act_dim, "task": agent.cfg.task, "saved_on": str(agent.device), **(meta or {})}
    if agent.tasks:  # a multi-task agent: its tasks, in the order of its task embeddings
        full_meta["tasks"] = [dataclasses.asdict(t) for t in agent.tasks]
        if agent.bound_task is not None:  # fine-tuned on one of them: it acts for that task by default
            full_meta["bound_task"] = agent.bound_task
    config_json = agent.cfg.to_json()
    meta_json = json.dumps(full_meta, sort_keys=True, default=json_default)
    header = {"config": config_json, "meta": meta_json,
              "sha256": _digest(config_json, meta_json, tensors)}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=header)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; checkpoints are ordinary shareable files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def json_default(o: Any) -> Any:
    """``json.dumps(..., default=json_default)``: numpy scalars and arrays and paths as plain JSON."""
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_header(path: str | Path) -> tuple[Config, dict[str, Any], dict[str, torch.Tensor]]:
    """Read and verify a checkpoint file without building an agent."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}. Train one with `mbdpo-lab train` "
                              "or use a pretrained name (`mbdpo-lab pretrained`).")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory; pass the .safetensors file (a run directory holds "
                              "agent.safetensors) or a pretrained name")
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt: {exc}). "
                              "Re-download or re-train it.") from exc
    if "config" not in header or "meta" not in header or "sha256" not in header:
        raise CheckpointError(f"{path} is a safetensors file but not an mbdpo-lab checkpoint "
                              "(its header lacks config/meta/sha256).")
    if _digest(header["config"], header["meta"], tensors) != header["sha256"]:
        raise CheckpointError(f"{path} failed its integrity check (sha256 mismatch): the file was "
                              "modified or damaged after it was written. Do not use it; re-train or restore it.")
    try:
        meta = json.loads(header["meta"])
        cfg = Config.from_dict(json.loads(header["config"]))
    except (json.JSONDecodeError, ConfigError) as exc:
        raise CheckpointError(f"{path} has an unusable config ({exc}); it was written by an "
                              "incompatible version of mbdpo-lab.") from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} has format {meta.get('format')!r}, this version reads {FORMAT!r}.")
    return cfg, meta, tensors


# What the weights' shapes or meaning depend on: a checkpoint cannot be loaded with other values.
FIXED_WHEN_LOADING = ("task", "variant", "model_size", "enc_dim", "num_enc_layers", "mlp_dim", "latent_dim", "simnorm_dim",
                      "num_q", "num_bins", "vmin", "vmax", "use_score_net", "tau_embed_dim", "horizon",
                      "score_output", "task_dim")


def load_checkpoint(path: str | Path, device: str | torch.device | None = None,
                    overrides: dict[str, Any] | list[str] | None = None) -> Checkpoint:
    """Verify and load a checkpoint into a ready agent. ``overrides`` change acting knobs (e.g. eta).

    ``device``: where to put it; None = ``auto`` (the GPU when there is one), whatever device it was saved on.
    """
    from .config import apply_overrides, validate

    cfg, meta, tensors = read_header(path)
    saved_device = cfg.device
    if overrides:
        before = {k: getattr(cfg, k) for k in FIXED_WHEN_LOADING}
        apply_overrides(cfg, overrides)
        changed = sorted(k for k, v in before.items() if getattr(cfg, k) != v)
        if changed:
            raise ConfigError(f"{', '.join(changed)} cannot be changed when loading a checkpoint (it was trained "
                              f"with {', '.join(f'{k}={before[k]}' for k in changed)}); train a new agent instead")
        validate(cfg)
    # Where it was trained is a record (meta "saved_on"), not a requirement: it loads where the user is.
    if device is None:  # an override (--set device=...) is an explicit choice too
        device = cfg.device if cfg.device != saved_device else "auto"
    if not isinstance(device, torch.device):  # a name the user typed: validated like any config value
        cfg.device = str(device)
        validate(cfg)
    agent = MBDPO(cfg, int(meta["obs_dim"]), int(meta["act_dim"]), device=resolve_device(device),
                  tasks=meta.get("tasks"))
    agent.bound_task = meta.get("bound_task")
    try:
        agent.load_tensors(tensors)
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{path} does not match the model its config describes ({exc}). "
                              "Architecture keys cannot be overridden when loading.") from exc
    has_opt = any(k.startswith("optim.") for k in tensors)
    return Checkpoint(agent=agent, meta=meta, path=Path(path), has_optimizer=has_opt)


# --- pretrained registry -------------------------------------------------------------------

SECTIONS = ("agents", "generalists")  # single-task agents; multi-task pretrained models (`export-generalist`)


def read_manifest(directory: Path = PRETRAINED_DIR, section: str = "agents") -> dict[str, dict[str, Any]]:
    """The manifest's entries of one section, by name (``agents``: the single-task agents)."""
    manifest = directory / "manifest.json"
    if not manifest.exists():
        return {}
    try:
        agents = json.loads(manifest.read_text()).get(section, {})
        if not isinstance(agents, dict) or not all(isinstance(e, dict) for e in agents.values()):
            raise TypeError(f"{section!r} must map names to entries")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{manifest} is not a valid manifest ({exc}); restore it (git checkout, or "
                              "reinstall)") from None
    return agents


def list_pretrained(directory: Path = PRETRAINED_DIR, section: str = "agents") -> list[str]:
    return sorted(read_manifest(directory, section))


def shipped_models(directory: Path = PRETRAINED_DIR) -> dict[str, dict[str, Any]]:
    """Every shipped model's manifest entry by name: single-task agents and generalists alike."""
    return {name: e for section in SECTIONS for name, e in read_manifest(directory, section).items()}


def load_pretrained(name: str, device: str | torch.device | None = None,
                    directory: Path = PRETRAINED_DIR, overrides: dict[str, Any] | None = None) -> Checkpoint:
    """Load a shipped agent or generalist by name after checking its file's sha256 against the manifest."""
    agents = shipped_models(directory)
    if name not in agents:
        close = difflib.get_close_matches(name, list(agents), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        available = ", ".join(sorted(agents)) or "(none shipped)"
        raise CheckpointError(f"unknown pretrained agent {name!r}.{hint} Available: {available}")
    entry = agents[name]
    path = (directory / str(entry.get("file", ""))).resolve()
    if path.parent != directory.resolve() or path.suffix != ".safetensors":
        raise CheckpointError(f"manifest entry {name!r} names file {entry.get('file')!r}, which is not a "
                              f".safetensors file inside {directory}; fix the manifest or reinstall")
    if not path.exists():
        raise CheckpointError(f"pretrained file {path.name} is missing; reinstall or run "
                              "scripts/reproduce_pretrained.sh")
    actual = file_sha256(path)
    if actual != entry["sha256"]:
        raise CheckpointError(f"pretrained agent {name!r}: sha256 of {path.name} is {actual[:12]}..., "
                              f"the manifest says {entry['sha256'][:12]}...; the file is damaged or replaced.")
    return load_checkpoint(path, device=device, overrides=overrides)


def load_any(source: str | Path, device: str | torch.device | None = None,
             overrides: dict[str, Any] | list[str] | None = None) -> Checkpoint:
    """A checkpoint from what a user types: a ``.safetensors`` path, a run directory or a shipped name."""
    path = Path(source)
    if path.is_dir():
        path = path / "agent.safetensors"
    if path.suffix == ".safetensors" or path.exists():
        return load_checkpoint(path, device=device, overrides=overrides)
    if str(source) in shipped_models():
        return load_pretrained(str(source), device=device, overrides=overrides)
    return load_checkpoint(path, device=device, overrides=overrides)  # raises "not found" with a hint
