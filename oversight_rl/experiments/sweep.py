"""Many runs: every method at every oversight fraction with several seeds, as populations, in parallel, resumable.

The grid is grouped into populations (:mod:`oversight_rl.engine.trainer`): runs of one method with the same budget
differ only in seed and oversight, so up to ``population_size`` of them train as one batched computation. ``sweep.json``
records the sweep's settings and that grouping (``populations``: lists of run names).

A sweep directory holds ``sweep.json``, ``results.csv`` (one row per run) and one run directory per grid point, named
``run_name(method, oversight, seed)``. Running the same sweep again skips finished runs, resumes interrupted ones
from their checkpoint, and trains failed, never-checkpointed or damaged-checkpoint ones again (:func:`resumable`),
each inside its population. It deletes nothing but the temporary files of writes that a killed process left: a
failed run keeps its ``error.json`` (exception type, message, traceback) while it is trained again, but a run stopped
by a file it could not write (a full or read-only disk) records none: the write left the old file whole, and the run
resumes from its last checkpoint. A failure inside a population fails every unfinished run of it.

Nothing is lost and nothing runs twice: a sweep holds ``sweep.lock`` in its directory while it runs (a second sweep
there is refused; the kernel releases the lock of a process that died), its worker processes die with it however
it dies (SIGKILL, SIGTERM, Ctrl-C), and a run counts as finished only when its summary matches its other files
and its checkpoint is whole.

Backends:
    local  parallel processes on this machine, one population each (``workers=1`` runs serially in this process).
    ray    one Ray task per population (``num_cpus=1``): on a running cluster given ``ray_address`` (the sweep
           directory must then be on a filesystem every node shares, and the package installed on every node),
           or on a local cluster of ``workers`` CPUs.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from functools import partial
from itertools import product
from pathlib import Path
from typing import Literal

from tqdm.auto import tqdm

from oversight_rl._version import __version__
from oversight_rl.core.methods import METHODS, get_method
from oversight_rl.engine.config import ADDED_SETTINGS, MAX_SEED, RUNTIME_SETTINGS, TrainConfig, with_overrides
from oversight_rl.engine.launch import train_population
from oversight_rl.engine.plugins import plugin
from oversight_rl.engine.trainer import population_key
from oversight_rl.experiments.processes import run_in_processes
from oversight_rl.rundir.files import (
    CHECKPOINT,
    ERROR,
    RESULTS_CSV,
    SWEEP_JSON,
    check_archive,
    check_directory,
    error_message,
    read_json,
    run_name,
    write_json,
)
from oversight_rl.rundir.gather import foreign, gather, place_run, write_results
from oversight_rl.rundir.lock import DirectoryBusy, directory_lock
from oversight_rl.rundir.readers import Malformed, Unreadable, read_run_file
from oversight_rl.rundir.status import DONE, INTERRUPTED, run_status

DEFAULT_OVERSIGHT = (0.01, 0.03, 0.1, 0.3, 1.0)
DEFAULT_METHODS = ("routing", "filtering", "naive", "oracle")
RUNTIME_ONLY = RUNTIME_SETTINGS
"""Training settings that may change between invocations of one sweep: they do not change what a run computes."""


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
        grid = product(self.methods, [float(p) + 0.0 for p in self.oversight], range(self.seeds))  # -0 is 0
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
    (see :func:`run_job`), so a job retried after a crash resumes too. ``beside_twin``: a lone run of a sweep whose
    populations hold several trains beside a throwaway twin (:func:`twin_of`)."""

    configs: tuple[TrainConfig, ...]
    run_dirs: tuple[str, ...]
    beside_twin: bool = False

    @property
    def names(self) -> list[str]:
        return [Path(d).name for d in self.run_dirs]


