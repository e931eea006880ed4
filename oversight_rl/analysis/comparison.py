"""Methods compared over seeds, from a sweep's results: per method and oversight level the number of seeds, the mean,
the IQM and their 95% bootstrap intervals (``summary.csv``), and the probability that one method improves on each
other, per level and over all levels (``improvement.csv``); with the tables the scripts print.

Only finished runs count, each with the final value of its deployed policy; a run whose metric is undefined (NaN)
is left out of that metric, so ``n`` may be below the number of finished runs. Intervals are percentile bootstrap
intervals (:mod:`oversight_rl.analysis.stats`, 2000 draws, seed 0) over seeds, stratified by oversight level where
levels are pooled.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from oversight_rl.analysis import stats
from oversight_rl.rundir.files import atomic_write_bytes, write_csv
from oversight_rl.rundir.gather import SweepResults
from oversight_rl.rundir.status import DONE

SUMMARY_CSV, IMPROVEMENT_CSV = "summary.csv", "improvement.csv"
SUMMARY_METRICS = ("true_return", "hacking_gap")
"""The metrics summarised per grid cell: the paper's return and the signature of oversight-conditioned hacking."""
REFERENCE_METHOD = "routing"
IMPROVEMENT_COLUMNS = (
    *("method", "baseline", "metric", "oversight", "levels", "n_method", "n_baseline"),
    *("probability", "low", "high"),
)


def final_values(rows: list[dict], metric: str) -> np.ndarray:
    """``metric`` of the finished runs among ``rows`` (missing values as NaN, for :mod:`oversight_rl.analysis.stats` to
    ignore)."""
    values = [row.get(metric) for row in rows if row["status"] == DONE]
    return np.array([math.nan if value is None else value for value in values], dtype=float)


def cell_summary(rows: list[dict], metric: str) -> dict:
    """``{metric}_n``, ``_mean``, ``_mean_low``, ``_mean_high``, ``_iqm``, ``_iqm_low``, ``_iqm_high`` of one grid
    cell's runs."""
    return {f"{metric}_{key}": value for key, value in stats.describe(final_values(rows, metric)).items()}


def summary_rows(results: SweepResults, metrics: tuple[str, ...] = SUMMARY_METRICS) -> list[dict]:
    """One row per method x oversight level of the grid: ``runs`` expected, ``finished``, then
    :func:`cell_summary` of each metric. NaN (no finite value) is written as an empty cell."""
    table = []
    for method in results.methods:
        for oversight in results.oversights:
            rows = results.rows_at(method, oversight)
            if not rows:
                continue
            row = {"method": method, "oversight": oversight, "runs": len(rows)}
            row["finished"] = sum(r["status"] == DONE for r in rows)
            for metric in metrics:
                row.update(cell_summary(rows, metric))
            table.append(row)
    return [{k: none_if_nan(v) for k, v in row.items()} for row in table]


def improvement_rows(results: SweepResults, method: str = REFERENCE_METHOD, metric: str = "true_return") -> list[dict]:
    """The probability that ``method`` scores higher than each other method of the sweep on ``metric`` (ties count
    half), with its 95% stratified bootstrap interval: one row per baseline and oversight level, then one per
    baseline over all levels where both have a value (``oversight`` empty, ``levels`` their number). ``n_method``
    and ``n_baseline`` count the seeds compared. Empty when ``method`` is not in the sweep."""
    if method not in results.methods:
        return []
    table = []
    for baseline in (m for m in results.methods if m != method):
        levels = [p for p in results.oversights if results.rows_at(method, p) and results.rows_at(baseline, p)]
        ours = {p: stats.finite(final_values(results.rows_at(method, p), metric)) for p in levels}
        theirs = {p: stats.finite(final_values(results.rows_at(baseline, p), metric)) for p in levels}
        for p in levels:
            table.append(improvement_row(method, baseline, metric, p, [ours[p]], [theirs[p]]))
        both = [p for p in levels if ours[p].size and theirs[p].size]
        table.append(
            improvement_row(method, baseline, metric, None, [ours[p] for p in both], [theirs[p] for p in both])
        )
    return [{k: none_if_nan(v) for k, v in row.items()} for row in table]


