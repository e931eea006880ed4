"""Fault injection: processes killed with SIGKILL and SIGTERM at several points, invocations run concurrently, files
corrupted. What must survive: nothing is lost, nothing runs twice, and a bad setting or a damaged file gets a
one-line ``error:`` (exit status 2, nothing written) instead of a traceback. Budgets are tiny: these check plumbing.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cli import load_script

import oversight_rl
from oversight_rl.engine import trainer as train_module
from oversight_rl.engine.config import TrainConfig
from oversight_rl.engine.launch import resume, train, train_population
from oversight_rl.engine.trainer import Trainer
from oversight_rl.experiments import processes
from oversight_rl.experiments.sweep import SweepConfig
from oversight_rl.rundir.files import (
    CHECKPOINT,
    CONFIG,
    EVAL_CSV,
    SUMMARY,
    TRAIN_CSV,
    create_run_dir,
    read_csv,
    read_json,
    write_json,
)
from oversight_rl.rundir.status import run_status

ROOT = Path(__file__).resolve().parents[1]
# 16 envs x 8 steps = 128 env steps per update, one PPO epoch on one minibatch: about 25 ms per update here.
FAST = "--num-envs 16 --num-steps 8 --eval-envs 16 --width 16 --update-epochs 1 --num-minibatches 1".split()
TINY = [*FAST, "--total-env-steps", "2048", "--eval-every", "1024"]  # 16 updates, checkpoints at 8 and 16
LONG = [*FAST, "--total-env-steps", "8192", "--eval-every", "1024"]  # 64 updates, a checkpoint every 8
ONE_RUN = "--oversight 0.5 --methods routing --seeds 1".split()
TWO_RUNS = "--oversight 0.5 --methods routing --seeds 2 --population-size 1".split()  # two populations of one
TIMING = ("wall_s", "time/env_steps_per_s")
PROC = Path("/proc")
needs_proc = pytest.mark.skipif(not (PROC / "self" / "stat").exists(), reason="reads processes from /proc (Linux)")


train_cli = load_script("train_policy")
sweep_cli = load_script("sweep_oversight")


def sweep(out: Path, *flags: str) -> int:
    return sweep_cli.main(["--out", str(out), *flags])


# ----- processes ----------------------------------------------------------------------------------------------------


def script_env() -> dict[str, str]:
    """The environment of a script run as a subprocess: it imports this checkout's package."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "COLUMNS": "200", "PYTHONWARNINGS": "ignore"}


CTRL_C_DEFAULT = (
    "import signal; signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}); "
    "signal.signal(signal.SIGINT, signal.default_int_handler); "
)
"""A script's first statement here: Ctrl-C as in a terminal. A shell starts background jobs with Ctrl-C ignored, a
test runner's thread may have it blocked, and a child inherits both (it would then never see KeyboardInterrupt)."""


def script_command(name: str, *args: str, frozen_clock: str | None = None) -> list[str]:
    """The command line of ``scripts/<name>.py``, started with Ctrl-C's default (:data:`CTRL_C_DEFAULT`); with
    ``frozen_clock``, ``time.strftime`` always returns it."""
    script = str(ROOT / "scripts" / f"{name}.py")
    clock = f"import time; time.strftime = lambda *a: {frozen_clock!r}; " if frozen_clock is not None else ""
    code = (
        f"{CTRL_C_DEFAULT}{clock}import runpy, sys; "
        f"sys.argv = [{script!r}, *sys.argv[1:]]; "
        f"runpy.run_path({script!r}, run_name='__main__')"
    )
    return [sys.executable, "-c", code, *args]


def start(command: list[str], warnings: bool = False, **kwargs) -> subprocess.Popen:
    """Start a script; with ``warnings``, Python's warnings (ignored otherwise) reach its stderr."""
    env = {**script_env(), **({"PYTHONWARNINGS": "default"} if warnings else {})}
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    command = script_command(name, *args)
    return subprocess.run(command, cwd=ROOT, env=script_env(), capture_output=True, text=True, timeout=120)


def proc_stat(pid: int) -> tuple[str, int] | None:
    """``(state, parent pid)`` of a process, or None if there is none."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    state, ppid = text[text.rindex(")") + 2 :].split()[:2]
    return state, int(ppid)


def alive(pid: int) -> bool:
    stat = proc_stat(pid)
    return stat is not None and stat[0] != "Z"  # a zombie has exited


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (stat := proc_stat(int(entry.name))) and stat[0] != "Z":
            children.setdefault(stat[1], []).append(int(entry.name))
    found, frontier = set(), [pid]
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return found


def wait_until(condition, timeout_s: float, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return condition()


def stop(process: subprocess.Popen, pids: set[int] = frozenset()) -> None:
    """Kill ``process`` and the processes ``pids`` this test started, if any still runs."""
    for pid in {process.pid, *pids}:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    process.communicate(timeout=30)


# ----- files --------------------------------------------------------------------------------------------------------


def untimed(rows: list[dict]) -> list[dict]:
    return [{k: None if v != v else v for k, v in row.items() if k not in TIMING} for row in rows]


def snapshot(path: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``path`` with its size and modification time: equal snapshots mean nothing was written. Lock
    files aside: a process that takes one (sweep.lock, run.lock) writes its pid into it, and that is all."""
    files = (p for p in sorted(path.rglob("*")) if p.suffix != ".lock")
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) for p in files}


