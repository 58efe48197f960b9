"""Lesson data: what the notebooks would otherwise compute for minutes in class, made once and shipped.

A lesson that plans hundreds of decisions before it shows anything stalls a class on a 2-core laptop.
So the expensive parts (episodes of the shipped agents, the anchored-vs-unanchored measurement, the
planner comparison, the UMAP fits) are made by ``mbdpo-lab lessons --build`` into
``mbdpo_lab/data/lessons/<asset>/``, and a manifest records every file's sha256 and the sha256 of the
agents they were made from. ``lesson(name)`` checks both and opens the folder in a second; when a file
is damaged or an agent has changed since, it says so and computes the asset live instead.
``lesson(name, recompute=True)`` (each notebook's ``RECOMPUTE`` switch) always computes it live, with
the same code that made the shipped one, so what a student sees loaded is what they can watch being made.

Episodes are shipped as recordings (plans and simulator states, `run_episode(record=True)`): latents,
branches and model checks are recomputed from them in milliseconds and frames rendered on demand.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..checkpoint import file_sha256, load_pretrained, shipped_models
from ..data import data_dir
from ..envs import make_env
from ..episodes import load_episodes, save_episodes

LESSONS_DIR = data_dir("lessons")
MANIFEST = "manifest.json"
VIDEO_SIZE = 192  # a lesson video shown at its own size, not a 96-pixel one blown up


@dataclass(frozen=True)
class Budget:
    """How much a live computation does: the shipped assets use ``FULL``; fast mode a few steps."""

    max_steps: int | None = None  # per episode (None: the whole episode)
    episodes: int | None = None  # None: the asset's own number


FULL = Budget()
FAST = Budget(max_steps=20, episodes=1)


@dataclass(frozen=True)
class Asset:
    name: str
    agents: tuple[str, ...]
    what: str  # one line: what it holds
    live: str  # about how long the live computation takes on 2 busy cores (the manifest's build_seconds)
    build: Callable[[Path, Budget], None]


# --- what each asset holds, and how it is made ------------------------------------------------------

def _episodes_file(folder: Path, agent: str) -> Path:
    return folder / f"episodes-{agent}.npz"


def _record(folder: Path, agent_name: str, env_seed: int, episodes: int, budget: Budget) -> tuple:
    """(agent, recorded episodes), the recording saved into ``folder``."""
    from ..analysis.latents import record_episodes

    agent = load_pretrained(agent_name).agent
    cfg = agent.cfg
    with make_env(cfg.task, seed=env_seed, action_repeat=cfg.action_repeat, episode_length=cfg.episode_length) as env:
        recorded = record_episodes(agent, env, budget.episodes or episodes, max_steps=budget.max_steps)
    save_episodes(_episodes_file(folder, agent_name), recorded, agent=agent_name, task=cfg.task, env_seed=env_seed,
                  planner_seed=0)
    return agent, recorded


def _project(folder: Path, agent_name: str, agent, recorded: list, contrast: bool = False) -> None:
    """The UMAP of the recorded episodes' latents; ``contrast``: also that of their contrast windows."""
    from ..analysis.contrast import contrast_cut
    from ..analysis.latents import latents_of
    from ..analysis.projection import project

    rollouts = latents_of(agent, agent.cfg.task, recorded, frame_size=None)
    project(rollouts, method="umap", dims=2, seed=0, progress=False).save(folder / f"projection-{agent_name}.npz")
    if contrast:
        cut = contrast_cut(rollouts)[1]
        project(cut, method="umap", dims=2, seed=0, progress=False).save(folder / f"contrast-{agent_name}.npz")


def _build_tour(folder: Path, budget: Budget) -> None:
    from ..episodes import StateFrames
    from ..rendering import write_video

    _, recorded = _record(folder, "cartpole-swingup", env_seed=1, episodes=1, budget=budget)
    write_video(str(folder / "video-cartpole-swingup.mp4"),
                StateFrames("cartpole-swingup", recorded[0].states, VIDEO_SIZE)[:], fps=30)


def _build_world_model(folder: Path, budget: Budget) -> None:
    _record(folder, "reacher-easy", env_seed=3, episodes=1, budget=budget)


