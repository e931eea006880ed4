"""Fault injection on checkpoints and study directories: a damaged checkpoint is no finish, and restarts its run alone
while the rest of its population resumes; a second tuning of one directory is refused while the first runs. Budgets
are tiny: these check plumbing."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cli import load_script
from test_faults import LONG, ROOT, TIMING, TINY, wait_until
from test_faults import ONE_RUN as ONE_SWEEP_RUN

from oversight_rl.engine.deploy import load_policy
from oversight_rl.engine.trainer import Trainer
from oversight_rl.rundir.files import CHECKPOINT, CONFIG, EVAL_CSV, SUMMARY, TRAIN_CSV, read_csv, read_json
from oversight_rl.rundir.status import run_status

ONE_RUN = [*ONE_SWEEP_RUN, "--workers", "1"]
PAIR = "--oversight 0.5 --methods routing --seeds 2 --population-size 2 --workers 1".split()  # one population of two

sweep_cli = load_script("sweep_oversight")


def sweep(out: Path, *flags: str) -> int:
    return sweep_cli.main(["--out", str(out), *flags])


def untimed(rows: list[dict]) -> list[dict]:
    return [{k: None if v != v else v for k, v in row.items() if k not in TIMING} for row in rows]


def same_run(a: Path, b: Path) -> None:
    """Runs ``a`` and ``b`` computed the same thing: equal train.csv and eval.csv but for timing, same summary."""
    for name in (TRAIN_CSV, EVAL_CSV):
        assert untimed(read_csv(a / name)) == untimed(read_csv(b / name)), (a, name)
    assert read_json(a / SUMMARY)["updates"] == read_json(b / SUMMARY)["updates"]


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning: ")]


def damage(path: Path, how: str) -> None:
    """Cut ``path`` short, empty it, or flip one byte inside the data of its largest member (where torch.load alone
    may not notice)."""
    data = bytearray(path.read_bytes())
    if how == "flipped":
        with zipfile.ZipFile(path) as archive:
            member = max(archive.infolist(), key=lambda info: info.compress_size)
        name_length, extra_length = struct.unpack("<HH", data[member.header_offset + 26 : member.header_offset + 30])
        data[member.header_offset + 30 + name_length + extra_length + member.compress_size // 2] ^= 0xFF
    path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "flipped": data}[how])


# ----- 15. a damaged checkpoint is no finish ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory) -> Path:
    """A finished sweep of one tiny run, made once; tests copy it before changing anything."""
    out = tmp_path_factory.mktemp("finished") / "sweep"
    assert sweep(out, *TINY, *ONE_RUN) == 0
    return out


@pytest.mark.parametrize("how", ["truncated", "empty", "flipped"])
def test_a_damaged_checkpoint_is_no_finish_and_the_sweep_trains_its_run_again(finished_sweep, tmp_path, capsys, how):
    out = Path(shutil.copytree(finished_sweep, tmp_path / "sweep"))
    run_dir = out / "routing-p0.5-s0"
    damage(run_dir / CHECKPOINT, how)
    assert run_status(run_dir) == "interrupted"  # its summary matches its CSVs, but nothing could load it

    capsys.readouterr()
    assert sweep(out, *TINY, *ONE_RUN) == 0
    (warning,) = warnings_in(capsys.readouterr().err)
    assert f"warning: {run_dir / CHECKPOINT} is damaged" in warning
    assert run_status(run_dir) == "done"
    same_run(run_dir, finished_sweep / run_dir.name)
    load_policy(run_dir)  # whole again
    assert {row["status"] for row in read_csv(out / "results.csv")} == {"done"}


# ----- 6. a damaged checkpoint in one agent of a population -------------------------------------------------------


@pytest.fixture(scope="module")
def reference_pair(tmp_path_factory) -> Path:
    """The sweep of ``PAIR`` x ``LONG``, uninterrupted."""
    out = tmp_path_factory.mktemp("reference") / "sweep"
    assert sweep(out, *LONG, *PAIR) == 0
    return out


def interrupt_after_first_checkpoints(monkeypatch, out: Path) -> None:
    """Run the ``PAIR`` sweep into ``out`` and stop it (Ctrl-C) two updates after both runs' first checkpoint."""
    original = Trainer.train_step

    def interrupted(self):
        if min(agent.update for agent in self.agents) >= self.agents[0].eval_interval + 2:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", interrupted)
    assert sweep(out, *LONG, *PAIR) == 130
    monkeypatch.undo()


