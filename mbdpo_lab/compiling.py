"""Opt-in torch.compile of the two hot paths: the planner's imagined steps (``planner_compile``) and
the world-model losses (``update_compile``).

Inductor fuses the elementwise work the eager code runs as separate passes over the activations
(LayerNorm, Mish, SimNorm, the two-hot decode and cross-entropy). The numbers stay those of the
eager code within float rounding (tests compare both with the literal references). Compiling needs
a C++ compiler on CPU; when it fails the error says so and how to run without it.
"""
from __future__ import annotations

from typing import Callable

import torch


class CompileError(RuntimeError):
    """torch.compile could not build a kernel for an opt-in compiled path."""


def compile_or_explain(fn: Callable, flag: str, **options) -> Callable:
    """``torch.compile(fn)`` whose toolchain failures become a `CompileError` naming ``flag``.

    Only compile-time failures are translated; an error of the model itself passes through unchanged.
    """
    compiled = torch.compile(fn, **options)
    failures = (OSError, torch._dynamo.exc.BackendCompilerFailed, torch._inductor.exc.InductorError)

    def run(*args, **kwargs):
        try:
            return compiled(*args, **kwargs)
        except failures as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            raise CompileError(
                f"{flag}=true: torch.compile failed ({type(exc).__name__}: {first_line}). On CPU it needs a "
                f"C++ compiler (Debian: apt install g++); or run with --set {flag}=false.") from exc

    return run
