"""Tests of what the user reads: the summary table of train_policy.py, one run's learning-curve figure and its
reference lines, and the sweep figures (seed counts, captions, legends, tick labels). Runs are written by hand, so
nothing here trains."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    """Import ``scripts/<name>.py`` (the scripts are not a package) to call its functions in this process."""
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and tyro look the module up by name
    spec.loader.exec_module(module)
    return module


train_policy = load_script("train_policy")

METRICS = dict(true_return=0.5, diamond_rate=0.7, ghost_rate=0.2, hacking_gap=-0.05, gate_auroc=0.9)


def summary(deployed: str = "diamond", **variants: dict) -> dict:
    """A summary.json as the trainer returns it; ``best`` differs from ``final`` so that a table showing it shows."""
    variants = variants or {"trained": {}, "diamond": {}, "ghost": {}}
    return {
        "method": "routing",
        "oversight": 0.1,
        "seed": 0,
        "deployed": deployed,
        "env_steps": 4096,
        "wall_s": 3.0,
        "variants": {
            name: {"final": {**METRICS, **final}, "best": {**METRICS, "true_return": 0.777}}
            for name, final in variants.items()
        },
    }


# ----- the summary table ------------------------------------------------------------------------------------------


def table_rows(capsys, run_summary: dict) -> dict[str, str]:
    train_policy.print_table(run_summary)
    lines = capsys.readouterr().out.strip().splitlines()
    return {line.split()[0]: line for line in lines[2:] if line.split()[0] in run_summary["variants"]}


def test_table_marks_the_deployed_variant(capsys):
    rows = table_rows(capsys, summary(deployed="diamond"))
    assert rows["diamond"].startswith("diamond *")
    assert "*" not in rows["trained"] and "*" not in rows["ghost"]


def test_table_writes_n_a_for_missing_metrics_whether_nan_or_none(capsys):
    run = summary(trained={}, diamond={"gate_auroc": math.nan}, ghost={"gate_auroc": None})
    rows = table_rows(capsys, run)
    assert rows["diamond"].split()[-1] == "n/a" and rows["ghost"].split()[-1] == "n/a"
    assert rows["trained"].split()[-1] == "0.900"
    assert not any("nan" in row for row in rows.values())


def test_table_shows_final_values_not_the_best_seen_on_test_episodes(capsys):
    train_policy.print_table(summary())
    printed = capsys.readouterr().out
    assert "0.500" in printed and "0.777" not in printed and "best" not in printed


def test_table_columns_line_up(capsys):
    train_policy.print_table(summary(deployed="trained", trained={"gate_auroc": None}, diamond={}, ghost={}))
    header, *rows = capsys.readouterr().out.strip().splitlines()[1:5]
    ends = [header.index(metric) + len(metric) for metric in train_policy.TABLE_METRICS]
    for row in rows:  # every value ends where its column's name ends
        assert len(row) == len(header)
        assert all(row[end - 1] != " " and row[end : end + 1] in ("", " ") for end in ends), row
