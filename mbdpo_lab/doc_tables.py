"""Tables in the docs that are generated from data files, so a new number is a data change, not prose.

A generated table sits between ``<!-- table:NAME -->`` and ``<!-- /table:NAME -->`` in a markdown file.
``python -m mbdpo_lab.doc_tables`` rewrites every such block from its source; a test fails when a
committed block differs from what its source gives.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Callable

from .checkpoint import PRETRAINED_DIR, read_manifest
from .reference import reference_curve


def agents_table(directory: Path = PRETRAINED_DIR) -> str:
    """The shipped agents, one row each, from the pretrained manifest."""
    rows = ["| agent | task | eta | steps | return, 10 episodes | training wall time | "
            "published at 100k steps, MBDPO / TD-MPC2 |", "|---|---|---|---|---|---|---|"]
    for name, e in sorted(read_manifest(directory).items()):
        anchor = "0 (unanchored)" if e["eta"] == 0 else f"{e['eta']:g}"
        published = [reference_curve(method, e["task"]) for method in ("mbdpo", "tdmpc2")]
        paper = " / ".join(f"{c.at(100_000):.0f}" if c is not None and 100_000 in c.steps else "–" for c in published)
        rows.append(f"| `{name}` | {e['task']} | {anchor} | {e['steps']:,} | "
                    f"{e['eval_return_mean']:.1f} ± {e['eval_return_std']:.1f} | {e['wall_time_s'] / 60:.0f} min | "
                    f"{paper} |")
    return "\n".join(rows)


# (markdown file relative to the repository root, block name) -> what generates the block
GENERATED: dict[tuple[str, str], Callable[[], str]] = {
    ("README.md", "agents"): agents_table,
}


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- table:{re.escape(name)} -->\n)(.*?)(\n<!-- /table:{re.escape(name)} -->)", re.S)


def read_block(text: str, name: str) -> str | None:
    match = _pattern(name).search(text)
    return match.group(2) if match else None


def replace_block(text: str, name: str, content: str) -> str:
    if read_block(text, name) is None:
        raise ValueError(f"no <!-- table:{name} --> ... <!-- /table:{name} --> block")
    return _pattern(name).sub(lambda m: m.group(1) + content + m.group(3), text, count=1)


def update(root: Path) -> list[str]:
    """Rewrite every generated block under ``root``; returns the files that changed."""
    changed = []
    for (rel, name), make in GENERATED.items():
        path = root / rel
        text = path.read_text()
        new = replace_block(text, name, make())
        if new != text:
            path.write_text(new)
            changed.append(rel)
    return changed


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
    print("\n".join(update(root)) or "all generated tables are up to date")
