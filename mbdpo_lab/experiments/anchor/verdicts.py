"""What the numbers say: per-metric comparisons between agents and the summary sentences built from them.

A metric differs measurably between two agents when, at the final evaluation, mean +- 1 std across
evaluation episodes of the two agents do not overlap (|m1 - m0| > s0 + s1); with fewer than two
episodes per agent there is no noise estimate and the summary says "cannot tell". Between two arms of
several seeds each, it differs when their 95% bootstrap CIs over seeds do not overlap."""
from __future__ import annotations

from typing import Any

import numpy as np

from ...analysis.anchoring import METRICS, referee_energy
from .result import SHOWN_METRICS, AnchorResult, as_float

# The metrics the summary talks about, grouped as the claim is stated.
GROUPS: dict[str, tuple[list[str], str, str]] = {
    # group: (metrics, word when better, word when worse)
    "value over-estimation": (["overestimation", "q_overestimation"], "reduced", "increased"),
    "action drift": (["prior_distance", "state_nn_distance", "energy"], "reduced", "increased"),
    "TD error on planner actions": (["td_plan_abs", "cross_td_gap"], "reduced", "increased"),
    "return": (["return"], "higher", "lower"),
}


def fmt_number(x: float) -> str:
    """Three significant digits, or n/a."""
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.3g}"


