"""Train every method at every oversight fraction with several seeds, in parallel; run it again to resume.

    python scripts/sweep_oversight.py                 # 5 oversight fractions x 4 methods x 3 seeds, 2 processes
    python scripts/sweep_oversight.py --oversight 0.01 0.1 --methods routing naive --seeds 2 --total-env-steps 500000
    python scripts/sweep_oversight.py --preset paper --backend ray --ray-address auto --out sweeps/paper
    python scripts/sweep_oversight.py --preset tuned  # each method with its own best setting from tune_methods.py
    python scripts/plot_curves.py sweeps/oversight    # figures and results.csv

Every training flag of train_policy.py is accepted and shared by all runs. Exit status: 0 when every run finished,
1 when some failed (each records error.json in its run directory, but one stopped by a full or read-only disk, which
resumes from its last checkpoint) or lost their worker process, 2 for bad flags, a --out where another sweep is
running or a --ray-address where no Ray cluster answers (before any work), or a sweep.json or results.csv that cannot
be written (one error: line naming the file and the cause), 130 on Ctrl-C and 143 on SIGTERM (the workers stop
first; they also die with this process when it is killed). Running the same command again skips finished runs and
resumes the others.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass, field
from typing import Annotated

import tyro

from oversight_rl.analysis.comparison import format_table
from oversight_rl.engine.command_line import cli
from oversight_rl.engine.config import PRESET_NAMES, TrainConfig, preset_config
from oversight_rl.experiments.processes import Terminated, sigterm_as_interrupt
from oversight_rl.experiments.sweep import SweepConfig, run_sweep
from oversight_rl.rundir.files import error_message
from oversight_rl.rundir.gather import format_problems, gather


@dataclass
class SharedTrainFlags(TrainConfig):
    """TrainConfig without the flags the grid sets."""

    method: tyro.conf.Suppress[str] = "routing"
    oversight: tyro.conf.Suppress[float] = 0.1
    seed: tyro.conf.Suppress[int] = 0


@dataclass
class CommandLine(SweepConfig):
    train: Annotated[SharedTrainFlags, tyro.conf.OmitArgPrefixes] = field(default_factory=SharedTrainFlags)
    """Training settings shared by every run (as in train_policy.py); method, oversight and seed come from the grid."""
    method_settings: tyro.conf.Suppress[dict] = field(default_factory=dict)


def parse_with(argv: list[str], preset: TrainConfig) -> CommandLine:
    """The command line over the settings of ``preset``."""
    default = CommandLine(train=SharedTrainFlags(**dataclasses.asdict(preset)))
    return cli(CommandLine, argv, default=default, description=__doc__)


def parse(argv: list[str]) -> SweepConfig:
    """The sweep's settings. Under ``--preset tuned`` each method starts from its own tuned setting (the flags given
    still apply to all): ``method_settings`` holds where a method's settings differ from the shared ones."""
    preset = argparse.ArgumentParser(add_help=False)
    preset.add_argument("--preset", choices=PRESET_NAMES, default="default")
    name = preset.parse_known_args(argv)[0].preset
    args = parse_with(argv, preset_config(name) if name != "tuned" else TrainConfig(preset="tuned"))
    grid_flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(SweepConfig) if f.name != "train"}
    shared = dataclasses.asdict(args.train)
    if name == "tuned":
        for method in dict.fromkeys(args.methods):
            mine = dataclasses.asdict(parse_with(argv, preset_config(name, method)).train)
            differ = {k: v for k, v in mine.items() if k not in ("method", "oversight", "seed") and v != shared[k]}
            grid_flags["method_settings"][method] = differ
    return SweepConfig(**grid_flags, train=TrainConfig(**shared))


def main(argv: list[str]) -> int:
    try:
        sweep = parse(argv)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        with sigterm_as_interrupt():
            report = run_sweep(sweep)
    except (ValueError, OSError) as error:  # OSError: sweep.json or results.csv on a full or read-only disk
        print(f"error: {error_message(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interruption:
        print(f"\ninterrupted: run the same command again to resume the sweep in {sweep.out}", file=sys.stderr)
        return 143 if isinstance(interruption, Terminated) else 130
    results = gather(sweep.out)
    print(format_table(results))
    problems = format_problems(results)
    if problems:
        print(problems)
    print(report.summary_line())
    for note in report.notes:
        print(f"note: {note}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