def plan(sweep: SweepConfig) -> tuple[list[Job], list[str], dict[str, str]]:
    """One job per population with unfinished runs, the names of the runs already finished, and the runs refused
    with the reason: a run directory that is not its run (:func:`~oversight_rl.rundir.gather.foreign`) is neither
    trained nor counted, and nothing is written into it."""
    jobs, finished, refused = [], [], {}
    for members in populations(sweep):
        todo = []
        for config in members:
            run_dir = run_dir_of(sweep, config)
            problem = foreign(run_dir, place_run(run_dir)[0])
            if problem:
                refused[run_dir.name] = f"{run_dir} is {problem}; move it away and run the sweep again"
            elif run_status(run_dir) == DONE:
                finished.append(run_dir.name)
            else:
                todo.append((config, str(run_dir)))
        if todo:
            configs, run_dirs = zip(*todo, strict=True)
            alone = len(todo) == 1 and sweep.population_size > 1 and configs[0].trainer == "native"
            jobs.append(Job(configs, run_dirs, beside_twin=alone))
    return jobs, finished, refused


def twin_of(config: TrainConfig) -> TrainConfig:
    """A run to train beside ``config`` when it would otherwise train alone, and then to throw away.

    Alone, the math library takes other kernels for the one-output layers than in a population of two or more, so
    a run of a sweep computes other bits when its population-mates have finished (an early stop, a resume, a run
    directory removed and retrained). Beside a twin it computes what it computed in its population: the agents do
    not mix (tests/test_population.py), so the twin's seed does not matter; it logs nowhere."""
    logging_off = {name: getattr(TrainConfig, name) for name in ("tensorboard", "track")}
    return dataclasses.replace(config, seed=(config.seed + 1) % (MAX_SEED + 1), **logging_off)


def sweep_record(sweep: SweepConfig) -> dict:
    """What sweep.json holds: the grid, the backend and the shared training settings."""
    record = dataclasses.asdict(sweep)
    record["oversight"] = [float(p) for p in sweep.oversight]
    record["methods"] = list(sweep.methods)
    for name in ("method", "oversight", "seed"):
        record["train"].pop(name)
    record["populations"] = [[run_dir_of(sweep, c).name for c in members] for members in populations(sweep)]
    return {**record, "version": __version__}


def read_sweep_record(path: Path) -> dict:
    """sweep.json's content; a one-line ``ValueError`` naming the file when it cannot be read or is not the record
    of a sweep (a table whose ``train`` and ``method_settings`` are tables)."""

    def check(record) -> dict:
        tables = isinstance(record, dict) and all(
            isinstance(record.get(k, {}), dict) for k in ("train", "method_settings")
        )
        if not tables or "train" not in record:
            raise Malformed("not the record of a sweep (a table with a 'train' table)")
        return record

    try:
        return read_run_file(path, read_json, check)
    except Unreadable as error:
        raise ValueError(f"--out {path.parent} holds a damaged {error}; move it away or use another --out") from None