def improvement_row(method, baseline, metric, oversight, ours: list, theirs: list) -> dict:
    probability = stats.probability_of_improvement(ours, theirs)
    return {
        "method": method,
        "baseline": baseline,
        "metric": metric,
        "oversight": oversight,
        "levels": sum(1 for x, y in zip(ours, theirs, strict=True) if x.size and y.size),
        "n_method": int(sum(x.size for x in ours)),
        "n_baseline": int(sum(y.size for y in theirs)),
        "probability": probability.estimate,
        "low": probability.low,
        "high": probability.high,
    }


def none_if_nan(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def write_summary(results: SweepResults, path: Path) -> Path:
    """:func:`summary_rows` as a tidy CSV."""
    write_csv(Path(path), summary_rows(results))
    return Path(path)


def write_improvement(results: SweepResults, path: Path, method: str = REFERENCE_METHOD) -> Path:
    """:func:`improvement_rows` as a tidy CSV (header only when ``method`` is not in the sweep)."""
    rows = improvement_rows(results, method)
    if rows:
        write_csv(Path(path), rows)
    else:
        atomic_write_bytes(Path(path), (",".join(IMPROVEMENT_COLUMNS) + "\n").encode())
    return Path(path)


# ----- printing ---------------------------------------------------------------------------------------------------


def number(value, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def interval(low, high, digits: int = 3) -> str:
    return "" if low is None or high is None else f"[{number(low, digits)}, {number(high, digits)}]"


def checked_interval(low, high, seeds: int, digits: int = 3) -> str:
    """:func:`interval`, or a note instead where fewer than :data:`~oversight_rl.analysis.stats.MIN_SEEDS` seeds
    (per level) make it (the claims table refuses such groups the same way)."""
    return f"(n={seeds} < {stats.MIN_SEEDS}: no CI)" if 0 < seeds < stats.MIN_SEEDS else interval(low, high, digits)


def aligned(table: list[list[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in table]


def format_table(results: SweepResults, metric: str = "true_return") -> str:
    """``metric`` of the deployed policy per method x oversight: finished/expected runs, seeds with a value, mean
    and IQM each with its 95% bootstrap interval (the numbers of summary.csv)."""
    table = [["method", "p", "runs", "n", "mean", "95% CI", "IQM", "95% CI"]]
    for row in summary_rows(results, (metric,)):
        cells = [row["method"], f"{row['oversight']:g}", f"{row['finished']}/{row['runs']}", str(row[f"{metric}_n"])]
        for statistic in ("mean", "iqm"):
            value, low, high = (row[f"{metric}_{statistic}{end}"] for end in ("", "_low", "_high"))
            cells += [number(value), checked_interval(low, high, row[f"{metric}_n"])]
        table.append(cells)
    title = (
        f"final {metric} of the deployed policy over seeds: mean and IQM (mean of the middle 50%), "
        "each with its 95% bootstrap CI"
    )
    return "\n".join([title, *aligned(table)])


def format_improvement(results: SweepResults, method: str = REFERENCE_METHOD, metric: str = "true_return") -> str:
    """The probability that ``method`` improves on each baseline, per oversight level and over all levels, with
    95% bootstrap intervals (the numbers of improvement.csv); empty when ``method`` is not in the sweep."""
    rows = improvement_rows(results, method, metric)
    if not rows:
        return ""
    levels = [f"p={p:g}" for p in results.oversights]
    table = [["baseline", *levels, "all levels"]]
    for baseline in dict.fromkeys(row["baseline"] for row in rows):
        cells = dict.fromkeys([*levels, "all levels"], "-")
        for row in (r for r in rows if r["baseline"] == baseline):
            where = "all levels" if row["oversight"] is None else f"p={row['oversight']:g}"
            seeds = min(row["n_method"], row["n_baseline"]) // (row["levels"] or 1)
            cells[where] = f"{number(row['probability'], 2)} {checked_interval(row['low'], row['high'], seeds, 2)}"
            cells[where] = cells[where].rstrip()
        table.append([baseline, *cells.values()])
    title = (
        f"probability that {method} scores a higher final {metric} than each baseline "
        "(a random seed of each; ties count half; 0.5 = no difference), with its 95% stratified bootstrap CI"
    )
    return "\n".join([title, *aligned(table)])
