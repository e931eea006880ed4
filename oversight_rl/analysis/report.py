"""Generated parts of the results write-up: one tidy CSV per sweep, markdown tables, and the replacement of the
generated sections of a markdown file, which leaves every hand-written line around them as it was.

A generated section is the text between ``<!-- generated: NAME -->`` and the next ``<!-- end generated -->``.
Writing a section replaces that text, or appends the section at the end of the file when it has none yet; writing
the same content twice changes nothing.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from oversight_rl.analysis import stats
from oversight_rl.analysis.comparison import improvement_rows, interval, none_if_nan, number, summary_rows
from oversight_rl.rundir.files import atomic_write_bytes, write_csv
from oversight_rl.rundir.gather import SweepResults
from oversight_rl.rundir.metrics import TABLE_METRICS
from oversight_rl.rundir.status import DONE

END_MARKER = "<!-- end generated -->"
RUN_COLUMNS = (
    *("part", "method", "oversight", "seed", "preset", "status", "env_steps"),
    *TABLE_METRICS,
    *("deployed", "run", "reason"),
)
"""Columns of a sweep's CSV: one row per planned run, its final deployed metrics empty unless it finished."""
BUDGET_COLUMNS = (*RUN_COLUMNS[:5], "budget", "budget_label", *RUN_COLUMNS[5:])
"""Columns of the budget sweep's CSV: one row per planned run and budget."""
POLICY_BUDGET_COLUMNS = (*BUDGET_COLUMNS[:7], "policy", *BUDGET_COLUMNS[7:])
"""Columns of a CSV of the budget sweep's mixture runs: one row per run, budget and evaluated policy."""


# ----- generated sections -----------------------------------------------------------------------------------------


def begin_marker(name: str) -> str:
    return f"<!-- generated: {name} -->"


def replace_generated(text: str, name: str, body: str) -> str:
    """``text`` with the generated section ``name`` holding ``body`` (appended at the end if it has none).
    ``ValueError`` when the section is begun twice or never ended."""
    begin = begin_marker(name)
    section = f"{begin}\n{body.strip(chr(10))}\n{END_MARKER}"
    starts = [m.start() for m in re.finditer(re.escape(begin), text)]
    if len(starts) > 1:
        raise ValueError(f"the generated section {name!r} is begun {len(starts)} times")
    if not starts:
        return f"{text.rstrip(chr(10))}\n\n{section}\n" if text.strip() else f"{section}\n"
    end = text.find(END_MARKER, starts[0])
    if end < 0:
        raise ValueError(f"the generated section {name!r} has no {END_MARKER!r} after it")
    return text[: starts[0]] + section + text[end + len(END_MARKER) :]


def generated_section(text: str, name: str) -> str | None:
    """The body of the generated section ``name`` of ``text``, or None when it has none; ``ValueError`` when it is
    never ended."""
    begin = begin_marker(name)
    start = text.find(begin)
    if start < 0:
        return None
    end = text.find(END_MARKER, start)
    if end < 0:
        raise ValueError(f"the generated section {name!r} has no {END_MARKER!r} after it")
    return text[start + len(begin) : end].strip("\n")


def update_generated(path: Path, sections: dict[str, str]) -> Path:
    """Write ``sections`` (name to body) into the markdown file ``path`` (created if absent), atomically."""
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    for name, body in sections.items():
        text = replace_generated(text, name, body)
    atomic_write_bytes(path, text.encode())
    return path


# ----- CSVs -------------------------------------------------------------------------------------------------------


def run_rows(results: SweepResults, part: str, preset: str) -> list[dict]:
    """One row per planned run of a sweep with the :data:`RUN_COLUMNS`."""
    return [{**{c: row.get(c) for c in RUN_COLUMNS}, "part": part, "preset": preset} for row in results.rows]


def write_rows(path: Path, rows: list[dict], columns: tuple[str, ...]) -> Path:
    """``rows`` as a tidy CSV with exactly ``columns`` (NaN as an empty cell; a header alone when empty)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not rows:
        atomic_write_bytes(path, (",".join(columns) + "\n").encode())
    else:
        write_csv(path, [{c: none_if_nan(row.get(c)) for c in columns} for row in rows])
    return path


# ----- tables -----------------------------------------------------------------------------------------------------


def finished_line(rows: list[dict]) -> str:
    """``7 of 10 runs finished`` and, when some are not, how many are in each other state."""
    states: dict[str, int] = {}
    for row in rows:
        states[row["status"]] = states.get(row["status"], 0) + 1
    line = f"{states.pop(DONE, 0)} of {len(rows)} runs finished"
    if states:
        line += " (" + ", ".join(f"{count} {state}" for state, count in sorted(states.items())) + ")"
    return line


def mean_iqm_cells(row: dict, metric: str) -> list[str]:
    """``mean [CI]`` and ``IQM [CI]`` of a summary row, with the seed count when some finished runs lack a value."""
    cells = []
    for statistic in ("mean", "iqm"):
        value, low, high = (row[f"{metric}_{statistic}{end}"] for end in ("", "_low", "_high"))
        cells.append(f"{number(value, 2)} {interval(low, high, 2)}".rstrip() if value is not None else "n/a")
    if row[f"{metric}_n"] < row["finished"]:
        cells[0] += f" (n = {row[f'{metric}_n']})"
    return cells


def summary_table(results: SweepResults) -> str:
    """Per method and oversight: runs finished, and mean and IQM with 95% bootstrap CIs of the final deployed true
    return and hacking gap."""
    lines = [
        "| method | p | seeds | true return: mean [95% CI] | IQM [95% CI] | hacking gap: mean [95% CI] "
        "| IQM [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in summary_rows(results):
        cells = [row["method"], f"{row['oversight']:g}", f"{row['finished']}/{row['runs']}"]
        cells += mean_iqm_cells(row, "true_return") + mean_iqm_cells(row, "hacking_gap")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def improvement_table(results: SweepResults, method: str = "routing") -> str:
    """The probability that ``method``'s final deployed true return beats each baseline's, per oversight level and
    over all levels (stratified), with 95% CIs; empty when ``method`` has no runs planned."""
    rows = improvement_rows(results, method)
    if not rows:
        return ""
    levels = [f"p = {p:g}" for p in results.oversights]
    lines = ["| baseline | " + " | ".join([*levels, "all levels"]) + " |", "|---" * (len(levels) + 2) + "|"]
    for baseline in dict.fromkeys(row["baseline"] for row in rows):
        cells = dict.fromkeys([*levels, "all levels"], "-")
        for row in (r for r in rows if r["baseline"] == baseline and r["probability"] is not None):
            where = "all levels" if row["oversight"] is None else f"p = {row['oversight']:g}"
            cells[where] = f"{number(row['probability'], 2)} {interval(row['low'], row['high'], 2)}"
        lines.append(f"| {baseline} | " + " | ".join(cells.values()) + " |")
    return "\n".join(lines)


def budget_table(rows: list[dict], labels: list[str], metric: str) -> str:
    """Per method, ``metric`` at each budget: mean [95% CI] (seeds)."""
    lines = ["| method | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for method in dict.fromkeys(row["method"] for row in rows):
        cells = []
        for label in labels:
            values = [
                r[metric] for r in rows if r["method"] == method and r["budget_label"] == label and r["status"] == DONE
            ]
            values = stats.finite([math.nan if v is None else v for v in values])
            if not values.size:
                cells.append("-")
                continue
            mean, low, high = stats.stratified_bootstrap_ci([values])
            cells.append(f"{number(mean, 2)} {interval(low, high, 2)} ({values.size})")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
