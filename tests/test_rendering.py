import os
import subprocess
import sys
from limits import HANG_S


def _run(code, **env):
    full = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=HANG_S)


def test_backend_is_chosen_before_mujoco_import():
    proc = _run("import os, mbdpo_lab, sys; assert 'mujoco' not in sys.modules; print(os.environ['MUJOCO_GL'])")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() in ("egl", "osmesa")


def test_missing_gl_names_the_debian_packages():
    code = ("from mbdpo_lab.rendering import check_rendering, RenderingUnavailable\n"
            "try:\n    check_rendering()\nexcept RenderingUnavailable as e:\n    print(e)\n")
    proc = _run(code, MUJOCO_GL="no-such-backend")
    assert proc.returncode == 0, proc.stderr
    assert "apt-get install -y libegl1 libopengl0 libgl1-mesa-dri" in proc.stdout
    assert "libosmesa6" in proc.stdout


def test_one_frame_renders_here():
    proc = _run("from mbdpo_lab.rendering import check_rendering; f = check_rendering(); print(f.shape, f.max())")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("(64, 64, 3)")
