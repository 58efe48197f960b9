"""Data shipped inside the package: pretrained agents (``pretrained/``), published curves (``reference/``),
lesson data (``lessons/``) and our measured results that lessons show (``results/``, each with its command).

Found through `importlib.resources`, so a wheel install (``pip install mbdpo-lab``, ``pip install
git+...``) carries them as well as an editable checkout does.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def data_dir(name: str) -> Path:
    """The folder ``name`` of the package's data, as a file-system path."""
    return Path(str(files(__name__) / name))
