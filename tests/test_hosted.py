"""The hosted-notebook first cell: installs GL and ffmpeg through apt where it can, says how where it cannot."""
from __future__ import annotations

import pytest

from mbdpo_lab import hosted, rendering
from mbdpo_lab.errors import RenderingUnavailable


@pytest.fixture
def machine(monkeypatch):
    """A machine whose GL libraries, ffmpeg and apt-get the test decides; commands are recorded, not run."""
    state = dict(backends=[], ffmpeg=False, apt=["apt-get"], commands=[], rendered=0, imported=False)

    def run(cmd, **kwargs):
        state["commands"].append(cmd)
        if cmd[-3:] == ["libegl1", "libopengl0", "libgl1-mesa-dri"]:
            state["backends"] = ["egl"]
        if cmd[-1] == "ffmpeg":
            state["ffmpeg"] = True

    def render():
        if not state["backends"]:
            raise RenderingUnavailable(rendering.HINT)
        state["rendered"] += 1

    monkeypatch.setattr(rendering, "available_backends", lambda: list(state["backends"]))
    monkeypatch.setattr(rendering, "check_rendering", render)
    monkeypatch.setattr(hosted, "apt_command", lambda: state["apt"])
    monkeypatch.setattr(hosted, "_mujoco_imported", lambda: state["imported"])
    monkeypatch.setattr(hosted.shutil, "which", lambda name: "/usr/bin/ffmpeg" if state["ffmpeg"] else None)
    monkeypatch.setenv("MUJOCO_GL", "egl")
    state["run"] = run
    return state


def test_a_bare_runtime_gets_gl_and_ffmpeg_through_apt(machine):
    message = hosted.prepare(run=machine["run"])
    installs = [c for c in machine["commands"] if "install" in c]
    assert installs == [["apt-get", "install", "-y", "-qq", "libegl1", "libopengl0", "libgl1-mesa-dri"],
                        ["apt-get", "install", "-y", "-qq", "ffmpeg"]]
    assert machine["rendered"] == 1
    assert message.startswith("installed libegl1") and "rendering OK (MUJOCO_GL=egl)" in message
    assert "installed ffmpeg" in message


def test_a_ready_runtime_is_left_alone(machine):
    machine.update(backends=["egl"], ffmpeg=True)
    assert hosted.prepare(run=machine["run"]) == "rendering OK (MUJOCO_GL=egl); ffmpeg found"
    assert machine["commands"] == []


def test_without_apt_it_says_what_to_install(machine):
    machine.update(apt=None)
    with pytest.raises(RenderingUnavailable, match="apt-get install -y libegl1"):
        hosted.prepare(run=machine["run"])
    machine.update(backends=["egl"])
    assert "no ffmpeg: videos will not play" in hosted.prepare(run=machine["run"])
    assert machine["commands"] == []


def test_after_mujoco_was_imported_it_asks_for_a_fresh_kernel(machine):
    machine.update(imported=True)
    with pytest.raises(RenderingUnavailable, match="restart the kernel"):
        hosted.prepare(run=machine["run"])
    assert machine["commands"] == []
