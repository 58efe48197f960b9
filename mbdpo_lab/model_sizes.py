"""Model sizes: the paper's keys (1, 5, 19, 48, 317) and three smaller ones a CPU trains, with what each
costs: parameters and the least memory training needs, counted on the meta device (no memory used).
"""
from __future__ import annotations

from typing import Any

from .config import MODEL_SIZES, Config, make_config
from .errors import UsageError

# Below the paper's smallest (model_size=1: enc 256, mlp 384, latent 128), widths halving: CPU-sized models.
CPU_SIZES: dict[str, dict[str, int]] = {
    "xs": dict(enc_dim=64, mlp_dim=64, latent_dim=32, num_enc_layers=2, num_q=2, task_dim=16),
    "s": dict(enc_dim=128, mlp_dim=128, latent_dim=64, num_enc_layers=2, num_q=2, task_dim=32),
    "m": dict(enc_dim=128, mlp_dim=256, latent_dim=128, num_enc_layers=2, num_q=2, task_dim=64),
}
SIZES: dict[str, dict[str, int]] = {**CPU_SIZES, **{str(k): dict(v, task_dim=96) for k, v in MODEL_SIZES.items()}}


def size_config(size: str, base: str = "cpu", overrides: dict[str, Any] | None = None) -> Config:
    """The config of one size of the study (the ``base`` preset with that size's widths)."""
    if size not in SIZES:
        raise UsageError(f"unknown size {size!r}; choose from {', '.join(SIZES)}")
    return make_config(base, overrides={**SIZES[size], **(overrides or {})})


def _meta_model(cfg: Config, obs_dim: int, act_dim: int, num_tasks: int):
    """A multi-task world model of this config on the meta device: shapes only, no memory."""
    import torch

    from .world_model import WorldModel

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
