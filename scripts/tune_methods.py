"""Tune every method alike with Optuna, on tuning seeds apart from the evaluation seeds; run it again to resume.

    python scripts/tune_methods.py --publish                # 4 methods x 16 trials x 3 tuning seeds, 10% oversight
    python scripts/tune_methods.py --methods routing naive --trials 24 --total-env-steps 4000000 --out tuning-4m
    python scripts/train_policy.py --method naive --preset tuned   # then: naive with its best setting
    python scripts/sweep_oversight.py --preset tuned               # every method with its own best setting

Every method gets the same number of trials over the same search space (oversight_rl.experiments.tuning.SPACE):

    lr             log-uniform in [1e-4, 3e-3]
    anneal_lr      True (linear decay to zero) or False (constant)
    ent_coef       log-uniform in [1e-3, 1e-1]
    clip_coef      0.1, 0.2 or 0.3 (acts under --algo ppo)
    update_epochs  2, 4 or 8 (acts under --algo ppo)
    width          32, 64 or 128
    gate_coef      log-uniform in [0.01, 1], for the methods that train their gate (routing, no_routing) only

A trial trains the tuning seeds (default 1000, 1001, 1002; sweeps evaluate on 0, 1, ...) as one population at the
tuning oversight (default 0.1), then scores each run's deployed policy on fresh validation episodes, never the test
episodes: the objective is the mean final deployed validation true_return over the tuning seeds. Each method is one
Optuna study (TPE, the same sampler seed for every method) stored in OUT/tuning.db; a trial's runs are in
OUT/METHOD/trial-NNN/. Running the same command again runs only the trials each method still lacks, and tries an
unfinished trial again with its parameters, resuming its runs from their checkpoints.

Writes OUT/tuning.csv (every completed trial: method, trial, each parameter, objective, per-seed validation returns,
seeds, oversight, budget, best) and each method's best setting to OUT/tuned_presets.json. Publishing is a separate,
explicit step: --publish (at least 16 trials per method) also writes them to docs/tuning.csv and to
oversight_rl/engine/tuned_presets.json, which --preset tuned reads. Every other training flag (budget, --algo, --preset
paper as the starting point, ...) is shared by all trials. Exit status: 0 when done, 1 when a trial failed (it is tried
again next time), 2 for bad flags, without Optuna (pip install -e '.[tune]') or while another tuning runs in
OUT (it holds OUT/tuning.lock), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass, field
from typing import Annotated, Literal

import tyro

from oversight_rl.engine.command_line import cli
from oversight_rl.engine.config import PRESETS, TUNED_PRESETS, TrainConfig
from oversight_rl.experiments.tuning import PUBLISHED_CSV, TuneConfig, completed, run_tuning, storage_of, studies

TUNING_DEFAULTS = {"env_backend": "torch", "eval_every": 500_000}
"""Where tuning's defaults differ from training's: the environment that the comparison's sweeps pin (also the faster
one on a CPU), and fewer evaluations during training, since a trial is scored by its final validation episodes."""


@dataclass
class SharedTrainFlags(TrainConfig):
    """TrainConfig without the flags the tuning sets: the grid's and the search space's."""

    method: tyro.conf.Suppress[str] = "routing"
    oversight: tyro.conf.Suppress[float] = 0.1
    seed: tyro.conf.Suppress[int] = 0
    lr: tyro.conf.Suppress[float] = TrainConfig.lr
    anneal_lr: tyro.conf.Suppress[bool] = TrainConfig.anneal_lr
    ent_coef: tyro.conf.Suppress[float] = TrainConfig.ent_coef
    clip_coef: tyro.conf.Suppress[float] = TrainConfig.clip_coef
    update_epochs: tyro.conf.Suppress[int] = TrainConfig.update_epochs
    width: tyro.conf.Suppress[int] = TrainConfig.width
    gate_coef: tyro.conf.Suppress[float] = TrainConfig.gate_coef
    preset: Literal["default", "paper"] = "default"
    """Settings the trials start from (the search space then replaces its own)."""


@dataclass
class CommandLine(TuneConfig):
    train: Annotated[SharedTrainFlags, tyro.conf.OmitArgPrefixes] = field(default_factory=SharedTrainFlags)
    """Training settings shared by every trial (as in train_policy.py), but those the tuning sets."""


def parse(argv: list[str]) -> TuneConfig:
    preset = argparse.ArgumentParser(add_help=False)
    preset.add_argument("--preset", choices=sorted(PRESETS), default="default")
    name = preset.parse_known_args(argv)[0].preset
    default = CommandLine(train=SharedTrainFlags(**{**dataclasses.asdict(PRESETS[name]), **TUNING_DEFAULTS}))
    args = cli(CommandLine, argv, default=default, description=__doc__.splitlines()[0])
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(TuneConfig) if f.name != "train"}
    return TuneConfig(**flags, train=TrainConfig(**dataclasses.asdict(args.train)))


def report(tune: TuneConfig, ran: dict[str, int]) -> None:
    """Trials run now and completed in all, and each method's best validation return and setting."""
    for method, study in studies(storage_of(tune)).items():
        done = completed(study)
        if not done:
            continue
        best = max(done, key=lambda t: t.value)
        setting = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items())
        now = f"{ran[method]} run now, " if method in ran else ""
        print(f"{method}: {now}{len(done)} completed; best trial {best.number}: {best.value:.3f} ({setting})")
    print(f"trials: {tune.csv_path}\npresets: {tune.presets_path}")
    if tune.publish:
        print(f"published: {PUBLISHED_CSV} and {TUNED_PRESETS} (read by --preset tuned)")


def main(argv: list[str]) -> int:
    try:
        tune = parse(argv)
        ran = run_tuning(tune)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume the tuning", file=sys.stderr)
        return 130
    except Exception as error:
        line = f"{type(error).__name__}: {error}".splitlines()[0]
        print(f"error: a trial failed ({line}); it is tried again when the tuning runs again", file=sys.stderr)
        return 1
    report(tune, ran)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