def check_same_settings(sweep: SweepConfig) -> None:
    """Refuse to mix runs of different training settings in one sweep directory (the grid may grow or shrink); a
    setting added since the sweep was recorded counts with the value that computes what it did."""
    path = Path(sweep.out) / SWEEP_JSON
    if not path.exists():
        return
    before, now = read_sweep_record(path), sweep_record(sweep)
    recorded = {**ADDED_SETTINGS, **before["train"]}
    changed = [
        f"{k}: {recorded.get(k)!r} -> {v!r}"
        for k, v in now["train"].items()
        if k not in RUNTIME_ONLY and recorded.get(k) != v
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
    """Interrupted with a whole checkpoint to continue from; failed runs and runs never checkpointed start again.

    So does a run whose checkpoint is damaged (cut short, emptied, overwritten: :func:`check_archive`), rather than
    failing its whole population: it alone starts again (its first checkpoint replaces the damaged one), while its
    population-mates resume from theirs; :func:`warn_of_damage` says so. Its results do not change: an agent computes
    from its own seed and update counter only, never from its mates' progress, so the restarted run repeats its lost
    updates bit for bit, as any run that starts again inside its population does; only its wall time grows."""
    return run_status(run_dir) == INTERRUPTED and checkpoint_damage(run_dir) is None


def checkpoint_damage(run_dir: Path) -> str | None:
    """What keeps the run's checkpoint from being resumed (missing, or damaged: :func:`check_archive`), or None."""
    try:
        check_archive(run_dir / CHECKPOINT)
    except (OSError, ValueError) as error:
        return str(error)
    return None


def warn_of_damage(run_dirs: list[Path]) -> None:
    """One line on stderr for each interrupted run whose checkpoint is damaged, which starts again (:func:`resumable`);
    said by the sweep's own process before its progress bar, not by the worker that decides it."""
    for run_dir in run_dirs:
        checkpoint = run_dir / CHECKPOINT
        damage = checkpoint_damage(run_dir) if checkpoint.exists() else None
        if damage is not None and run_status(run_dir) == INTERRUPTED:
            print(f"warning: {checkpoint} is damaged ({damage}); {run_dir.name} starts again", file=sys.stderr)


def run_job(job: Job) -> list[Outcome]:
    """Resume or train one population's runs without a progress bar. An exception is recorded in the error.json of
    every run it left unfinished, not raised."""
    run_dirs = [Path(d) for d in job.run_dirs]
    resumed = [resumable(run_dir) for run_dir in run_dirs]
    try:
        with tempfile.TemporaryDirectory(prefix="oversight-rl-twin-") as scratch:
            twin = [twin_of(job.configs[0])] if job.beside_twin else []
            configs, dirs = [*job.configs, *twin], run_dirs + [Path(scratch) / "twin"] * len(twin)
            train_population(configs, dirs, resume=resumed + [False] * len(twin), progress=False)
    except DirectoryBusy as busy:  # another process trains a run of it: write nothing there; the next sweep retries
        return [Outcome(name, r, error=str(busy)) for name, r in zip(job.names, resumed, strict=True)]
    except Exception as error:
        return record_failure(job, error, resumed)
    return [Outcome(name, r) for name, r in zip(job.names, resumed, strict=True)]


def record_failure(job: Job, error: BaseException, resumed: list[bool] | None = None) -> list[Outcome]:
    """Write the error (type, message, traceback) to the error.json of each of the job's unfinished runs. An
    ``OSError`` (a file that could not be written: a full or read-only disk) is no fault of the runs and is not
    recorded, so that each resumes from its last checkpoint, as an interrupted run does."""
    resumed = resumed or [False] * len(job.run_dirs)
    record = {
        "type": type(error).__name__,
        "message": str(error),
        "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__)),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    disk = isinstance(error, OSError)
    line = error_message(error) if disk else f"{record['type']}: {record['message']}".splitlines()[0]
    outcomes = []
    for run_dir, r in zip(map(Path, job.run_dirs), resumed, strict=True):
        if run_status(run_dir) == DONE:  # finished before its population failed
            outcomes.append(Outcome(run_dir.name, r))
            continue
        if not disk:
            write_error(run_dir, {**record, "resumed": r})
        outcomes.append(Outcome(run_dir.name, r, error=line))
    return outcomes


def write_error(run_dir: Path, record: dict) -> None:
    """The run's error.json, if it can be written; if not (the disk is full), the run is left to resume, and the
    sweep's summary line still names the failure."""
    with suppress(OSError):
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / ERROR, record)


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


# ----- backends: each calls a function on every item and yields each item with its result as it finishes -------

Backend = Callable[[Callable[[Job], list[Outcome]], list[Job]], Iterator[tuple[Job, Callable[[], list[Outcome]]]]]


def run_serially(function: Callable[[Job], list[Outcome]], jobs: list[Job]) -> Iterator[tuple[Job, Callable]]:
    """In this process, one after the other (easy to debug and to test)."""
    for job in jobs:
        yield job, partial(function, job)


def backend_for(sweep: SweepConfig) -> Backend:
    if sweep.backend == "ray":
        ray = plugin("backend", "ray")
        ray.import_ray()  # fail before any work when Ray is missing
        return ray.run_on_ray
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
    notes: list[str] = field(default_factory=list)

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


def run_sweep(sweep: SweepConfig, progress: bool = True) -> SweepReport:
    """Validate, lock the sweep directory, write sweep.json, run every unfinished grid point, then write results.csv.

    Raises ``ValueError`` (before any work) for bad settings or a Ray address where no cluster answers, and
    ``DirectoryBusy`` (a ``ValueError``, :func:`~oversight_rl.rundir.lock.directory_lock`) while another
    sweep runs in the same directory. A failing run does not stop the others; it is listed in ``SweepReport.failed``.
    Ctrl-C raises ``KeyboardInterrupt`` once the workers have stopped.
    """
    sweep.validate()
    backend = backend_for(sweep)
    sweep_dir = Path(sweep.out)
    check_same_settings(sweep)  # before the lock, so that a refused sweep writes nothing
    ray = plugin("backend", "ray") if sweep.backend == "ray" else None
    with ray.ray_cluster(sweep.ray_address, sweep.workers) if ray else nullcontext():
        sweep_dir.mkdir(parents=True, exist_ok=True)
        with directory_lock(sweep_dir, "sweep"):
            return run_locked(sweep, backend, progress)


def with_recorded_grouping(sweep: SweepConfig) -> tuple[SweepConfig, list[str]]:
    """``sweep`` with the population size its sweep.json records, and a note if ``--population-size`` asked for
    another: a run computes other bits alone than in a population, so resumed and retrained runs keep the grouping
    the sweep's finished runs had."""
    path = Path(sweep.out) / SWEEP_JSON
    recorded = read_sweep_record(path).get("population_size") if path.exists() else None
    if not isinstance(recorded, int) or recorded < 1 or recorded == sweep.population_size:
        return sweep, []
    note = (
        f"--population-size {sweep.population_size} ignored: {sweep.out} trains populations of {recorded}, as "
        "its sweep.json records (another --out starts a sweep with another size)"
    )
    return dataclasses.replace(sweep, population_size=recorded), [note]


def run_locked(sweep: SweepConfig, backend: Backend, progress: bool) -> SweepReport:
    """:func:`run_sweep` once its directory is locked."""
    sweep_dir = Path(sweep.out)
    check_same_settings(sweep)  # again: another sweep may have written sweep.json meanwhile
    sweep, notes = with_recorded_grouping(sweep)
    record, path = sweep_record(sweep), sweep_dir / SWEEP_JSON
    earlier = read_sweep_record(path).get("method_settings", {}) if path.exists() else {}
    record["method_settings"] = {**earlier, **record["method_settings"]}  # methods of earlier invocations stay checked
    write_json(path, record)
    jobs, finished, refused = plan(sweep)
    warn_of_damage([Path(run_dir) for job in jobs for run_dir in job.run_dirs])
    report = SweepReport(skipped=finished, failed=refused, notes=notes)
    total = len(finished) + len(refused) + sum(len(job.run_dirs) for job in jobs)
    bar = tqdm(total=total, initial=len(finished) + len(refused), unit="run", desc="sweep", disable=not progress)
    with bar:
        show_counts(bar, report, running=min(sweep.workers, len(jobs)))
        for ended, (job, result) in enumerate(backend(run_job, jobs), start=1):
            outcomes = outcome_of(job, result, interruptions=(BrokenProcessPool,))
            for outcome in outcomes:
                report.add(outcome)
            bar.update(len(outcomes))
            show_counts(bar, report, running=min(sweep.workers, len(jobs) - ended))
    write_results(gather(sweep_dir), sweep_dir / RESULTS_CSV)
    return report


def show_counts(bar: tqdm, report: SweepReport, running: int) -> None:
    done = len(report.skipped) + len(report.trained) + len(report.resumed)
    bar.set_postfix(done=done, running=running, failed=len(report.failed) + len(report.interrupted))
