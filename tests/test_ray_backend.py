"""Fault injection on the Ray backend: SIGTERM stops a Ray-backed sweep as it stops a local one (the sweep's
``Terminated``, so exit 143 and its "interrupted:" line), not with Ray's own stack dump and exit 1."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from oversight_rl.experiments.processes import Terminated, sigterm_as_interrupt


def test_sigterm_during_a_ray_wait_raises_the_sweeps_terminated():
    pytest.importorskip("ray")
    from oversight_rl.adapters.ray import ray_cluster, run_on_ray

    sigterm = threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGTERM))
    with sigterm_as_interrupt():
        ours = signal.getsignal(signal.SIGTERM)
        try:
            with pytest.raises(Terminated), ray_cluster(None, 1):
                results = run_on_ray(lambda seconds: time.sleep(seconds), [60])
                sigterm.start()
                next(results)  # waits in Ray until the signal arrives
        finally:
            sigterm.cancel()
        assert signal.getsignal(signal.SIGTERM) is ours
