"""A sweep's results as tidy tables: the state of each run, one row per run, deployed learning curves, and
bootstrap intervals over seeds. Reads run directories; never edits them.

Every grid point the sweep expects (from ``sweep.json``) and every run directory found on disk gets a row, so a
missing or failed run is reported, never dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import numpy as np

from oversight_rl.rundir import (
    CHECKPOINT,
    CONFIG,
    EVAL_CSV,
    SUMMARY,
    TRAIN_CSV,
    last_update,
    read_csv,
    read_json,
    run_name,
    write_csv,
)

SWEEP_JSON, RESULTS_CSV, ERROR = "sweep.json", "results.csv", "error.json"

DONE, FAILED, INTERRUPTED, MISSING = "done", "failed", "interrupted", "missing"
"""Run states: finished (a summary.json that matches train.csv and eval.csv); failed (error.json newer than any
checkpoint); interrupted (started, not finished, not failed); missing (no run directory)."""

BASE_COLUMNS = ("method", "oversight", "seed", "status", "deployed", "run")


def run_status(run_dir: Path) -> str:
    """The state of one run directory: done, failed, interrupted or missing."""
    run_dir = Path(run_dir)
    if finished(run_dir):
        return DONE
    if not run_dir.exists():
        return MISSING
    error, checkpoint = run_dir / ERROR, run_dir / CHECKPOINT
    if error.exists() and (not checkpoint.exists() or error.stat().st_mtime_ns >= checkpoint.stat().st_mtime_ns):
        return FAILED  # a checkpoint newer than the error belongs to a later attempt
    return INTERRUPTED


def finished(run_dir: Path) -> bool:
    """Whether the run is complete and its files belong together. The trainer writes train.csv, eval.csv and the
    checkpoint at each checkpoint, and summary.json last, naming the update they reached (``updates``); a summary
    whose update differs from the last rows of the CSVs belongs to another attempt, and the run is unfinished."""
    try:
        updates = read_json(Path(run_dir) / SUMMARY).get("updates")
    except (OSError, ValueError, AttributeError):
        return False
    return updates is not None and all(last_update(run_dir / name) == updates for name in (TRAIN_CSV, EVAL_CSV))


def error_line(run_dir: Path) -> str:
    """``Type: message`` of a failed run's recorded error, on one line."""
    error = read_json(Path(run_dir) / ERROR)
    message = (error.get("message") or "").strip().splitlines()
    return f"{error.get('type', 'Error')}: {message[0] if message else ''}".rstrip(": ")


# ----- bootstrap --------------------------------------------------------------------------------------------------


def bootstrap_ci(values, confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap confidence interval of the mean of ``values`` (non-finite values ignored).

    Returns ``(mean, low, high)``; all NaN when no value is finite, and ``low == high == mean`` for a single value.
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(resamples, values.size), replace=True).mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(values.mean()), float(low), float(high)


# ----- gathering --------------------------------------------------------------------------------------------------


@dataclass
class Curve:
    """The deployed policy's true return at each evaluation of one finished run."""

    method: str
    oversight: float
    seed: int
    env_steps: np.ndarray
    true_return: np.ndarray


@dataclass
class SweepResults:
    """One row per run (``rows``, as written to results.csv) and the learning curves of the finished runs."""

    rows: list[dict]
    curves: list[Curve] = field(default_factory=list)

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(row["method"] for row in self.rows))

    @property
    def oversights(self) -> list[float]:
        return sorted({row["oversight"] for row in self.rows})

    def rows_at(self, method: str, oversight: float) -> list[dict]:
        return [r for r in self.rows if r["method"] == method and r["oversight"] == oversight]

    def problems(self) -> list[dict]:
        """Rows of runs that did not finish."""
        return [row for row in self.rows if row["status"] != DONE]


def expected_grid(sweep_dir: Path) -> list[tuple[str, float, int]]:
    """Grid points ``(method, oversight, seed)`` that sweep.json asks for; none without a sweep.json."""
    path = Path(sweep_dir) / SWEEP_JSON
    if not path.exists():
        return []
    sweep = read_json(path)
    return list(product(sweep["methods"], [float(p) for p in sweep["oversight"]], range(sweep["seeds"])))


def found_runs(sweep_dir: Path) -> dict[tuple[str, float, int], Path]:
    """Run directories on disk (any subdirectory with a config.json), by grid point."""
    runs = {}
    for config_path in sorted(Path(sweep_dir).glob(f"*/{CONFIG}")):
        config = read_json(config_path)
        runs[(config["method"], float(config["oversight"]), int(config["seed"]))] = config_path.parent
    return runs


