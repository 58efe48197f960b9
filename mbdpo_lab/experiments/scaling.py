"""The scaling study: multi-task offline pretraining at several model sizes, the same updates for each.

The paper reports the normalised score growing with capacity from 1M to 317M parameters. Here the same
experiment runs at sizes a 2-core CPU trains in hours (``xs``, ``s``, ``m`` and the paper's smallest, ``1``),
while the paper's larger keys (5, 19, 48, 317) are configured and their memory estimated for a GPU. Each size is a
normal pretraining run directory (resumable); the final evaluation of every size lands in one CSV with a
row per task, and `scaling_figure` draws the normalised score against parameters with per-task points.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..config import MODEL_SIZES, Config, make_config

# Below the paper's smallest (model_size=1: enc 256, mlp 384, latent 128), widths halving: CPU-sized models.
CPU_SIZES: dict[str, dict[str, int]] = {
    "xs": dict(enc_dim=64, mlp_dim=64, latent_dim=32, num_enc_layers=2, num_q=2, task_dim=16),
    "s": dict(enc_dim=128, mlp_dim=128, latent_dim=64, num_enc_layers=2, num_q=2, task_dim=32),
    "m": dict(enc_dim=128, mlp_dim=256, latent_dim=128, num_enc_layers=2, num_q=2, task_dim=64),
}
SIZES: dict[str, dict[str, int]] = {**CPU_SIZES, **{str(k): dict(v, task_dim=96) for k, v in MODEL_SIZES.items()}}
COLUMNS = ["size", "parameters", "updates", "task", "eval_return", "eval_return_std", "normalised_score"]


def size_config(size: str, base: str = "cpu", overrides: dict[str, Any] | None = None) -> Config:
    """The config of one size of the study (the ``base`` preset with that size's widths)."""
    if size not in SIZES:
        from ..errors import UsageError

        raise UsageError(f"unknown size {size!r}; choose from {', '.join(SIZES)}")
    return make_config(base, overrides={**SIZES[size], **(overrides or {})})


def _meta_model(cfg: Config, obs_dim: int, act_dim: int, num_tasks: int):
    """A multi-task world model of this config on the meta device: shapes only, no memory."""
    import torch

    from ..world_model import WorldModel

    with torch.device("meta"):
        return WorldModel(cfg, obs_dim, act_dim, [act_dim] * num_tasks)


def parameters(cfg: Config, obs_dim: int, act_dim: int, num_tasks: int) -> int:
    """Trainable parameters of a multi-task model of this config."""
    return _meta_model(cfg, obs_dim, act_dim, num_tasks).num_params()


def memory_estimate(cfg: Config, obs_dim: int, act_dim: int, num_tasks: int) -> dict[str, float]:
    """GiB that training needs at least: fp32 weights, their gradients and Adam's two moments (16 bytes per
    parameter) plus the target Q copy; activations come on top (they grow with batch_size x mlp_dim)."""
    wm = _meta_model(cfg, obs_dim, act_dim, num_tasks)
    p = wm.num_params()
    target = sum(t.numel() for t in wm.target_q_heads.parameters())
    return dict(parameters=p, state_gib=(16 * p + 4 * target) / 2**30)


def run_sizes(data_dir: str | Path, sizes: list[str], updates: int, out: str | Path, episodes: int = 10,
              seed: int = 1, base: str = "cpu", device: str | None = None,
              report: Callable[[str], None] = print, overrides: dict[str, Any] | None = None) -> Path:
    """Pretrain every size for ``updates`` updates (resuming what a previous call began), evaluate each at
    the end, and write ``out/scaling.csv``."""
    from ..pretrain import Pretrainer

    out = Path(out)
    rows: list[dict[str, Any]] = []
    for size in sizes:
        run_dir = out / f"size-{size}"
        values = dict(steps=updates, eval_every=0, eval_episodes=episodes, checkpoint_every=max(1, updates // 10),
                      seed=seed, **({"device": device} if device else {}), **(overrides or {}))
        if (run_dir / "checkpoints" / "last.safetensors").exists():
            trainer = Pretrainer.resume_from(run_dir, data_dir, updates=updates)
        else:
            trainer = Pretrainer(size_config(size, base, values), data_dir, run_dir)
        params = trainer.agent.wm.num_params()
        report(f"size {size}: {params:,} parameters, {trainer.updates}/{updates} updates done")
        trainer.run()
        result = trainer.last_eval or trainer.evaluate()
        for task, (mean, std) in result["tasks"].items():
            rows.append(dict(size=size, parameters=params, updates=trainer.updates, task=task, eval_return=mean,
                             eval_return_std=std, normalised_score=mean / 10))
        rows.append(dict(size=size, parameters=params, updates=trainer.updates, task="all",
                         normalised_score=result["normalised_score"]))
        report(f"size {size}: normalised score {result['normalised_score']:.1f}")
    path = out / "scaling.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def is_monotonic(rows: list[dict[str, str]]) -> bool:
    """Does the mean normalised score rise with every step up in parameters?"""
    mean = sorted((int(r["parameters"]), float(r["normalised_score"])) for r in rows if r["task"] == "all")
    return all(b[1] > a[1] for a, b in zip(mean, mean[1:]))


def scaling_figure(rows: list[dict[str, str]]):
    """Plotly: normalised score against parameters (log axis), the mean over tasks and each task's point."""
    import plotly.graph_objects as go

    fig = go.Figure()
    tasks = sorted({r["task"] for r in rows} - {"all"})
    for task in tasks:
        pts = sorted((int(r["parameters"]), float(r["normalised_score"])) for r in rows if r["task"] == task)
        fig.add_scatter(x=[p for p, _ in pts], y=[s for _, s in pts], mode="markers", name=task, opacity=0.6)
    mean = sorted((int(r["parameters"]), float(r["normalised_score"]), r["size"]) for r in rows if r["task"] == "all")
    fig.add_scatter(x=[p for p, _, _ in mean], y=[s for _, s, _ in mean], mode="lines+markers+text",
                    text=[size for _, _, size in mean], textposition="top center", name="mean over tasks",
                    line=dict(color="black", width=3))
    fig.update_layout(title="Multi-task offline pretraining: normalised score against model size",
                      xaxis=dict(title="parameters", type="log"), yaxis=dict(title="normalised score (return / 10)"),
                      template="plotly_white", width=800, height=480)
    return fig


def save_scaling_png(rows: list[dict[str, str]], path: str | Path) -> Path:
    """The figure as a PNG (matplotlib), for the docs and slides."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for task in sorted({r["task"] for r in rows} - {"all"}):
        pts = sorted((int(r["parameters"]), float(r["normalised_score"])) for r in rows if r["task"] == task)
        ax.scatter([p for p, _ in pts], [s for _, s in pts], s=18, alpha=0.6, label=task)
    mean = sorted((int(r["parameters"]), float(r["normalised_score"]), r["size"]) for r in rows if r["task"] == "all")
    ax.plot([p for p, _, _ in mean], [s for _, s, _ in mean], "k-o", lw=2.5, label="mean over tasks")
    for p, s, size in mean:
        ax.annotate(size, (p, s), textcoords="offset points", xytext=(0, 7), ha="center")
    ax.set_xscale("log")
    ax.set(xlabel="parameters", ylabel="normalised score (return / 10)",
           title="Multi-task offline pretraining: score against model size")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def read_rows(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def sizes_table(obs_dim: int = 24, act_dim: int = 6, num_tasks: int = 30) -> str:
    """Markdown: every size's widths, parameters and memory for a multi-task model of ``num_tasks`` tasks."""
    lines = ["| size | enc / mlp / latent | Q heads | parameters | training state (MiB, at least) |",
             "|---|---|---|---|---|"]
    for size in SIZES:
        cfg = size_config(size)
        est = memory_estimate(cfg, obs_dim, act_dim, num_tasks)
        lines.append(f"| `{size}` | {cfg.enc_dim} / {cfg.mlp_dim} / {cfg.latent_dim} | {cfg.num_q} | "
                     f"{est['parameters'] / 1e6:.2f}M | {est['state_gib'] * 1024:,.0f} |")
    return "\n".join(lines)


def summary(rows: list[dict[str, str]]) -> dict[str, Any]:
    mean = sorted((int(r["parameters"]), float(r["normalised_score"])) for r in rows if r["task"] == "all")
    return dict(points=mean, monotonic=is_monotonic(rows), spread=float(np.ptp([s for _, s in mean])) if mean else 0.0)
