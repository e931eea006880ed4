"""Training throughput (environment steps per second of training, evaluation excluded).

Each configuration trains a few updates to warm up, then is timed over ``--updates`` more. The paper preset is timed
twice in the same run: backpropagating through the rollout's forward pass (the default) and recomputing it, as the
reference implementation does; their ratio is the speed-up from reuse. Routing is timed under each routed estimator
(``--routed-advantage``), each as a ratio to the paper's ``shared_baseline`` in the same run.

    python benchmarks/train_throughput.py [--updates 10]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

from oversight_rl.core.losses import ROUTED_ADVANTAGES
from oversight_rl.engine.config import PRESETS
from oversight_rl.engine.trainer import Trainer

REFERENCE_PAPER_STEPS_PER_S = 25_000  # the authors' code at the paper's settings on this machine (DESIGN section 5)


def steps_per_second(config, updates: int, warmup: int = 2) -> float:
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer([config], [run_dir], progress=False)
        for _ in range(warmup):
            trainer.train_step()
        start = time.perf_counter()
        for _ in range(updates):
            trainer.train_step()
        elapsed = time.perf_counter() - start
    return updates * config.num_envs * config.num_steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=10, help="timed updates per configuration")
    args = parser.parse_args()
    default, paper = PRESETS["default"], PRESETS["paper"]
    configs = {
        "routing ppo w64 (default)": default,
        **{
            f"routing ppo w64, {estimator}": dataclasses.replace(default, routed_advantage=estimator)
            for estimator in ROUTED_ADVANTAGES
        },
        "naive ppo w64": dataclasses.replace(default, method="naive"),
        "filtering ppo w64": dataclasses.replace(default, method="filtering"),
        "routing ppo w256": dataclasses.replace(default, width=256),
        "paper: routing reinforce w256, reuse": paper,
        "paper: routing reinforce w256, recompute": dataclasses.replace(paper, reuse_rollout_pass=False),
    }
    results = {}
    print(f"{'configuration':<44}{'env-steps/s':>14}")
    for name, config in configs.items():
        results[name] = steps_per_second(config, args.updates)
        print(f"{name:<44}{results[name]:>14,.0f}", flush=True)
    shared = results["routing ppo w64, shared_baseline"]
    print()
    for estimator in ROUTED_ADVANTAGES:
        ratio = results[f"routing ppo w64, {estimator}"] / shared
        print(f"routing, {estimator} / shared_baseline (same run): {ratio:.2f}x")
    reuse = results["paper: routing reinforce w256, reuse"]
    recompute = results["paper: routing reinforce w256, recompute"]
    print(f"paper preset, reuse / recompute (same run): {reuse / recompute:.2f}x")
    print(
        f"paper preset, reuse / reference code's {REFERENCE_PAPER_STEPS_PER_S:,} (external figure): "
        f"{reuse / REFERENCE_PAPER_STEPS_PER_S:.2f}x"
    )


if __name__ == "__main__":
    main()
