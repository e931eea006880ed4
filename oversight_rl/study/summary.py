"""The headline of docs/results.md: the 10-seed main grid's final deployed true return per method and oversight level,
with routing under each routed estimator, which method wins where, the same under the tuned presets, and each method
at the longest budget of the budget study. Like every generated section it is computed from the rows the CSVs
publish, so it cannot drift from them.

"Wins" is read off intervals, not point estimates: at each level the *leader* is the method with the highest mean,
and a method is *level with* it when the 95% CI of P(a run of the leader scores higher than a run of the method)
reaches down to 0.5; otherwise the leader is ahead of it (the test the claims use for "beats",
:mod:`oversight_rl.study.claims`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from oversight_rl.analysis import stats
from oversight_rl.analysis.comparison import final_values, interval, number
from oversight_rl.rundir.gather import SweepResults
from oversight_rl.rundir.status import DONE

SUMMARY = "summary"
"""The generated section's name in results.md."""


@dataclass(frozen=True)
class Standing:
    """One oversight level: the leader, its mean [95% CI] and the methods level with it."""

    oversight: float
    leader: str
    cell: str
    level_with: tuple[str, ...]


def values_at(results: SweepResults, method: str, oversight: float):
    """Finished runs' final deployed true returns of one grid cell (finite values only)."""
    return stats.finite(final_values(results.rows_at(method, oversight), "true_return"))


def mean_cell(values) -> str:
    """``0.56 [0.53, 0.60]``; with fewer than :data:`~oversight_rl.analysis.stats.MIN_SEEDS` values no interval (and
    the count), without any ``-``."""
    if not values.size:
        return "-"
    estimate, low, high = stats.stratified_bootstrap_ci([values])
    if values.size < stats.MIN_SEEDS:
        return f"{number(estimate, 2)} (n = {values.size}: no CI)"
    return f"{number(estimate, 2)} {interval(low, high, 2)}"


def return_table(results: SweepResults, methods: list[str]) -> str:
    """Final deployed true return, mean [95% CI], one row per method of ``methods`` and one column per oversight
    level."""
    levels = results.oversights
    lines = ["| method | " + " | ".join(f"p = {p:g}" for p in levels) + " |", "|---" * (len(levels) + 1) + "|"]
    for method in methods:
        cells = [mean_cell(values_at(results, method, p)) for p in levels]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def standings(results: SweepResults, methods: list[str]) -> list[Standing]:
    """Each oversight level's leader among ``methods`` (those with at least ``MIN_SEEDS`` runs there) and the
    methods level with it."""
    table = []
    for p in results.oversights:
        runs = {m: values_at(results, m, p) for m in methods}
        runs = {m: v for m, v in runs.items() if v.size >= stats.MIN_SEEDS}
        if not runs:
            continue
        leader = max(runs, key=lambda m: runs[m].mean())  # the first listed on a tie
        level = tuple(
            m for m in runs if m != leader and stats.probability_of_improvement([runs[leader]], [runs[m]]).low <= 0.5
        )
        table.append(Standing(p, leader, mean_cell(runs[leader]), level))
    return table


def standings_line(table: list[Standing]) -> str:
    """``p = 0.01: filtering 0.28 [0.25, 0.30], level with naive; p = 0.03: ...``."""
    parts = []
    for row in table:
        part = f"p = {row.oversight:g}: {row.leader} {row.cell}"
        parts.append(part + (f", level with {', '.join(row.level_with)}" if row.level_with else ", ahead of all"))
    return "; ".join(parts) if parts else f"no level has {stats.MIN_SEEDS} finished runs of any method yet"


def budget_line(rows: list[dict], label: str, methods: list[str]) -> str:
    """``method mean [95% CI]`` at the budget named ``label`` for each of ``methods``, joined by commas."""
    cells = []
    for method in methods:
        mine = [r for r in rows if r["method"] == method and r["budget_label"] == label and r["status"] == DONE]
        values = stats.finite([math.nan if r["true_return"] is None else r["true_return"] for r in mine])
        cells.append(f"{method} {mean_cell(values) if values.size else 'no finished run'}")
    return ", ".join(cells)


def budget_summary(parts: str, rows: list[dict], methods: list[str]) -> list[str]:
    """The line on one budget study (``parts``: its parts, in words) at the longest budget its rows reach; none
    before a run has reached one."""
    labels = sorted({(row["budget"], row["budget_label"]) for row in rows})
    if not labels:
        return []
    longest = labels[-1][1]
    at_longest = [row for row in rows if row["budget_label"] == longest]
    levels = ", ".join(f"{p:g}" for p in sorted({row["oversight"] for row in at_longest}))
    return [
        "",
        f"At oversight {levels} with a constant learning rate, after {longest} steps (parts {parts},"
        f" {seeds_per_cell(at_longest)} seeds each, the same seeds): {budget_line(rows, longest, methods)}.",
    ]


def finished_line(rows: list[dict]) -> str:
    """``300 of 300 runs finished``."""
    return f"{sum(row['status'] == DONE for row in rows)} of {len(rows)} runs finished"


def seeds_per_cell(rows: list[dict]) -> int:
    """The most runs planned for one method at one oversight level among ``rows``."""
    cells: dict[tuple, int] = {}
    for row in rows:
        key = (row["method"], row["oversight"])
        cells[key] = cells.get(key, 0) + 1
    return max(cells.values(), default=0)


def summary_section(
    main: SweepResults,
    main_methods: list[str],
    tuned: SweepResults,
    tuned_methods: list[str],
    budgets: dict[str, list[dict]],
    budget_methods: list[str],
) -> str:
    """The headline: ``main``'s return table and standings (routing's rows named by their estimator), the
    standings of ``tuned`` (the main grid under each method's tuned preset), and each of ``budget_methods`` at the
    longest budget of each budget study of ``budgets`` (the parts it is made of, named in words, to its rows)."""
    lines = [
        "Final deployed true return of the main grid (default settings: 2M steps, learning rate annealed; parts"
        f" main-default, main-routing and main-routed-no-baseline, {seeds_per_cell(main.rows)} seeds per cell), mean"
        f" [95% bootstrap CI] over seeds ({finished_line(main.rows)}). Routing is its Diamond"
        " expert, under each routed estimator: `unwatched_baseline`, the default (unbiased); `shared_baseline`, the"
        " paper's (main-default, whose filtering, naive and oracle runs these are); `routed_no_baseline` (biased)."
        " The oracle trains on p x the budget.",
        "",
        return_table(main, main_methods),
        "",
        "**What wins where**: at each level the leader (highest mean) and the methods level with it, those for which"
        ' the 95% CI of P(a run of the leader scores higher than a run of the method) reaches down to 0.5; "ahead of'
        f' all" when there is none. {standings_line(standings(main, main_methods))}.',
        "",
        "Under each method's tuned preset (parts main-tuned, main-tuned-routing and main-tuned-expert-returns; every"
        " method tuned alike, 16 trials at 10% oversight on seeds apart from these): routing under the default"
        " estimator with its own tuning, under `expert_returns` (the other unbiased estimator with a baseline) with"
        " its own, and under the paper's with the tuning it had before (main-tuned's routing runs), beside"
        f" main-tuned's filtering, naive and oracle runs ({finished_line(tuned.rows)}):",
        "",
        return_table(tuned, tuned_methods),
        "",
        f"What wins where under the tuned presets: {standings_line(standings(tuned, tuned_methods))}.",
    ]
    for parts, rows in budgets.items():
        lines += budget_summary(parts, rows, budget_methods)
    return "\n".join(lines)
