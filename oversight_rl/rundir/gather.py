"""A sweep's results as tidy tables: one row per run with its state, and the deployed learning curves (intervals,
summaries per grid cell and comparisons between methods are in :mod:`oversight_rl.analysis`). Reads run
directories; never edits them.

Every grid point the sweep expects (from ``sweep.json``) and every run directory found on disk gets a row, so a
missing or failed run is reported, never dropped. A run is read from the directory its grid point names, and only if
it is that run: a symbolic link or a directory whose config.json names another run (an edited config, a renamed
copy such as ``routing-p0.1-s0.bak``) is listed with the reason, never counted.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from itertools import pairwise, product
from pathlib import Path

import numpy as np

from oversight_rl.core.methods import METHODS
from oversight_rl.rundir.files import (
    CONFIG,
    EVAL_CSV,
    SUMMARY,
    SWEEP_JSON,
    read_json,
    run_name,
    write_csv,
)
from oversight_rl.rundir.readers import Unreadable, read_evaluations, read_run_file
from oversight_rl.rundir.status import (
    DONE,
    FAILED,
    INTERRUPTED,
    MISSING,
    UNREADABLE,
    error_line,
    run_status,
)

BASE_COLUMNS = ("method", "oversight", "seed", "status", "deployed", "run")
SKIPPED = "skipped"
"""The state of a directory in a sweep that is not a run of it (a renamed copy, a symbolic link)."""

Point = tuple[str, float, int]
RUN_NAME = re.compile(r"^(?P<method>.+)-p(?P<oversight>[0-9.e+-]+)-s(?P<seed>[0-9]+)$")


# ----- bootstrap --------------------------------------------------------------------------------------------------


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
    """One row per run (``rows``, as written to results.csv), the learning curves of the finished runs, and notes
    on the sweep as a whole (an unreadable sweep.json, for instance)."""

    rows: list[dict]
    curves: list[Curve] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(row["method"] for row in self.rows if row["method"] is not None))

    @property
    def oversights(self) -> list[float]:
        return sorted({row["oversight"] for row in self.rows if row["oversight"] is not None})

    def rows_at(self, method: str, oversight: float) -> list[dict]:
        return [r for r in self.rows if r["method"] == method and r["oversight"] == oversight]

    def curves_at(self, method: str, oversight: float) -> list[Curve]:
        return [c for c in self.curves if c.method == method and c.oversight == oversight]

    def problems(self) -> list[dict]:
        """Rows of runs that are not drawn in full: not finished, unreadable, or finished without a learning curve."""
        return [row for row in self.rows if row["status"] != DONE or row.get("reason")]


def expected_grid(sweep_dir: Path) -> tuple[list[Point], list[str]]:
    """Grid points ``(method, oversight, seed)`` that sweep.json asks for (none without a sweep.json), and a note if
    sweep.json cannot be read, in which case the grid is the runs found on disk."""
    path = Path(sweep_dir) / SWEEP_JSON
    if not path.exists():
        return [], []

    def grid(sweep: dict) -> list[Point]:
        return list(product(map(str, sweep["methods"]), map(float, sweep["oversight"]), range(int(sweep["seeds"]))))

    try:
        return read_run_file(path, read_json, check=grid), []
    except Unreadable as error:
        return [], [f"{error}; the grid is the runs found on disk (runs never started are not listed)"]


def parse_run_name(name: str) -> Point | None:
    """The grid point a sweep's run directory name encodes (``routing-p0.1-s0``), or None."""
    match = RUN_NAME.match(name)
    if not match:
        return None
    try:
        return match["method"], float(match["oversight"]), int(match["seed"])
    except ValueError:
        return None


def place_run(run_dir: Path) -> tuple[Point | None, str | None]:
    """A run directory's grid point, from its config.json or, if that cannot be read, from its name; and the
    reason config.json cannot be read (None if it can)."""

    def point(config: dict) -> Point:
        return str(config["method"]), float(config["oversight"]), int(config["seed"])

    try:
        return read_run_file(run_dir / CONFIG, read_json, check=point), None
    except Unreadable as error:
        return parse_run_name(run_dir.name), str(error)


def found_runs(sweep_dir: Path) -> dict[Path, tuple[Point | None, str | None]]:
    """Run directories on disk (any subdirectory with a config.json, or a symbolic link): their grid point and
    config problem."""
    sweep_dir = Path(sweep_dir)
    paths = {path.parent for path in sweep_dir.glob(f"*/{CONFIG}")} | {p for p in sweep_dir.iterdir() if p.is_symlink()}
    return {path: place_run(path) for path in sorted(paths)}


