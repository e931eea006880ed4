"""Population throughput: agent-env-steps of training per second for populations of several sizes (evaluation
excluded), and the ratio to training the same runs one at a time, measured in the same invocation.

CPU: the default preset (routing, PPO, width 64, 256 envs) for populations of 1, 4, 15 and 60 agents.
CUDA (when a GPU is present, or with --device cuda), on the on-device environment: the default preset for
populations of 1, 10 and 50 agents (50: one method of a 10-seed main grid), with the projected wall time of that grid
(5 oversight levels x 4 methods x 10 seeds, 2M steps per run); then the paper preset (REINFORCE, width 256, 512 envs)
for populations of 1, 8, 32 and 96 agents (96 fill the paper's Fig. 6a grid of 6 oversight levels x 4 methods x 4
seeds), with the projected wall time of that grid at 328M environment steps per run.

    python benchmarks/population_throughput.py [--updates 3] [--sizes 1 4 15 60] [--device cpu|cuda|all]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch

from oversight_rl.engine.config import PRESETS, TrainConfig
from oversight_rl.engine.trainer import Trainer

OVERSIGHT_LEVELS = (0.01, 0.03, 0.1, 0.3, 1.0)
PAPER_GRID_RUNS, PAPER_STEPS_PER_RUN = 96, 20_000 * 512 * 32
MAIN_GRID_RUNS, MAIN_STEPS_PER_RUN = 200, 2_000_000


def population(config: TrainConfig, size: int) -> list[TrainConfig]:
    """``size`` runs of ``config`` with distinct seeds, spread over the oversight levels."""
    levels = OVERSIGHT_LEVELS
    return [dataclasses.replace(config, seed=k, oversight=levels[k % len(levels)]) for k in range(size)]


def agent_steps_per_second(config: TrainConfig, size: int, updates: int, warmup: int = 1) -> float:
    """Agent-env-steps per second of ``train_step`` for a population of ``size`` agents."""
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(population(config, size), [Path(out) / str(k) for k in range(size)], progress=False)
        for _ in range(warmup):
            trainer.train_step()
        sync(config.device)
        start = time.perf_counter()
        for _ in range(updates):
            trainer.train_step()
        sync(config.device)
        elapsed = time.perf_counter() - start
    return size * updates * config.steps_per_update / elapsed


def sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def measure(title: str, config: TrainConfig, sizes: list[int], updates: int) -> dict[int, float]:
    print(f"\n{title}")
    print(f"{'agents':>8}{'agent-env-steps/s':>20}{'x one run alone':>18}")
    results: dict[int, float] = {}
    for size in sizes:
        results[size] = agent_steps_per_second(config, size, updates)
        ratio = results[size] / results[sizes[0]] if sizes[0] == 1 else float("nan")
        print(f"{size:>8}{results[size]:>20,.0f}{ratio:>17.2f}x", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=3, help="timed updates per population size")
    parser.add_argument("--sizes", type=int, nargs="+", help="population sizes (default: 1 4 15 60 on CPU)")
    parser.add_argument("--cuda-default-sizes", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--cuda-sizes", type=int, nargs="+", default=[1, 8, 32, 96], help="paper preset on CUDA")
    parser.add_argument(
        "--device", choices=["cpu", "cuda", "all"], default="all", help="all: CPU, then CUDA if present"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)

    if args.device in ("cpu", "all"):
        sizes = args.sizes or [1, 4, 15, 60]
        measure("CPU, default preset (routing, PPO, width 64, 256 envs), numpy environments", PRESETS["default"], sizes,
                args.updates)  # fmt: skip
    if args.device in ("cuda", "all"):
        if not torch.cuda.is_available():
            print("\nCUDA: no GPU here; skipped")
            return
        gpu = f"CUDA ({torch.cuda.get_device_name()})"
        default = dataclasses.replace(PRESETS["default"], device="cuda", env_backend="torch")
        results = measure(f"{gpu}, default preset, on-device environment", default, args.cuda_default_sizes,
                          args.updates)  # fmt: skip
        project("the 10-seed main grid", MAIN_GRID_RUNS, MAIN_STEPS_PER_RUN, results)
        paper = dataclasses.replace(PRESETS["paper"], device="cuda", env_backend="torch")
        results = measure(f"{gpu}, paper preset, on-device environment", paper, args.cuda_sizes, args.updates)
        project("the Fig. 6a grid", PAPER_GRID_RUNS, PAPER_STEPS_PER_RUN, results)


def project(grid: str, runs: int, steps_per_run: int, results: dict[int, float]) -> None:
    """Print the wall time of ``runs`` runs of ``steps_per_run`` steps at the best measured throughput (one process;
    evaluation excluded)."""
    best = max(results, key=results.get)
    hours = runs * steps_per_run / results[best] / 3600
    print(f"projected wall time of {grid} ({runs} runs x {steps_per_run:,} steps) at {results[best]:,.0f} "
          f"agent-env-steps/s (population {best}): {hours:.2f} h")  # fmt: skip


if __name__ == "__main__":
    main()
