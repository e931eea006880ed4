"""Does a run compute the same bits wherever it sits? One agent trained for a few updates alone, and in populations
of several sizes at several positions, on this machine; its parameters are compared with those it has as the first
of a population of two.

A sweep's rows reproduce bit for bit when rerun only if each run computes the same bits in the population it gets
the second time (see docs/results.md, "Reproducing a row"). Alone, the math library takes other kernels for the
one-output layers (value head, gate), so a run alone differs; in a population its bits may also depend on the
population's size and on the agent's position in it (kernels depend on shapes and memory alignment).

    python benchmarks/reproducibility.py [--updates 3] [--method routing] [--width 64] [--num-envs 256] [--num-steps 32]

Measured on the reference machine: at the default shapes (256 environments x 32 steps, width 16 or 64) the agent is
identical at every size and position of two or more and differs alone (by 6e-8 after 3 updates); at the tests' tiny
shapes (16 x 8, width 16) it differs at some positions too.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import torch

from oversight_rl.engine.config import TrainConfig
from oversight_rl.engine.trainer import Trainer

LAYOUTS = [(1, 0), (2, 0), (2, 1), (3, 2), (5, 0), (5, 4), (10, 7)]
"""(population size, position of the measured agent): the reference is (2, 0)."""


def parameters_at(config: TrainConfig, size: int, position: int, updates: int) -> dict[str, torch.Tensor]:
    """The measured agent's parameters after ``updates`` updates at ``position`` of a population of ``size``; the
    other agents have other seeds."""
    others = iter(range(1, size))
    seeds = [0 if k == position else next(others) for k in range(size)]
    with tempfile.TemporaryDirectory() as out:
        cfgs = [dataclasses.replace(config, seed=s) for s in seeds]
        trainer = Trainer(cfgs, [Path(out) / str(k) for k in range(size)], progress=False)
        for _ in range(updates):
            trainer.train_step()
            for agent in trainer.agents:
                agent.update += 1
        return trainer.population.agent_state(position)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=3)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--method", default="routing")
    parser.add_argument("--num-envs", type=int, default=TrainConfig.num_envs)
    parser.add_argument("--num-steps", type=int, default=TrainConfig.num_steps)
    args = parser.parse_args()
    config = TrainConfig(method=args.method, width=args.width, num_envs=args.num_envs, num_steps=args.num_steps)
    config = dataclasses.replace(config, env_backend="torch", eval_envs=64)
    reference = parameters_at(config, 2, 0, args.updates)
    print(f"{args.method}, width {args.width}, {args.updates} updates of {args.num_envs} x {args.num_steps} steps")
    print(f"{'population':>10}  {'position':>8}  {'identical':>9}  {'max |difference|':>16}")
    for size, position in LAYOUTS:
        mine = parameters_at(config, size, position, args.updates)
        difference = max((mine[name] - reference[name]).abs().max().item() for name in reference)
        identical = all(torch.equal(mine[name], reference[name]) for name in reference)
        print(f"{size:>10}  {position:>8}  {str(identical):>9}  {difference:>16.3g}")


if __name__ == "__main__":
    main()
