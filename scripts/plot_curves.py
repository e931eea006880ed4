"""Figures and a results table for a sweep directory written by sweep_oversight.py.

    python scripts/plot_curves.py sweeps/oversight
    python scripts/plot_curves.py sweeps/oversight --out figures/

Writes learning_curves.png, return_vs_oversight.png (the paper's Fig. 6a), hacking_vs_oversight.png (the hacking
gap, and the two ghost rates it is made of), results.csv (one row per run), summary.csv (one row per method x
oversight: seeds, mean, IQM and their 95% bootstrap CIs of the final true_return and hacking_gap) and
improvement.csv (the probability that routing, or --reference METHOD, scores a higher final true_return than each
other method, per oversight level and over all levels, with its 95% stratified bootstrap CI), and prints those
tables. Runs that are missing, failed or unreadable (a damaged config.json, summary.json or eval.csv) are drawn as
missing and listed with the reason, never dropped; a damaged sweep.json falls back to the runs found on disk. Exit
status 2, with one error: line, for bad arguments or a file that cannot be written (a full or read-only disk).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from oversight_rl.analysis.comparison import (
    IMPROVEMENT_CSV,
    REFERENCE_METHOD,
    SUMMARY_CSV,
    format_improvement,
    format_table,
    write_improvement,
    write_summary,
)
from oversight_rl.analysis.figures.plots import plot_sweep
from oversight_rl.engine.command_line import cli
from oversight_rl.rundir.files import RESULTS_CSV, error_message
from oversight_rl.rundir.gather import SweepResults, format_problems, gather, write_results


@dataclass
class CommandLine:
    sweep_dir: Annotated[tyro.conf.Positional[str], tyro.conf.arg(metavar="SWEEP_DIR")]
    """Sweep directory (holds sweep.json and one run directory per grid point)."""
    out: Annotated[str | None, tyro.conf.arg(help_behavior_hint="(default: the sweep directory)")] = None
    """Directory for the figures, results.csv, summary.csv and improvement.csv."""
    reference: Annotated[str | None, tyro.conf.arg(help_behavior_hint="(default: routing, where the sweep has it)")] = (
        None
    )
    """Method whose probability of beating each other method of the sweep is tabled (improvement.csv)."""


def main(argv: list[str]) -> int:
    args = cli(CommandLine, argv, description=__doc__)
    try:
        results = gather(args.sweep_dir)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    reference = args.reference or REFERENCE_METHOD
    if args.reference is not None and args.reference not in results.methods:
        print(
            f"error: --reference must be a method of the sweep ({', '.join(results.methods)}), got {args.reference!r}",
            file=sys.stderr,
        )
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
    improvement = format_improvement(results, reference)
    if improvement:
        print()
        print(improvement)
    problems = format_problems(results)
    if problems:
        print(problems)
    try:
        write_outputs(results, out, reference)
    except OSError as error:  # a full or read-only disk: each file is written whole or not at all
        print(f"error: {error_message(error)}", file=sys.stderr)
        return 2
    return 0


def write_outputs(results: SweepResults, out: Path, reference: str) -> None:
    """The CSVs and figures, each named as it is written."""
    print(f"results: {write_results(results, out / RESULTS_CSV)}")
    print(f"summary: {write_summary(results, out / SUMMARY_CSV)}")
    print(f"improvement: {write_improvement(results, out / IMPROVEMENT_CSV, reference)}")
    for path in plot_sweep(results, out):
        print(f"figure: {path}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
