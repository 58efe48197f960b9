"""Structure of a latent path, measured in the full latent space (not in a 2-D projection).

Definitions (documented so results can be compared):

- ``d(k)``: mean over t of ||z_{t+k} - z_t||, for lags k = 1 .. T//4.
- **cyclicity** in [0, 1]: 1 - min_k d(k) / max_{j<=k} d(j). A path that moves away and comes back
  (a gait) has d(k) rising to a peak and falling again at its period, giving a value near 1; a path
  that keeps going (a reach, a random walk) has d(k) that only grows, giving a value near 0.
  **period** is the shortest lag whose ratio is within 0.05 of that minimum (so a multiple of the
  period is not reported); the path must complete four periods within the episode, so a single
  return (a swing-up that passes its start state once, far apart in time) is not a cycle.
- **recurrence**: fraction of pairs at least ``min_lag`` apart whose distance is below 10% of the
  median pairwise distance (a recurrence-plot density).
- **goal-directedness** in [0, 1]: straightness of the coarse path, ||z_end - z_start|| / path length,
  where the coarse path averages the latents over ``segments`` equal windows (so per-step jitter
  does not count as length). A reach that heads to its goal scores near 1, a closed loop near 0, a
  random walk about 1/sqrt(segments).
- **approach**: fraction of coarse steps that get closer to the final latent.
"""
from __future__ import annotations

import numpy as np


def _lag_distances(z: np.ndarray, max_lag: int) -> np.ndarray:
    return np.array([np.linalg.norm(z[k:] - z[:-k], axis=1).mean() for k in range(1, max_lag + 1)])


def cyclicity(z: np.ndarray, min_lag: int = 2) -> dict[str, float]:
    """Cyclicity score, dominant period (steps) and recurrence rate of a path z [T, L]."""
    z = np.asarray(z, np.float64)
    T = len(z)
    max_lag = T // 4
    if max_lag <= min_lag:
        return dict(cyclicity=0.0, period=float("nan"), recurrence=0.0)
    d = _lag_distances(z, max_lag)
    peak = np.maximum.accumulate(d)
    ratio = d / np.maximum(peak, 1e-12)
    tail = ratio[min_lag - 1:]
    best = tail.min()
    k = int(np.nonzero(tail <= best + 0.05)[0][0]) + min_lag - 1
    score = float(1.0 - best)
    return dict(cyclicity=score, period=float(k + 1), recurrence=recurrence_rate(z, min_lag=min_lag))


def recurrence_rate(z: np.ndarray, min_lag: int = 2, fraction: float = 0.1) -> float:
    z = np.asarray(z, np.float64)
    if len(z) > 600:  # keep the pairwise matrix small
        z = z[:: int(np.ceil(len(z) / 600))]
    sq = (z * z).sum(1)
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0))
    i, j = np.triu_indices(len(z), k=min_lag)
    pairs = dist[i, j]
    if pairs.size == 0:
        return 0.0
    eps = fraction * np.median(pairs)
    return float((pairs < eps).mean())


def coarse_path(z: np.ndarray, segments: int) -> np.ndarray:
    """Mean latent of each of ``segments`` consecutive windows (fewer when the path is short)."""
    z = np.asarray(z, np.float64)
    n = max(2, min(segments, len(z)))
    return np.stack([part.mean(0) for part in np.array_split(z, n)])


def goal_directedness(z: np.ndarray, segments: int = 25) -> dict[str, float]:
    """Straightness of the coarse path towards its end, and the fraction of approaching steps."""
    s = coarse_path(z, segments)
    steps = np.linalg.norm(np.diff(s, axis=0), axis=1)
    length = steps.sum()
    if length <= 1e-12:
        return dict(goal_directedness=0.0, approach=0.0)
    straight = float(np.linalg.norm(s[-1] - s[0]) / length)
    to_goal = np.linalg.norm(s - s[-1], axis=1)
    approach = float((np.diff(to_goal) < 0).mean())
    return dict(goal_directedness=straight, approach=approach)


def structure_metrics(z: np.ndarray, min_lag: int = 2, segments: int = 25) -> dict[str, float]:
    return {**cyclicity(z, min_lag), **goal_directedness(z, segments), "steps": float(len(z))}


CYCLIC = 0.05  # below this cyclicity a path has no cycle worth naming, so its period is not shown


def period_text(row: dict[str, float]) -> str:
    """A metrics row's period in steps, or "" when the path is not cyclic (cyclicity <= CYCLIC)."""
    period = row["period"]
    return f"{period:.0f}" if row["cyclicity"] > CYCLIC and period == period else ""


def latent_structure_per_episode(rollouts) -> list[dict[str, float]]:
    """Structure metrics and return of every episode of a `LatentRollouts`, in the full latent space."""
    rows = []
    for i, z in enumerate(rollouts.latents):
        rows.append({"episode": i, "return": float(rollouts.rewards[i].sum()), **structure_metrics(z)})
    return rows