# two gaits beside two goal-directed agents (a Jaco arm's reach, a reacher): the paper's latent picture
LATENT_AGENTS = ("walker-walk", "cheetah-run", "jaco-reach-site-hand", "reacher-easy")
LATENT_EPISODES = 5  # enough for the structure metrics' spread over episodes


def _build_latents(folder: Path, budget: Budget) -> None:
    for name in LATENT_AGENTS:
        _project(folder, name, *_record(folder, name, env_seed=7, episodes=LATENT_EPISODES, budget=budget),
                 contrast=True)


ANCHOR_PAIR = ("cartpole-swingup-eta0", "cartpole-swingup")


def _build_anchor(folder: Path, budget: Budget) -> None:
    from .anchor import compare_checkpoints

    episodes = budget.episodes or 5
    compare_checkpoints(list(ANCHOR_PAIR), out=folder, episodes=episodes, seed=0, frame_size=VIDEO_SIZE,
                        sweep_step=min(100, (budget.max_steps or 500) - 1), report=False,
                        max_steps=budget.max_steps)


def _build_planners(folder: Path, budget: Budget) -> None:
    from ..analysis.planners import compare_planners

    agent = load_pretrained("cartpole-swingup").agent
    cfg = agent.cfg
    length = budget.max_steps or cfg.episode_length
    with make_env(cfg.task, seed=11, action_repeat=cfg.action_repeat, episode_length=length) as env:
        rows = compare_planners(agent, env, episodes=budget.episodes or 3)
    (folder / "planners-cartpole-swingup.json").write_text(json.dumps(dict(rows=rows, episode_length=length), indent=1))


GENERALIST = "mt5-s"  # the shipped multi-task model (five tasks, size s)


def _task_episodes_file(folder: Path, task: str) -> Path:
    return folder / f"task-episodes-{task}.npz"


def _task_rollouts(agent, folder: Path) -> dict:
    """task -> latent paths of the recorded episodes (acting for that task)."""
    from ..analysis.latents import latents_of
    from ..analysis.task_map import acting_for

    out = {}
    for t in agent.tasks:
        if _task_episodes_file(folder, t.name).exists():
            with acting_for(agent, t.name):
                out[t.name] = latents_of(agent, t.name, load_episodes(_task_episodes_file(folder, t.name))[0], None)
    return out


def _build_generalist(folder: Path, budget: Budget) -> None:
    from ..analysis.latents import record_episodes
    from ..analysis.task_map import acting_for, task_projection
    from ..envs import LATENTS_SEED_OFFSET

    agent = load_pretrained(GENERALIST).agent
    cfg = agent.cfg
    for t in agent.tasks:
        env_seed = 7 + LATENTS_SEED_OFFSET
        with acting_for(agent, t.name), make_env(t.name, seed=env_seed, action_repeat=cfg.action_repeat,
                                                 episode_length=cfg.episode_length) as env:
            recorded = record_episodes(agent, env, budget.episodes or 1, max_steps=budget.max_steps)
        save_episodes(_task_episodes_file(folder, t.name), recorded, agent=GENERALIST, task=t.name,
                      env_seed=env_seed, planner_seed=0)
    projection, _ = task_projection(_task_rollouts(agent, folder), method="umap")
    projection.save(folder / "task-map.npz")


ASSETS: dict[str, Asset] = {a.name: a for a in (
    Asset("tour", ("cartpole-swingup",), "one recorded episode of cartpole-swingup and its video",
          "2 min", _build_tour),
    Asset("world-model", ("reacher-easy",), "one recorded episode of reacher-easy", "1 min", _build_world_model),
    Asset("latents", LATENT_AGENTS, "five recorded episodes of each of two gait and two goal-directed agents, their UMAPs",
          "10-20 min", _build_latents),
    Asset("anchor", ANCHOR_PAIR, "the shipped anchored and unanchored cartpole agents measured over 5 episodes",
          "10 min", _build_anchor),
    Asset("planners", ("cartpole-swingup",), "diffusion vs MPPI vs policy-only, 3 episodes each",
          "5 min", _build_planners),
    Asset("generalist", (GENERALIST,), "one recorded episode of each task of the multi-task model, their shared UMAP",
          "4 min", _build_generalist),
)}