def temporaries(path: Path) -> list[Path]:
    return sorted(path.rglob(".*.tmp"))


def one_error_line(stderr: str) -> str:
    """The single ``error:`` line a refused command prints (and no traceback)."""
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def same_run(a: Path, b: Path) -> None:
    """Runs ``a`` and ``b`` computed the same thing: equal train.csv and eval.csv but for timing, same summary."""
    for name in (TRAIN_CSV, EVAL_CSV):
        assert untimed(read_csv(a / name)) == untimed(read_csv(b / name)), (a, name)
    assert read_json(a / SUMMARY)["updates"] == read_json(b / SUMMARY)["updates"]


@pytest.fixture(scope="module")
def finished_sweep_run(tmp_path_factory) -> Path:
    """The one run of a finished tiny sweep: a sweep trains a lone run beside a twin, so it rounds as in a
    population, not as a run trained alone."""
    out = tmp_path_factory.mktemp("finished-sweep") / "sweep"
    assert sweep(out, *TINY, *ONE_RUN, "--workers", "1") == 0
    return out / "routing-p0.5-s0"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished tiny run, made once; tests copy it before changing anything."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    assert train_cli.main([*TINY, "--oversight", "0.5", "--out", str(run_dir.parent)]) == 0
    (made,) = run_dir.parent.iterdir()
    return made


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


@pytest.fixture(scope="module")
def reference_sweep(tmp_path_factory) -> Path:
    """The sweep of ``TWO_RUNS`` x ``LONG``, uninterrupted, serially in this process."""
    out = tmp_path_factory.mktemp("reference") / "sweep"
    assert sweep(out, *LONG, *TWO_RUNS, "--workers", "1") == 0
    return out


# ----- 1. two runs started in the same second ---------------------------------------------------------------------


