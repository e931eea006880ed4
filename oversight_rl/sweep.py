"""Many runs: every method at every oversight fraction with several seeds, as populations, in parallel, resumable.

The grid is grouped into populations (:mod:`oversight_rl.train`): runs of one method with the same budget differ
only in seed and oversight, so up to ``population_size`` of them train as one batched computation. ``sweep.json``
records the sweep's settings and that grouping (``populations``: lists of run names).

A sweep directory holds ``sweep.json``, ``results.csv`` (one row per run) and one run directory per grid point, named
``run_name(method, oversight, seed)``. Running the same sweep again skips finished runs, resumes interrupted ones
from their checkpoint, and trains failed or never-checkpointed ones again, each inside its population. It deletes
nothing but the temporary files of writes that a killed process left: a failed run keeps its ``error.json``
(exception type, message, traceback) while it is trained again. A failure inside a population fails every
unfinished run of it.

Nothing is lost and nothing runs twice: a sweep holds ``sweep.lock`` in its directory while it runs (a second sweep
there is refused; the kernel releases the lock of a process that died), its worker processes die with it however
it dies (SIGKILL, SIGTERM, Ctrl-C), and a run counts as finished only when its summary matches its other files.

Backends:
    local  parallel processes on this machine, one population each (``workers=1`` runs serially in this process).
    ray    one Ray task per population (``num_cpus=1``): on a running cluster given ``ray_address`` (the sweep
           directory must then be on a filesystem every node shares, and the package installed on every node),
           or on a local cluster of ``workers`` CPUs.
"""

from __future__ import annotations

import ctypes
import dataclasses
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from itertools import product
from pathlib import Path
from typing import Literal

from tqdm.auto import tqdm

try:
    import fcntl
except ImportError:  # Windows: no flock; sweeps there run unlocked
    fcntl = None

from oversight_rl import __version__
from oversight_rl.config import RUNTIME_SETTINGS, TrainConfig, with_overrides
from oversight_rl.launch import train_population
from oversight_rl.methods import METHODS, get_method
from oversight_rl.results import (
    DONE,
    ERROR,
    INTERRUPTED,
    RESULTS_CSV,
    SWEEP_JSON,
    gather,
    run_status,
    write_results,
)
from oversight_rl.rundir import CHECKPOINT, check_directory, read_json, run_name, write_json
from oversight_rl.train import population_key

DEFAULT_OVERSIGHT = (0.01, 0.03, 0.1, 0.3, 1.0)
DEFAULT_METHODS = ("routing", "filtering", "naive", "oracle")
RUNTIME_ONLY = RUNTIME_SETTINGS
"""Training settings that may change between invocations of one sweep: they do not change what a run computes."""
LOCK = "sweep.lock"
"""The file a running sweep holds locked in its directory (it holds the sweep's process id)."""


