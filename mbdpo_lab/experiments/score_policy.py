"""The amortised fast policy: a score network fitted to a trained agent, then acting alone.

The release trains its score network s(z, x, tau) on Monte-Carlo score targets alongside everything
else, one latent per update, and can act with it alone: one network call per noise level and no
candidate rollouts. The shipped agents have no score network, so `fit_score_network` gives one to an
agent and fits it to the same targets (`MBDPO.score_target`) on latents the agent visits, with the
world model frozen; `compare_score_policy` then measures score-only acting against the full planner.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..agent import MBDPO
from ..episodes import run_episode
from ..nn import release_init
from ..trainer import evaluate
from ..world_model import ScoreNet

log = logging.getLogger(__name__)


@dataclass
class ScoreFit:
    """How fitting went: the loss every ``log_every`` updates, on how many latents, in how long."""

    losses: list[float] = field(default_factory=list)
    latents: int = 0
    seconds: float = 0.0


def attach_score_network(agent: MBDPO, output: str = "score") -> None:
    """Give ``agent`` an untrained score network (initialised as its variant initialises networks)."""
    if agent.wm.score_net is not None:
        return
    agent.cfg = agent.cfg.replace(use_score_net=True, score_output=output)
    net = ScoreNet(agent.cfg, agent.act_dim)
    if agent.cfg.variant == "release":
        release_init(net)
    agent.wm.score_net = net.to(agent.device)
    agent.wm.cfg = agent.cfg


@torch.no_grad()
def visited_latents(agent: MBDPO, env, episodes: int, seed: int = 0) -> torch.Tensor:
    """Latents of every state of ``episodes`` noise-free episodes of the agent's planner [N, L]."""
    gen = torch.Generator(device=agent.device).manual_seed(seed)
    obs = [run_episode(agent, env, gen).obs for _ in range(episodes)]
    return agent.wm.encode(torch.as_tensor(np.concatenate(obs), device=agent.device))


def fit_score_network(agent: MBDPO, latents: torch.Tensor, updates: int, batch_size: int = 64, lr: float = 3e-4,
                      log_every: int = 100, seed: int = 0, output: str = "score") -> ScoreFit:
    """Fit the score network (attached with ``output`` if the agent has none) to Monte-Carlo targets at
    latents drawn from ``latents``, everything else frozen; the loss is the update's (`MBDPO.score_loss`)."""
    attach_score_network(agent, output)
    net = agent.wm.score_net
    optim = torch.optim.Adam(net.parameters(), lr=lr)
    rng = torch.Generator().manual_seed(seed)
    fit, start, window = ScoreFit(latents=len(latents)), time.perf_counter(), []
    agent.wm.eval()
    for step in range(1, updates + 1):
        z = latents[torch.randint(len(latents), (batch_size,), generator=rng)]
        loss = agent.score_loss(z)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), agent.cfg.grad_clip_norm)
        optim.step()
        window.append(loss.item())
        if step % log_every == 0 or step == updates:
            fit.losses.append(float(np.mean(window)))
            window = []
            log.info("score fit %d/%d: loss %.4g", step, updates, fit.losses[-1])
    fit.seconds = time.perf_counter() - start
    return fit


def compare_score_policy(agent: MBDPO, env, episodes: int = 10, seed: int = 0) -> list[dict]:
    """Return and ms per action of the full diffusion planner and of the score network alone."""
    rows = []
    for planner in ("diffusion", "score"):
        result = evaluate(agent, env, episodes, planner=planner, seed=seed)
        rows.append(dict(planner=planner, mean_return=result["mean_return"], std_return=result["std_return"],
                         episodes=episodes, ms_per_action=result["planner_ms"]))
        log.info("%s: return %.1f +- %.1f, %.2f ms per action", planner, result["mean_return"],
                 result["std_return"], result["planner_ms"])
    return rows


def run_score_policy(checkpoint: str, out, updates: int, batch_size: int = 32, fit_episodes: int = 4,
                     episodes: int = 10, seed: int = 0, device: str | None = None, output: str = "score") -> dict:
    """Fit a score network to a checkpoint's agent and compare acting with it alone against the planner.

    Writes ``agent.safetensors`` (the agent with its fitted score network), ``fit_losses.csv`` and
    ``score_policy.csv`` (one row per planner) to ``out``; returns the summary.
    """
    import csv
    from pathlib import Path

    from ..checkpoint import load_any, save_checkpoint
    from ..envs import LATENTS_SEED_OFFSET, MEASURE_SEED_OFFSET, make_env
    from ..trainer import seed_everything

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    agent = load_any(checkpoint, device=device).agent
    cfg = agent.cfg
    seed_everything(seed)
    with make_env(cfg.task, seed=seed + LATENTS_SEED_OFFSET, action_repeat=cfg.action_repeat,
                  episode_length=cfg.episode_length) as env:
        latents = visited_latents(agent, env, fit_episodes, seed=seed)
    fit = fit_score_network(agent, latents, updates, batch_size=batch_size, seed=seed,
                            log_every=max(1, updates // 20), output=output)
    save_checkpoint(agent, out / "agent.safetensors", meta={"score_fit_updates": updates, "source": checkpoint})
    with make_env(cfg.task, seed=seed + MEASURE_SEED_OFFSET, action_repeat=cfg.action_repeat,
                  episode_length=cfg.episode_length) as env:
        rows = compare_score_policy(agent, env, episodes=episodes, seed=seed)
    for row in rows:
        row.update(task=cfg.task, checkpoint=checkpoint, score_output=agent.cfg.score_output, updates=updates,
                   batch_size=batch_size,
                   fit_latents=fit.latents, fit_seconds=round(fit.seconds, 1), final_loss=fit.losses[-1])
    with open(out / "score_policy.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    every = max(1, updates // 20)
    (out / "fit_losses.csv").write_text("update,loss\n" + "".join(
        f"{min((i + 1) * every, updates)},{v}\n" for i, v in enumerate(fit.losses)))
    return dict(task=cfg.task, rows=rows, out=str(out))
