"""Fault injection: two processes on one run directory. Whatever trains a run holds ``run.lock`` in it, so a
second writer (a sweep, and a ``train_policy.py --resume`` of one of its runs) is refused and writes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cli import load_script

from oversight_rl.rundir.files import SUMMARY
from oversight_rl.rundir.lock import directory_lock

TINY = "--total-env-steps 2048 --num-envs 16 --num-steps 8 --eval-envs 16 --eval-every 1024 --width 16".split()
GRID = "--oversight 0.1 --methods routing --seeds 2 --workers 1".split()

sweep_cli = load_script("sweep_oversight")
train_cli = load_script("train_policy")


def snapshot(directory: Path) -> dict[str, bytes]:
    files = (p for p in sorted(directory.rglob("*")) if p.is_file() and p.name != "run.lock")
    return {str(p.relative_to(directory)): p.read_bytes() for p in files}


@pytest.fixture(scope="module")
def unfinished(tmp_path_factory) -> Path:
    """A sweep of two runs whose second lost its summary (as if interrupted after its last checkpoint)."""
    out = tmp_path_factory.mktemp("lock") / "sweep"
    assert sweep_cli.main([*TINY, *GRID, "--out", str(out)]) == 0
    (out / "routing-p0.1-s1" / SUMMARY).unlink()
    return out


def test_a_resume_of_a_run_that_another_process_trains_is_refused(unfinished, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(unfinished / "routing-p0.1-s1", run_dir)
    before = snapshot(run_dir)
    with directory_lock(run_dir, "run", setting=""):
        assert train_cli.main(["--resume", str(run_dir)]) == 2
        after = snapshot(run_dir)
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"error: {run_dir} is in use by another run (pid ") and "wait for it" in error
    assert after == before


def test_a_sweep_leaves_a_run_that_another_process_trains_alone(unfinished, tmp_path, capsys):
    out = tmp_path / "sweep"
    shutil.copytree(unfinished, out)
    busy = out / "routing-p0.1-s1"
    before = snapshot(busy)
    with directory_lock(busy, "run", setting=""):
        assert sweep_cli.main([*TINY, *GRID, "--out", str(out)]) == 1
        after = snapshot(busy)
    assert "routing-p0.1-s1: " in capsys.readouterr().out
    assert after == before
    assert sweep_cli.main([*TINY, *GRID, "--out", str(out)]) == 0  # once it is free, the sweep resumes it
    assert (busy / SUMMARY).exists()
