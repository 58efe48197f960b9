"""Headless OpenGL selection for MuJoCo, done before anything imports mujoco, with readable failures.

`configure_gl()` runs when `mbdpo_lab` is imported: it sets MUJOCO_GL to ``egl`` when an EGL library
is present, else ``osmesa``, unless the user already chose. `check_rendering()` renders one frame and,
when it cannot, raises `RenderingUnavailable` naming the Debian packages that fix it.
"""
from __future__ import annotations

import ctypes.util
import os
import sys
from typing import Any

from .errors import RenderingUnavailable, UsageError

GL_PACKAGES = {
    "egl": "libegl1 libopengl0 libgl1-mesa-dri",
    "osmesa": "libosmesa6",
}
HINT = ("MuJoCo could not create a headless OpenGL context. On Debian/Ubuntu install EGL with\n"
        "    sudo apt-get install -y libegl1 libopengl0 libgl1-mesa-dri\n"
        "or OSMesa with\n"
        "    sudo apt-get install -y libosmesa6   (and set MUJOCO_GL=osmesa)\n"
        "then restart the kernel / process. `make setup` installs them for you.")


def available_backends() -> list[str]:
    """GL backends whose libraries can be found on this machine, best first."""
    found = []
    if ctypes.util.find_library("EGL") and ctypes.util.find_library("OpenGL"):
        found.append("egl")
    if ctypes.util.find_library("OSMesa"):
        found.append("osmesa")
    return found


def configure_gl() -> str | None:
    """Choose MUJOCO_GL (EGL, then OSMesa) unless already set; must run before mujoco is imported."""
    if os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"]
    if "mujoco" in sys.modules:  # too late to choose; keep whatever mujoco picked
        return None
    backends = available_backends()
    if backends:
        os.environ["MUJOCO_GL"] = backends[0]
        if backends[0] == "osmesa":
            os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
        else:
            os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
        return backends[0]
    return None


def render_on_device(device) -> None:
    """With EGL, render on the training GPU (``MUJOCO_EGL_DEVICE_ID``) unless the user chose one; takes
    effect for contexts created afterwards. EGL numbers devices on its own, which matches CUDA's order on
    the usual single-vendor machine; CUDA_VISIBLE_DEVICES remaps CUDA only, so it is left alone then."""
    import torch

    device = torch.device(device)
    if (device.type == "cuda" and os.environ.get("MUJOCO_GL") == "egl" and "MUJOCO_EGL_DEVICE_ID" not in os.environ
            and "CUDA_VISIBLE_DEVICES" not in os.environ):
        os.environ["MUJOCO_EGL_DEVICE_ID"] = str(device.index or 0)


def check_rendering(height: int = 64, width: int = 64):
    """Render one frame of a tiny scene; returns it, or raises RenderingUnavailable with the fix."""
    try:
        import mujoco

        model = mujoco.MjModel.from_xml_string(
            "<mujoco><worldbody><light pos='0 0 2'/><geom type='sphere' size='.1'/></worldbody></mujoco>")
        data = mujoco.MjData(model)
        with mujoco.Renderer(model, height, width) as renderer:
            renderer.update_scene(data)
            return renderer.render()
    except Exception as exc:  # noqa: BLE001 - any GL failure gets the same actionable message
        backend = os.environ.get("MUJOCO_GL", "none found")
        raise RenderingUnavailable(f"{HINT}\n(MUJOCO_GL={backend}; underlying error: {exc})") from exc


def check_video_output(path: str | None = None) -> None:
    """Before any episode runs: ffmpeg is on PATH and ``path`` (an .mp4) can be written.

    Found after the episodes, these problems would throw their work away."""
    import shutil
    from pathlib import Path

    if shutil.which("ffmpeg") is None:
        raise RenderingUnavailable("writing mp4 needs ffmpeg on PATH: sudo apt-get install -y ffmpeg "
                                   "(or turn videos off: no --video, or --set save_video=false)")
    if path is None:
        return
    target = Path(path)
    if target.suffix.lower() != ".mp4":
        raise UsageError(f"--video {path}: the video is an mp4; name it something.mp4")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir() or not os.access(parent, os.W_OK) or target.is_dir():
        raise UsageError(f"--video {path}: cannot write there (is {parent} an existing, writable folder?)")


def write_video(path: str, frames, fps: int = 30) -> str:
    """Write frames [T, H, W, 3] as an mp4 with mediapy (needs ffmpeg on PATH)."""
    import mediapy

    check_video_output()
    mediapy.write_video(path, frames, fps=fps)
    return path


def release_render_contexts(*envs: Any) -> None:
    """Free the envs' OpenGL contexts on the calling thread.

    dm_control's EGL context is bound to the thread that first rendered with it (it uses a passthrough
    render executor). The dashboard trains and evaluates in a worker thread, and a later Resume runs in
    a new one, so the worker frees its contexts before it ends: the next thread makes a fresh context,
    and interpreter exit does not try to free a context owned by a dead thread (which crashes).
    """
    for env in envs:
        physics = getattr(getattr(env, "_env", None), "physics", None)
        lock = getattr(physics, "_contexts_lock", None)
        if physics is None or lock is None:
            continue
        with lock:
            if getattr(physics, "_contexts", None):
                physics._free_rendering_contexts()


def frame_png(frame) -> bytes:
    """One RGB frame (H x W x 3, uint8) as PNG bytes, for an image widget or an HTML page."""
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(frame, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
