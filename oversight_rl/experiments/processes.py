"""Worker processes that stop quietly and die with their parent, and SIGTERM handled like Ctrl-C.

A sweep runs its populations with :func:`run_in_processes`. Ctrl-C in a terminal (the whole process group), a
signal to the parent alone, ``timeout`` or ``kill`` all end in the same place: each worker unwinds its function as
on Ctrl-C (so a run keeps its last checkpoint), exits without a traceback, and the parent raises
``KeyboardInterrupt`` (:class:`Terminated` for SIGTERM). A worker whose parent was killed outright stops too.

A sweep, and a tuning, also holds a lock on its directory (:func:`oversight_rl.rundir.lock.directory_lock`), so
that a second one there cannot train the same runs twice.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
R = TypeVar("R")


def run_in_processes(function: Callable[[T], R], items: list[T], workers: int) -> Iterator[tuple[T, Callable[[], R]]]:
    """``function`` of each item in a fresh (spawned) process of its own, ``workers`` at a time, yielding each item
    with its result (a call that returns it, or raises the function's exception or :class:`BrokenProcessPool` when
    its process died) as it finishes. A process per item keeps a death to that item: the others run on. ``function``
    must be importable by name. On Ctrl-C (or SIGTERM, within :func:`sigterm_as_interrupt`), whether it reached this
    process alone or its whole process group (a terminal's Ctrl-C), the workers stop at once and without a traceback
    (:func:`stop_worker`), and if this process is killed they die with it (:func:`die_with_parent`); an interrupted
    function unwinds as on Ctrl-C."""
    before = set(multiprocessing.active_children())
    waiting, running = list(items), {}
    try:
        while waiting or running:
            while waiting and len(running) < workers:
                item = waiting.pop(0)
                pool = ProcessPoolExecutor(1, multiprocessing.get_context("spawn"), die_with_parent, (os.getpid(),))
                with ctrl_c_blocked():  # the pool starts its worker here: it begins with Ctrl-C blocked
                    running[pool.submit(call_in_worker, function, item)] = (item, pool)
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                item, pool = running.pop(future)
                pool.shutdown()
                yield item, future.result
    except BaseException:
        interrupt(set(multiprocessing.active_children()) - before)
        for _, pool in running.values():
            pool.shutdown()  # the workers have exited: join each pool's thread, so none outlives this process
        raise


@dataclass
class WorkerState:
    """What a pool worker's signal handler (:func:`stop_worker`) needs to know."""

    job_running: bool = False
    stopping: bool = False
    """A signal has already interrupted the job; the worker exits once the job has unwound."""


WORKER = WorkerState()
"""This process's state as a pool worker (unused in the sweep's own process)."""


def call_in_worker(function: Callable[[T], R], item: T) -> R:
    """``function(item)`` in a pool worker, which exits when stopped (:func:`stop_worker`) instead of taking the next
    item (as pools do), and without a traceback or its exit handlers. A signal that comes after the call has ended
    but before it is marked ended interrupts it too (a sweep's runs are then finished on disk, and skipped later)."""
    try:
        WORKER.job_running = True
        result = function(item)
        WORKER.job_running = False
    except KeyboardInterrupt as interruption:
        os._exit(exit_status(interruption))  # after the interrupted write cleaned up its temporary file
    return result


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
    ``grace_s`` later.

    tqdm's default lock is a named semaphore, which a worker that exits at once (``os._exit``) would leave for
    multiprocessing to warn about; a worker draws no bars, so a thread lock serves."""
    tqdm.set_lock(threading.RLock())
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