def test_two_runs_started_in_the_same_second_get_a_directory_each(tmp_path):
    """Two train_policy.py processes with the same --out and a frozen clock (so the same run name) at once."""
    lrs = ("0.001", "0.002")
    command = [*TINY, "--out", str(tmp_path), "--oversight", "0.5"]
    clock = "20260101-000000"
    processes = [start(script_command("train_policy", *command, "--lr", lr, frozen_clock=clock)) for lr in lrs]
    results = [p.communicate(timeout=180) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [err for _, err in results]

    base = f"routing-p0.5-s0-DiamondGhost-5x5-v0-{clock}"
    assert sorted(d.name for d in tmp_path.iterdir()) == [base, f"{base}-2"]
    printed = {line.split(": ", 1)[1] for out, _ in results for line in out.splitlines() if "run directory:" in line}
    assert printed == {str(d) for d in tmp_path.iterdir()}
    assert sorted(str(read_json(d / CONFIG)["lr"]) for d in tmp_path.iterdir()) == list(lrs)
    for run_dir in tmp_path.iterdir():
        summary = read_json(run_dir / SUMMARY)
        assert summary["updates"] == len(read_csv(run_dir / TRAIN_CSV)) == read_json(run_dir / CONFIG)["num_updates"]
        assert run_status(run_dir) == "done"
        assert torch.load(run_dir / CHECKPOINT, weights_only=False)["counters"][0] == summary["updates"]


# ----- 2. killing a sweep's parent --------------------------------------------------------------------------------


def sweep_command(out: Path, how: str) -> list[str]:
    command = script_command("sweep_oversight", *LONG, *TWO_RUNS, "--workers", "2", "--out", str(out))
    return ["timeout", "600", *command] if how == "timeout" else command


def every_run_has(out: Path, name: str) -> bool:
    return all((out / f"routing-p0.5-s{seed}" / name).exists() for seed in (0, 1))


@needs_proc
@pytest.mark.parametrize(
    ("how", "when"),
    [
        ("kill -9", CONFIG),  # both runs started, neither checkpointed: they start again
        ("kill -9", CHECKPOINT),  # both checkpointed: they resume
        ("kill", CHECKPOINT),  # SIGTERM to the sweep process alone
        ("kill -INT", CHECKPOINT),  # SIGINT to the sweep process alone: it stops its workers itself
        # timeout's SIGTERM goes to the sweep process, then to its whole process group; this one passed before the
        # fix too, since the workers got the group's SIGTERM themselves
        ("timeout", CHECKPOINT),
    ],
)
def test_killing_a_sweep_kills_its_workers_and_the_next_sweep_finishes_it(reference_sweep, tmp_path, how, when):
    if how == "timeout" and shutil.which("timeout") is None:
        pytest.skip("no timeout command")
    out = tmp_path / "sweep"
    parent = start(sweep_command(out, how), warnings=True, start_new_session=True)
    workers: set[int] = set()
    try:
        assert wait_until(lambda: every_run_has(out, when), 120), parent.stderr.read() if parent.poll() else ""
        workers = descendants(parent.pid)
        sweep_pid = parent.pid if how != "timeout" else next(p for p in workers if proc_stat(p)[1] == parent.pid)
        workers.discard(sweep_pid)
        assert len(workers) >= 2
        os.kill(parent.pid, {"kill -9": signal.SIGKILL, "kill -INT": signal.SIGINT}.get(how, signal.SIGTERM))
        # generous for a loaded machine: a worker that does not die with its sweep lives on forever, idle once done
        assert wait_until(lambda: not any(alive(pid) for pid in workers), 30), "workers outlived their sweep"
        _, stderr = parent.communicate(timeout=30)
        if how in ("kill", "kill -INT"):
            assert parent.returncode == {"kill": 143, "kill -INT": 130}[how]
    finally:
        stop(parent, workers)
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    if how in ("kill", "kill -INT"):  # the one line, and no warning (of semaphores the workers leaked)
        resume = f"interrupted: run the same command again to resume the sweep in {out}"
        assert stderr_lines(stderr) == [resume], stderr
    if how == "kill -9":  # the dead sweep's lock is left behind, and taken over
        assert (out / "sweep.lock").read_text().strip() == str(sweep_pid)

    assert sweep(out, *LONG, *TWO_RUNS, "--workers", "1") == 0
    for seed in (0, 1):
        same_run(out / f"routing-p0.5-s{seed}", reference_sweep / f"routing-p0.5-s{seed}")
    assert not temporaries(out)
    assert {row["status"] for row in read_csv(out / "results.csv")} == {"done"}


# Routing trains 480 updates as one population of two; the oracle, its budget scaled to oversight 0.05, only 24, so
# its worker finishes long before and waits, idle, for a job that never comes.
IDLE_WORKER = [*FAST, "--total-env-steps", "61440", "--eval-every", "2048"]  # long enough to catch it busy
IDLE_WORKER += ["--oversight", "0.05", "--seeds", "2", "--methods", "routing", "oracle"]


def stderr_lines(stderr: str, bar: str = "sweep") -> list[str]:
    """What a script printed to stderr but its progress bar named ``bar`` (a line that only continues the bar is
    kept)."""
    return [line for line in stderr.splitlines() if line.strip() and not re.fullmatch(f"{bar}: .*\\] *", line)]


@needs_proc
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["INT", "TERM"])
def test_a_sweeps_process_group_stopped_prints_one_line_and_the_next_sweep_resumes(tmp_path, capsys, signum, status):
    """Ctrl-C in a terminal (SIGINT) or ``timeout -s INT`` reaches the sweep and every worker at once, a busy worker and
    an idle one alike; so does SIGTERM sent to the group. Each process stops without a traceback of its own."""
    out = tmp_path / "sweep"
    command = script_command("sweep_oversight", *IDLE_WORKER, "--workers", "2", "--out", str(out))
    parent = start(command, start_new_session=True)
    routing = [out / f"routing-p0.05-s{seed}" for seed in (0, 1)]
    oracle = [out / f"oracle-p0.05-s{seed}" for seed in (0, 1)]
    workers: set[int] = set()
    try:

        def one_worker_idle_one_training() -> bool:
            done = all(run_status(d) == "done" for d in oracle)
            return done and all((d / CHECKPOINT).exists() and run_status(d) != "done" for d in routing)

        assert wait_until(one_worker_idle_one_training, 120), parent.stderr.read() if parent.poll() else ""
        workers = descendants(parent.pid)
        assert len(workers) >= 2
        os.killpg(parent.pid, signum)
        _, stderr = parent.communicate(timeout=60)
        assert wait_until(lambda: not any(alive(pid) for pid in workers), 10), "workers outlived their sweep"
    finally:
        stop(parent, workers)
    assert parent.returncode == status, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert stderr_lines(stderr) == [f"interrupted: run the same command again to resume the sweep in {out}"], stderr

    capsys.readouterr()
    assert sweep(out, *IDLE_WORKER, "--workers", "1") == 0
    assert "4 runs: 0 trained, 2 resumed, 2 already done, 0 failed" in capsys.readouterr().out
    for run_dir, updates in [*((d, 480) for d in routing), *((d, 24) for d in oracle)]:  # 61440 / 128, then x 0.05
        assert read_json(run_dir / SUMMARY)["updates"] == updates, run_dir
        assert [row["update"] for row in read_csv(run_dir / TRAIN_CSV)] == list(range(1, updates + 1)), run_dir
    assert not temporaries(out)


def importing_torch(pid: int) -> bool:
    """Whether process ``pid`` has begun to import torch (it has torch's library mapped)."""
    try:
        return b"libtorch" in (PROC / str(pid) / "maps").read_bytes()
    except OSError:  # it has exited
        return False


def pool_workers(pid: int) -> set[int]:
    """The spawned workers among the processes below ``pid`` (not multiprocessing's resource tracker)."""
    found = set()
    for child in descendants(pid):
        try:
            if b"spawn_main" in (PROC / str(child) / "cmdline").read_bytes():
                found.add(child)
        except OSError:  # it has exited
            continue
    return found


