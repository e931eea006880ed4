"""Monitors of finished runs: routing's gate beside a probe trained on each run's own labels, as AUROC for flagging
the unlabeled episodes that head for the Ghost.

    python scripts/monitor_runs.py sweeps/oversight
    python scripts/monitor_runs.py runs/routing-p0.1-s0-DiamondGhost-5x5-v0 runs/naive-p0.1-s0-DiamondGhost-5x5-v0
    python scripts/monitor_runs.py sweeps/oversight --max-labels 20000 --out monitors-20k.csv

Each run's trained policy plays fresh episodes at its oversight level; a probe (one hidden layer) learns, from the
states of as many labeled episodes as the run's training read, with the labels' own --label-noise, whether an
episode ends at the Ghost; both monitors are scored on the same unlabeled episodes
(oversight_rl.engine.monitor.monitor_aurocs has the definitions). Writes monitors.csv: one row per run with its
method, oversight, seed and label noise, probe_auroc, gate_auroc (empty for policies without a gate) and the counts
behind them. The file is rewritten whole after each run, so an interrupted call keeps the runs it finished, and a
second call skips the runs whose row was computed with the same settings (--redo computes them again). A run that is
not finished, or cannot be read, gets a row with its status and reason and no numbers. Exit status 2, with one
error: line, for a path that is no run or sweep directory, a bad flag, or a monitors.csv that cannot be read or
written.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import torch
import tyro
from tqdm import tqdm

from oversight_rl.engine.command_line import cli
from oversight_rl.engine.monitor import PROBE_STEPS, check_count, monitor_aurocs
from oversight_rl.engine.policy_eval import DEFAULT_EPISODES
from oversight_rl.rundir.files import CONFIG, error_message, read_csv, read_json, write_csv
from oversight_rl.rundir.readers import describe
from oversight_rl.rundir.status import DONE, run_status

MONITORS_CSV = "monitors.csv"


@dataclass
class CommandLine:
    paths: Annotated[tyro.conf.Positional[tuple[str, ...]], tyro.conf.arg(metavar="RUN_OR_SWEEP_DIR")]
    """Run directories, or sweep directories (every subdirectory holding a config.json is a run)."""
    out: Annotated[
        str | None, tyro.conf.arg(help_behavior_hint="(default: monitors.csv in the sweep directory, if one is given)")
    ] = None
    """Where to write monitors.csv; needed when the paths are not one sweep directory."""
    episodes: int = DEFAULT_EPISODES
    """Finished test episodes to play per run, labeled or not (the AUROCs use the unlabeled ones), at least 1."""
    seed: int = 0
    """The monitor's seed: its episodes and the probe's initial weights."""
    max_labels: Annotated[int | None, tyro.conf.arg(help_behavior_hint="(default: the run's own budget)")] = None
    """Cap on the labeled episodes the probe trains on (uncapped, as many as the run's training read labels)."""
    probe_steps: int = PROBE_STEPS
    """Full-batch Adam steps that train the probe, at least 1 (its AUROC on unlabeled episodes depends on them: see
    oversight_rl/engine/monitor.py)."""
    redo: bool = False
    """Compute every run again, even those monitors.csv already holds with the same settings."""
    threads: int = 1
    """Torch CPU threads (one is fastest for these small networks, as for training)."""


def parse(argv: list[str]) -> CommandLine:
    return cli(CommandLine, argv, description=__doc__, config=(tyro.conf.FlagCreatePairsOff,))


def run_dirs(paths: tuple[str, ...]) -> list[Path]:
    """The run directories the paths name, each once, in the order given (a sweep's runs sorted by name);
    ``ValueError`` naming a path that is neither a run directory nor a sweep directory holding one."""
    if not paths:
        raise ValueError("give at least one RUN_OR_SWEEP_DIR")
    found: dict[Path, None] = {}
    for text in paths:
        path = Path(text)
        if (path / CONFIG).is_file():
            found[path] = None
        elif path.is_dir():
            runs = sorted(run.parent for run in path.glob(f"*/{CONFIG}"))
            if not runs:
                raise ValueError(f"{path} is neither a run directory ({CONFIG}) nor a sweep directory holding runs")
            found.update(dict.fromkeys(runs))
        else:
            raise ValueError(f"{path} does not exist" if not path.exists() else f"{path} is a file, not a directory")
    return list(found)


def output_path(args: CommandLine) -> Path:
    """monitors.csv's path: --out, or monitors.csv in the one sweep directory given."""
    if args.out is not None:
        out = Path(args.out)
        if out.is_dir():
            raise ValueError(f"--out {out} is a directory; give the CSV file's path, e.g. {out / MONITORS_CSV}")
        if not out.absolute().parent.is_dir():
            raise ValueError(f"--out {out}: its directory {out.absolute().parent} does not exist")
        return out
    if len(args.paths) == 1 and not (Path(args.paths[0]) / CONFIG).exists():
        return Path(args.paths[0]) / MONITORS_CSV
    raise ValueError("--out is needed unless the one path given is a sweep directory")


def read_rows(out: Path) -> list[dict]:
    """The rows of an existing monitors.csv (none if there is none); ``ValueError`` naming it if it cannot be read."""
    if not out.exists():
        return []
    try:
        rows = read_csv(out)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{out} cannot be read ({describe(error)}); remove it or give another --out") from None
    if rows and "run" not in rows[0]:
        raise ValueError(f"{out} is not a monitors.csv (no run column); remove it or give another --out")
    return rows


def run_key(run_dir: Path, out: Path) -> str:
    """The ``run`` column: the run directory's path relative to monitors.csv's directory."""
    return os.path.relpath(run_dir.resolve(), out.parent.resolve())


def identity(run_dir: Path) -> dict:
    """The run's method, oversight, seed and label noise, from its config.json."""
    config = read_json(run_dir / CONFIG)
    return {
        "method": config["method"],
        "oversight": float(config["oversight"]),
        "seed": int(config["seed"]),
        "label_noise": float(config.get("label_noise", 0.0)),
    }


def same(a, b) -> bool:
    """Equal cells, reading a number back from the CSV (and an empty cell as NaN or None)."""
    empty = lambda x: x is None or (isinstance(x, float) and math.isnan(x))  # noqa: E731
    if empty(a) or empty(b):
        return empty(a) and empty(b)
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def reusable(row: dict | None, settings: dict, run: dict) -> bool:
    """Whether ``row`` holds the finished measurement of ``run`` (its identity) with ``settings``."""
    if row is None or row.get("status") != DONE:
        return False
    return all(same(row.get(k), v) for k, v in {**settings, **run}.items())


def measure(run_dir: Path, key: str, run: dict | str, settings: dict) -> dict:
    """One run's monitors.csv row: its measurement, or its status and the reason it has none. ``run`` is the run's
    identity, or why its config.json cannot be read."""
    if isinstance(run, str):
        return {"run": key, "status": "unreadable", "reason": run, **settings}
    status = run_status(run_dir)
    if status != DONE:
        return {"run": key, **run, "status": status, "reason": "the run is not finished", **settings}
    try:
        result = monitor_aurocs(
            run_dir,
            episodes=settings["episodes"],
            seed=settings["monitor_seed"],
            max_labels=settings["max_labels"],
            probe_steps=settings["probe_steps"],
            progress=True,
        )
    except (OSError, ValueError) as error:
        return {"run": key, **run, "status": "unreadable", "reason": error_message(error), **settings}
    result = {name: None if isinstance(value, float) and math.isnan(value) else value for name, value in result.items()}
    return {"run": key, **run, "status": DONE, "reason": "", **settings, **result}  # NaN: an empty cell


def main(argv: list[str]) -> int:
    args = parse(argv)
    try:
        check_count("--episodes", args.episodes, 1)
        check_count("--threads", args.threads, 1)
        check_count("--probe-steps", args.probe_steps, 1)
        if args.max_labels is not None:
            check_count("--max-labels", args.max_labels, 0)
        runs = run_dirs(args.paths)
        out = output_path(args)
        rows = {row["run"]: row for row in read_rows(out)}
    except ValueError as error:
        print(f"error: {error_message(error)}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    settings = {
        "episodes": args.episodes,
        "monitor_seed": args.seed,
        "max_labels": args.max_labels,
        "probe_steps": args.probe_steps,
    }
    skipped = 0
    for run_dir in tqdm(runs, desc="monitors", unit="run"):
        key = run_key(run_dir, out)
        try:
            run: dict | str = identity(run_dir)
        except (OSError, ValueError, KeyError, TypeError) as error:
            run = f"{CONFIG}: {describe(error)}"
        if not args.redo and isinstance(run, dict) and reusable(rows.get(key), settings, run):
            skipped += 1
            continue
        rows[key] = measure(run_dir, key, run, settings)
        try:
            write_csv(out, list(rows.values()))
        except OSError as error:  # a full or read-only disk: the file is written whole or not at all
            print(f"error: {error_message(error)}", file=sys.stderr)
            return 2
    if skipped:
        print(f"{skipped} of {len(runs)} runs already measured with these settings (--redo measures them again)")
    problems = [row for row in rows.values() if row["status"] != DONE]
    for row in problems:
        print(f"not measured: {row['run']}: {row['status']} ({row['reason']})")
    print(f"monitors: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