def foreign(run_dir: Path, point: Point | None) -> str | None:
    """Why ``run_dir`` is not the run of its name (None if it is): a symbolic link (to another run, or to nothing),
    or a directory whose config.json names another run (a renamed copy, an edited config)."""
    if run_dir.is_symlink():
        return f"a symbolic link to {os.readlink(run_dir)}, not a run directory of its own"
    if point is not None and run_name(*point) != run_dir.name:
        return f"its config.json is that of {run_name(*point)}"
    return None


def gather(sweep_dir: str | Path) -> SweepResults:
    """Read every expected or present run of a sweep directory into rows and curves.

    A damaged file never stops the reading: its run gets the status ``unreadable`` (or, for eval.csv, no learning
    curve) and a ``reason``. Raises ``FileNotFoundError`` when the directory holds neither a sweep.json nor any run.
    """
    sweep_dir = Path(sweep_dir)
    expected, notes = expected_grid(sweep_dir)
    found = found_runs(sweep_dir) if sweep_dir.exists() else {}
    own = [point for run_dir, (point, _) in found.items() if point is not None and not foreign(run_dir, point)]
    points = list(dict.fromkeys(expected + sorted(own, key=registry_order)))
    if not points and not found:
        raise FileNotFoundError(f"{sweep_dir} holds no {SWEEP_JSON} and no run directories")
    methods = method_order(points)
    points.sort(key=lambda point: (methods.index(point[0]), point[1], point[2]))
    rows, curves = read_points(sweep_dir, points, found)
    drawn = {sweep_dir / run_name(*point) for point in points}
    for run_dir, (point, problem) in found.items():
        if run_dir in drawn:
            continue
        if point is None:  # neither config.json nor the directory's name says where the run belongs
            rows.append(run_row((None, None, None), run_dir, problem)[0])
        else:
            rows.append(skipped_row(run_dir, foreign(run_dir, point)))
    return SweepResults(tidy(rows), curves, notes)


def skipped_row(run_dir: Path, reason: str) -> dict:
    """The row of a directory that is not the run its name or config.json says: listed, never counted."""
    row = dict.fromkeys(BASE_COLUMNS)
    return {**row, "status": SKIPPED, "run": run_dir.name, "reason": reason}


def gather_points(sweep_dir: str | Path, points: list[Point]) -> SweepResults:
    """Rows and curves of exactly the grid points ``points`` of a sweep directory, in that order: a point whose run
    directory is absent (or the whole directory) is ``missing``, and runs on disk outside ``points`` are left out.
    For reading a planned grid whether or not its sweep has started."""
    sweep_dir = Path(sweep_dir)
    found = found_runs(sweep_dir) if sweep_dir.exists() else {}
    rows, curves = read_points(sweep_dir, list(points), found)
    return SweepResults(tidy(rows), curves)


def read_points(sweep_dir: Path, points: list[Point], found: dict) -> tuple[list[dict], list[Curve]]:
    """The row and curve of each grid point, read from its run directory in ``found`` (or where it would be)."""
    rows, curves = [], []
    for point in points:
        run_dir = sweep_dir / run_name(*point)
        config_point, config_problem = found.get(run_dir, (None, None))
        row, curve = run_row(point, run_dir, foreign(run_dir, config_point) or config_problem)
        rows.append(row)
        curves += [curve] if curve is not None else []
    return rows, curves


def registry_order(point: Point) -> tuple:
    """Sort key of grid points found on disk: methods in the order the package registers them, then unknown ones."""
    known = list(METHODS)
    return (known.index(point[0]) if point[0] in known else len(known), point[0], point[1], point[2])


def method_order(points: list[Point]) -> list[str]:
    return list(dict.fromkeys(method for method, _, _ in points))


def run_row(point: Point, run_dir: Path, config_problem: str | None = None) -> tuple[dict, Curve | None]:
    """One results.csv row (the grid point, its state, and the deployed variant's final metrics if finished) and
    the run's deployed learning curve (None unless finished and readable)."""
    method, oversight, seed = point
    status = UNREADABLE if config_problem else run_status(run_dir)
    if status == INTERRUPTED and (run_dir / SUMMARY).exists():
        status = DONE  # a summary that disagrees with the CSVs (a sweep resumes the run): draw what can be read
    row = {"method": method, "oversight": oversight, "seed": seed, "status": status, "deployed": None}
    row.update(run=run_dir.name, reason=config_problem)
    if status == FAILED:
        row["reason"] = error_line(run_dir)
    if status != DONE:
        return row, None
    try:
        deployed, final = read_run_file(run_dir / SUMMARY, read_json, check=deployed_final)
    except Unreadable as error:
        row.update(status=UNREADABLE, reason=str(error))
        return row, None
    row.update(deployed=deployed, **final)
    try:
        return row, deployed_curve(run_dir, row)
    except Unreadable as error:
        row["reason"] = str(error)  # the final values stand; only the curve is lost
        return row, None


