"""Ray as a sweep backend: one task of one CPU per population, on a running cluster or a local one.

Ray is imported only here, and only when used (it is the ``ray`` extra).
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def import_ray():
    """Ray, imported only when the ray backend is used."""
    try:
        import ray
    except ImportError as error:
        raise ValueError("--backend ray needs Ray: pip install -e '.[ray]'") from error
    return ray


def run_on_ray(function: Callable[[T], R], items: list[T]) -> Iterator[tuple[T, Callable[[], R]]]:
    """``function`` of each item as Ray tasks of one CPU each, on the cluster :func:`ray_cluster` connected to,
    yielding each item with its result (a call that returns it or raises) as it finishes."""
    ray = import_ray()
    task = ray.remote(num_cpus=1)(function)
    pending = {task.remote(item): item for item in items}
    try:
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            yield pending.pop(ready), partial(ray.get, ready)
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
    sigterm = signal.getsignal(signal.SIGTERM)
    if address:
        connect_ray(ray, address)
    else:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    raised: list[BaseException] = []
    if callable(sigterm):  # Ray's own handler prints a stack dump and exits 1: the caller's stays in charge
        signal.signal(signal.SIGTERM, partial(keep_raised, sigterm, raised))
    try:
        yield
    except KeyboardInterrupt:
        if raised:  # Ray turns an exception raised by a signal handler during its calls into a KeyboardInterrupt
            raise raised[0] from None
        raise
    finally:
        signal.signal(signal.SIGTERM, sigterm)
        ray.shutdown()


def keep_raised(handler: Callable, raised: list[BaseException], signum: int, frame) -> None:
    """Call the signal handler ``handler``, keeping what it raises in ``raised``."""
    try:
        handler(signum, frame)
    except BaseException as error:
        raised.append(error)
        raise


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
