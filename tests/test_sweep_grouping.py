"""A sweep's run computes the same bits however its population is re-formed: a run retrained after its
population-mates finished, or a sweep resumed with another ``--population-size``, reproduces the rows it had.

A run alone takes other kernels for its one-output layers than in a population of two or more, so these tests use
the default rollout shapes (256 environments x 32 steps), at which a population's agent computes the same bits at
every size and position of two or more (benchmarks/reproducibility.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cli import load_script

from oversight_rl.rundir.files import TRAIN_CSV, read_csv, read_json, run_name

SHAPES = "--total-env-steps 16384 --eval-every 8192 --eval-envs 16".split()  # 2 updates of the default rollout
GRID = "--oversight 0.1 --methods routing --seeds 2 --workers 1".split()
VOLATILE = ("wall_s", "time/env_steps_per_s")

sweep_cli = load_script("sweep_oversight")


def sweep(out: Path, *flags: str) -> int:
    return sweep_cli.main([*SHAPES, *GRID, "--out", str(out), *flags])


def train_rows(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in VOLATILE} for row in read_csv(run_dir / TRAIN_CSV)]


@pytest.fixture(scope="module")
def finished_pair(tmp_path_factory) -> Path:
    """Two seeds of routing trained as one population of two."""
    out = tmp_path_factory.mktemp("grouping") / "pair"
    assert sweep(out, "--population-size", "2") == 0
    return out


@pytest.mark.parametrize("flags", [["--population-size", "2"], ["--population-size", "1"]])
def test_a_run_retrained_after_its_mate_finished_reproduces_its_rows(finished_pair, tmp_path, capsys, flags):
    out = tmp_path / "pair"
    shutil.copytree(finished_pair, out)
    lone = out / run_name("routing", 0.1, 1)
    shutil.rmtree(lone)
    capsys.readouterr()
    assert sweep(out, *flags) == 0
    assert train_rows(lone) == train_rows(finished_pair / lone.name)
    assert read_json(out / "sweep.json")["population_size"] == 2
    printed = capsys.readouterr().out
    assert ("--population-size 1 ignored" in printed) == (flags[-1] == "1")