@dataclass
class SweepConfig:
    """Train every method at every oversight fraction with several seeds; all runs share the training settings."""

    oversight: tuple[float, ...] = DEFAULT_OVERSIGHT
    """Oversight fractions to train at, each in [0, 1]."""
    methods: tuple[str, ...] = DEFAULT_METHODS
    """Methods to train: any of routing, no_routing, constant_gate, naive, naive_early_stop, filtering, oracle."""
    seeds: int = 3
    """Seeds per grid point: 0, 1, ..., seeds - 1."""
    out: str = "sweeps/oversight"
    """Sweep directory: one run directory per grid point, plus sweep.json and results.csv."""
    workers: int = 2
    """Populations at a time: local processes, or the CPUs of a local Ray cluster. 1 runs serially in this process."""
    population_size: int = 15
    """Most runs trained together as one population (same method and budget; seeds and oversight levels differ).
    1 trains each run in a process of its own."""
    backend: Literal["local", "ray"] = "local"
    """local: parallel processes on this machine. ray: one Ray task per run (needs the ray extra)."""
    ray_address: str | None = None
    """Address of a running Ray cluster (e.g. auto); without it, --backend ray starts a local one."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Training settings shared by every run; method, oversight and seed come from the grid."""
    method_settings: dict[str, dict] = field(default_factory=dict)
    """Settings that differ by method, applied over ``train`` for that method's runs (--preset tuned: each
    method's tuned setting)."""

    def grid(self) -> list[TrainConfig]:
        """The training settings of every grid point, methods outermost, each (method, oversight, seed) once."""
        grid = product(self.methods, [float(p) for p in self.oversight], range(self.seeds))
        points = dict.fromkeys(grid)  # a value given twice is one grid point
        return [
            with_overrides(self.train, **self.method_settings.get(m, {}), method=m, oversight=p, seed=s)
            for m, p, s in points
        ]

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad flag and its allowed range; checks every grid point's settings."""
        bad_oversight = next((p for p in self.oversight if not 0.0 <= p <= 1.0), None)
        unknown = next((m for m in self.methods if m not in METHODS and ":" not in m), None)
        checks = [
            (self.oversight, "--oversight needs at least one value"),
            (bad_oversight is None, f"--oversight must be in [0, 1], got {bad_oversight!r}"),
            (self.methods, "--methods needs at least one method"),
            (unknown is None, f"--methods must be among {', '.join(METHODS)}, got {unknown!r}"),
            (self.seeds >= 1, f"--seeds must be >= 1, got {self.seeds}"),
            (self.workers >= 1, f"--workers must be >= 1, got {self.workers}"),
            (self.population_size >= 1, f"--population-size must be >= 1, got {self.population_size}"),
            (self.ray_address is None or self.backend == "ray", "--ray-address needs --backend ray"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self.validate_run_names()
        check_directory(Path(self.out), "--out")
        for config in self.grid():
            config.validate()

    def validate_run_names(self) -> None:
        """Raise ``ValueError`` naming two oversight values that would train into the same run directories."""
        named: dict[str, float] = {}
        for p in map(float, self.oversight):
            name = run_name(self.methods[0], p, 0)
            if named.setdefault(name, p) != p:
                raise ValueError(
                    f"--oversight {named[name]!r} and {p!r} name the same runs ({name}, ...); give values that "
                    "differ in their first 6 significant digits"
                )


# ----- planning ---------------------------------------------------------------------------------------------------


def populations(sweep: SweepConfig) -> list[list[TrainConfig]]:
    """The grid grouped into populations: runs that share every setting but seed and oversight, and the same number
    of updates (the oracle's budget scales with oversight), in chunks of at most ``population_size``."""
    groups: dict[tuple, list[TrainConfig]] = {}
    for config in sweep.grid():
        updates = config.num_updates(get_method(config.method).budget_scales_with_oversight)
        groups.setdefault((population_key(config), updates), []).append(config)
    size = sweep.population_size
    return [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]


def run_dir_of(sweep: SweepConfig, config: TrainConfig) -> Path:
    return Path(sweep.out).resolve() / run_name(config.method, config.oversight, config.seed)


@dataclass(frozen=True)
class Job:
    """The unfinished runs of one population. Whether each resumes or trains afresh is decided when the job starts
    (see :func:`run_job`), so a job retried after a crash resumes too."""

    configs: tuple[TrainConfig, ...]
    run_dirs: tuple[str, ...]

    @property
    def names(self) -> list[str]:
        return [Path(d).name for d in self.run_dirs]


def plan(sweep: SweepConfig) -> tuple[list[Job], list[str]]:
    """One job per population with unfinished runs, and the names of the runs already finished."""
    jobs, finished = [], []
    for members in populations(sweep):
        todo = []
        for config in members:
            run_dir = run_dir_of(sweep, config)
            if run_status(run_dir) == DONE:
                finished.append(run_dir.name)
            else:
                todo.append((config, str(run_dir)))
        if todo:
            configs, run_dirs = zip(*todo, strict=True)
            jobs.append(Job(configs, run_dirs))
    return jobs, finished


def sweep_record(sweep: SweepConfig) -> dict:
    """What sweep.json holds: the grid, the backend and the shared training settings."""
    record = dataclasses.asdict(sweep)
    record["oversight"] = [float(p) for p in sweep.oversight]
    record["methods"] = list(sweep.methods)
    for name in ("method", "oversight", "seed"):
        record["train"].pop(name)
    record["populations"] = [[run_dir_of(sweep, c).name for c in members] for members in populations(sweep)]
    return {**record, "version": __version__}


def check_same_settings(sweep: SweepConfig) -> None:
    """Refuse to mix runs of different training settings in one sweep directory (the grid may grow or shrink)."""
    path = Path(sweep.out) / SWEEP_JSON
    if not path.exists():
        return
    before, now = read_json(path), sweep_record(sweep)
    changed = [
        f"{k}: {before['train'].get(k)!r} -> {v!r}"
        for k, v in now["train"].items()
        if k not in RUNTIME_ONLY and before["train"].get(k) != v
    ]
    mine, theirs = now["method_settings"], before.get("method_settings", {})
    changed += [
        f"{m}'s settings: {theirs[m]!r} -> {mine[m]!r}" for m in mine.keys() & theirs.keys() if mine[m] != theirs[m]
    ]
    if changed:
        raise ValueError(
            f"--out {sweep.out} holds a sweep with other training settings ({'; '.join(changed)}); "
            "use another --out or the same settings"
        )


# ----- running one population -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """How one job ended: finished (trained or resumed), failed with ``error`` (``"Type: message"``), or
    interrupted (its process stopped or died; the next invocation resumes it)."""

    name: str
    resumed: bool = False
    error: str | None = None
    interrupted: bool = False


def resumable(run_dir: Path) -> bool:
    """Interrupted with a checkpoint to continue from; failed runs and runs never checkpointed start again."""
    return run_status(run_dir) == INTERRUPTED and (run_dir / CHECKPOINT).exists()


def run_job(job: Job) -> list[Outcome]:
    """Resume or train one population's runs without a progress bar. An exception is recorded in the error.json of
    every run it left unfinished, not raised."""
    run_dirs = [Path(d) for d in job.run_dirs]
    resumed = [resumable(run_dir) for run_dir in run_dirs]
    try:
        train_population(list(job.configs), run_dirs, resume=resumed, progress=False)
    except Exception as error:
        return record_failure(job, error, resumed)
    return [Outcome(name, r) for name, r in zip(job.names, resumed, strict=True)]


def record_failure(job: Job, error: BaseException, resumed: list[bool] | None = None) -> list[Outcome]:
    """Write the error (type, message, traceback) to the error.json of each of the job's unfinished runs."""
    resumed = resumed or [False] * len(job.run_dirs)
    record = {
        "type": type(error).__name__,
        "message": str(error),
        "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__)),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    line = f"{record['type']}: {record['message']}".splitlines()[0]
    outcomes = []
    for run_dir, r in zip(map(Path, job.run_dirs), resumed, strict=True):
        if run_status(run_dir) == DONE:  # finished before its population failed
            outcomes.append(Outcome(run_dir.name, r))
            continue
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / ERROR, {**record, "resumed": r})
        outcomes.append(Outcome(run_dir.name, r, error=line))
    return outcomes


def outcome_of(
    job: Job, result: Callable[[], list[Outcome]], interruptions: tuple[type[BaseException], ...] = ()
) -> list[Outcome]:
    """A job's outcomes from its backend. If ``result()`` raises, the job failed (its error is recorded), unless the
    exception is one of ``interruptions``: its process was stopped or died, which is no error of the runs."""
    try:
        return result()
    except interruptions:
        return [Outcome(name, interrupted=True) for name in job.names]
    except Exception as error:
        return record_failure(job, error)


# ----- backends: each runs the jobs and yields each job's outcomes as it finishes ---------------------------------


def run_serially(jobs: list[Job]) -> Iterator[list[Outcome]]:
    """In this process, one after the other (easy to debug and to test)."""
    for job in jobs:
        yield run_job(job)


def run_in_processes(jobs: list[Job], workers: int) -> Iterator[list[Outcome]]:
    """In ``workers`` fresh (spawned) processes on this machine. On Ctrl-C (or SIGTERM, within
    :func:`sigterm_as_interrupt`), whether it reached this process alone or its whole process group (a terminal's
    Ctrl-C), the workers stop at once and without a traceback (:func:`stop_worker`), and if this process is killed
    they die with it (:func:`die_with_parent`); each run keeps its last checkpoint and is resumed by the next
    invocation."""
    before = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    )
    try:
        with ctrl_c_blocked():  # the pool starts its workers here: they begin with Ctrl-C blocked
            futures = {pool.submit(run_job_in_worker, job): job for job in jobs}
        for future in as_completed(futures):
            yield outcome_of(futures[future], future.result, interruptions=(BrokenProcessPool,))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        interrupt(set(multiprocessing.active_children()) - before)
        pool.shutdown()  # the workers have exited: release the pool's queues
        raise
    pool.shutdown()


@dataclass
class WorkerState:
    """What a pool worker's signal handler (:func:`stop_worker`) needs to know."""

    job_running: bool = False
    stopping: bool = False
    """A signal has already interrupted the job; the worker exits once the job has unwound."""


WORKER = WorkerState()
"""This process's state as a pool worker (unused in the sweep's own process)."""


def run_job_in_worker(job: Job) -> list[Outcome]:
    """:func:`run_job` in a pool worker, which exits when stopped (:func:`stop_worker`) instead of taking the next job
    (as pools do), and without a traceback or its exit handlers. A signal that comes after the job has ended but
    before it is marked ended interrupts it too: the runs are finished on disk, and the next invocation skips them."""
    try:
        WORKER.job_running = True
        outcomes = run_job(job)
        WORKER.job_running = False
    except KeyboardInterrupt as interruption:
        os._exit(exit_status(interruption))  # after the interrupted write cleaned up its temporary file
    return outcomes


def stop_worker(signum: int, frame) -> None:
    """A pool worker's handler of SIGINT and SIGTERM. Ctrl-C in a terminal, and ``timeout``, signal the whole process
    group, so a worker gets the sweep's signal itself, and then again from the sweep (:func:`interrupt`) or from the
    kernel when the sweep exits. Between jobs the worker exits at once. While a job runs, the first signal stops it
    as Ctrl-C does (``KeyboardInterrupt``, or :class:`Terminated` for SIGTERM), so that its runs keep their last
    checkpoints, and later ones are ignored while it unwinds."""
    if not WORKER.job_running:
        os._exit(128 + signum)
    if WORKER.stopping:
        return
    WORKER.stopping = True
    raise Terminated(f"signal {signum}") if signum == signal.SIGTERM else KeyboardInterrupt


def exit_status(interruption: KeyboardInterrupt) -> int:
    """What a shell reports for a process that the interruption's signal ended: 143 for SIGTERM, 130 for Ctrl-C."""
    return 128 + (signal.SIGTERM if isinstance(interruption, Terminated) else signal.SIGINT)


PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h): the signal this process gets when its parent dies