@needs_proc
def test_ctrl_c_while_a_sweeps_workers_start_prints_one_line(tmp_path):
    """Ctrl-C in a terminal while the workers still import their modules (seconds, for torch) stops them quietly."""
    out = tmp_path / "sweep"
    command = script_command("sweep_oversight", *IDLE_WORKER, "--workers", "2", "--out", str(out))
    parent = start(command, start_new_session=True)
    workers: set[int] = set()

    def workers_importing() -> bool:
        nonlocal workers
        workers = pool_workers(parent.pid)
        return len(workers) == 2 and all(map(importing_torch, workers))

    try:
        assert wait_until(workers_importing, 120), parent.stderr.read() if parent.poll() else ""
        os.killpg(parent.pid, signal.SIGINT)
        _, stderr = parent.communicate(timeout=60)
        assert wait_until(lambda: not any(alive(pid) for pid in workers), 10), "workers outlived their sweep"
    finally:
        stop(parent, workers)
    assert parent.returncode == 130, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert stderr_lines(stderr) == [f"interrupted: run the same command again to resume the sweep in {out}"], stderr


def exit_now(status: int):
    """``os._exit`` for a test: raise ``SystemExit`` instead of ending the test process."""
    raise SystemExit(status)


def test_an_orphaned_worker_stops_itself_where_the_kernel_does_not(monkeypatch):
    """The portable fallback of PR_SET_PDEATHSIG: the watchdog sees the parent change, sends this process SIGTERM
    (a worker stops on it as on Ctrl-C), and ends the process outright if that did not stop it."""
    parents, sent = iter([100, 100, 1]), []
    monkeypatch.setattr(os, "getppid", lambda: next(parents))
    monkeypatch.setattr(os, "kill", lambda pid, signum: sent.append((pid, signum)))
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    monkeypatch.setattr(os, "_exit", exit_now)
    with pytest.raises(SystemExit) as exited:
        processes.watch_parent(100)
    assert sent == [(os.getpid(), signal.SIGTERM)] and exited.value.code == 128 + signal.SIGTERM


def test_a_worker_exits_between_jobs_and_stops_a_job_once(monkeypatch):
    """A worker's signal handler: between jobs it exits at once; during a job the first signal stops the job as
    Ctrl-C does, and the later ones (from the sweep, or from the kernel as the sweep exits) let it unwind."""
    monkeypatch.setattr(processes, "WORKER", processes.WorkerState())
    monkeypatch.setattr(os, "_exit", exit_now)
    with pytest.raises(SystemExit) as exited:
        processes.stop_worker(signal.SIGTERM, None)
    assert exited.value.code == 143

    processes.WORKER.job_running = True
    with pytest.raises(KeyboardInterrupt) as stopped:
        processes.stop_worker(signal.SIGINT, None)
    assert not isinstance(stopped.value, processes.Terminated)
    for signum in (signal.SIGINT, signal.SIGTERM):
        assert processes.stop_worker(signum, None) is None


def test_a_summary_that_does_not_match_the_run_files_is_resumed_not_skipped(tmp_path, capsys):
    """A summary.json from another attempt (it names update 8; train.csv and eval.csv reached 16) is no finish."""
    out = tmp_path / "sweep"
    assert sweep(out, *TINY, *ONE_RUN, "--workers", "1") == 0
    run_dir = out / "routing-p0.5-s0"
    finished = read_json(run_dir / SUMMARY)
    write_json(run_dir / SUMMARY, {**finished, "updates": 8, "env_steps": 8 * 128})
    assert run_status(run_dir) == "interrupted"
    capsys.readouterr()

    assert sweep(out, *TINY, *ONE_RUN, "--workers", "1") == 0
    assert "0 trained, 1 resumed, 0 already done" in capsys.readouterr().out
    assert read_json(run_dir / SUMMARY)["updates"] == 16 and run_status(run_dir) == "done"
    assert [row["update"] for row in read_csv(run_dir / TRAIN_CSV)] == list(range(1, 17))


# 128 updates with a checkpoint every 8: once the first is written, about 3 s of training remain.
STILL_TRAINING = [*FAST, "--total-env-steps", "16384", "--eval-every", "1024", "--oversight", "0.5"]


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["INT", "TERM"])
def test_a_run_stopped_by_ctrl_c_prints_how_to_resume_it_and_resumes(tmp_path, signum, status):
    """Ctrl-C (SIGINT) or SIGTERM while train_policy.py trains: one line naming the --resume command, no traceback,
    and that command finishes the run. (Popen leaves SIGINT handled; a shell's background job would ignore it.)"""
    out = tmp_path / "runs"
    process = start(script_command("train_policy", *STILL_TRAINING, "--out", str(out)))
    try:
        assert wait_until(lambda: any(out.glob(f"*/{CHECKPOINT}")), 120), (
            process.stderr.read() if process.poll() else ""
        )
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        stop(process)
    (run_dir,) = out.iterdir()
    assert process.returncode == status, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    resume_command = f"python scripts/train_policy.py --resume {run_dir}"
    assert stderr_lines(stderr, "routing") == [f"interrupted: resume with {resume_command}"], stderr
    assert run_status(run_dir) == "interrupted"

    result = run_script("train_policy", "--resume", str(run_dir))  # the command printed
    assert result.returncode == 0, result.stderr
    assert run_status(run_dir) == "done" and read_json(run_dir / SUMMARY)["updates"] == 128
    assert [row["update"] for row in read_csv(run_dir / TRAIN_CSV)] == list(range(1, 129))


def test_a_run_interrupted_before_its_first_checkpoint_says_to_start_over(tmp_path, monkeypatch, capsys):
    def interrupted(cfg, run_dir):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cli, "train", interrupted)
    assert train_cli.main([*TINY, "--oversight", "0.5", "--out", str(tmp_path)]) == 130
    (run_dir,) = tmp_path.iterdir()
    assert capsys.readouterr().err.strip() == (
        f"interrupted: {run_dir} has no {CHECKPOINT} to resume from; run the same command again to start over"
    )