# --- opening an asset -------------------------------------------------------------------------------

class LessonData:
    """One asset's folder, checked, with readers for what it holds."""

    def __init__(self, name: str, folder: Path, live: bool):
        self.name, self.folder, self.live = name, folder, live

    def episodes(self, agent: str) -> tuple[list, dict]:
        """(recorded episodes, meta) of one agent."""
        return load_episodes(_episodes_file(self.folder, agent))

    def latents(self, agents=None, frame_size: int = 96) -> dict:
        """agent -> LatentRollouts recomputed from the recordings (frames on demand); the shipped UMAP of
        each (and of its contrast windows) is remembered, so the explorer opens without a fit."""
        from ..analysis.contrast import contrast_cut
        from ..analysis.latents import latents_of
        from ..analysis.projection import Projection, remember

        out = {}
        for name in agents or [a for a in ASSETS[self.name].agents if _episodes_file(self.folder, a).exists()]:
            agent = load_pretrained(name).agent
            episodes, meta = self.episodes(name)
            rollouts = latents_of(agent, meta["task"], episodes, frame_size)
            projection = self.folder / f"projection-{name}.npz"
            if projection.exists():
                remember(rollouts, Projection.load(projection))
            contrast = self.folder / f"contrast-{name}.npz"
            if contrast.exists():
                remember(contrast_cut(rollouts)[1], Projection.load(contrast))
            out[name] = rollouts
        return out

    def video(self, agent: str) -> bytes:
        return (self.folder / f"video-{agent}.mp4").read_bytes()

    def anchor(self):
        """The AnchorResult, with both agents loaded for the eta sweep."""
        from .anchor import AnchorResult

        result = AnchorResult.load(self.folder)
        loaded = [load_pretrained(name).agent for name in ANCHOR_PAIR]
        for label in result.labels:
            result.agents[label] = next(a for a in loaded if a.cfg.eta == result.etas[label])
        return result

    def task_map(self) -> tuple[dict, object, list[str]]:
        """(task -> latent paths, the shared projection, each episode's task) of the multi-task model; the
        shipped UMAP is remembered, so `task_projection` returns it without a fit."""
        from ..analysis.projection import Projection, remember
        from ..analysis.task_map import pooled, task_projection

        rollouts = _task_rollouts(load_pretrained(GENERALIST).agent, self.folder)
        shipped = self.folder / "task-map.npz"
        if shipped.exists():
            remember(pooled(rollouts)[0], Projection.load(shipped))
        projection, labels = task_projection(rollouts, method="umap")
        return rollouts, projection, labels

    def planner_rows(self) -> tuple[list[dict], int]:
        """(rows of compare_planners, episode length they ran)."""
        data = json.loads((self.folder / "planners-cartpole-swingup.json").read_text())
        return data["rows"], data["episode_length"]


def read_lessons_manifest(directory: Path = LESSONS_DIR) -> dict:
    path = directory / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def problems(name: str, directory: Path = LESSONS_DIR) -> list[str]:
    """Why the shipped asset cannot be used as it is ([] when it can)."""
    entry = read_lessons_manifest(directory).get(name)
    if entry is None:
        return [f"no shipped '{name}' data (run `mbdpo-lab lessons --build {name}`)"]
    out = []
    for rel, sha in entry["files"].items():
        path = directory / name / rel
        if not path.exists():
            out.append(f"{rel} is missing")
        elif file_sha256(path) != sha:
            out.append(f"{rel} does not match its sha256 (damaged or edited)")
    agents = shipped_models()
    for agent, sha in entry["agents"].items():
        if agent not in agents:
            out.append(f"agent {agent} is no longer shipped")
        elif agents[agent]["sha256"] != sha:
            out.append(f"agent {agent} has changed since the data was made")
    return out


def compute(name: str, folder: Path, budget: Budget = FULL) -> float:
    """Make asset ``name`` into ``folder`` (emptied first); returns the seconds it took."""
    if name not in ASSETS:
        raise KeyError(f"unknown lesson data {name!r}; one of {', '.join(ASSETS)}")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    start = time.perf_counter()
    ASSETS[name].build(folder, budget)
    return time.perf_counter() - start


