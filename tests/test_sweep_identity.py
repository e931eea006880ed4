"""Fault injection: damaged or edited run directories in a sweep. Results come from the directory each grid point
names and only if it is that run; anything else is listed with its reason and never counted."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from cli import load_script

from oversight_rl.rundir.files import CONFIG, EVAL_CSV, SUMMARY, read_json, write_json
from oversight_rl.rundir.gather import gather

TINY = "--total-env-steps 2048 --num-envs 16 --num-steps 8 --eval-envs 16 --eval-every 1024 --width 16".split()
GRID = "--oversight 0.1 --methods routing --seeds 2 --workers 1".split()
S0, S1, S2 = (f"routing-p0.1-s{seed}" for seed in range(3))

sweep_cli = load_script("sweep_oversight")


def sweep(out: Path, *flags: str) -> int:
    return sweep_cli.main([*TINY, *GRID, "--out", str(out), *flags])


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("identity") / "sweep"
    assert sweep(out) == 0
    return out


@pytest.fixture
def copy(finished, tmp_path) -> Path:
    shutil.copytree(finished, tmp_path / "sweep", symlinks=True)
    return tmp_path / "sweep"


def rows_by_run(sweep_dir: Path) -> dict[str, dict]:
    rows = gather(sweep_dir).rows
    assert len({row["run"] for row in rows}) == len(rows), "a run is listed twice"
    return {row["run"]: row for row in rows}


def counted(sweep_dir: Path) -> list[tuple]:
    """The (method, oversight, seed) of every run drawn in the tables and figures."""
    results = gather(sweep_dir)
    return sorted((c.method, c.oversight, c.seed) for c in results.curves)


@pytest.mark.parametrize("edit", ["duplicate", "drop"])
def test_an_edited_eval_csv_gives_no_curve_and_says_why(copy, edit):
    path = copy / S0 / EVAL_CSV
    header, *rows = path.read_text().splitlines(keepends=True)
    middle = len(rows) // 2
    rows = rows[: middle + 1] + rows[middle:] if edit == "duplicate" else rows[:middle] + rows[middle + 1 :]
    path.write_text(header + "".join(rows))
    row = rows_by_run(copy)[S0]
    assert "not the trainer's schedule" in row["reason"]
    assert counted(copy) == [("routing", 0.1, 1)]


def test_a_config_edited_to_another_run_is_not_counted_as_that_run(copy):
    config = read_json(copy / S0 / CONFIG)
    write_json(copy / S0 / CONFIG, {**config, "seed": 1})
    rows = rows_by_run(copy)
    assert rows[S0]["status"] == "unreadable" and f"config.json is that of {S1}" in rows[S0]["reason"]
    assert rows[S1]["status"] == "done" and counted(copy) == [("routing", 0.1, 1)]


def test_a_stale_copy_beside_a_run_never_replaces_it(copy):
    stale = copy / f"{S0}.bak"
    shutil.copytree(copy / S0, stale)
    summary = read_json(stale / SUMMARY)
    summary["variants"][summary["deployed"]]["final"]["true_return"] = 123.0
    write_json(stale / SUMMARY, summary)
    rows = rows_by_run(copy)
    assert rows[S0]["true_return"] != 123.0
    assert rows[stale.name]["status"] == "skipped" and f"that of {S0}" in rows[stale.name]["reason"]
    assert counted(copy) == [("routing", 0.1, 0), ("routing", 0.1, 1)]


def test_a_symbolic_link_to_another_run_is_counted_once(copy):
    os.symlink(copy / S0, copy / S2)
    rows = rows_by_run(copy)
    assert rows[S2]["status"] == "skipped" and "symbolic link" in rows[S2]["reason"]
    assert counted(copy) == [("routing", 0.1, 0), ("routing", 0.1, 1)]


def test_a_dangling_link_fails_its_run_alone_and_nothing_is_written_through_it(copy, tmp_path, capsys):
    target = tmp_path / "elsewhere"
    os.symlink(target, copy / S2)
    capsys.readouterr()
    assert sweep(copy, "--seeds", "3") == 1
    printed = capsys.readouterr().out
    assert f"{S2}: {copy.resolve() / S2} is a symbolic link" in printed and "1 failed" in printed
    assert not target.exists()
    assert rows_by_run(copy)[S2]["status"] == "unreadable"
    assert counted(copy) == [("routing", 0.1, 0), ("routing", 0.1, 1)]