# ----- 3. two sweeps on one directory -----------------------------------------------------------------------------


def test_a_second_sweep_on_a_running_sweeps_directory_is_refused(tmp_path, capsys):
    out = tmp_path / "sweep"
    first = start(script_command("sweep_oversight", *LONG, *ONE_RUN, "--workers", "1", "--out", str(out)))
    try:
        assert wait_until(lambda: (out / "routing-p0.5-s0" / CONFIG).exists(), 120)
        before = snapshot(out / "routing-p0.5-s0") | {"sweep.json": (out / "sweep.json").stat().st_mtime_ns}
        assert sweep(out, *LONG, *ONE_RUN, "--workers", "1") == 2
        error = one_error_line(capsys.readouterr().err)
        assert str(out) in error and f"pid {first.pid}" in error
        assert (out / "sweep.json").stat().st_mtime_ns == before["sweep.json"]
    finally:
        stop(first)


# ----- 4. near-duplicate oversight values -------------------------------------------------------------------------


def test_oversight_values_that_name_the_same_runs_are_refused(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert sweep(out, *TINY, "--oversight", "0.1", "0.1000001", "--methods", "naive", "--seeds", "1") == 2
    error = one_error_line(capsys.readouterr().err)
    assert "0.1 " in error and "0.1000001" in error and "--oversight" in error
    assert not out.exists()
    with pytest.raises(ValueError, match="name the same runs"):
        SweepConfig(oversight=(0.3, 0.30000001)).validate()
    SweepConfig(oversight=(0.1, 0.1, 0.100001)).validate()  # a repeated value is one grid point; 6 digits differ


# ----- 5. resume and its flags ------------------------------------------------------------------------------------


def test_resume_refuses_flags_that_change_what_the_run_computes(run_copy, capsys):
    before = snapshot(run_copy)
    assert train_cli.main(["--resume", str(run_copy), "--lr", "0.5", "--oversight", "5", "--threads", "2"]) == 2
    error = one_error_line(capsys.readouterr().err)
    changed = error.split("; only ")[0]
    assert "--lr 0.5" in changed and "--oversight 5" in changed and "--threads 2 (saved: 1)" in changed
    assert "--wandb-project-name, --wandb-entity may change" in error and "_" not in error.split("; only ")[1]
    assert snapshot(run_copy) == before


def test_resume_applies_runtime_flags_and_accepts_unchanged_ones(run_copy, monkeypatch):
    used = []
    real = train_module.Trainer.__init__

    def record(self, cfgs, run_dirs, progress=True):
        used.extend(cfgs)
        real(self, cfgs, run_dirs, progress)

    monkeypatch.setattr(train_module.Trainer, "__init__", record)
    argv = ["--resume", str(run_copy), "--wandb-project-name", "other", "--lr", "0.001", "--out", "elsewhere"]
    assert train_cli.main(argv) == 0
    settings = [(cfg.wandb_project_name, cfg.lr, cfg.width) for cfg in used]
    assert settings == [("other", 0.001, 16)]  # width as saved, not the default


def test_resume_refuses_a_config_that_lacks_settings(run_copy, capsys):
    (run_copy / CONFIG).write_text("{}\n")
    before = snapshot(run_copy)
    assert train_cli.main(["--resume", str(run_copy)]) == 2
    error = one_error_line(capsys.readouterr().err)
    assert str(run_copy / CONFIG) in error and "method" in error and "width" in error
    assert snapshot(run_copy) == before


def interrupt_first_save(monkeypatch) -> None:
    """Ctrl-C right after each run's first checkpoint."""
    real_save = Trainer.save

    def save_then_interrupt(trainer, k):
        real_save(trainer, k)
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "save", save_then_interrupt)


def test_a_sweep_resumes_runs_on_the_environment_they_were_trained_on(finished_sweep_run, tmp_path, monkeypatch):
    """A sweep resumed with another --device: there ``auto`` means the torch environment, but a run checkpointed
    on the numpy one must continue on it (the device is a runtime flag; the environment's state is not)."""
    out = tmp_path / "sweep"
    interrupt_first_save(monkeypatch)
    assert sweep(out, *TINY, *ONE_RUN, "--workers", "1") == 130
    monkeypatch.undo()

    resolve = train_module.env_backend  # as on an accelerator: auto resolves to the torch environment
    monkeypatch.setattr(train_module, "env_backend", lambda cfg: "torch" if cfg.env_backend == "auto" else resolve(cfg))
    assert sweep(out, *TINY, *ONE_RUN, "--workers", "1", "--wandb-project-name", "other") == 0
    run_dir = out / "routing-p0.5-s0"
    assert read_json(run_dir / CONFIG)["env_backend"] == "numpy"
    same_run(run_dir, finished_sweep_run)  # the same settings, uninterrupted


# ----- 6. checkpoints and devices ---------------------------------------------------------------------------------


