"""The package's science targets, measured: default-run quality and time, naive hacking, fair baselines.

Runs each configuration below to completion (one process, one thread) and prints the deployed variant's final and
best true return, its final hacking gap and the wall time. Run directories are kept under ``--out``.

    python benchmarks/science_targets.py [--out runs/science] [--only default naive filtering drift]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from oversight_rl.engine.config import PRESETS
from oversight_rl.engine.launch import train
from oversight_rl.rundir.files import run_name

DEFAULT = PRESETS["default"]


def groups() -> dict[str, dict[str, object]]:
    replace = dataclasses.replace
    return {
        "default": {f"routing seed {s}": replace(DEFAULT, seed=s) for s in range(3)},
        "naive": {
            "naive (default settings)": replace(DEFAULT, method="naive"),
            "naive, constant lr, 6M steps": replace(
                DEFAULT, method="naive", anneal_lr=False, total_env_steps=6_000_000
            ),
        },
        "filtering": {
            "filtering tuned": replace(DEFAULT, method="filtering"),
            "filtering paper-style": replace(DEFAULT, method="filtering", filtering="paper"),
            "oracle": replace(DEFAULT, method="oracle"),
        },
        "drift": {"routing, constant lr": replace(DEFAULT, anneal_lr=False)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/science")
    parser.add_argument("--only", nargs="*", choices=list(groups()), default=list(groups()))
    args = parser.parse_args()
    header = f"{'configuration':<32}{'final':>8}{'hack gap':>10}{'wall s':>9}"
    rows = []
    for group in args.only:
        for label, config in groups()[group].items():
            run_dir = Path(args.out) / group / f"{run_name(config.method, config.oversight, config.seed)}-{label[:40]}"
            start = time.perf_counter()
            summary = train(config, run_dir.with_name(run_dir.name.replace(" ", "_").replace(",", "")), progress=False)
            wall = time.perf_counter() - start
            result = summary["variants"][summary["deployed"]]
            final = result["final"]
            rows.append(f"{label:<32}{final['true_return']:>8.3f}{final['hacking_gap']:>10.3f}{wall:>9.1f}")
            print(rows[-1], flush=True)
    print("\n" + header + "\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
