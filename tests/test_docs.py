"""The docs stay true: generated tables equal their data, links resolve, the README stays a README."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mbdpo_lab.doc_tables import GENERATED, agents_table, evaluations_table, read_block, replace_block

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("key", sorted(GENERATED), ids=lambda k: f"{k[0]}:{k[1]}")
def test_generated_tables_equal_their_source(key):
    rel, name = key
    block = read_block((ROOT / rel).read_text(), name)
    assert block is not None, f"{rel} has no table:{name} block"
    assert block == GENERATED[key](), f"{rel} table:{name} is stale: run `python -m mbdpo_lab.doc_tables`"


def test_replace_block_rewrites_only_the_block():
    text = "a\n<!-- table:x -->\nold\n<!-- /table:x -->\nb\n"
    assert replace_block(text, "x", "new") == "a\n<!-- table:x -->\nnew\n<!-- /table:x -->\nb\n"
    with pytest.raises(ValueError, match="table:y"):
        replace_block(text, "y", "new")


def test_a_runs_evaluations_read_as_rows_of_steps_and_return(tmp_path):
    metrics = tmp_path / "metrics.csv"
    rows = ["step,kind,eval_return,eval_success", "1000,episode,,", "2500,eval,38.2,0.0", "5000,eval,242.7,0.8",
            "7500,eval,230,0.5"]
    metrics.write_text("\n".join(rows) + "\n")
    table = evaluations_table(metrics, per_row=2)
    assert table.split("\n\n") == [
        "| steps | 2.5k | 5k |\n|---|---|---|\n| return | 38 (0%) | 243 (80%) |",
        "| steps | 7.5k |\n|---|---|\n| return | 230 (50%) |"]  # training episodes left out, 2 per row
    metrics.write_text("step,kind,eval_return,eval_success\n10000,eval,512.5,\n")
    assert evaluations_table(metrics).endswith("| return | 512 |")  # no success column for a control task


def test_the_agents_table_gives_a_goal_directed_agents_success_beside_its_return(tmp_path):
    entry = {"eta": 0.01, "steps": 1000, "eval_return_mean": 226.62, "eval_return_std": 37.32, "eval_episodes": 10,
             "wall_time_s": 600.0}
    agents = {"reach": {**entry, "task": "jaco-reach-site-hand", "eval_success_rate": 0.6},
              "walk": {**entry, "task": "walker-walk"}}
    (tmp_path / "manifest.json").write_text(json.dumps({"agents": agents}))
    reach, walk = agents_table(tmp_path).splitlines()[2:]
    assert "| 226.6 ± 37.3, 6 of 10 at the goal |" in reach
    assert "| 226.6 ± 37.3 |" in walk  # a control task has no success to report


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if "://" in target or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page.name} links to missing {target}"


def test_readme_is_for_users():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert 150 <= len(lines) <= 250, len(lines)