def as_if_saved_on_cuda(run_dir: Path, monkeypatch) -> None:
    """Rewrite the run's checkpoint as a CUDA run writes it (every tensor recorded on cuda:0), and its config."""
    state = torch.load(run_dir / CHECKPOINT, weights_only=False)
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(state, run_dir / CHECKPOINT)
    config = read_json(run_dir / CONFIG)
    write_json(run_dir / CONFIG, {**config, "device": "cuda"})
    if not torch.cuda.is_available():  # the rewrite is real: without a map location it cannot load here
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(run_dir / CHECKPOINT, weights_only=False)


def test_a_checkpoint_saved_on_cuda_resumes_on_the_cpu_exactly(
    tiny_cfg, tmp_path, interrupt_after_first_checkpoint, monkeypatch
):
    cfg = tiny_cfg(env_backend="torch", update_epochs=1, num_minibatches=1)
    train(cfg, tmp_path / "full", progress=False)
    interrupt_after_first_checkpoint(cfg, tmp_path / "cut")
    as_if_saved_on_cuda(tmp_path / "cut", monkeypatch)

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--device cuda"):
            resume(tmp_path / "cut", progress=False)
    resume(tmp_path / "cut", progress=False, device="cpu")
    same_run(tmp_path / "cut", tmp_path / "full")
    as_if_saved_on_cuda(tmp_path / "cut", monkeypatch)
    assert oversight_rl.load_policy(tmp_path / "cut").action_probs(np.zeros((2, 4, 5, 5), np.float32)).shape == (2, 4)


# ----- 7. temporary files and file modes --------------------------------------------------------------------------


def test_resuming_removes_the_temporary_files_of_killed_writes_and_nothing_else(run_copy):
    left = [run_copy / ".checkpoint.pt.k1lled.tmp", run_copy / ".train.csv.k1lled.tmp"]
    kept = [run_copy / ".notes.k1lled.tmp", run_copy / "mine.tmp", run_copy / ".checkpoint.pt.backup"]
    for path in left + kept:
        path.write_bytes(b"partial")
    resume(run_copy, progress=False)
    assert [path.exists() for path in left] == [False, False]
    assert all(path.exists() for path in kept)


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_run_files_are_created_with_the_mode_the_umask_gives(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        assert train_cli.main([*TINY, "--oversight", "0.5", "--out", str(tmp_path)]) == 0
    finally:
        os.umask(previous)
    (run_dir,) = tmp_path.iterdir()
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in run_dir.iterdir() if p.is_file()}
    assert {CONFIG, TRAIN_CSV, EVAL_CSV, SUMMARY, CHECKPOINT} <= set(modes)
    assert set(modes.values()) == {oct(mode)}, modes


# ----- 8. one-line errors -----------------------------------------------------------------------------------------

CUDA, MPS = torch.cuda.is_available(), torch.backends.mps.is_available()
TWO_ROOMS, MULTI_GHOST = (
    "OversightRL/MiniGrid-DiamondGhost-TwoRooms-v0",
    "OversightRL/MiniGrid-DiamondGhost-MultiGhost-v0",
)
BAD_SETTINGS = [
    pytest.param(["--env", "OversightRL/Nope-v0"], ("--env", "OversightRL/DiamondGhost-5x5-v0"), id="unknown-env"),
    pytest.param(["--env", "CartPole-v1"], ("--env", "OversightRL/DiamondGhost-8x8-v0"), id="foreign-env"),
    pytest.param(["--env", "DiamondGhost-5x5-v0"], ("--env", "OversightRL/DiamondGhost-5x5-v0"), id="no-namespace"),
    pytest.param(
        ["--device", "cuda"], ("--device cuda",), id="cuda", marks=pytest.mark.skipif(CUDA, reason="has CUDA")
    ),
    pytest.param(["--device", "mps"], ("--device mps",), id="mps", marks=pytest.mark.skipif(MPS, reason="has MPS")),
    pytest.param(["--lr", "inf"], ("--lr", "finite", "inf"), id="lr-inf"),
    pytest.param(["--lr", "nan"], ("--lr", "nan"), id="lr-nan"),  # NaN already failed the range checks
    pytest.param(["--ent-coef", "inf"], ("--ent-coef", "finite"), id="ent-inf"),
    pytest.param(["--gate-coef", "nan"], ("--gate-coef",), id="gate-nan"),  # likewise
    pytest.param(["--max-grad-norm", "inf"], ("--max-grad-norm", "finite"), id="clip-inf"),
    pytest.param(["--env-backend", "torch", "--env", TWO_ROOMS], ("--env-backend torch", TWO_ROOMS), id="torch-rooms"),
    pytest.param(["--env-backend", "torch", "--env", MULTI_GHOST], ("--env-backend torch",), id="torch-ghosts"),
]


