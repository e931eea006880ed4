"""Environment steps per second of DiamondGhost, natively batched vs. the single env in gymnasium's SyncVectorEnv,
then the torch env (``TorchDiamondGhost``) on CPU, and on CUDA when there is one, beside the numpy batched env.

Actions are random and drawn (with numpy, or with torch on the env's device) before the clock starts, so only the
environments are timed. Every form uses same-step autoreset.

    python benchmarks/env_throughput.py [--seconds 1.0] [--batch-sizes 1 64 512 4096] [--sync-max-batch 4096]
                                        [--torch-batch-sizes 512 4096] [--torch-threads 1]
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
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing it

import envs  # noqa: E402
from envs import DiamondGhostEnv, TorchDiamondGhost, make_torch  # noqa: E402

ACTION_ELEMENTS = 2**20  # pre-generated actions per measurement, cycled through
TORCH_STEPS_PER_CHECK = 10  # torch steps between clock checks (each check waits for the device)


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


def torch_steps_per_second(env: TorchDiamondGhost, seconds: float, seed: int) -> float:
    """Env steps per second of the torch ``env`` under random actions drawn on its device, for about ``seconds``;
    the clock stops only after the device has finished the steps counted."""
    n = env.num_envs
    generator = torch.Generator(device=env.device).manual_seed(seed)
    actions = torch.randint(0, 4, (max(16, ACTION_ELEMENTS // n), n), generator=generator, device=env.device)
    env.reset(seed=seed)
    for row in actions[:10]:  # warm up
        env.step(row)
    synchronize(env.device)
    steps, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(TORCH_STEPS_PER_CHECK):
            env.step(actions[steps % len(actions)])
            steps += 1
        synchronize(env.device)
        now = time.perf_counter()
        if now >= deadline:
            return steps * n / (now - start)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def numpy_steps_per_second(env_id: str, n: int, seconds: float, seed: int) -> float:
    batched = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point")
    rate = steps_per_second(batched, seconds, seed)
    batched.close()
    return rate


def torch_table(args: argparse.Namespace, numpy_rates: dict[int, float]) -> None:
    """The torch env on CPU (and CUDA) beside the numpy batched env, at ``args.torch_batch_sizes``."""
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s), devices: {', '.join(devices)}")
    columns = [f"{'batch':>6}", f"{'numpy steps/s':>14}"]
    for device in devices:
        columns += [f"{'torch ' + device + ' steps/s':>19}", f"{device + ' / numpy':>13}"]
    header = " | ".join(columns)
    print(header)
    print("-" * len(header))
    for n in args.torch_batch_sizes:
        if n not in numpy_rates:
            numpy_rates[n] = numpy_steps_per_second(args.env_id, n, args.seconds, args.seed)
        cells = [f"{n:>6}", f"{numpy_rates[n]:>14,.0f}"]
        for device in devices:
            rate = torch_steps_per_second(make_torch(args.env_id, n, device), args.seconds, args.seed)
            cells += [f"{rate:>19,.0f}", f"{rate / numpy_rates[n]:>12.2f}x"]
        print(" | ".join(cells), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="duration of each measurement")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64, 512, 4096])
    parser.add_argument("--sync-max-batch", type=int, default=4096, help="skip SyncVectorEnv above this batch size")
    parser.add_argument("--env-id", default="OversightRL/DiamondGhost-5x5-v0", choices=list(envs.NATIVE_PRESETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-batch-sizes", type=int, nargs="*", default=[512, 4096], help="none: skip torch")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch CPU threads (1 is fastest on 2 cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)

    settings = envs.NATIVE_PRESETS[args.env_id]
    print(f"{args.env_id}, random actions, {args.seconds:g} s per measurement")
    versions = f"python {platform.python_version()}, numpy {np.__version__}, gymnasium {gym.__version__}"
    print(f"{versions}, {platform.machine()}, {os.cpu_count()} CPUs")
    print()
    header = f"{'batch':>6} | {'batched steps/s':>16} | {'SyncVectorEnv steps/s':>22} | {'batched / sync':>14}"
    print(header)
    print("-" * len(header))
    numpy_rates: dict[int, float] = {}
    for n in args.batch_sizes:
        fast = numpy_rates[n] = numpy_steps_per_second(args.env_id, n, args.seconds, args.seed)
        if n <= args.sync_max_batch:
            sync = SyncVectorEnv([lambda: DiamondGhostEnv(**settings)] * n, autoreset_mode=AutoresetMode.SAME_STEP)
            slow = steps_per_second(sync, args.seconds, args.seed)
            sync.close()
            sync_text, ratio_text = f"{slow:>22,.0f}", f"{fast / slow:>13.1f}x"
        else:
            sync_text, ratio_text = f"{'skipped (> --sync-max-batch)':>22}", f"{'-':>14}"
        print(f"{n:>6} | {fast:>16,.0f} | {sync_text} | {ratio_text}", flush=True)
    if args.torch_batch_sizes:
        torch_table(args, numpy_rates)


if __name__ == "__main__":
    main()