def gather(sweep_dir: str | Path) -> SweepResults:
    """Read every expected or present run of a sweep directory into rows and curves.

    Raises ``FileNotFoundError`` when the directory holds neither a sweep.json nor any run.
    """
    sweep_dir = Path(sweep_dir)
    found = found_runs(sweep_dir) if sweep_dir.exists() else {}
    points = list(dict.fromkeys(expected_grid(sweep_dir) + list(found)))
    if not points:
        raise FileNotFoundError(f"{sweep_dir} holds no {SWEEP_JSON} and no run directories")
    methods = method_order(points)
    points.sort(key=lambda point: (methods.index(point[0]), point[1], point[2]))
    rows, curves = [], []
    for method, oversight, seed in points:
        run_dir = found.get((method, oversight, seed), sweep_dir / run_name(method, oversight, seed))
        row = run_row(method, oversight, seed, run_dir)
        rows.append(row)
        if row["status"] == DONE:
            curves.append(deployed_curve(run_dir, row))
    return SweepResults(tidy(rows), curves)


def method_order(points: list[tuple[str, float, int]]) -> list[str]:
    return list(dict.fromkeys(method for method, _, _ in points))


def run_row(method: str, oversight: float, seed: int, run_dir: Path) -> dict:
    """One results.csv row: the grid point, its state, and the deployed variant's final metrics if finished."""
    status = run_status(run_dir)
    row = {
        "method": method,
        "oversight": oversight,
        "seed": seed,
        "status": status,
        "deployed": None,
        "run": run_dir.name,
    }
    if status == DONE:
        summary = read_json(run_dir / SUMMARY)
        variant = summary["variants"][summary["deployed"]]
        final = {k: v for k, v in variant["final"].items() if k != "policy"}
        row.update(deployed=summary["deployed"], **final, best_true_return=variant["best"]["true_return"])
    row["error"] = error_line(run_dir) if status == FAILED else None
    return row


def tidy(rows: list[dict]) -> list[dict]:
    """Give every row the same columns (missing values as None, written as empty cells) in a stable order."""
    columns = dict.fromkeys(BASE_COLUMNS)
    for row in rows:
        columns.update(dict.fromkeys(k for k in row if k != "error"))
    columns["error"] = None
    return [{column: _none_if_nan(row.get(column)) for column in columns} for row in rows]


def _none_if_nan(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def deployed_curve(run_dir: Path, row: dict) -> Curve:
    """True return of the deployed variant at every evaluation of a finished run."""
    evals = [r for r in read_csv(run_dir / EVAL_CSV) if r["policy"] == row["deployed"]]
    return Curve(
        row["method"],
        row["oversight"],
        row["seed"],
        np.array([r["env_steps"] for r in evals], dtype=float),
        np.array([r["true_return"] for r in evals], dtype=float),
    )


def seed_band(curves: list[Curve]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean and 95% bootstrap band over seeds at each evaluated step count: ``(env_steps, mean, low, high)``.

    Runs are matched by step count; where a run has no evaluation (it stopped early) the band uses the others.
    """
    steps = np.unique(np.concatenate([curve.env_steps for curve in curves]))
    stats = []
    for step in steps:
        values = [curve.true_return[curve.env_steps == step] for curve in curves]
        stats.append(bootstrap_ci(np.concatenate(values)))
    mean, low, high = np.array(stats, dtype=float).reshape(-1, 3).T
    return steps, mean, low, high


def write_results(results: SweepResults, path: Path) -> Path:
    """Write the rows as a tidy CSV (pandas reads it directly)."""
    write_csv(Path(path), results.rows)
    return Path(path)


# ----- printing ---------------------------------------------------------------------------------------------------


def format_table(results: SweepResults, metric: str = "true_return") -> str:
    """``metric`` of the deployed policy per method x oversight: mean [95% bootstrap CI] (finished/expected runs)."""
    header = ["method", *(f"p={p:g}" for p in results.oversights)]
    table = [header] + [
        [method, *(summary_cell(results.rows_at(method, p), metric) for p in results.oversights)]
        for method in results.methods
    ]
    widths = [max(len(row[column]) for row in table) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in table]
    title = f"final {metric} of the deployed policy: mean [95% bootstrap CI] over seeds (finished/expected runs)"
    return "\n".join([title, *lines])


def summary_cell(rows: list[dict], metric: str) -> str:
    """``mean [low, high] (finished/expected)`` of one grid cell; ``-`` when the grid has no such cell."""
    if not rows:
        return "-"
    done = [row.get(metric) for row in rows if row["status"] == DONE]
    mean, low, high = bootstrap_ci([math.nan if value is None else value for value in done])
    value = "n/a" if math.isnan(mean) else f"{mean:.3f} [{low:.3f}, {high:.3f}]"
    return f"{value} ({len(done)}/{len(rows)})"


def format_problems(results: SweepResults) -> str:
    """The runs that did not finish: one line per failed run with its error, one line per other state listing its
    runs; empty if every run finished."""
    problems = results.problems()
    if not problems:
        return ""
    lines = [f"{len(problems)} of {len(results.rows)} runs not finished (drawn as missing in the plots):"]
    lines += [f"  failed: {row['run']} ({row['error']})" for row in problems if row["status"] == FAILED]
    for status in (INTERRUPTED, MISSING):
        names = [row["run"] for row in problems if row["status"] == status]
        if names:
            lines.append(f"  {status} ({len(names)}): {', '.join(names)}")
    return "\n".join(lines)
