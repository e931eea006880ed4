"""RoutedPPO (Stable-Baselines3) against the package's own PPO trainer, at the same settings.

Both train the same routed mixture (width 64) with the same rollout (256 envs x 32 steps), epochs (4), minibatches
(4) and loss (oversight_rl.core.losses.routed_loss). Two measurements:

- throughput: environment steps per second of training (evaluation excluded), timed over ``--updates`` updates
  after two warm-up updates. SB3 runs twice: on the natively batched environment through
  ``oversight_rl.sb3.BatchedVecEnv``, and on SB3's own ``make_vec_env`` (a ``DummyVecEnv`` of single envs), which is
  what an SB3 user gets by default;
- returns: full runs of the default configuration (routing, 10% oversight, 2M env steps) with each trainer, for each
  seed: the deployed Diamond expert's final true return, its final hacking gap, and the wall time.

RoutedPPO runs with its defaults, so a time-out is an episode end worth 0 as in the native trainer (SB3's own
bootstrap of time-outs, ``bootstrap_timeouts=True``, lowered the final return by about 0.08 here). Both trainers
share the machine's two cores with whatever else runs: compare the ratios of one invocation, not absolute numbers
across invocations.

    python benchmarks/sb3_vs_native.py [--updates 10] [--seeds 0 1] [--skip-returns] [--out runs/sb3_vs_native]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch
from stable_baselines3.common.env_util import make_vec_env
from train_throughput import steps_per_second  # this folder is on the path when run as a script

from oversight_rl.core.methods import get_method
from oversight_rl.engine.config import PRESETS, TrainConfig
from oversight_rl.engine.launch import train
from oversight_rl.rundir.files import run_name
from oversight_rl.sb3.train import make_model, train_sb3
from oversight_rl.sb3.vec_env import make_batched_vec_env

DEFAULT = PRESETS["default"]


def sb3_steps_per_second(cfg: TrainConfig, updates: int, env_kind: str, warmup: int = 2) -> float:
    """RoutedPPO's training throughput on the batched env (``batched``) or SB3's ``make_vec_env`` (``dummy``)."""
    kwargs = {"oversight": cfg.oversight}
    if env_kind == "batched":
        env = make_batched_vec_env(cfg.env, cfg.num_envs, seed=cfg.seed, **kwargs)
    else:
        env = make_vec_env(cfg.env, n_envs=cfg.num_envs, seed=cfg.seed, env_kwargs=kwargs)
    steps = cfg.num_envs * cfg.num_steps
    with tempfile.TemporaryDirectory() as run_dir:
        model = make_model(cfg, get_method(cfg.method), env, Path(run_dir))
        model.learn(warmup * steps, progress_bar=False)
        start = time.perf_counter()
        model.learn(updates * steps, reset_num_timesteps=False, progress_bar=False)
        elapsed = time.perf_counter() - start
    return updates * steps / elapsed


def throughput_table(cfg: TrainConfig, updates: int) -> None:
    torch.set_num_threads(cfg.threads)
    results = {
        "native trainer": steps_per_second(cfg, updates),
        "RoutedPPO, batched env": sb3_steps_per_second(cfg, updates, "batched"),
        "RoutedPPO, make_vec_env (DummyVecEnv)": sb3_steps_per_second(cfg, updates, "dummy"),
    }
    native = results["native trainer"]
    print(f"throughput: routing, width {cfg.width}, {cfg.num_envs} envs x {cfg.num_steps} steps, {updates} updates")
    print(f"{'trainer':<42}{'env-steps/s':>14}{'/ native':>10}")
    for name, value in results.items():
        print(f"{name:<42}{value:>14,.0f}{value / native:>9.2f}x", flush=True)


def run_returns(cfg: TrainConfig, trainer: str, out: Path) -> dict:
    """Train ``cfg`` to the end with one trainer; the deployed variant's numbers and the wall time."""
    run_dir = out / trainer / run_name(cfg.method, cfg.oversight, cfg.seed)
    start = time.perf_counter()
    summary = (train_sb3 if trainer == "sb3" else train)(dataclasses.replace(cfg, trainer=trainer), run_dir, False)
    deployed = summary["variants"][summary["deployed"]]
    return {
        "final": deployed["final"]["true_return"],
        "hacking_gap": deployed["final"]["hacking_gap"],
        "train_s": summary["wall_s"],
        "total_s": time.perf_counter() - start,
    }


def returns_table(cfg: TrainConfig, seeds: list[int], out: Path) -> None:
    print(f"\nreturns: routing at oversight {cfg.oversight:g}, {cfg.total_env_steps:,} env steps, Diamond expert")
    header = f"{'trainer':<10}{'seed':>5}{'final':>8}{'hack gap':>10}{'train s':>9}{'total s':>9}"
    print(header)
    rows = {}
    for seed in seeds:
        for trainer in ("native", "sb3"):
            row = rows[trainer, seed] = run_returns(dataclasses.replace(cfg, seed=seed), trainer, out)
            print(
                f"{trainer:<10}{seed:>5}{row['final']:>8.3f}{row['hacking_gap']:>10.3f}"
                f"{row['train_s']:>9.1f}{row['total_s']:>9.1f}",
                flush=True,
            )
    for seed in seeds:
        native, sb3 = rows["native", seed], rows["sb3", seed]
        print(
            f"seed {seed}: sb3 - native final return {sb3['final'] - native['final']:+.3f}; "
            f"sb3 / native training time {sb3['train_s'] / native['train_s']:.2f}x"
        )
    means = {trainer: sum(rows[trainer, s]["final"] for s in seeds) / len(seeds) for trainer in ("native", "sb3")}
    print(f"mean final return over {len(seeds)} seeds: native {means['native']:.3f}, sb3 {means['sb3']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=10, help="timed updates per trainer")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of the full runs")
    parser.add_argument("--skip-returns", action="store_true", help="measure throughput only")
    parser.add_argument("--skip-throughput", action="store_true", help="measure returns only")
    parser.add_argument("--total-env-steps", type=int, default=DEFAULT.total_env_steps, help="budget of the full runs")
    parser.add_argument("--out", default=None, help="keep the full runs' directories here (default: temporary)")
    args = parser.parse_args()
    if not args.skip_throughput:
        throughput_table(DEFAULT, args.updates)
    if args.skip_returns:
        return
    config = dataclasses.replace(DEFAULT, total_env_steps=args.total_env_steps)
    if args.out:
        returns_table(config, args.seeds, Path(args.out))
    else:
        with tempfile.TemporaryDirectory() as out:
            returns_table(config, args.seeds, Path(out))


if __name__ == "__main__":
    main()
