"""Tables in the docs that are generated from data files, so a new number is a data change, not prose.

A generated table sits between ``<!-- table:NAME -->`` and ``<!-- /table:NAME -->`` in a markdown file.
``python -m mbdpo_lab.doc_tables`` rewrites every such block from its source; a test fails when a
committed block differs from what its source gives.
"""
from __future__ import annotations

import csv
import re
import sys
from pathlib import Path
from typing import Callable

from .checkpoint import PRETRAINED_DIR, read_manifest
from .data import data_dir
from .reference import reference_curve


def agents_table(directory: Path = PRETRAINED_DIR) -> str:
    """The shipped agents, one row each, from the pretrained manifest."""
    rows = ["| agent | task | eta | steps | return, 10 episodes | training wall time | "
            "published at 100k steps, MBDPO / TD-MPC2 |", "|---|---|---|---|---|---|---|"]
    for name, e in sorted(read_manifest(directory).items()):
        anchor = "0 (unanchored)" if e["eta"] == 0 else f"{e['eta']:g}"
        paper = _published(e["task"])
        rows.append(f"| `{name}` | {e['task']} | {anchor} | {e['steps']:,} | "
                    f"{e['eval_return_mean']:.1f} ± {e['eval_return_std']:.1f}{_success(e)} | "
                    f"{e['wall_time_s'] / 60:.0f} min | {paper} |")
    return "\n".join(rows)


def _success(entry: dict) -> str:
    """A goal-directed agent's share of export episodes that ended at the goal (else nothing)."""
    rate = entry.get("eval_success_rate")
    return "" if rate is None else f", {round(rate * entry['eval_episodes'])} of {entry['eval_episodes']} at the goal"


def generalists_table(directory: Path = PRETRAINED_DIR) -> str:
    """The shipped multi-task models, one row each, from the manifest's generalists section."""
    rows = ["| model | tasks | parameters | updates | normalised score | return per task | training wall time |",
            "|---|---|---|---|---|---|---|"]
    for name, e in sorted(read_manifest(directory, "generalists").items()):
        per_task = ", ".join(f"{t} {m:.0f}" for t, (m, _) in e["eval_returns"].items())
        rows.append(f"| `{name}` | {len(e['tasks'])} | {e['parameters']:,} | {e['updates']:,} | "
                    f"{e['normalised_score']:.1f} | {per_task} ({e['eval_episodes']} episodes) | "
                    f"{e['wall_time_s'] / 60:.0f} min |")
    return "\n".join(rows)


def _published(task: str) -> str:
    curves = [reference_curve(method, task) for method in ("mbdpo", "tdmpc2")]
    return " / ".join(f"{c.at(100_000):.0f}" if c is not None and 100_000 in c.steps else "–" for c in curves)


def _mean_std(mean: str, std: str) -> str:
    return f"{float(mean):.1f}" + (f" ± {float(std):.1f}" if std not in ("", None) else "")


