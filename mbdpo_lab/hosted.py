"""The first cell of a notebook on a hosted Jupyter (Colab and the like) or any pip-only install.

`make setup` installs the Debian packages MuJoCo and the videos need; where only pip and a notebook
cell are available, ``mbdpo_lab.hosted.prepare()`` does that part: when no headless GL library is
found and apt-get can be used (root, or sudo without a password) it installs EGL, then chooses
MUJOCO_GL; it renders one frame to prove it; and it installs ffmpeg the same way (or says how),
since the lessons' videos need it. It must run before anything imports mujoco (a fresh kernel), which
is why it is the first cell.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

from . import rendering
from .errors import RenderingUnavailable

GL_DEB = rendering.GL_PACKAGES["egl"].split()
FFMPEG_DEB = ["ffmpeg"]


def apt_command() -> list[str] | None:
    """How to run apt-get here: directly as root, through sudo without a password, or None."""
    if shutil.which("apt-get") is None:
        return None
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return ["apt-get"]
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n", "apt-get"]
    return None


def _apt_install(apt: list[str], packages: list[str], run=subprocess.run) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run([*apt, "update", "-qq"], check=True, capture_output=True, env=env)
    run([*apt, "install", "-y", "-qq", *packages], check=True, capture_output=True, env=env)


def _mujoco_imported() -> bool:
    return "mujoco" in sys.modules


def prepare(install: bool = True, run=subprocess.run) -> str:
    """Make rendering and video work in this kernel (see the module docstring); returns what it did.

    Raises `RenderingUnavailable` with the manual fix when rendering still fails.
    """
    done = []
    apt = apt_command() if install else None
    if not rendering.available_backends() and not _mujoco_imported():
        if apt is None:
            raise RenderingUnavailable(rendering.HINT)
        _apt_install(apt, GL_DEB, run)
        done.append(f"installed {' '.join(GL_DEB)}")
    backend = rendering.configure_gl()
    try:
        rendering.check_rendering()
    except RenderingUnavailable as exc:
        if _mujoco_imported() and not done:
            raise RenderingUnavailable(f"{exc}\nmujoco was imported before this cell: restart the kernel and run "
                                       "mbdpo_lab.hosted.prepare() first") from None
        raise
    done.append(f"rendering OK (MUJOCO_GL={backend or os.environ.get('MUJOCO_GL', '?')})")
    if shutil.which("ffmpeg") is None:
        if apt is not None:
            _apt_install(apt, FFMPEG_DEB, run)
            done.append("installed ffmpeg")
        else:
            done.append("no ffmpeg: videos will not play (install ffmpeg with your system's package manager, "
                        "or `conda install ffmpeg`)")
    else:
        done.append("ffmpeg found")
    message = "; ".join(done)
    print(message)
    return message