def compare_metric(metric: str, base: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Verdict of one metric, ``other`` vs ``base`` at their final evaluations (rule: module docstring)."""
    m0, s0, m1, s1 = (as_float(base.get(metric)), as_float(base.get(f"{metric}_std")),
                      as_float(other.get(metric)), as_float(other.get(f"{metric}_std")))
    n0, n1 = int(as_float(base.get("episodes")) or 0), int(as_float(other.get("episodes")) or 0)
    out = dict(metric=metric, base=base["agent"], other=other["agent"], base_mean=m0, base_std=s0,
               other_mean=m1, other_std=s1, episodes=(n0, n1), difference=m1 - m0)
    seeds = (as_float(base.get("seeds")), as_float(other.get("seeds")))
    over_seeds = all(v >= 2 for v in seeds)
    if over_seeds:  # arms of seeds: the 95% CIs over seeds must not overlap
        lo0, hi0, lo1, hi1 = (as_float(row.get(f"{metric}_{end}")) for row in (base, other) for end in ("low", "high"))
        out.update(seeds=tuple(int(v) for v in seeds), base_ci=(lo0, hi0), other_ci=(lo1, hi1))
    if not (np.isfinite(m0) and np.isfinite(m1)):
        out["verdict"] = "unknown"
    elif over_seeds:
        out["verdict"] = "none" if lo1 <= hi0 and lo0 <= hi1 else _direction(metric, m0, m1)
    elif n0 < 2 or n1 < 2:
        out["verdict"] = "unknown"
    elif abs(m1 - m0) <= (s0 if np.isfinite(s0) else 0) + (s1 if np.isfinite(s1) else 0):
        out["verdict"] = "none"
    else:
        out["verdict"] = _direction(metric, m0, m1)
    out["relative"] = (m1 - m0) / abs(m0) if np.isfinite(m0) and abs(m0) > 1e-9 else float("nan")
    return out


def _direction(metric: str, m0: float, m1: float) -> str:
    """better or worse, for a difference that counts (``m1`` of the other agent, ``m0`` of the base)."""
    better = METRICS[metric][1]
    if better == "zero":
        improved = abs(m1) < abs(m0)
    elif better == "lower":
        improved = m1 < m0
    else:
        improved = m1 > m0
    return "better" if improved else "worse"


def _metric_line(v: dict[str, Any]) -> str:
    desc = METRICS[v["metric"]][0]
    if "seeds" in v:
        (lo0, hi0), (lo1, hi1) = v["base_ci"], v["other_ci"]
        head = (f"{desc}: {v['base']} {fmt_number(v['base_mean'])} [{fmt_number(lo0)}, {fmt_number(hi0)}] vs "
                f"{v['other']} {fmt_number(v['other_mean'])} [{fmt_number(lo1)}, {fmt_number(hi1)}]")
        if v["verdict"] == "unknown":
            return f"{head} → not measured"
        if v["verdict"] == "none":
            return f"{head} → no measurable difference (the 95% CIs over {min(v['seeds'])}+ seeds overlap)"
    else:
        head = (f"{desc}: {v['base']} {fmt_number(v['base_mean'])} ± {fmt_number(v['base_std'])} vs {v['other']} "
                f"{fmt_number(v['other_mean'])} ± {fmt_number(v['other_std'])}")
    n0, n1 = v["episodes"]
    if v["verdict"] == "unknown":
        why = "not measured" if not (np.isfinite(v["base_mean"]) and np.isfinite(v["other_mean"])) else \
            f"cannot tell: fewer than 2 evaluation episodes ({n0}, {n1}) give no noise estimate"
        return f"{head} → {why}"
    if v["verdict"] == "none":
        return f"{head} → no measurable difference (±1 std across {min(n0, n1)}+ episodes overlap)"
    rel = f" ({v['relative']:+.0%})" if np.isfinite(v["relative"]) else ""
    direction = "higher" if v["difference"] > 0 else "lower"
    better = METRICS[v["metric"]][1]
    if v["metric"] == "return":
        quality = ""
    elif better == "zero":
        quality = ", closer to zero" if v["verdict"] == "better" else ", further from zero"
    else:
        quality = ", in the anchor's favour" if v["verdict"] == "better" else ", against the anchor"
    return f"{head} → {direction} by {fmt_number(abs(v['difference']))}{rel}{quality}"


def _group_word(verdicts: list[dict[str, Any]], better_word: str, worse_word: str) -> str:
    kinds = {v["verdict"] for v in verdicts}
    if kinds <= {"unknown"}:
        return "cannot tell"
    if "better" in kinds and "worse" in kinds:
        return "mixed"
    if "better" in kinds:
        return better_word
    if "worse" in kinds:
        return worse_word
    return "no measurable difference"


def _value_words(v: dict[str, Any]) -> tuple[str, str]:
    """Words for the value-error group that say plainly whether it is over- or under-estimation."""
    m0, m1 = v["base_mean"], v["other_mean"]
    better = "reduced" if m0 > 0 and m1 >= 0 else "closer to zero (the agents under-estimate)" if m0 < 0 else \
        "closer to zero"
    worse = "increased" if m1 > 0 and m0 >= 0 else "further from zero (under-estimation grew)" if m1 < 0 else \
        "further from zero"
    return better, worse


def summarise(rows: list[dict[str, Any]], labels: list[str]) -> tuple[str, list[dict[str, Any]]]:
    """The textual summary (headline per anchored agent, then one line per metric) and the verdicts."""
    finals = {}
    for label in labels:
        agent = sorted((r for r in rows if r["agent"] == label), key=lambda r: r["step"])
        if agent:
            finals[label] = agent[-1]
    if len(finals) < 2:
        return "Not enough agents with an evaluation to compare.", []
    base_label = labels[0]
    base = finals[base_label]
    lines, verdicts = [], []
    n_eps = {label: int(as_float(r.get("episodes")) or 0) for label, r in finals.items()}
    seeds = [as_float(r.get("seeds")) for r in finals.values()]
    if all(n >= 2 for n in seeds):
        lines.append(f"Compared at the final evaluation (step {base['step']}), baseline {base_label} (unanchored), "
                     f"{int(min(seeds))}+ seeds per arm, {min(n_eps.values())}+ evaluation episodes per seed. "
                     "A metric is the IQM over seeds; a difference counts when the 95% bootstrap CIs over seeds "
                     "of the two arms do not overlap.")
    else:
        lines.append(f"Compared at the final evaluation (step {base['step']}), baseline {base_label} (unanchored), "
                     f"{min(n_eps.values())}+ evaluation episodes per agent. A difference counts when mean ± 1 std "
                     "across episodes of the two agents do not overlap.")
    for label in labels[1:]:
        if label not in finals:
            continue
        other = finals[label]
        per = [compare_metric(m, base, other) for m in SHOWN_METRICS]
        verdicts.extend(per)
        by_metric = {v["metric"]: v for v in per}
        words = []
        for group, (metrics, good, bad) in GROUPS.items():
            if group == "value over-estimation":
                good, bad = _value_words(by_metric["overestimation"])
            word = _group_word([by_metric[m] for m in metrics], good, bad)
            words.append(f"{group}: {word}")
        lines.append(f"{label} vs {base_label} — " + "; ".join(words) + ".")
        claim = [_group_word([by_metric[m] for m in GROUPS[g][0]], "reduced", "increased")
                 for g in ("value over-estimation", "action drift")]
        if claim == ["reduced", "reduced"] and by_metric["overestimation"]["base_mean"] > 0:
            lines.append(f"  In this run the anchor ({label}) reduced both over-estimation and drift.")
        elif all(c == "no measurable difference" for c in claim):
            lines.append(f"  In this run the anchor ({label}) made no measurable difference to over-estimation "
                         "or drift.")
        elif all(c == "cannot tell" for c in claim):
            lines.append("  Too few evaluation episodes to tell whether the anchor changed anything.")
        for v in per:
            lines.append("  - " + _metric_line(v))
    return "\n".join(lines), verdicts


def cross_energy_rows(agents: dict[str, Any], rollouts: dict[str, Any]) -> list[dict[str, Any]]:
    """Every agent's executed actions scored under every agent's F (`referee_energy`): one row per pair."""
    rows = []
    for referee, agent in agents.items():
        for actor, ro in rollouts.items():
            per = referee_energy(agent, ro)
            rows.append(dict(referee=referee, actor=actor, energy=float(per.mean()) if len(per) else float("nan"),
                             energy_std=float(per.std()) if len(per) else float("nan"), episodes=len(per)))
    return rows


def summarise_cross_energy(cross: list[dict[str, Any]], labels: list[str]) -> tuple[str, list[dict[str, Any]]]:
    """Summary lines for the one-F comparison: per anchored agent, its actions vs the baseline's under each F.

    The same rule as the other metrics (module docstring); the verdict is firm only when every referee
    F agrees.
    """
    table = {(r["referee"], r["actor"]): r for r in cross}
    referees = [lb for lb in labels if any(r["referee"] == lb for r in cross)]
    if len(labels) < 2 or not referees:
        return "", []
    base_label, lines, verdicts = labels[0], [], []
    for label in labels[1:]:
        per = []
        for referee in referees:
            if (referee, base_label) not in table or (referee, label) not in table:
                continue
            base, other = (dict(table[(referee, actor)], agent=actor) for actor in (base_label, label))
            v = compare_metric("energy", base, other)
            v["referee"] = referee
            per.append(v)
        if not per:
            continue
        verdicts.extend(per)
        word = _group_word(per, "reduced", "increased")
        lines.append(f"{label} vs {base_label} — action drift under one F (both agents' actions scored by the "
                     f"same energy head, high = looks like that agent's data): {word}"
                     + (" under every F." if word in ("reduced", "increased") and len(per) > 1 else "."))
        for v in per:
            lines.append(f"  - under {v['referee']}'s F: " + _metric_line(v))
    return "\n".join(lines), verdicts


def attach_cross_energy(result: AnchorResult, rollouts: dict[str, Any]) -> None:
    """Score the final rollouts under every agent's F; add the rows and their summary lines to ``result``."""
    agents = {lb: result.agents[lb] for lb in result.labels if lb in result.agents}
    rollouts = {lb: rollouts[lb] for lb in result.labels if rollouts.get(lb) is not None}
    if len(agents) < 2 or len(rollouts) < 2:
        return
    result.cross_energy = cross_energy_rows(agents, rollouts)
    text, _ = summarise_cross_energy(result.cross_energy, result.labels)
    if text:
        result.summary = f"{result.summary}\n{text}"


def result_from_rows(task: str, rows: list[dict[str, Any]], configs: dict[str, dict[str, Any]] | None = None,
                     **kwargs: Any) -> AnchorResult:
    """Build a result from metric rows (e.g. synthetic or hand-made); labels ordered by eta."""
    etas = {}
    for r in rows:
        etas.setdefault(r["agent"], float(r["eta"]))
    labels = sorted(etas, key=etas.get)
    result = AnchorResult(task=task, labels=labels, etas=etas, configs=configs or {lb: {} for lb in labels},
                          rows=rows, **kwargs)
    result.summary, result.verdicts = summarise(rows, labels)
    return result