def deployed_final(summary: dict) -> tuple[str, dict]:
    """The deployed variant's name and final metrics in a summary.json."""
    deployed = summary["deployed"]
    final = summary["variants"][deployed]["final"]
    return str(deployed), {k: v for k, v in final.items() if k != "policy"}


def tidy(rows: list[dict]) -> list[dict]:
    """Give every row the same columns (missing values as None, written as empty cells) in a stable order, with
    ``reason`` last."""
    columns = dict.fromkeys(BASE_COLUMNS)
    for row in rows:
        columns.update(dict.fromkeys(k for k in row if k != "reason"))
    columns["reason"] = None
    return [{column: _none_if_nan(row.get(column)) for column in columns} for row in rows]


def _none_if_nan(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def deployed_curve(run_dir: Path, row: dict) -> Curve:
    """True return of the deployed variant at every evaluation of a finished run; :class:`Unreadable` if eval.csv
    cannot be read or holds no evaluation of the deployed variant."""
    every = read_evaluations(run_dir)
    evals = [r for r in every if r["policy"] == row["deployed"]]
    if not evals:
        raise Unreadable(f"{EVAL_CSV}: no evaluations of the deployed policy {row['deployed']!r}")
    check_schedule(every)
    steps = np.array([r["env_steps"] for r in evals], dtype=float)
    returns = np.array([r["true_return"] for r in evals], dtype=float)
    return Curve(row["method"], row["oversight"], row["seed"], steps, returns)


def check_schedule(evaluations: list[dict]) -> None:
    """:class:`Unreadable` unless eval.csv's rows are those the trainer writes: every policy variant evaluated at the
    same updates, which are 0, then every ``interval`` updates, then the last update (``interval`` or fewer after
    the one before). A duplicated or missing row (a hand edit, a bad merge) would otherwise pass for a curve; what
    this cannot see is a whole evaluation dropped from a run of three."""
    by_policy: dict[str, list[int]] = {}
    for row in evaluations:
        by_policy.setdefault(row["policy"], []).append(int(row["update"]))
    updates = next(iter(by_policy.values()))
    gaps = [b - a for a, b in pairwise(updates)]
    interval = gaps[0] if gaps else 0
    regular = all(gap == interval for gap in gaps[:-1]) and (not gaps or 0 < gaps[-1] <= interval)
    if updates[0] != 0 or not regular or any(other != updates for other in by_policy.values()):
        listed = "; ".join(
            f"{policy} at {', '.join(map(str, u[:6]))}{', ...' * (len(u) > 6)}" for policy, u in by_policy.items()
        )
        raise Unreadable(f"{EVAL_CSV}: evaluations ({listed}) are not the trainer's schedule")


def write_results(results: SweepResults, path: Path) -> Path:
    """Write the rows as a tidy CSV (pandas reads it directly)."""
    write_csv(Path(path), results.rows)
    return Path(path)


# ----- printing ---------------------------------------------------------------------------------------------------


def format_problems(results: SweepResults) -> str:
    """The runs not drawn in full, one line per failed, unreadable or curve-less run with its reason and one line
    per other state listing its runs, then the sweep's notes; empty if every run finished and was read."""
    problems = results.problems()
    lines = []
    if problems:
        lines.append(f"{len(problems)} of {len(results.rows)} runs not drawn in full:")
        for status, label in ((FAILED, "failed"), (UNREADABLE, "unreadable"), (SKIPPED, "skipped")):
            lines += [f"  {label}: {row['run']} ({row['reason']})" for row in problems if row["status"] == status]
        lines += [f"  no learning curve: {row['run']} ({row['reason']})" for row in problems if row["status"] == DONE]
        for status in (INTERRUPTED, MISSING):
            names = [row["run"] for row in problems if row["status"] == status]
            if names:
                lines.append(f"  {status} ({len(names)}): {', '.join(names)}")
    lines += [f"note: {note}" for note in results.notes]
    return "\n".join(lines)
