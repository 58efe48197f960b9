"""Export trained runs as shipped pretrained agents and keep the manifest truthful.

A multi-task pretraining run ships with `export_generalist` into the manifest's ``generalists``
section (its entry: tasks, parameters, updates, the dataset's identity, the run's final evaluation per
task), so the single-task consumers of ``agents`` (lessons, widgets, doc tables) see no change.

`export_run(run_dir, name)` copies the run's agent (acting weights only, no optimiser state),
evaluates it for 10 episodes with a fixed seed, and writes the manifest entry: task, preset, eta,
seed, steps, wall time, device, eval return (mean, std), sha256 and the exact command that
reproduces the training. `load_pretrained` (in `checkpoint`) verifies the sha256 on every load.
"""
from __future__ import annotations

import csv
import json
import platform
import re
from pathlib import Path
from typing import Any

import torch

from .checkpoint import PRETRAINED_DIR, SECTIONS, file_sha256, load_checkpoint, read_manifest, save_checkpoint
from .errors import CheckpointError
from .config import PRESETS, make_config
from .envs import make_env
from .trainer import evaluate, seed_everything

EVAL_SEED = 12345


def _set_flags(cfg) -> list[str]:
    """``--set key=value`` for every field where ``cfg`` differs from its preset (run identity aside)."""
    base = make_config(cfg.preset)
    return [f"--set {key}={value}" for key, value in cfg.to_dict().items()
            if key not in ("task", "seed", "steps", "preset", "device") and getattr(base, key) != value]


def train_command(cfg, out: str) -> str:
    """The `mbdpo-lab train` command that rebuilds ``cfg`` from its preset."""
    return " ".join([f"mbdpo-lab train --task {cfg.task} --preset {cfg.preset} --steps {cfg.steps}",
                     f"--seed {cfg.seed}", *_set_flags(cfg), f"--out {out}"])


def evaluate_checkpoint(path: Path, episodes: int = 10, seed: int = EVAL_SEED) -> dict[str, Any]:
    """Deterministic evaluation used for the manifest (and re-checked by the slow test)."""
    ckpt = load_checkpoint(path, device="cpu")
    cfg = ckpt.agent.cfg
    seed_everything(seed)
    with make_env(cfg.task, seed=seed, action_repeat=cfg.action_repeat, episode_length=cfg.episode_length) as env:
        return evaluate(ckpt.agent, env, episodes, seed=seed)


def _wall_time(run_dir: Path) -> float | None:
    """Training wall time from metrics.csv, summing the segments of a stopped-and-resumed run."""
    path = run_dir / "metrics.csv"
    if not path.exists():
        return None
    times = [float(r["wall_time"]) for r in csv.DictReader(open(path)) if r.get("wall_time")]
    if not times:
        return None
    total, segment_max = 0.0, times[0]
    for prev, cur in zip(times, times[1:]):
        if cur < prev:  # the clock restarted: a resumed segment begins
            total += segment_max
        segment_max = cur
    return round(total + segment_max, 1)


AGENT_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def check_agent_name(name: str) -> str:
    """A shipped agent's name is a plain file stem: lower-case letters, digits, '.', '_' or '-'."""
    if not AGENT_NAME.fullmatch(name) or ".." in name:
        raise CheckpointError(f"agent name {name!r} is not allowed: use lower-case letters, digits, '.', '_' "
                              "or '-' (at most 64, no '..' and no '/'), e.g. reacher-easy-seed2")
    return name


def _trained_on(meta: dict[str, Any]) -> str:
    """Where a run was trained, from its checkpoint's record (older runs, without one, ran on the CPU)."""
    saved_on = str(meta.get("saved_on", "cpu"))
    if saved_on.startswith("cuda"):
        return saved_on
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def export_run(run_dir: str | Path, name: str, directory: Path = PRETRAINED_DIR, episodes: int = 10,
               device_note: str | None = None, replace: bool = False) -> dict[str, Any]:
    """Add ``run_dir``'s agent to the shipped agents under ``name``; returns the manifest entry.

    An agent already shipped under ``name`` is replaced only with ``replace=True``.
    """
    _check_new_name(name, directory, replace, "agents")
    run_dir = Path(run_dir)
    ckpt = load_checkpoint(run_dir / "agent.safetensors", device="cpu")
    cfg = ckpt.agent.cfg
    if ckpt.agent.tasks:
        raise CheckpointError(f"{run_dir} is a multi-task pretraining run; ship it with `mbdpo-lab export-generalist`")
    if cfg.preset not in PRESETS:
        raise ValueError(f"run preset {cfg.preset!r} unknown")
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{name}.safetensors"
    meta = {k: v for k, v in ckpt.meta.items() if k not in ("format", "code_version", "obs_dim", "act_dim", "task")}
    save_checkpoint(ckpt.agent, target, {**meta, "name": name}, acting_only=True)
    result = evaluate_checkpoint(target, episodes)
    entry = dict(
        file=target.name, task=cfg.task, preset=cfg.preset, eta=cfg.eta, seed=cfg.seed,
        steps=int(ckpt.meta.get("agent_step", cfg.steps)), wall_time_s=_wall_time(run_dir),
        device=device_note or _trained_on(ckpt.meta),
        eval_return_mean=round(result["mean_return"], 2), eval_return_std=round(result["std_return"], 2),
        eval_episodes=episodes, eval_seed=EVAL_SEED, sha256=file_sha256(target),
        size_bytes=target.stat().st_size, command=train_command(cfg, f"runs/{name}"),
    )
    if result.get("success_rate") is not None:  # a goal-directed task: how often it ends at the goal
        entry["eval_success_rate"] = round(result["success_rate"], 3)
    _write_entry(directory, "agents", name, entry)
    return entry


