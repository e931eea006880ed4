"""Train one method at one oversight level; with no flags, gradient routing at 10% oversight.

python scripts/train_policy.py                          # routing, 10% oversight, default settings
python scripts/train_policy.py --method naive --oversight 0.3
python scripts/train_policy.py --preset paper           # the paper's exact settings (slow on a CPU)
python scripts/train_policy.py --method naive --preset tuned   # naive's best setting found by tune_methods.py
python scripts/train_policy.py --trainer sb3            # the same run through Stable-Baselines3's RoutedPPO
python scripts/train_policy.py --resume runs/routing-p0.1-s0-DiamondGhost-5x5-v0-20260101-120000
python scripts/train_policy.py --total-timesteps 500000 --learning-rate 3e-4 --capture-video   # CleanRL's names

Each run gets a directory of its own under --out, named after its method, oversight, seed, environment and start
time (with -2, -3, ... if two runs start in the same second). --resume continues a run with its saved settings; only
the runtime flags (--device, --checkpoint-every-s, --capture-video, --tensorboard, --track, --wandb-project-name,
--wandb-entity) may change. Exit status 2, with a one-line error and nothing written, for bad flags; also 2, with
one line naming the file and the cause, for a file that cannot be written (a full or read-only disk; the run keeps
its last checkpoint to --resume from). Ctrl-C (exit status 130) or SIGTERM (143) stops the run with its last
checkpoint kept and prints one line: the --resume command that continues it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from oversight_rl.analysis.figures.plots import plot_run
from oversight_rl.engine.command_line import canonical_args, cli
from oversight_rl.engine.config import PRESET_NAMES, TrainConfig, preset_config
from oversight_rl.engine.launch import resume, saved_config, train
from oversight_rl.engine.references import reference_returns
from oversight_rl.experiments.processes import exit_status, sigterm_as_interrupt
from oversight_rl.rundir.files import CHECKPOINT, create_run_dir, error_message, single_run_name

TABLE_METRICS = ("true_return", "diamond_rate", "ghost_rate", "hacking_gap", "gate_auroc")


@dataclass
class CommandLine(TrainConfig):
    out: str = "runs"
    """Directory under which the run directory is created."""
    exp_name: str = ""
    """Name of the experiment, put in front of the run directory's name (EXP-routing-p0.1-s0-<env>-<start time>)."""
    resume: str | None = None
    """Continue the interrupted run in this run directory with its saved settings; of the other flags, only the
    runtime ones (--device, --checkpoint-every-s, --capture-video, --tensorboard, --track, --wandb-project-name,
    --wandb-entity) may change."""


def given_settings(argv: list[str]) -> set[str]:
    """The settings named on the command line (``--lr 0.1``, ``--lr=0.1``, ``--no-anneal-lr``), whatever their value."""
    names = set()
    for token in argv:
        if token.startswith("--"):
            name = token[2:].split("=", 1)[0].replace("-", "_")
            names.update((name, name.removeprefix("no_")))
    return names & {f.name for f in dataclasses.fields(TrainConfig)}


def parse(argv: list[str]) -> CommandLine:
    """The settings: those of the preset (for the run's method: ``tuned`` differs by method), then every flag given.
    ``ValueError`` when ``--preset tuned`` has no setting for the method."""
    preset = argparse.ArgumentParser(add_help=False)
    preset.add_argument("--preset", choices=PRESET_NAMES, default="default")
    preset.add_argument("--method", default=TrainConfig.method)
    known = preset.parse_known_args(argv)[0]
    default = CommandLine(**dataclasses.asdict(preset_config(known.preset, known.method)))
    return cli(CommandLine, argv, default=default, description=__doc__.splitlines()[0])


def table_cell(value) -> str:
    """A metric to three decimals; ``n/a`` where the variant has no value (None in summary.json, NaN in memory)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3f}"


def print_table(summary: dict) -> None:
    """Final evaluation of each variant, the deployed one marked ``*``. The best evaluation seen during training is
    left out: it is picked on the test episodes, so it is no result."""
    print(
        f"\n{summary['method']} at oversight {summary['oversight']:g}, seed {summary['seed']}: "
        f"{summary['env_steps']:,} env steps in {summary['wall_s']:.0f} s"
    )
    names = {v: f"{v} *" if v == summary["deployed"] else v for v in summary["variants"]}
    first = max(len("variant"), *map(len, names.values())) + 2
    widths = [max(len(metric), 6) + 2 for metric in TABLE_METRICS]
    print("variant".ljust(first) + "".join(m.rjust(w) for m, w in zip(TABLE_METRICS, widths, strict=True)))
    for variant, result in summary["variants"].items():
        cells = [table_cell(result["final"].get(metric)) for metric in TABLE_METRICS]
        print(names[variant].ljust(first) + "".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)))
    print("* deployed: the variant this method deploys; every value is from the final evaluation")


def interrupted_line(run_dir: Path | None) -> str:
    """What to do after Ctrl-C or SIGTERM stopped the run in ``run_dir`` (None: before it was created)."""
    if run_dir is None:
        return "interrupted before the run started"
    if not (run_dir / CHECKPOINT).exists():
        return f"interrupted: {run_dir} has no {CHECKPOINT} to resume from; run the same command again to start over"
    return f"interrupted: resume with python scripts/train_policy.py --resume {shlex.quote(str(run_dir))}"


def main(argv: list[str]) -> int:
    run_dir, argv = None, canonical_args(argv)
    try:
        args = parse(argv)
        with sigterm_as_interrupt():
            if args.resume:
                run_dir = Path(args.resume)
                summary = resume(run_dir, **{name: getattr(args, name) for name in given_settings(argv)})
            else:
                config = TrainConfig.from_saved(dataclasses.asdict(args))
                config.validate()
                name = f"{single_run_name(config)}-{time.strftime('%Y%m%d-%H%M%S')}"
                if args.exp_name:
                    name = f"{args.exp_name}-{name}"
                run_dir = create_run_dir(Path(args.out), name)
                print(f"run directory: {run_dir}")
                summary = train(config, run_dir)
        print_table(summary)
        saved = saved_config(run_dir)
        print(f"\nlearning curve: {plot_run(run_dir, reference_returns(saved.env, saved.gamma))}")
    except (ValueError, OSError) as error:  # OSError: also a full or read-only disk; the run keeps its checkpoint
        if run_dir is not None and not args.resume and not any(run_dir.iterdir()):
            run_dir.rmdir()  # the run failed to start: leave no empty run directory behind
        print(f"error: {error_message(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interruption:
        print(f"\n{interrupted_line(run_dir)}", file=sys.stderr)
        return exit_status(interruption)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