def training_table(data_dir: Path, directory: Path = PRETRAINED_DIR,
                   steps: tuple[int, ...] = (5_000, 10_000, 20_000, 30_000, 40_000, 50_000, 60_000, 80_000,
                                           100_000)) -> str:
    """Evaluation returns of the results page's training runs, one row per run, from its CSVs."""
    with open(data_dir / "training_runs.csv", newline="") as fh:
        runs = list(csv.DictReader(fh))
    with open(data_dir / "training_evals.csv", newline="") as fh:
        evals = {(r["run"], int(r["step"])): r for r in csv.DictReader(fh)}
    manifest = read_manifest(directory)
    head = ["run", *[f"{s // 1000}k" for s in steps], "shipped agent, 10 episodes",
            "published at 100k, MBDPO / TD-MPC2"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        cells = [run["label"]]
        for step in steps:
            e = evals.get((run["run"], step))
            cells.append(_mean_std(e["eval_return_mean"], e["eval_return_std"]) if e else "–")
        agent = manifest.get(run["shipped_as"]) if run["shipped_as"] else None
        cells.append(f"`{run['shipped_as']}`: {agent['eval_return_mean']:.1f} ± {agent['eval_return_std']:.1f} "
                     f"({agent['steps']:,} steps)" if agent else "–")
        cells.append(_published(run["task"]))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table: header cells, then one list of cells per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def bench_table(data_dir: Path) -> str:
    """Planner and update cost against this machine's matmul ceiling, from `mbdpo-lab bench` rows."""
    return _markdown(
        ["preset, planner dtype", "planner ms / GFLOP/s / fraction", "update ms / GFLOP/s / fraction",
         "matmul ceiling fp32 / bf16 GFLOP/s", "processor, threads"],
        [[f"{r['preset']}, {r['dtype']}",
          f"{r['planner_ms_per_action']} / {r['planner_gflops_per_s']} / {r['planner_fraction_of_peak']}",
          f"{r['update_ms']} / {r['update_gflops_per_s']} / {r['update_fraction_of_peak']}",
          f"{r['matmul_peak_fp32_gflops_per_s']} / {r['matmul_peak_bf16_gflops_per_s']}",
          f"{r['cpu']}, {r['threads']}"] for r in _csv_rows(data_dir / "bench.csv")])


def gpu_table(data_dir: Path) -> str:
    """`scripts/gpu_figures.py` rows, one per measured GPU; a line saying how to fill it while there are none."""
    path = data_dir / "gpu_figures.csv"
    if not path.exists():
        return ("No GPU has been lent to this project's sessions yet: `python scripts/gpu_figures.py` on one "
                "appends its row to docs/data/gpu_figures.csv, and `python -m mbdpo_lab.doc_tables` fills this table.")
    return _markdown(
        ["GPU (date, torch, CUDA)", "bench planner ms/action fp32 / bf16", "bench update ms fp32 / bf16",
         "5k-step training: seed phase / burst of S updates / the rest", "steps/s after the burst",
         "planner / update ms in training", "evaluation (episodes, return, ms/action)"],
        [[f"{r['name']} ({r['date']}, torch {r['torch']}, CUDA {r['cuda'] or '-'})",
          f"{r['bench_fp32_planner_ms']} / {r['bench_bf16_planner_ms']}",
          f"{r['bench_fp32_update_ms']} / {r['bench_bf16_update_ms']}",
          f"{r['train_seed_phase_s']} s / {r['train_burst_s']} s ({r['train_burst_updates']}) / "
          f"{r['train_online_s']} s ({r['train_online_steps']} steps{_cut(r)})",
          r["train_online_steps_per_s"], f"{r['train_planner_ms']} / {r['train_update_ms']}",
          f"{r['train_eval_episodes']}, {r['train_eval_return']}, {r['train_eval_ms_per_action']}"]
         for r in _csv_rows(path)])


def _cut(r: dict[str, str]) -> str:
    """A training stopped by the script's time budget says where."""
    return "" if r["train_steps_done"] == r["train_steps"] else f"; stopped at {r['train_steps_done']} by the budget"


def seed_cell(values: list[float], digits: int) -> str:
    """IQM over seeds with its 95% stratified-bootstrap interval (rliable); the value alone for one seed."""
    from .statistics import aggregate

    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return aggregate({"x": values})["x"]["IQM"].text(digits)


def arms_table(rows: list[dict[str, str]], arm_keys: tuple[str, ...], metrics: list[tuple[str, str, int]],
               improvement: tuple[str, str, str, str] | None = None, steps: str | None = None) -> str:
    """Markdown: one line per arm (rows sharing ``arm_keys``), each metric as IQM [95% CI] over its seeds.

    ``improvement`` = (metric, key, better, worse): a last column with the probability that a seed of the
    arm whose ``key`` is ``better`` beats one of the arm with ``worse`` on that metric, per remaining keys.
    ``steps``: a column of that title listing each seed's ``steps`` (in thousands).
    """
    from .statistics import probability_of_improvement

    groups: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in arm_keys), []).append(r)

    def values(runs, key):
        return [float(r[key]) for r in runs if r.get(key) not in ("", None)]

    header = [*arm_keys, "seeds", *([steps] if steps else []), *(label for _, label, _ in metrics)]
    if improvement:
        metric, key, better, worse = improvement
        header.append(f"P({key} {better} beats {key} {worse}) on {metric}")
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for arm, runs in sorted(groups.items()):
        cells = [*arm, str(len(runs))]
        if steps:
            cells.append(", ".join(f"{round(int(r['steps']) / 1000)}k" for r in runs))
        cells += [seed_cell(values(runs, k), d) for k, _, d in metrics]
        if improvement:
            i = arm_keys.index(key)
            pair = {side: groups.get(tuple(v if j == i else a for j, a in enumerate(arm)), [])
                    for side, v in (("better", better), ("worse", worse))}
            x, y = values(pair["better"], metric), values(pair["worse"], metric)
            cells.append(probability_of_improvement(x, y).text(2) if x and y else "–")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


