"""Figures and a results table for a sweep directory written by sweep_oversight.py.

    python scripts/plot_curves.py sweeps/oversight
    python scripts/plot_curves.py sweeps/oversight --out figures/

Writes learning_curves.png, return_vs_oversight.png (the paper's Fig. 6a), hacking_vs_oversight.png (the hacking
gap, and the two ghost rates it is made of) and results.csv (one row per run), and prints mean [95% bootstrap CI]
per method x oversight. Runs that are missing, failed or unreadable (a damaged config.json, summary.json or
eval.csv) are drawn as missing and listed with the reason, never dropped; a damaged sweep.json falls back to the
runs found on disk.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from oversight_rl.plots import plot_sweep
from oversight_rl.results import RESULTS_CSV, format_problems, format_table, gather, write_results


@dataclass
class CommandLine:
    sweep_dir: Annotated[tyro.conf.Positional[str], tyro.conf.arg(metavar="SWEEP_DIR")]
    """Sweep directory (holds sweep.json and one run directory per grid point)."""
    out: Annotated[str | None, tyro.conf.arg(help_behavior_hint="(default: the sweep directory)")] = None
    """Directory for the figures and results.csv."""


def main(argv: list[str]) -> int:
    args = tyro.cli(CommandLine, args=argv, description=__doc__)
    try:
        results = gather(args.sweep_dir)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out or args.sweep_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        flag = "--out" if args.out else "SWEEP_DIR"
        why = "is an existing file" if out.is_file() else f"cannot be created ({error.strerror or error})"
        print(f"error: {flag} {out} {why}; it must be a directory for the figures and results.csv", file=sys.stderr)
        return 2
    print(format_table(results))
    print()
    print(format_table(results, "hacking_gap"))
    problems = format_problems(results)
    if problems:
        print(problems)
    print(f"results: {write_results(results, out / RESULTS_CSV)}")
    for path in plot_sweep(results, out):
        print(f"figure: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
