"""Layers point one way: core <- analysis <- experiments <- widgets and CLI.

Core is every module at the package's top level but the CLI. A lower layer never imports a higher
one (at module level or inside a function); every module below the widgets imports without the
notebook extra; and the CLI loads torch only in the commands that need it.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from limits import HANG_S

PACKAGE = Path(__file__).resolve().parent.parent / "mbdpo_lab"
LAYERS = {"core": 0, "analysis": 1, "experiments": 2, "widgets": 3, "cli": 3}


def _layer(module: str) -> str:
    """'mbdpo_lab.analysis.latents' -> 'analysis'; top-level modules are core, except the CLI."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in ("analysis", "experiments", "widgets"):
        return parts[1]
    return "cli" if parts[1:2] == ["cli"] else "core"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path) -> set[str]:
    """Every mbdpo_lab module this one imports, anywhere in its body."""
    found = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names]
            found.update(n for n in [target, *names] if n.startswith("mbdpo_lab"))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mbdpo_lab"))
    return found


def test_no_module_imports_a_higher_layer():
    modules = _modules()
    upward = []
    for module, path in modules.items():
        for target in _imports(module, path):
            if target not in modules:  # a name imported from a module, not a module
                continue
            if LAYERS[_layer(target)] > LAYERS[_layer(module)]:
                upward.append(f"{module} ({_layer(module)}) imports {target} ({_layer(target)})")
    assert not upward, "\n".join(sorted(upward))


# Simulates the base install: the notebook extra's packages cannot be imported.
_BLOCK_NOTEBOOK_EXTRA = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('ipywidgets', 'anywidget', 'jupyterlab', 'ipykernel', 'IPython'):
            raise ImportError(f'{name} is not installed (base install)')
sys.meta_path.insert(0, Block())
"""


def test_every_module_below_the_widgets_imports_without_the_notebook_extra():
    names = sorted(m for m in _modules() if _layer(m) != "widgets")
    code = _BLOCK_NOTEBOOK_EXTRA + f"""
import importlib
for name in {names!r}:
    importlib.import_module(name)
print('ok')
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]


@pytest.mark.parametrize("argv", [["tasks"], ["config", "--preset", "cpu"], ["--help"]])
def test_light_cli_commands_do_not_load_torch(argv):
    code = f"""
import sys
from mbdpo_lab.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print('TORCH_LOADED' if 'torch' in sys.modules else 'NO_TORCH')
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "NO_TORCH"