def test_a_damaged_checkpoint_restarts_its_run_alone_and_its_population_mate_resumes(
    reference_pair, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "sweep"
    interrupt_after_first_checkpoints(monkeypatch, out)
    healthy, damaged = out / "routing-p0.5-s0", out / "routing-p0.5-s1"
    kept = read_csv(healthy / TRAIN_CSV)  # with their timings: a run trained again would time its updates anew
    assert len(kept) == 8 and (damaged / CHECKPOINT).exists()
    damage(damaged / CHECKPOINT, "truncated")

    capsys.readouterr()
    report = sweep_cli.run_sweep(sweep_cli.parse(["--out", str(out), *LONG, *PAIR]), progress=False)
    assert report.ok and report.resumed == [healthy.name] and report.trained == [damaged.name], report
    (warning,) = warnings_in(capsys.readouterr().err)
    assert warning.startswith(f"warning: {damaged / CHECKPOINT} is damaged (") and damaged.name in warning
    assert read_csv(healthy / TRAIN_CSV)[: len(kept)] == kept
    for run_dir in (healthy, damaged):
        same_run(run_dir, reference_pair / run_dir.name)
        assert run_status(run_dir) == "done"


# ----- 7. two tunings of one directory ----------------------------------------------------------------------------

TUNING = ["--total-env-steps", "2048", "--num-envs", "16", "--num-steps", "8", "--eval-envs", "16"]
TUNING += ["--eval-every", "1024", "--trials", "1", "--allow-few-trials", "--seeds", "1000", "--validation-envs", "64"]
TUNING += ["--methods", "naive"]
SLOW_UPDATES = (
    "import time; from oversight_rl.engine.trainer import Trainer; step = Trainer.train_step; "
    "Trainer.train_step = lambda self: (time.sleep(0.5), step(self))[1]; "
)
"""A script's first statement here: each update takes half a second longer, so its first trial is caught running."""


def slow_tuning(out: Path) -> subprocess.Popen:
    """``tune_methods.py`` with :data:`TUNING` into ``out``, in a process of its own, each update slowed down."""
    script = str(ROOT / "scripts" / "tune_methods.py")
    run = f"import runpy, sys; sys.argv = [{script!r}, *sys.argv[1:]]; runpy.run_path({script!r}, run_name='__main__')"
    code = SLOW_UPDATES + run
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-c", code, *TUNING, "--out", str(out)]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def trial_states(out: Path) -> list[str]:
    optuna = pytest.importorskip("optuna")
    storage = optuna.storages.RDBStorage(f"sqlite:///{out / 'tuning.db'}")
    return [trial.state.name for trial in optuna.load_study(study_name="naive", storage=storage).trials]


def test_a_second_tuning_of_one_directory_is_refused_while_the_first_runs(tmp_path, capsys):
    pytest.importorskip("optuna")
    tune_cli = load_script("tune_methods")
    out = tmp_path / "tuning"
    first = slow_tuning(out)
    started = out / "naive" / "trial-000" / "naive-p0.1-s1000" / CONFIG
    try:
        assert wait_until(started.exists, 120), first.stderr.read() if first.poll() is not None else ""
        capsys.readouterr()
        assert tune_cli.main([*TUNING, "--out", str(out)]) == 2
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert lines == [
            f"error: --out {out} is in use by another tuning (pid {first.pid}); wait for it to finish or stop it"
        ]
        assert first.poll() is None and trial_states(out) == ["RUNNING"]  # its trial is left to it
        _, stderr = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate(timeout=30)
    assert first.returncode == 0 and "Traceback" not in stderr, stderr
    assert trial_states(out) == ["COMPLETE"]
    assert sorted(p.name for p in (out / "naive").iterdir()) == ["trial-000"]
