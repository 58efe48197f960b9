"""Jupyter widgets (ipywidgets 8 + plotly FigureWidget) that read the library's records.

Needs the ``notebooks`` extra: ``pip install -e ".[notebooks]"``. Names are imported lazily, so
``import mbdpo_lab.widgets.<module>`` loads only that module.
"""
from importlib import import_module

_LAZY = {
    # denoising stepper and toy landscape
    "DenoisingStepper": "denoising",
    "ToyLandscapeExplorer": "denoising",
    "Rollout": "denoising",
    "collect_rollout": "denoising",
    "plan_trace": "denoising",
    "planner_config": "denoising",
    "level_view": "denoising",
    "candidate_subset": "denoising",
    "candidate_lines": "denoising",
    # latent trajectories
    "LatentExplorer": "latent_explorer",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
