"""mbdpo-lab: Model-Based Diffusion Policy Optimization, compact and inspectable.

Importing the package chooses a headless GL backend for MuJoCo first (see `rendering`).
"""
from . import rendering as _rendering

_rendering.configure_gl()

__version__ = "0.1.0"

from .config import Config, ConfigError, make_config  # noqa: E402

__all__ = ["Config", "ConfigError", "make_config", "__version__"]