FIDELITY_METRICS = [("eval_10k", "eval 10k", 0), ("eval_20k", "eval 20k", 0), ("eval_30k", "eval 30k", 0),
                    ("f_accuracy", "F accuracy", 2), ("f_auc_uniform", "F AUC vs uniform", 2),
                    ("f_std_data", "std of F on data", 2), ("overestimation", "over-estimation", 1)]


def fidelity_table(data_dir: Path) -> str:
    """Variant release against variant lab, per task: `mbdpo-lab fidelity` rows as IQM [95% CI] over seeds."""
    return arms_table(_csv_rows(data_dir / "fidelity.csv"), ("task", "variant"), FIDELITY_METRICS,
                      steps="F measured at")


ANCHOR_SEED_METRICS = [("eval_10k", "eval 10k", 0), ("eval_20k", "eval 20k", 0), ("eval_30k", "eval 30k", 0),
                       ("overestimation", "over-estimation", 1), ("state_nn_distance", "drift to replay", 4),
                       ("prior_distance", "distance from prior", 2), ("f_accuracy", "F accuracy", 2)]


def anchor_seeds_table(data_dir: Path) -> str:
    """The anchoring sweep (eta 0.01 vs 0, per task): each finished trial's `mbdpo-lab fidelity` row, as IQM
    [95% CI] over seeds, with the probability that an anchored seed out-scores an unanchored one at 30k."""
    return arms_table(_csv_rows(data_dir / "anchor_seeds.csv"), ("task", "eta"), ANCHOR_SEED_METRICS,
                      improvement=("eval_30k", "eta", "0.01", "0"))


def score_policy_table(data_dir: Path) -> str:
    """Score-only acting against the full planner, from `mbdpo-lab score-policy` rows."""
    return _markdown(
        ["agent", "score network output", "fitted (updates x latents, s)", "final loss", "planner",
         "return, 10 episodes", "ms per action"],
        [[f"`{r['checkpoint']}`", r["score_output"],
          f"{int(r['updates']):,} x {r['batch_size']}, {float(r['fit_seconds']):.0f} s",
          f"{float(r['final_loss']):.3g}", r["planner"],
          f"{float(r['mean_return']):.1f} ± {float(r['std_return']):.1f}", f"{float(r['ms_per_action']):.1f}"]
         for r in _csv_rows(data_dir / "score_policy.csv")])


NOTEBOOK_TIMES = "notebook_times.csv"  # appended by `python tests/lab_browser.py notebooks/*.ipynb --csv ...`


