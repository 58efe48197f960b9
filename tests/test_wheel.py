"""A wheel install carries the shipped agents and the reference curves (package data).

The wheel is built from this checkout and installed, without its dependencies, into a fresh venv.
The venv borrows the test environment's installed dependencies through a path entry (their own
``.pth`` hooks, such as this checkout's editable install, are not run), and every command runs from
an empty folder, so nothing can be found through the repository.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from limits import HANG_S

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd, cwd, env=None):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, f"{cmd[:3]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # a copy without build leftovers or the venv
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "build", "*.egg-info",
                                                             "__pycache__", ".pytest_cache", ".hypothesis"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(src)], cwd=tmp)
    wheel = next((tmp / "dist").glob("mbdpo_lab-*.whl"))
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).strip())
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)], cwd=tmp)
    work = tmp / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["OMP_NUM_THREADS"] = "1"  # small models; two busy threads beside another process thrash
    return python, work, env, site


def test_wheel_install_finds_pretrained_agents_and_reference_curves(wheel_env):
    python, work, env, site = wheel_env
    where = _run([str(python), "-c", "import mbdpo_lab; print(mbdpo_lab.__file__)"], cwd=work, env=env).strip()
    assert Path(where).is_relative_to(site), f"mbdpo_lab imported from {where}, not from the wheel"
    curves = _run([str(python), "-c", "from mbdpo_lab.reference import reference_curve; "
                   "c = reference_curve('mbdpo', 'cartpole-swingup'); print(len(c.steps))"], cwd=work, env=env)
    assert int(curves.strip()) > 0
    _run([str(python), "-c", "import mbdpo_lab.experiments.anchor"], cwd=work, env=env)  # its report template
    out = _run([str(python), "-m", "mbdpo_lab.cli", "eval", "--checkpoint", "cartpole-swingup", "--episodes", "1",
                "--set", "episode_length=50"],
               cwd=work, env=env)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["episodes"] == 1 and result["mean_return"] >= 0


HOSTED_FIRST_CELL = "import mbdpo_lab.hosted\nmbdpo_lab.hosted.prepare()"


def test_the_tour_runs_from_the_wheel_after_the_hosted_first_cell(wheel_env, tmp_path):
    """A pip-only runtime: the wheel, the README's first cell, then 00_tour (fast mode) under nbclient, in
    a kernel of the wheel's venv started from a folder outside the repository."""
    python, work, env, site = wheel_env
    assert HOSTED_FIRST_CELL in (ROOT / "README.md").read_text()  # the cell the README documents
    kernels = tmp_path / "jupyter" / "kernels" / "wheel"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "wheel venv", "language": "python"}))
    shutil.copy(ROOT / "notebooks" / "00_tour.ipynb", work / "tour.ipynb")
    script = (
        "import nbformat, nbclient\n"
        "nb = nbformat.read('tour.ipynb', as_version=4)\n"
        f"nb.cells.insert(0, nbformat.v4.new_code_cell({HOSTED_FIRST_CELL!r}))\n"
        "nb.cells.append(nbformat.v4.new_code_cell('import mbdpo_lab; print(\"package\", mbdpo_lab.__file__)'))\n"
        f"nbclient.NotebookClient(nb, kernel_name='wheel', timeout={HANG_S}).execute()\n"
        "outputs = [o for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', [])]\n"
        "print(''.join(o.get('text', '') for o in nb.cells[0].outputs + nb.cells[-1].outputs))\n"
        "print('errors', sum(o.output_type == 'error' for o in outputs))\n")
    out = _run([str(python), "-c", script], cwd=work,
               env=dict(env, MBDPO_FAST="1", JUPYTER_PATH=str(tmp_path / "jupyter")))
    assert "rendering OK" in out and "errors 0" in out
    kernel_package = out.split("package ", 1)[1].split()[0]
    assert Path(kernel_package).is_relative_to(site), f"the kernel imported mbdpo_lab from {kernel_package}"