@pytest.mark.parametrize(("flags", "named"), BAD_SETTINGS)
def test_a_bad_setting_is_one_line_before_anything_is_written(tmp_path, capsys, flags, named):
    assert train_cli.main([*TINY, *flags, "--out", str(tmp_path / "runs")]) == 2
    error = one_error_line(capsys.readouterr().err)
    assert all(word in error for word in named), error
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("flags", "named"), [BAD_SETTINGS[1], BAD_SETTINGS[3], BAD_SETTINGS[5], BAD_SETTINGS[10]])
def test_a_bad_sweep_setting_is_one_line_before_any_run(tmp_path, capsys, flags, named):
    assert sweep(tmp_path / "sweep", *TINY, *ONE_RUN, *flags) == 2
    error = one_error_line(capsys.readouterr().err)
    assert all(word in error for word in named), error
    assert not (tmp_path / "sweep").exists()


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
def test_an_existing_sweep_never_records_a_bad_setting(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert sweep(out, *TINY, *ONE_RUN, "--workers", "1") == 0
    before, _ = snapshot(out), capsys.readouterr()
    assert sweep(out, *TINY, *ONE_RUN, "--workers", "1", "--device", "cuda") == 2
    assert "--device cuda" in one_error_line(capsys.readouterr().err)
    assert snapshot(out) == before


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "garbage": os.urandom(4096)}[how])


@pytest.mark.parametrize(
    ("name", "how"),
    [(CHECKPOINT, "truncated"), (CHECKPOINT, "empty"), (CHECKPOINT, "garbage"), (CONFIG, "truncated")],
)
def test_resuming_a_damaged_file_is_one_line_naming_it(run_copy, capsys, name, how):
    damage(run_copy / name, how)
    before = snapshot(run_copy)
    assert train_cli.main(["--resume", str(run_copy)]) == 2
    assert str(run_copy / name) in one_error_line(capsys.readouterr().err)
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("script", ["train_policy", "sweep_oversight"])
def test_out_naming_a_file_is_one_line(tmp_path, capsys, script):
    out = tmp_path / "a-file"
    out.write_text("not a directory\n")
    main = train_cli.main if script == "train_policy" else sweep_cli.main
    for target in (out, out / "below"):
        assert main([*TINY, "--oversight", "0.5", "--out", str(target)]) == 2
        assert "--out" in one_error_line(capsys.readouterr().err)
    assert out.read_text() == "not a directory\n" and sorted(tmp_path.iterdir()) == [out]


def test_the_scripts_exit_2_with_one_line_and_no_traceback(run_copy, tmp_path):
    """The same errors through the real command lines, in processes of their own."""
    damage(run_copy / CHECKPOINT, "garbage")
    result = run_script("train_policy", "--resume", str(run_copy))
    assert result.returncode == 2 and str(run_copy / CHECKPOINT) in one_error_line(result.stderr)

    result = run_script("train_policy", "--env", "CartPole-v1", "--out", str(tmp_path / "runs"))
    assert result.returncode == 2 and "--env" in one_error_line(result.stderr)
    assert not (tmp_path / "runs").exists()

    result = run_script("sweep_oversight", "--oversight", "0.1", "0.1000001", "--out", str(tmp_path / "sweep"))
    assert result.returncode == 2 and "--oversight" in one_error_line(result.stderr)
    assert not (tmp_path / "sweep").exists()


# ----- names that must not lead elsewhere -------------------------------------------------------------------------


@pytest.mark.parametrize("exp_name", ["../escape", "/", "/tmp/elsewhere", "a\\b"])
def test_exp_name_cannot_lead_out_of_out(tmp_path, monkeypatch, capsys, exp_name):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "deep" / "runs"
    assert train_cli.main([*TINY, "--exp-name", exp_name, "--out", str(out)]) == 2
    error = one_error_line(capsys.readouterr().err)
    assert "(from --exp-name and the run) must be a plain file name" in error and repr(exp_name)[:-1] in error
    assert sorted(p.name for p in tmp_path.rglob("*")) == []  # nothing written, inside --out or out of it


@pytest.mark.parametrize("name", ["../x", "/abs", ".", "..", ""])
def test_a_run_directory_name_must_be_a_plain_file_name(tmp_path, name):
    with pytest.raises(ValueError, match="must be a plain file name"):
        create_run_dir(tmp_path / "out", name)
    assert not (tmp_path / "out").exists()


def test_minus_zero_and_zero_oversight_are_one_grid_point(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert sweep(out, *TINY, "--oversight", "-0", "--methods", "naive", "--seeds", "1") == 0
    assert sweep(out, *TINY, "--oversight", "0", "--methods", "naive", "--seeds", "1") == 0
    assert "0 trained, 0 resumed, 1 already done" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["naive-p0-s0"]


def test_two_runs_of_one_population_cannot_share_a_directory(tmp_path):
    cfgs = [TrainConfig(seed=0, total_env_steps=2048), TrainConfig(seed=1, total_env_steps=2048)]
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match="would write the same run directory"):
        train_population(cfgs, [run_dir, tmp_path / "." / "run"])
    assert not run_dir.exists()


@pytest.mark.parametrize("seed", [str(10**20), "-1", str(2**62)])
def test_a_seed_out_of_range_is_a_one_line_error(tmp_path, capsys, seed):
    assert train_cli.main([*TINY, "--seed", seed, "--out", str(tmp_path / "runs")]) == 2
    assert "--seed must be in [0, 2**62)" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("content", ["{}", "[]", '{"train": 3}', '{"train": {}, "method_settings": []}', "{", ""])
def test_a_sweep_json_of_the_wrong_shape_is_a_one_line_error(tmp_path, capsys, content):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.json").write_text(content)
    assert sweep(out, *TINY, *ONE_RUN) == 2
    error = one_error_line(capsys.readouterr().err)
    assert f"--out {out} holds a damaged sweep.json" in error and "move it away" in error
    assert (out / "sweep.json").read_text() == content and sorted(p.name for p in out.iterdir()) == ["sweep.json"]