def notebook_times_table(data_dir: Path) -> str:
    """The latest browser measurement of every notebook: time to its first output and to the end of Run
    All, normal mode (and fast mode when measured), with the machine and its load."""
    latest: dict[tuple[str, str], dict[str, str]] = {}
    for r in _csv_rows(data_dir / NOTEBOOK_TIMES):
        latest[(r["notebook"], r["mode"])] = r  # rows are appended in time order
    names = sorted({name for name, _ in latest})

    def seconds(row: dict[str, str] | None, key: str) -> str:
        if row is None or row[key] in ("", "None"):
            return "–"
        return f"{float(row[key]):.0f} s" + ("" if row["finished"] == "True" else " (did not finish)")

    rows = []
    for name in names:
        normal, fast = latest.get((name, "normal")), latest.get((name, "fast"))
        ref = normal or fast
        rows.append([f"`{name}`", seconds(normal, "first_output_s"), seconds(normal, "run_all_s"),
                     seconds(fast, "run_all_s"), f"{ref['date']}, load {float(ref['load_1min']):.1f}"])
    return _markdown(["notebook", "first output", "Run All, normal mode", "Run All, fast mode",
                      "measured (date, 1-min load of the 2 cores)"], rows)


def lessons_table() -> str:
    """The shipped lesson data, from its manifest: what each asset holds, its size and what it took to make."""
    import json

    from .data import data_dir

    folder = data_dir("lessons")
    manifest = json.loads((folder / "manifest.json").read_text())
    rows = []
    for name, entry in sorted(manifest.items()):
        size = sum((folder / name / f).stat().st_size for f in entry["files"])
        rows.append([f"`{name}`", entry["what"], ", ".join(f"`{a}`" for a in entry["agents"]),
                     f"{size / 1024:.0f} KiB", f"{entry['build_seconds']:.0f} s", f"`{entry['command']}`"])
    return _markdown(["asset", "holds", "made from", "size", "made in (2 cores, beside two trainings)", "remake"],
                     rows)


def _model_sizes_table() -> str:
    from .model_sizes import sizes_table

    return sizes_table(obs_dim=24, act_dim=6, num_tasks=30)


def scaling_table(data_dir: Path) -> str:
    """The scaling study (`mbdpo-lab scaling`'s scaling.csv): per size its parameters, updates, normalised
    score and every task's return (mean ± std over the evaluation episodes)."""
    rows = _csv_rows(data_dir / "scaling.csv")
    tasks = list(dict.fromkeys(r["task"] for r in rows if r["task"] != "all"))
    sizes = sorted({r["size"]: int(r["parameters"]) for r in rows}.items(), key=lambda kv: kv[1])
    body = []
    for size, params in sizes:
        mine = {r["task"]: r for r in rows if r["size"] == size}
        body.append([f"`{size}`", f"{params:,}", f"{int(mine['all']['updates']):,}",
                     f"**{float(mine['all']['normalised_score']):.1f}**",
                     *[_mean_std(mine[t]["eval_return"], mine[t]["eval_return_std"]) if t in mine else "–"
                       for t in tasks]])
    return _markdown(["size", "parameters", "updates", "normalised score", *tasks], body)


def offline_to_online_table(data_dir: Path) -> str:
    """The fine-tune comparisons (`mbdpo-lab offline-to-online`'s curves.csv, one per held-out task): each
    arm's IQM return and 95% interval over seeds at every step it evaluated ("–" where it did not: step 0
    is the pretrained model before any online step, which only the fine-tuned arm has)."""
    def cell(r):
        return f"{float(r['eval_return_iqm']):.1f} [{float(r['low']):.1f}, {float(r['high']):.1f}]" if r else "–"

    body = []
    prefix = "offline_to_online-"  # the shipped copies' names (experiments.offline_to_online.SHIPPED_PREFIX)
    for path in sorted(data_dir.glob(f"{prefix}*.csv")):
        rows = _csv_rows(path)
        by_step = {arm: {int(r["step"]): r for r in rows if r["arm"] == arm} for arm in ("finetune", "scratch")}
        for s in sorted(set().union(*by_step.values())):
            at = {arm: by_step[arm].get(s) for arm in by_step}
            body.append([path.stem[len(prefix):], f"{s:,}", cell(at["finetune"]), cell(at["scratch"]),
                         f"{min(int(r['seeds']) for r in at.values() if r)}"])
    return _markdown(["held-out task", "online steps", "fine-tuned (IQM [95% CI])", "from scratch (IQM [95% CI])",
                      "seeds"], body)


