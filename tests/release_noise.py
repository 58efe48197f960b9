"""Deterministic stand-ins for torch's random draws, shared by the golden fixtures and their tests.

The release and our code draw their noise in different orders, so seeding cannot make them agree.
Instead both run with every draw replaced by a fixed pattern that depends only on the requested shape:
`scripts/make_release_fixtures.py` records the release's outputs under these patches, and the golden
tests replay ours under the same ones. Heads from `randperm` come out as 0, 1, ...; `randint` gives its
largest value.
"""
from __future__ import annotations

import contextlib
import math

import torch

_REAL = {name: getattr(torch, name) for name in ("randn", "randn_like", "rand", "rand_like", "randperm", "randint")}


def _shape(size) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)):
        return tuple(size[0])
    return tuple(int(s) for s in size)


def _pattern(shape: tuple[int, ...], freq: float, phase: float, **kw) -> torch.Tensor:
    n = math.prod(shape)
    idx = torch.arange(n, dtype=torch.float64)
    return torch.sin(idx * freq + phase).reshape(shape).to(kw.get("dtype") or torch.float32).to(kw.get("device") or "cpu")


def randn(*size, generator=None, **kw):
    return 1.5 * _pattern(_shape(size), 0.7, 0.3, **kw)


def rand(*size, generator=None, **kw):
    return 0.5 + 0.49 * _pattern(_shape(size), 1.3, 0.1, **kw)


def randn_like(t, **kw):
    return randn(t.shape, dtype=kw.get("dtype") or t.dtype, device=kw.get("device") or t.device)


def rand_like(t, **kw):
    return rand(t.shape, dtype=kw.get("dtype") or t.dtype, device=kw.get("device") or t.device)


def randperm(n, generator=None, **kw):
    return torch.arange(n, device=kw.get("device") or "cpu")


def randint(*args, size=None, generator=None, **kw):
    if len(args) == 3:
        _, high, size = args
    elif len(args) == 2 and size is None:
        high, size = args
    else:
        high = args[-1]
    return torch.full(tuple(size), int(high) - 1, dtype=kw.get("dtype") or torch.int64, device=kw.get("device") or "cpu")


@contextlib.contextmanager
def fixed_noise():
    """Within the block, torch's random draws return the fixed patterns above."""
    fakes = dict(randn=randn, randn_like=randn_like, rand=rand, rand_like=rand_like, randperm=randperm, randint=randint)
    for name, fake in fakes.items():
        setattr(torch, name, fake)
    try:
        yield
    finally:
        for name, real in _REAL.items():
            setattr(torch, name, real)