def lesson(name: str, recompute: bool = False, fast: bool = False, quiet: bool = False,
           directory: Path = LESSONS_DIR) -> LessonData:
    """The shipped asset, checked; or, with ``recompute`` (or when the shipped one is unusable), the same
    asset computed live here (``fast``: a few steps of it). Says in one line which it is."""
    if name not in ASSETS:
        raise KeyError(f"unknown lesson data {name!r}; one of {', '.join(ASSETS)}")
    asset = ASSETS[name]
    say = (lambda msg: None) if quiet else print
    issues = [] if recompute else problems(name, directory)
    if not recompute and not issues:
        say(f"loaded precomputed '{name}': {asset.what} (checksums OK). "
            f"RECOMPUTE = True makes it live (about {asset.live} on 2 cores).")
        return LessonData(name, directory / name, live=False)
    if issues:
        say(f"the shipped '{name}' data cannot be used ({'; '.join(issues)}): computing it live")
    folder = Path(tempfile.mkdtemp(prefix=f"mbdpo-lesson-{name}-"))
    say(f"computing '{name}' live: {asset.what}" + (" (fast mode: a few steps)" if fast else f", about {asset.live}"))
    seconds = compute(name, folder, FAST if fast else FULL)
    say(f"done in {seconds:.0f} s")
    return LessonData(name, folder, live=True)


def build(names=None, directory: Path = LESSONS_DIR, log=print) -> dict:
    """Remake the shipped assets (all, or ``names``) and their manifest entries."""
    manifest = read_lessons_manifest(directory)
    agents = shipped_models()
    for name in names or list(ASSETS):
        folder = directory / name
        seconds = compute(name, folder)
        files = {str(p.relative_to(folder)): file_sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}
        manifest[name] = dict(what=ASSETS[name].what, files=files,
                              agents={a: agents[a]["sha256"] for a in ASSETS[name].agents},
                              build_seconds=round(seconds, 1), command=f"mbdpo-lab lessons --build {name}")
        log(f"{name}: {len(files)} files, {sum((folder / f).stat().st_size for f in files) / 1024:.0f} KiB, "
            f"{seconds:.0f} s")
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")  # each one kept
    return manifest


def latent_structure_rows(data: LessonData | None = None) -> list[list[str]]:
    """The table docs/results.md shows for the shipped latent lesson: per agent, the mean ± standard deviation
    over its episodes of return, cyclicity and goal-directedness (the median period of the cyclic ones) and,
    for a task with a success signal, how many ended at the goal; measured on exactly the episodes
    notebook 04 loads."""
    import numpy as np

    from ..analysis.contrast import mean_std, task_kind
    from ..analysis.structure import latent_structure_per_episode, period_text

    def spread(values) -> str:
        mean, sd = mean_std(values)
        digits = 0 if abs(mean) >= 10 else 2
        return f"{mean:.{digits}f} ± {sd:.{digits}f}"

    data = data or lesson("latents", quiet=True)
    rows = [["agent", "kind", "episodes", "return", "success", "cyclicity", "period (median)", "goal-directedness"]]
    for name, rollouts in data.latents(frame_size=None).items():
        eps = latent_structure_per_episode(rollouts)
        ends = [ep.success for ep in data.episodes(name)[0]]
        periods = [float(period_text(r)) for r in eps if period_text(r)]
        rows.append([name, task_kind(rollouts.task), str(len(eps)), spread([r["return"] for r in eps]),
                     "–" if None in ends else f"{sum(ends)} of {len(ends)}",
                     spread([r["cyclicity"] for r in eps]), f"{np.median(periods):.0f}" if periods else "–",
                     spread([r["goal_directedness"] for r in eps])])
    return rows


def write_structure_table() -> Path:
    """docs/data/tables/latent-structure.csv from the shipped lesson data (then `python -m mbdpo_lab.doc_tables`)."""
    import csv

    from ..doc_tables import DOCS_DATA

    path = DOCS_DATA / "tables" / "latent-structure.csv"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(latent_structure_rows())
    return path


if __name__ == "__main__":
    print(write_structure_table())