def evaluations_table(metrics: Path, per_row: int = 14) -> str:
    """A run's evaluations from its own metrics.csv, as rows of steps and mean return (for a goal task,
    the share of episodes that ended at the goal in brackets): the whole curve in a few lines of the page."""
    evals = [r for r in _csv_rows(metrics) if r["kind"] == "eval"]
    blocks = []
    for i in range(0, len(evals), per_row):
        chunk = evals[i:i + per_row]
        cells = [f"{float(r['eval_return']):.0f}" + (f" ({float(r['eval_success']):.0%})"
                                                     if r.get("eval_success") else "") for r in chunk]
        blocks.append(_markdown(["steps", *(f"{int(r['step']) / 1000:g}k" for r in chunk)], [["return", *cells]]))
    return "\n\n".join(blocks)


def csv_table(path: Path) -> str:
    """A table kept as a CSV of its cells (header first): investigations whose cells mix numbers and notes."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return _markdown(rows[0], rows[1:])


DOCS_DATA = Path(__file__).resolve().parent.parent / "docs" / "data"
RESULTS = data_dir("results")  # measured results the lessons read too, so they ship with the package
# docs/data/tables/NAME.csv fills the block table:NAME of this page
CSV_TABLES: dict[str, str] = {
    "bench-history": "docs/performance.md", "torch-compile": "docs/performance.md",
    "lockstep-eval": "docs/performance.md", "parallel-envs": "docs/performance.md",
    "dataset-memory": "docs/performance.md",
    "notebook-times-before": "docs/performance.md", "pendulum-runs": "docs/results.md",
    "latent-structure": "docs/results.md", "anchor-cartpole-smooth": "docs/results.md",
    "anchor-cartpole-three-etas": "docs/results.md", "anchor-reacher": "docs/results.md",
    "eta-sweep": "docs/results.md",
}

# (markdown file relative to the repository root, block name) -> what generates the block
GENERATED: dict[tuple[str, str], Callable[[], str]] = {
    ("README.md", "agents"): agents_table,
    ("README.md", "generalists"): generalists_table,
    ("README.md", "notebook-times"): lambda: notebook_times_table(DOCS_DATA),
    ("docs/teaching.md", "notebook-times"): lambda: notebook_times_table(DOCS_DATA),
    ("docs/lessons.md", "lesson-data"): lessons_table,
    ("docs/results.md", "training"): lambda: training_table(DOCS_DATA),
    ("docs/performance.md", "bench"): lambda: bench_table(DOCS_DATA),
    ("docs/performance.md", "gpu"): lambda: gpu_table(DOCS_DATA),
    ("docs/algorithm.md", "fidelity"): lambda: fidelity_table(DOCS_DATA),
    ("docs/algorithm.md", "score-policy"): lambda: score_policy_table(DOCS_DATA),
    ("docs/results.md", "anchor-seeds"): lambda: anchor_seeds_table(DOCS_DATA),
    ("docs/algorithm.md", "model-sizes"): _model_sizes_table,
    ("docs/results.md", "scaling"): lambda: scaling_table(RESULTS),
    ("docs/results.md", "offline-to-online"): lambda: offline_to_online_table(RESULTS),
    ("docs/results.md", "jaco-hand-evals"): lambda: evaluations_table(DOCS_DATA / "jaco" / "jaco-hand-s3.metrics.csv"),
    **{(page, name): (lambda name=name: csv_table(DOCS_DATA / "tables" / f"{name}.csv"))
       for name, page in CSV_TABLES.items()},
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
