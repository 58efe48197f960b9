"""Project latent paths to 2-D/3-D with UMAP (default) or PCA, fitted on real latents only.

Imagined branches are placed with the *fitted* transform, so they share the real points'
coordinates. Results are cached by (data, method, dims, seed) so a widget redraw never refits.
The first UMAP fit in a process compiles numba kernels (~10 s on 2 cores): ``progress`` shows a
stage bar (tqdm) instead of a silent cell.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .latents import LatentRollouts

_CACHE: dict[tuple, "Projection"] = {}


@dataclass
class Projection:
    method: str
    dims: int
    seed: int
    real: list[np.ndarray]  # per episode [T+1, dims]
    imagined: list[np.ndarray]  # per episode [T, H+1, dims]
    fit_seconds: float
    precomputed: bool = False  # fitted elsewhere (shipped lesson data) and handed to `remember`

    def save(self, path) -> None:
        arrays = {"method": np.array(self.method), "dims": np.array(self.dims), "seed": np.array(self.seed)}
        for i, (r, im) in enumerate(zip(self.real, self.imagined)):
            arrays[f"real_{i}"], arrays[f"imagined_{i}"] = r, im
        np.savez_compressed(path, fit_seconds=np.array(self.fit_seconds), **arrays)

    @classmethod
    def load(cls, path) -> "Projection":
        with np.load(path, allow_pickle=False) as data:
            n = sum(1 for k in data.files if k.startswith("real_"))
            return cls(str(data["method"]), int(data["dims"]), int(data["seed"]),
                       [data[f"real_{i}"] for i in range(n)], [data[f"imagined_{i}"] for i in range(n)],
                       float(data["fit_seconds"]) if "fit_seconds" in data.files else 0.0)


def _key(rollouts: LatentRollouts, method: str, dims: int, seed: int, kwargs: dict) -> tuple:
    h = hashlib.sha1()
    for z, im in zip(rollouts.latents, rollouts.imagined):
        h.update(np.ascontiguousarray(z).tobytes())
        h.update(np.ascontiguousarray(im).tobytes())
    return (h.hexdigest(), method, dims, seed, tuple(sorted(kwargs.items())))


def remember(rollouts: LatentRollouts, projection: Projection, **kwargs) -> None:
    """Make ``project(rollouts, ...)`` return a projection computed earlier (a shipped one) without a fit."""
    projection.precomputed = True
    _CACHE[_key(rollouts, projection.method, projection.dims, projection.seed, kwargs)] = projection


def _reducer(method: str, dims: int, seed: int, n_points: int, **kwargs):
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=dims, random_state=seed)
    if method == "umap":
        import umap

        params = dict(n_components=dims, random_state=seed, n_neighbors=min(15, max(2, n_points - 1)),
                      min_dist=0.1)
        params.update(kwargs)
        return umap.UMAP(**params)
    raise ValueError(f"unknown projection method {method!r}; use 'umap' or 'pca'")


def project(rollouts: LatentRollouts, method: str = "umap", dims: int = 2, seed: int = 0,
            progress: bool = True, **kwargs) -> Projection:
    """Fit on pooled real latents, transform imagined branches; cached."""
    import time
    import warnings

    from tqdm.auto import tqdm

    if dims not in (2, 3):
        raise ValueError("dims must be 2 or 3")
    key = _key(rollouts, method, dims, seed, kwargs)
    if key in _CACHE:
        return _CACHE[key]
    real = np.concatenate(rollouts.latents)
    imagined = np.concatenate([im.reshape(-1, im.shape[-1]) for im in rollouts.imagined])
    bar = tqdm(total=3, desc=f"{method}: preparing", disable=not progress, leave=False)
    start = time.perf_counter()
    reducer = _reducer(method, dims, seed, len(real), **kwargs)
    bar.update(1)
    bar.set_description(f"{method}: fitting {len(real)} points"
                        + (" (first fit compiles numba, ~10 s)" if method == "umap" else ""))
    with warnings.catch_warnings():
        # umap warns on every seeded fit that a seed forces one thread ("n_jobs value 1 overridden"):
        # reproducible projections are what we want, and the red text reads as a failure in a notebook
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        real_2d = reducer.fit_transform(real)
    bar.update(1)
    bar.set_description(f"{method}: placing {len(imagined)} imagined points")
    imag_2d = reducer.transform(imagined) if len(imagined) else np.zeros((0, dims))
    bar.update(1)
    bar.close()
    elapsed = time.perf_counter() - start
    sizes = [len(z) for z in rollouts.latents]
    im_shapes = [im.shape[:2] for im in rollouts.imagined]
    real_split = np.split(np.asarray(real_2d, np.float32), np.cumsum(sizes)[:-1])
    im_sizes = [a * b for a, b in im_shapes]
    im_split = [part.reshape(*shape, dims) for part, shape in
                zip(np.split(np.asarray(imag_2d, np.float32), np.cumsum(im_sizes)[:-1]), im_shapes)]
    result = Projection(method, dims, seed, real_split, im_split, elapsed)
    _CACHE[key] = result
    return result