def die_with_parent(parent_pid: int) -> None:
    """Pool worker initializer: the worker stops when the sweep process that started it dies, however it dies.

    SIGINT and SIGTERM stop a worker quietly (:func:`stop_worker`; its run keeps its last checkpoint). On Linux the
    kernel sends it SIGTERM when the parent dies (``PR_SET_PDEATHSIG``); everywhere, a watchdog thread sends it when
    the parent's process id changes (the worker was orphaned), and ends the worker outright if it still runs
    ``grace_s`` later."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop_worker)
    if hasattr(signal, "pthread_sigmask"):  # blocked by the sweep while it started this worker (ctrl_c_blocked)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    threading.Thread(target=watch_parent, args=(parent_pid,), name="watch-parent", daemon=True).start()


def watch_parent(parent_pid: int, interval_s: float = 0.5, grace_s: float = 10.0) -> None:
    """Wait until this process's parent is no longer ``parent_pid``, then stop this process."""
    while os.getppid() == parent_pid:
        time.sleep(interval_s)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace_s)
    os._exit(128 + signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so that a terminated sweep stops its workers as Ctrl-C does."""


def terminate_as_interrupt(signum, frame) -> None:
    raise Terminated(f"signal {signum}")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (``kill``, ``timeout``) raises :class:`Terminated` in the main thread."""
    previous = signal.signal(signal.SIGTERM, terminate_as_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def ctrl_c_blocked() -> Iterator[None]:
    """Within the block, SIGINT waits (it is blocked, not lost) in this thread, and the processes started here begin
    with it blocked. A pool worker unblocks it once its own handler is installed (:func:`die_with_parent`), so that
    Ctrl-C while it still starts (importing torch takes seconds) prints no traceback. Where signals cannot be
    blocked (Windows), nothing changes."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def interrupt(processes: set[multiprocessing.Process], grace_s: float = 10.0) -> None:
    """Stop the pool's workers (in case the signal reached only this process), wait for them to exit, and kill those
    still running ``grace_s`` later (a stopping worker ignores further signals). SIGTERM stops a worker as Ctrl-C
    does (:func:`stop_worker`), and ends one that is still starting at once and quietly (it has no handler yet)."""
    for process in processes:
        if process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()


def import_ray():
    """Ray, imported only when the ray backend is used."""
    try:
        import ray
    except ImportError as error:
        raise ValueError("--backend ray needs Ray: pip install 'oversight-rl[ray]'") from error
    return ray


def run_on_ray(jobs: list[Job]) -> Iterator[list[Outcome]]:
    """As Ray tasks of one CPU each, on the cluster :func:`ray_cluster` connected to."""
    ray = import_ray()
    task = ray.remote(num_cpus=1)(run_job)
    pending = {task.remote(job): job for job in jobs}
    try:
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            yield outcome_of(pending.pop(ready), partial(ray.get, ready))
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


@contextmanager
def ray_cluster(address: str | None, workers: int) -> Iterator[None]:
    """Ray connected to the cluster at ``address``, or to a new local one with ``workers`` CPUs, until the block
    ends (a connection made before is used and left open). ``ValueError`` when no cluster answers at ``address``."""
    ray = import_ray()
    if ray.is_initialized():
        yield
        return
    if address:
        connect_ray(ray, address)
    else:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def connect_ray(ray, address: str) -> None:
    """``ray.init`` on the cluster at ``address``; ``ValueError`` naming it when none answers there. A ``host:port``
    address is tried first, since Ray waits minutes for one where nothing listens."""
    problem = unreachable(address)
    if problem is None:
        try:
            ray.init(address=address, log_to_driver=False)
        except ConnectionError as error:
            problem = str(error).split(". ")[0].strip().rstrip(".")
    if problem:
        raise ValueError(
            f"--ray-address {address}: no Ray cluster answers there ({problem}): start one with 'ray start --head'"
            " (then --ray-address auto), or drop --ray-address to start a local one"
        )


def unreachable(address: str, timeout_s: float = 5.0) -> str | None:
    """Why nothing accepts a connection at a ``host:port`` address (``ray://`` or not), or None; None also for
    addresses Ray resolves itself (``auto``)."""
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not port.isdigit():
        return None
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return None
    except OSError as error:
        return f"nothing accepts connections at {host}:{port}: {error.strerror or error}"


def backend_for(sweep: SweepConfig) -> Callable[[list[Job]], Iterator[list[Outcome]]]:
    if sweep.backend == "ray":
        import_ray()  # fail before any work when Ray is missing
        return run_on_ray
    if sweep.workers == 1:
        return run_serially
    return partial(run_in_processes, workers=sweep.workers)


# ----- the sweep --------------------------------------------------------------------------------------------------


@dataclass
class SweepReport:
    """What one invocation did: runs already finished, finished now (trained or resumed), failed, interrupted."""

    skipped: list[str] = field(default_factory=list)
    trained: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    interrupted: list[str] = field(default_factory=list)

    @property
    def started(self) -> int:
        return len(self.trained) + len(self.resumed) + len(self.failed) + len(self.interrupted)

    @property
    def ok(self) -> bool:
        """Every run of the grid is finished."""
        return not self.failed and not self.interrupted

    def add(self, outcome: Outcome) -> None:
        if outcome.error is not None:
            self.failed[outcome.name] = outcome.error
        elif outcome.interrupted:
            self.interrupted.append(outcome.name)
        else:
            (self.resumed if outcome.resumed else self.trained).append(outcome.name)

    def summary_line(self) -> str:
        total = len(self.skipped) + self.started
        line = (
            f"sweep: {total} runs: {len(self.trained)} trained, {len(self.resumed)} resumed, "
            f"{len(self.skipped)} already done, {len(self.failed)} failed"
        )
        if self.failed:
            line += " (" + "; ".join(f"{name}: {error}" for name, error in self.failed.items()) + ")"
        if self.interrupted:
            line += f", {len(self.interrupted)} interrupted by a worker that died (run again to resume)"
        return line


class SweepBusy(ValueError):
    """Another sweep is running in the same directory."""


@contextmanager
def sweep_lock(sweep_dir: Path) -> Iterator[None]:
    """Hold ``sweep_dir/sweep.lock`` (an ``flock`` that the kernel releases when this process ends, however it ends)
    for the block; :class:`SweepBusy` names the process that holds it. Where there is no flock (Windows), nothing
    is locked."""
    if fcntl is None:
        yield
        return
    path = Path(sweep_dir) / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise SweepBusy(
            f"--out {sweep_dir} is in use by another sweep (pid {holder}); wait for it to finish or stop it"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def run_sweep(sweep: SweepConfig, progress: bool = True) -> SweepReport:
    """Validate, lock the sweep directory, write sweep.json, run every unfinished grid point, then write results.csv.

    Raises ``ValueError`` (before any work) for bad settings or a Ray address where no cluster answers, and
    :class:`SweepBusy` (a ``ValueError``) while another sweep runs in the same directory. A failing run does not
    stop the others; it is listed in ``SweepReport.failed``. Ctrl-C raises ``KeyboardInterrupt`` once the workers
    have stopped.
    """
    sweep.validate()
    backend = backend_for(sweep)
    sweep_dir = Path(sweep.out)
    check_same_settings(sweep)  # before the lock, so that a refused sweep writes nothing
    with ray_cluster(sweep.ray_address, sweep.workers) if sweep.backend == "ray" else nullcontext():
        sweep_dir.mkdir(parents=True, exist_ok=True)
        with sweep_lock(sweep_dir):
            return run_locked(sweep, backend, progress)


def run_locked(sweep: SweepConfig, backend, progress: bool) -> SweepReport:
    """:func:`run_sweep` once its directory is locked."""
    sweep_dir = Path(sweep.out)
    check_same_settings(sweep)  # again: another sweep may have written sweep.json meanwhile
    record, path = sweep_record(sweep), sweep_dir / SWEEP_JSON
    earlier = read_json(path).get("method_settings", {}) if path.exists() else {}
    record["method_settings"] = {**earlier, **record["method_settings"]}  # methods of earlier invocations stay checked
    write_json(path, record)
    jobs, finished = plan(sweep)
    report = SweepReport(skipped=finished)
    total = len(finished) + sum(len(job.run_dirs) for job in jobs)
    bar = tqdm(total=total, initial=len(finished), unit="run", desc="sweep", disable=not progress)
    with bar:
        show_counts(bar, report, running=min(sweep.workers, len(jobs)))
        for ended, outcomes in enumerate(backend(jobs), start=1):
            for outcome in outcomes:
                report.add(outcome)
            bar.update(len(outcomes))
            show_counts(bar, report, running=min(sweep.workers, len(jobs) - ended))
    write_results(gather(sweep_dir), sweep_dir / RESULTS_CSV)
    return report


def show_counts(bar: tqdm, report: SweepReport, running: int) -> None:
    done = len(report.skipped) + len(report.trained) + len(report.resumed)
    bar.set_postfix(done=done, running=running, failed=len(report.failed) + len(report.interrupted))
