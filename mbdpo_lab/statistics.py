"""Statistics over seeds (and tasks) with rliable: what the RL literature reports, not hand-made error bars.

IQM (interquartile mean) and mean with stratified bootstrap confidence intervals, probability of
improvement between two arms, and performance profiles (Agarwal et al., 2021). Scores are arrays
[runs, tasks] (one row per seed); the bootstrap resamples runs within each task. Its random state is
fixed, so a table regenerated from the same runs shows the same intervals.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

REPS = 2000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval."""

    point: float
    low: float
    high: float
    runs: int

    def text(self, digits: int = 1) -> str:
        if self.runs < 2:
            return f"{self.point:.{digits}f} (1 run)"
        return f"{self.point:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def _scores(values) -> np.ndarray:
    arr = np.asarray(values, np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]  # one task
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"scores must be [runs] or [runs, tasks], got shape {arr.shape}")
    return arr


def _random_state(seed: int):
    import warnings

    # arch announces a future switch to numpy Generators; rliable still passes a RandomState, which works
    warnings.filterwarnings("ignore", message="random_state is deprecated", category=FutureWarning)
    return np.random.RandomState(seed)


@contextlib.contextmanager
def _seeded(seed: int):
    """rliable's stratified resampling draws from numpy's global generator: seed it, then put it back."""
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(saved)


def aggregate(scores: dict[str, object], reps: int = REPS, seed: int = 0, ci: float = 0.95
              ) -> dict[str, dict[str, Estimate]]:
    """{arm: {"IQM": Estimate, "mean": Estimate}} with stratified bootstrap CIs over runs."""
    from rliable import library, metrics

    out = {}
    for arm, values in scores.items():
        arr = _scores(values)

        def both(x):
            return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)])

        point = both(arr)
        if arr.shape[0] < 2:  # nothing to resample
            low = high = point
        else:
            with _seeded(seed):
                _, intervals = library.get_interval_estimates({arm: arr}, both, reps=reps, confidence_interval_size=ci,
                                                              random_state=_random_state(seed))
            low, high = intervals[arm]
        out[arm] = {name: Estimate(float(point[i]), float(low[i]), float(high[i]), arr.shape[0])
                    for i, name in enumerate(("IQM", "mean"))}
    return out


def probability_of_improvement(x, y, reps: int = REPS, seed: int = 0, ci: float = 0.95) -> Estimate:
    """P(a run of X scores higher than a run of Y), averaged over tasks, with a bootstrap CI."""
    from rliable import library, metrics

    ax, ay = _scores(x), _scores(y)
    point = float(metrics.probability_of_improvement(ax, ay))
    if min(ax.shape[0], ay.shape[0]) < 2:
        return Estimate(point, point, point, min(ax.shape[0], ay.shape[0]))
    with _seeded(seed):
        _, intervals = library.get_interval_estimates(
            {"pair": (ax, ay)}, lambda a, b: np.array([metrics.probability_of_improvement(a, b)]), reps=reps,
            confidence_interval_size=ci, random_state=_random_state(seed))
    low, high = intervals["pair"][:, 0]
    return Estimate(point, float(low), float(high), min(ax.shape[0], ay.shape[0]))


def performance_profile(scores: dict[str, object], taus, reps: int = REPS, seed: int = 0
                        ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{arm: (fraction of runs scoring above each tau [T], CI [2, T])}: the score distribution."""
    from rliable import library

    taus = np.asarray(taus, np.float64)
    out = {}
    for arm, values in scores.items():
        arr = _scores(values)

        def profile(x):
            return np.array([np.mean(x > t) for t in taus])

        point = profile(arr)
        if arr.shape[0] < 2:
            out[arm] = (point, np.stack([point, point]))
            continue
        with _seeded(seed):
            _, intervals = library.get_interval_estimates({arm: arr}, profile, reps=reps,
                                                          random_state=_random_state(seed))
        out[arm] = (point, intervals[arm])
    return out


def curve_band(returns: np.ndarray, reps: int = REPS, seed: int = 0, ci: float = 0.95
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Learning curves of several runs [runs, steps] -> IQM [steps] and its CI (low, high) at every step."""
    from rliable import library, metrics

    arr = np.asarray(returns, np.float64)
    point = np.array([metrics.aggregate_iqm(arr[:, [j]]) for j in range(arr.shape[1])])
    if arr.shape[0] < 2:
        return point, point.copy(), point.copy()
    scores = arr[:, None, :]  # [runs, 1 task, steps]: the bootstrap resamples runs, every step at once

    def iqm_per_step(x):
        return np.array([metrics.aggregate_iqm(x[:, :, j]) for j in range(x.shape[2])])

    with _seeded(seed):
        _, intervals = library.get_interval_estimates({"c": scores}, iqm_per_step, reps=reps,
                                                      confidence_interval_size=ci, random_state=_random_state(seed))
    return point, intervals["c"][0], intervals["c"][1]