def test_a_run_that_diverges_stops_with_one_line_and_keeps_its_last_finite_checkpoint(tmp_path, monkeypatch, capsys):
    real = Trainer._optimize

    def diverge_at_update_12(trainer, batch, lr, active):
        metrics = real(trainer, batch, lr, active)
        if trainer.agents[0].update == 11:
            with torch.no_grad():
                for p in trainer.population.params.values():
                    p.fill_(float("nan"))
        return metrics

    monkeypatch.setattr(Trainer, "_optimize", diverge_at_update_12)
    out = tmp_path / "runs"
    assert train_cli.main([*TINY, "--oversight", "0.5", "--out", str(out)]) == 2
    (error,) = stderr_lines(capsys.readouterr().err, bar="routing")
    assert error.startswith("error: ") and "training diverged at update 12" in error
    (run_dir,) = out.iterdir()
    assert not (run_dir / SUMMARY).exists() and read_csv(run_dir / TRAIN_CSV)[-1]["update"] == 8
    state = torch.load(run_dir / CHECKPOINT, weights_only=False)
    assert all(torch.isfinite(w).all() for w in state["policy"].values())
    monkeypatch.undo()
    assert train_cli.main(["--resume", str(run_dir)]) == 0  # from update 8, without the fault


def test_load_policy_refuses_non_finite_parameters(finished_run, tmp_path):
    run_dir = tmp_path / "nan"
    shutil.copytree(finished_run, run_dir)
    state = torch.load(run_dir / CHECKPOINT, weights_only=False)
    next(iter(state["policy"].values())).fill_(float("nan"))
    torch.save(state, run_dir / CHECKPOINT)
    with pytest.raises(ValueError, match="parameters are not all finite"):
        oversight_rl.load_policy(run_dir)


@needs_proc
def test_a_worker_killed_outright_stops_only_its_own_population(reference_sweep, tmp_path):
    """kill -9 of one worker: the other population trains to the end; the next sweep resumes the killed one."""
    out = tmp_path / "sweep"
    parent = start(script_command("sweep_oversight", *LONG, *TWO_RUNS, "--workers", "2", "--out", str(out)))
    runs = [out / f"routing-p0.5-s{seed}" for seed in (0, 1)]
    workers: set[int] = set()

    def both_training() -> bool:
        nonlocal workers
        workers = pool_workers(parent.pid)
        return len(workers) == 2 and all((run / CHECKPOINT).exists() and not (run / SUMMARY).exists() for run in runs)

    try:
        assert wait_until(both_training, 180, interval_s=0.01), parent.stderr.read() if parent.poll() else ""
        os.kill(min(workers), signal.SIGKILL)
        stdout, stderr = parent.communicate(timeout=300)
    finally:
        stop(parent, workers)
    assert "1 interrupted by a worker that died" in stdout + stderr, stdout + stderr
    assert sorted(map(run_status, runs)) == ["done", "interrupted"]
    finished = next(run for run in runs if run_status(run) == "done")
    same_run(finished, reference_sweep / finished.name)
    assert sweep(out, *LONG, *TWO_RUNS, "--workers", "2") == 0
    for run in runs:
        same_run(run, reference_sweep / run.name)


def test_an_unknown_env_setting_is_refused_before_anything_is_written(tmp_path, capsys):
    typo = ["--env-kwargs", '{"max_stepz": 20}']
    assert train_cli.main([*TINY, *typo, "--out", str(tmp_path / "runs")]) == 2
    error = one_error_line(capsys.readouterr().err)
    assert "takes no setting 'max_stepz'" in error and "max_steps" in error
    assert sweep(tmp_path / "sweep", *TINY, *ONE_RUN, *typo) == 2
    assert "takes no setting 'max_stepz'" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "sweep").exists()
    assert sweep(tmp_path / "sweep", *TINY, *ONE_RUN, "--env-kwargs", '{"max_steps": 20}') == 0  # the corrected one


def test_load_policy_names_a_truncated_checkpoint(run_copy):
    data = (run_copy / CHECKPOINT).read_bytes()
    (run_copy / CHECKPOINT).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"its checkpoint cannot be read \(.*\); it is damaged"):
        oversight_rl.load_policy(run_copy)


def test_load_policy_names_a_checkpoint_that_does_not_fit_the_config(run_copy):
    config = read_json(run_copy / CONFIG)
    write_json(run_copy / CONFIG, {**config, "method": "naive"})  # a routing checkpoint, a single-expert config
    with pytest.raises(ValueError, match="does not fit the policy of its config.json"):
        oversight_rl.load_policy(run_copy)


def test_load_policy_says_when_a_run_is_unfinished_or_from_another_version(run_copy):
    config = read_json(run_copy / CONFIG)
    write_json(run_copy / CONFIG, {**config, "version": "0.0.1"})
    with pytest.warns(UserWarning, match="was written by oversight_rl 0.0.1"):
        oversight_rl.load_policy(run_copy)
    write_json(run_copy / CONFIG, config)
    (run_copy / SUMMARY).unlink()
    with pytest.warns(UserWarning, match="is not finished: loading its checkpoint from update 16"):
        oversight_rl.load_policy(run_copy)