def _check_new_name(name: str, directory: Path, replace: bool, section: str) -> None:
    check_agent_name(name)
    for other in SECTIONS:
        if name in read_manifest(directory, other) and (other != section or not replace):
            what = "agent" if other == "agents" else "generalist"
            raise CheckpointError(f"a shipped {what} is already called {name!r}; choose another --name"
                                  + (", or pass --replace to overwrite it and its manifest entry"
                                     if other == section else ""))


def docs_note(name: str) -> str:
    """The manifest note that sends a reader of manifest.json to the agent's training notes in docs/pretrained.md."""
    return f"see docs/pretrained.md#{name}"


def _write_entry(directory: Path, section: str, name: str, entry: dict[str, Any]) -> None:
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.setdefault("agents", {})
    note = manifest.get(section, {}).get(name, {}).get("note", "")
    if note == docs_note(name):  # a replaced agent keeps its pointer to its training notes
        entry["note"] = note
    manifest.setdefault(section, {})[name] = entry
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def pretrain_command(cfg, updates: int, dataset: str, out: str) -> str:
    """The `mbdpo-lab pretrain` command that rebuilds a pretraining run's ``cfg`` from its preset."""
    return " ".join([f"mbdpo-lab pretrain --data {dataset} --preset {cfg.preset} --updates {updates}",
                     f"--seed {cfg.seed}", *_set_flags(cfg), f"--out {out}"])


def _dataset_card(data_dir: Path) -> dict[str, Any]:
    from .datasets import CARD

    try:
        return json.loads((data_dir / CARD).read_text())
    except (OSError, ValueError):
        return {}  # the dataset has moved: the entry keeps its identity (sha256), not how it was made


def export_generalist(run_dir: str | Path, name: str, directory: Path = PRETRAINED_DIR,
                      device_note: str | None = None, replace: bool = False) -> dict[str, Any]:
    """Ship a multi-task pretraining run (`mbdpo-lab pretrain`) under ``name``; returns its manifest entry.

    Its scores are the run's own final evaluation (metrics.csv, every task in its environment): evaluating
    a generalist again costs as many evaluations as it has tasks, and would measure the same weights.
    """
    from .pretrain import _eval_from_metrics

    _check_new_name(name, directory, replace, "generalists")
    run_dir = Path(run_dir)
    ckpt = load_checkpoint(run_dir / "agent.safetensors", device="cpu")
    cfg, meta = ckpt.agent.cfg, ckpt.meta
    if meta.get("kind") != "pretrain":
        raise CheckpointError(f"{run_dir} is not a `mbdpo-lab pretrain` run; ship an online run with `mbdpo-lab export`")
    updates = int(meta["updates"])
    final = _eval_from_metrics(run_dir / "metrics.csv", meta.get("eval_update"))
    if final is None or final["update"] != updates:
        raise CheckpointError(f"{run_dir} has no evaluation at its last update ({updates}); finish it with "
                              f"`mbdpo-lab pretrain --out {run_dir} --resume` (it evaluates at the end), then export")
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{name}.safetensors"
    keep = {k: v for k, v in meta.items() if k not in ("format", "code_version", "obs_dim", "act_dim", "task", "tasks")}
    save_checkpoint(ckpt.agent, target, {**keep, "name": name}, acting_only=True)
    dataset = Path(str(meta["dataset"])).name
    card = _dataset_card(Path(str(meta["dataset"])))
    entry = dict(
        file=target.name, tasks=[t.name for t in ckpt.agent.tasks], preset=cfg.preset, seed=cfg.seed,
        parameters=ckpt.agent.wm.num_params(), updates=updates,
        dataset=dataset, dataset_card_sha256=meta["dataset_card_sha256"],
        dataset_command=str(card.get("collected", {}).get("command", "")).replace(" DIR", f" runs/{dataset}"),
        normalised_score=round(final["normalised_score"], 2),
        eval_returns={t: [round(m, 2), round(s, 2)] for t, (m, s) in final["tasks"].items()},
        eval_episodes=cfg.eval_episodes, wall_time_s=round(float(meta.get("wall_time", 0.0)), 1),
        device=device_note or _trained_on(meta), sha256=file_sha256(target), size_bytes=target.stat().st_size,
        command=pretrain_command(cfg, updates, f"runs/{dataset}", f"runs/{name}"),
    )
    _write_entry(directory, "generalists", name, entry)
    return entry
