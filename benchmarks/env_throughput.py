"""Environment steps per second of DiamondGhost, natively batched vs. the single env in gymnasium's SyncVectorEnv.

Actions are random and drawn with numpy before the clock starts, so only the environments are timed. Both forms use
same-step autoreset.

    python benchmarks/env_throughput.py [--seconds 1.0] [--batch-sizes 1 64 512 4096] [--sync-max-batch 4096]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing it

import envs  # noqa: E402
from envs import DiamondGhostEnv  # noqa: E402

ACTION_ELEMENTS = 2**20  # pre-generated actions per measurement, cycled through


def steps_per_second(env: gym.vector.VectorEnv, seconds: float, seed: int) -> float:
    """Env steps per second (batch steps x batch size) of ``env`` under random actions, for about ``seconds``."""
    n = env.num_envs
    actions = np.random.default_rng(seed).integers(0, 4, size=(max(16, ACTION_ELEMENTS // n), n))
    env.reset(seed=seed)
    for row in actions[:10]:  # warm up
        env.step(row)
    steps, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        env.step(actions[steps % len(actions)])
        steps += 1
        now = time.perf_counter()
        if now >= deadline:
            return steps * n / (now - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="duration of each measurement")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64, 512, 4096])
    parser.add_argument("--sync-max-batch", type=int, default=4096, help="skip SyncVectorEnv above this batch size")
    parser.add_argument("--env-id", default="OversightRL/DiamondGhost-5x5-v0", choices=list(envs.NATIVE_PRESETS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    settings = envs.NATIVE_PRESETS[args.env_id]
    print(f"{args.env_id}, random actions, {args.seconds:g} s per measurement")
    versions = f"python {platform.python_version()}, numpy {np.__version__}, gymnasium {gym.__version__}"
    print(f"{versions}, {platform.machine()}, {os.cpu_count()} CPUs")
    print()
    header = f"{'batch':>6} | {'batched steps/s':>16} | {'SyncVectorEnv steps/s':>22} | {'batched / sync':>14}"
    print(header)
    print("-" * len(header))
    for n in args.batch_sizes:
        batched = gym.make_vec(args.env_id, num_envs=n, vectorization_mode="vector_entry_point")
        fast = steps_per_second(batched, args.seconds, args.seed)
        batched.close()
        if n <= args.sync_max_batch:
            sync = SyncVectorEnv([lambda: DiamondGhostEnv(**settings)] * n, autoreset_mode=AutoresetMode.SAME_STEP)
            slow = steps_per_second(sync, args.seconds, args.seed)
            sync.close()
            sync_text, ratio_text = f"{slow:>22,.0f}", f"{fast / slow:>13.1f}x"
        else:
            sync_text, ratio_text = f"{'skipped (> --sync-max-batch)':>22}", f"{'-':>14}"
        print(f"{n:>6} | {fast:>16,.0f} | {sync_text} | {ratio_text}", flush=True)


if __name__ == "__main__":
    main()
