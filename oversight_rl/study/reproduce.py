"""The comparison to publish, as named parts: each part is one resumable sweep (:mod:`oversight_rl.experiments.sweep`)
in a directory of its own under ``root``, and :mod:`oversight_rl.study.regenerate` turns whatever runs have finished
into the CSVs, tables and figures of docs/results.md.

Every run is pinned to ``--env-backend torch`` (the same environment code on CPU and GPU, so a row reproduces on
either) and ``--eval-envs 2048`` (the standard error of one evaluation's true_return is then about 0.008):

==============  ============================================================================================
main-default    5 oversight levels (0.01 0.03 0.1 0.3 1) x routing filtering naive oracle x 10 seeds, default preset
main-tuned      the same with ``--preset tuned`` (each method's tuned setting; skipped until all four are tuned)
budget          10% oversight, constant learning rate, the 4 methods x 5 seeds, one run each at the largest
                budget: its evaluation right after each budget of a doubling ladder 1M ... 32M is that budget's
                final evaluation (:mod:`oversight_rl.study.budget`: the nominal 1M is 999,424 steps, 122 whole windows;
                the oracle's is 983,040, of which it trains 12 windows)
ablations       10% oversight, no_routing constant_gate naive_early_stop x 10 seeds (routing and naive at 10% come
                from main-default)
paper           ``--preset paper`` with the networks it had when this part ran (:data:`PAPER_BEFORE_AUTHORS`),
                10% oversight, the 4 methods x 3 seeds, one run each at ``--paper-env-steps``
                (default 32,768,000: 2,000 of the paper's 20,000 updates); the paper's learning rate is constant,
                so like the budget part it reports final values at each budget of the ladder 1M, 2M, ... that its
                runs reach, and a run on its way counts at the budgets it has passed
main-routing    routing alone as main-default, under ``--routed-advantage unwatched_baseline``; and the same
                under ``routed_no_baseline`` in the part main-routed-no-baseline
main-tuned-     routing alone as main-tuned, under ``unwatched_baseline``, whose equal tuning is routing's tuned
routing         setting (main-tuned's routing is the paper estimator's, tuned before)
main-tuned-     the same under ``expert_returns``, with the best setting of its own equal tuning
expert-returns  (:data:`EXPERT_RETURNS_TUNED`)
budget-routing  routing alone as budget, under ``unwatched_baseline``
budget-1pct     the budget study at 1% oversight, the 4 methods, routing under ``unwatched_baseline``
budget-1pct-    routing alone as budget-1pct, under the paper's estimator (``shared_baseline``): whether it drifts
paper-routing   at 1% as it does at 10%
paper-full      ``--preset paper`` at the paper's own budget (327,680,000 steps), 5 levels x 4 methods x 3 seeds;
                not in the default ``--parts`` (16.2G agent-env-steps; run it on a GPU with
                ``--parts paper-full --device cuda``)
label-noise     true return against label noise ``--label-noise E``, E in 0 0.05 0.1 0.2 0.3, at 3% and 10%
                oversight, routing (the default estimator) filtering naive oracle x 10 seeds, default settings:
                one sweep per E in ``ROOT/label-noise/E<E>`` (run directories do not name E, and a sweep's runs
                share every setting), 400 runs, 613M agent-env-steps, about 7.3 hours of one core of the
                reference machine (:func:`training_seconds`)
spurious-       the same methods and seeds at 10% oversight against spurious oversight (the environment setting
oversight       ``spurious_oversight``, as ``--env-kwargs``) 0.1 and 0.3, one sweep each in
                ``ROOT/spurious-oversight/S<s>``; its s = 0 is label-noise's E = 0 at 10% (the same settings),
                80 runs, 124M agent-env-steps, about 1.5 core-hours
monitors        not a training sweep: ``scripts/monitor_runs.py`` on every finished run of the label-noise part,
                and of main-default and main-routing where their runs keep their checkpoints (a monitors.csv in
                each sweep directory): the gate's and a separately trained probe's AUROC on unlabeled episodes
                (:mod:`oversight_rl.engine.monitor`), about :data:`MONITOR_SECONDS_PER_RUN` s a run: 11
                core-hours for label-noise's runs, 7 more for the main grid's 250
==============  ============================================================================================

label-noise, spurious-oversight and monitors test the gradient-routing post's claims on imperfect labels and
monitoring (:mod:`oversight_rl.study.imperfect`). Like paper-full they are not in the default ``--parts``, whose
invocation they would lengthen by about 20 hours of one core of the reference machine (17 hours of wall time with
``--workers 2`` on its 2 cores, which behave like about 1.15); ``--parts label-noise spurious-oversight monitors``
runs them, and each resumes where it stopped.

``--dry-run`` prints each part's ``sweep_oversight.py`` commands (each sweep can be run, and resumed, with its command
alone; the monitors part's ``monitor_runs.py`` commands), its size in agent-env-steps and, for the parts above, the
compute it needs.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from oversight_rl.core.methods import get_method
from oversight_rl.engine.config import PAPER, TrainConfig, preset_config, setting_flags, tuned_config, with_overrides
from oversight_rl.experiments.ladders import Ladder, fitting_ladders
from oversight_rl.experiments.sweep import DEFAULT_METHODS, DEFAULT_OVERSIGHT, SweepConfig, SweepReport, run_sweep
from oversight_rl.rundir.files import CHECKPOINT, CONFIG, check_directory, error_message, run_name

PartName = Literal[
    "main-default",
    "main-tuned",
    "budget",
    "ablations",
    "paper",
    "main-routing",
    "main-routed-no-baseline",
    "main-tuned-routing",
    "main-tuned-expert-returns",
    "budget-routing",
    "budget-1pct",
    "budget-1pct-paper-routing",
    "paper-full",
    "label-noise",
    "spurious-oversight",
    "monitors",
]
PART_NAMES: tuple[str, ...] = get_args(PartName)
OPTIONAL_PARTS = ("paper-full", "label-noise", "spurious-oversight", "monitors")
"""Parts trained only when ``--parts`` names them: paper-full needs a GPU's budget, and the post's three about 20
hours of one core of the reference machine (the module's docstring)."""
DEFAULT_PARTS: tuple[str, ...] = tuple(name for name in PART_NAMES if name not in OPTIONAL_PARTS)
PINNED = {"env_backend": "torch", "eval_envs": 2048}
"""Settings of every run of every part."""
PAPER_ENV_STEPS = 2_000 * PAPER["num_envs"] * PAPER["num_steps"]
PAPER_EVAL_EVERY = 1_000_000
ABLATIONS = ("no_routing", "constant_gate", "naive_early_stop")
BUDGET_OVERSIGHT, BUDGET_SEEDS = 0.1, 5
BUDGET = {"anneal_lr": False, "total_env_steps": 32_000_000, "eval_every": 1_000_000}
SHARED_BASELINE = {"routed_advantage": "shared_baseline"}
"""The routed estimator of the parts run before it was a setting (the paper's), pinned so that they resume as run."""
UNBIASED = {"routed_advantage": "unwatched_baseline"}
"""The unbiased routed estimator with the least variance, which the routing parts added with it compare with the
paper's."""
ROUTED_NO_BASELINE = {"routed_advantage": "routed_no_baseline"}
"""The estimator without a baseline on labeled samples only: biased, but the best of four in a pilot."""
EXPERT_RETURNS_TUNED = {
    "routed_advantage": "expert_returns",
    "lr": 0.002769166251652359,
    "anneal_lr": False,
    "ent_coef": 0.016206567392037196,
    "clip_coef": 0.1,
    "update_epochs": 4,
    "width": 64,
    "gate_coef": 0.24262985503685788,
}
"""The other unbiased estimator with a baseline, under the best setting of its own equal tuning (trial 5 of
docs/tuning_routing_expert_returns.csv, level with unwatched_baseline's best on validation episodes): the default
preset with these settings, as ``--preset tuned`` would give were it routing's tuned estimator."""
PAPER_BEFORE_AUTHORS = {"critic": "mlp", "gate_net": "mlp", "zero_bias": False, "adam_eps": 1e-5, "vf_coef": 0.5}
"""The networks, Adam epsilon and value coefficient ``--preset paper`` had before it followed the authors' code,
pinned in the paper part, which was run with them, so that it resumes as run."""
SWEEP_SCRIPT = "scripts/sweep_oversight.py"
CPU, GPU = ("cpu",), ("cuda",)
"""Where a part's committed runs were trained (:attr:`Part.trained_on`): the reference machine's CPU, or one NVIDIA
H200 (docs/results.md, "Where the runs below were trained")."""
MONITOR_SCRIPT = "scripts/monitor_runs.py"
REPOSITORY = Path(__file__).resolve().parents[2]
"""Where scripts/ lies (the package is installed editable from its clone)."""

LABEL_NOISE = (0.0, 0.05, 0.1, 0.2, 0.3)
"""The label-noise part's E (``--label-noise``): the probability that the overseer's label of an episode is wrong."""
LABEL_NOISE_OVERSIGHT = (0.03, 0.1)
SPURIOUS_OVERSIGHT = (0.1, 0.3)
"""The spurious-oversight part's own sweeps (``spurious_oversight``); its 0 is the label-noise part's E = 0 at
:data:`SPURIOUS_AT` (the same settings: default preset, pinned, no label noise, no spurious oversight)."""
SPURIOUS_AT = 0.1
IMPERFECT_SEEDS = 10
VARIED_PREFIX = {"label_noise": "E", "spurious_oversight": "S"}
"""A varied setting's letter in its sweeps' directory names (``label-noise/E0.05``) and part names."""

CPU_SECONDS_PER_RUN = 85.0
"""Seconds a default run (2,000,128 steps) takes on one core of the reference machine (the README's example run)."""
POPULATION_FACTOR = 0.85
"""A run trained in a population takes about this fraction of its time alone."""
EVAL_SECONDS_PER_RUN = 10.0
"""What a part's run adds to that on average by evaluating on 2048 environments (the README's run: 512), about 21
times, one policy or, for routing, three (measured side by side: about 0.4 s more per policy and evaluation)."""
EFFECTIVE_CORES = 1.15
"""What the reference machine's 2 cores give with 2 workers (docs/results.md, appendix A.1)."""
MONITOR_SECONDS_PER_RUN = 100.0
"""Seconds ``monitor_runs.py`` takes per default run on one core of the reference machine: it plays the trained
policy until the probe has as many labels as the run's training read (about as many episodes as training played,
forward passes only), trains the probe (2,000 Adam steps) and plays the test episodes (measured on a default 2M-step
routing run at 10%, on a machine busy with other work: about 60 s of play and 40 s of probe training)."""


@dataclass
class ReproduceConfig:
    """Train the sweeps of the comparison (resuming what exists) and regenerate docs/results.md's tables, CSVs and
    figures from every finished run."""

    parts: tuple[PartName, ...] = DEFAULT_PARTS
    """Parts to train: main-default, main-tuned, budget, ablations, paper, main-routing, main-routed-no-baseline,
    main-tuned-routing, main-tuned-expert-returns, budget-routing, budget-1pct, budget-1pct-paper-routing; and, not
    in the default, paper-full, label-noise, spurious-oversight and monitors (which measures the runs of label-noise
    and of the main grid). The docs are regenerated from every part's finished runs either way."""
    root: str = "sweeps"
    """Directory holding one sweep directory per part."""
    docs: str = "docs"
    """Directory of results.md (its generated sections are rewritten), the CSVs and img/."""
    workers: int = 2
    """Populations trained at a time (processes); 1 trains in this process."""
    population_size: int = 15
    """Most runs trained together as one population."""
    device: str = "cpu"
    """Torch device of the training runs (cpu, cuda[:N], mps)."""
    paper_env_steps: int = PAPER_ENV_STEPS
    """Budget of the paper part's runs (the paper-full part uses the paper's 327,680,000)."""
    skip_training: bool = False
    """Train nothing: only regenerate the docs from the runs that exist, and report those missing."""
    dry_run: bool = False
    """Train and write nothing: print each part's sweep command and its size in agent-env-steps."""
    force: bool = False
    """Rewrite every part's CSV, figures and section from the runs that exist here, even a part whose committed CSV
    holds more finished runs (without it such a part is kept as committed)."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad flag, before anything is trained or written (the docs too)."""
        unknown = [p for p in self.parts if p not in PART_NAMES]
        checks = [
            (not unknown, f"--parts must be among {', '.join(PART_NAMES)}, got {unknown[0] if unknown else ''!r}"),
            (self.workers >= 1, f"--workers must be >= 1, got {self.workers}"),
            (self.population_size >= 1, f"--population-size must be >= 1, got {self.population_size}"),
            (
                self.paper_env_steps >= PAPER_EVAL_EVERY,
                f"--paper-env-steps must be >= {PAPER_EVAL_EVERY:,} (the paper part's evaluation interval), got"
                f" {self.paper_env_steps:,}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        TrainConfig(device=self.device).validate_device()  # every part's runs take it, and its published command
        check_directory(Path(self.root), "--root")
        check_directory(Path(self.docs), "--docs")


@dataclass(frozen=True)
class Part:
    """One sweep of the comparison: its grid, the preset its runs start from and the settings it changes.

    Attributes:
        settings: training settings over the preset (and over :data:`PINNED`), shared by every run of the part.
        directory: the sweep directory's name under ``root``; empty means ``name``.
        on_ladder: whether the part is reported against the budget (its runs have a constant learning rate: the
            budget and paper parts), each method's budgets read from its runs (:attr:`ladders`; see
            :mod:`oversight_rl.study.budget`).
        trained_on: the devices (``--device``) the committed results were trained on, in order (a part resumed on
            another device names both); empty for a part not run yet. results.md's command states them where the
            part's section is kept as committed; otherwise it states what the part's sweep directory records
            (:func:`oversight_rl.study.commands.recorded_devices`), and a test checks that the two agree.
    """

    name: str
    description: str
    oversight: tuple[float, ...]
    methods: tuple[str, ...]
    seeds: int
    preset: str = "default"
    settings: dict = field(default_factory=dict)
    directory: str = ""
    on_ladder: bool = False
    trained_on: tuple[str, ...] = ()
    varied: str = ""
    """A setting the part's sweeps differ in (``label_noise``; or an environment setting, ``spurious_oversight``,
    given as ``--env-kwargs``), one sweep per value of :attr:`values` (:meth:`sweeps`); empty for a part that is one
    sweep."""
    values: tuple[float, ...] = ()
    monitored: tuple[Part, ...] = ()
    """The monitors part's: the parts whose runs it measures with scripts/monitor_runs.py (it trains nothing; its
    :attr:`settings` are that script's flags)."""

    def base(self) -> TrainConfig:
        """The settings every run of the part shares: its preset, pinned, with its settings over it."""
        return part_base(self.preset, self.settings)

    @functools.cached_property
    def ladders(self) -> dict[str, Ladder] | None:
        """Each method's budget ladder, as long as every method's run reaches (none for a part not on a ladder)."""
        return fitting_ladders(self.base(), self.methods, self.oversight[0]) if self.on_ladder else None

    @property
    def slug(self) -> str:
        """The part's name in file names: ``main_default``."""
        return self.name.replace("-", "_")

    def points(self) -> list[tuple[str, float, int]]:
        """Every (method, oversight, seed) of the grid, methods outermost (as the sweep orders them)."""
        return [(m, float(p), s) for m in self.methods for p in self.oversight for s in range(self.seeds)]

    @property
    def one_sweep(self) -> bool:
        """Whether the part is one sweep of its own (not several, nor the monitors)."""
        return not self.varied and not self.monitored

    def sweeps(self) -> list[Part]:
        """The sweeps that train the part: itself, or one per value of :attr:`varied`, each a part of its own named
        ``NAME/<letter><value>`` in the directory ``DIRECTORY/<letter><value>`` with the value among its settings
        (run directories do not name the setting, and a sweep refuses runs of other settings); none for the
        monitors."""
        if self.monitored:
            return []
        return [self.at(value) for value in self.values] if self.varied else [self]

    def at(self, value: float) -> Part:
        """The sweep of the varied setting's ``value``."""
        tail = f"{VARIED_PREFIX[self.varied]}{value:g}"
        settings = {**self.settings, **varied_settings(self.varied, value)}
        name, directory = f"{self.name}/{tail}", f"{self.directory or self.name}/{tail}"
        return dataclasses.replace(self, name=name, settings=settings, directory=directory, varied="", values=())


def varied_settings(setting: str, value: float) -> dict:
    """The training settings that give a sweep ``setting = value``: a training setting itself, an environment
    setting as ``env_kwargs``."""
    if setting in {f.name for f in dataclasses.fields(TrainConfig)}:
        return {setting: float(value)}
    return {"env_kwargs": json.dumps({setting: float(value)})}


def part_base(preset: str, settings: dict) -> TrainConfig:
    """A part's shared run settings: ``preset``, pinned, with ``settings`` over it (as its sweep command sets them)."""
    return with_overrides(preset_config(preset), **{**PINNED, **settings})


def default_parts(config: ReproduceConfig) -> dict[str, Part]:
    """The comparison's parts, as the module docstring lists them."""
    main = dict(oversight=DEFAULT_OVERSIGHT, methods=DEFAULT_METHODS, seeds=10)
    budget_unbiased, budget_paper = {**BUDGET, **UNBIASED}, {**BUDGET, **SHARED_BASELINE}
    one_percent = (0.01,)
    paper = dict(preset="paper", methods=DEFAULT_METHODS, seeds=3)
    steps = config.paper_env_steps
    paper_settings = {"total_env_steps": steps, "eval_every": PAPER_EVAL_EVERY, **PAPER_BEFORE_AUTHORS}
    parts = [
        Part(
            "main-default",
            "every method at every oversight level, default settings, routing with the paper's estimator",
            **main,
            settings=SHARED_BASELINE,
            trained_on=GPU,
        ),
        Part(
            "main-tuned",
            "every method at every oversight level, each with its tuned setting, routing with the paper's estimator",
            **main,
            preset="tuned",
            settings=SHARED_BASELINE,
            trained_on=CPU,
        ),
        Part(
            "budget",
            f"final values against the budget at {BUDGET_OVERSIGHT:g} oversight, constant learning rate",
            (BUDGET_OVERSIGHT,),
            DEFAULT_METHODS,
            BUDGET_SEEDS,
            settings=budget_paper,
            on_ladder=True,
            trained_on=(*GPU, *CPU),  # to 10-14M steps on a GPU, then resumed on the CPU
        ),
        Part(
            "ablations", "ablations at 10% oversight", (0.1,), ABLATIONS, 10, settings=SHARED_BASELINE, trained_on=GPU
        ),
        Part(
            "paper",
            f"the paper's settings (constant learning rate) at 10% oversight: final values against the budget, up"
            f" to {steps:,} steps",
            (0.1,),
            **paper,
            settings=paper_settings,
            directory=f"paper-{steps / 1e6:.4g}M",
            on_ladder=True,
            trained_on=CPU,
        ),
        Part(
            "main-routing",
            f"routing with the unbiased estimator ({UNBIASED['routed_advantage']}) at every oversight level, default"
            " settings",
            DEFAULT_OVERSIGHT,
            ("routing",),
            10,
            settings=UNBIASED,
            trained_on=CPU,
        ),
        Part(
            "main-routed-no-baseline",
            "routing with no baseline on labeled samples only (routed_no_baseline) at every oversight level, default"
            " settings",
            DEFAULT_OVERSIGHT,
            ("routing",),
            10,
            settings=ROUTED_NO_BASELINE,
            trained_on=CPU,
        ),
        Part(
            "main-tuned-routing",
            f"routing with the unbiased estimator ({UNBIASED['routed_advantage']}) at every oversight level, under its"
            " tuned setting",
            DEFAULT_OVERSIGHT,
            ("routing",),
            10,
            preset="tuned",
            settings=UNBIASED,
            trained_on=CPU,
        ),
        Part(
            "main-tuned-expert-returns",
            "routing with the unbiased estimator expert_returns at every oversight level, under its tuned setting",
            DEFAULT_OVERSIGHT,
            ("routing",),
            10,
            settings=EXPERT_RETURNS_TUNED,
            trained_on=CPU,
        ),
        Part(
            "budget-routing",
            f"routing with the unbiased estimator against the budget at {BUDGET_OVERSIGHT:g} oversight, constant"
            " learning rate",
            (BUDGET_OVERSIGHT,),
            ("routing",),
            BUDGET_SEEDS,
            settings=budget_unbiased,
            on_ladder=True,
            trained_on=CPU,
        ),
        Part(
            "budget-1pct",
            "final values against the budget at 0.01 oversight, constant learning rate, routing with the unbiased"
            " estimator",
            one_percent,
            DEFAULT_METHODS,
            BUDGET_SEEDS,
            settings=budget_unbiased,
            on_ladder=True,
            trained_on=CPU,
        ),
        Part(
            "budget-1pct-paper-routing",
            "routing with the paper's estimator (shared_baseline) against the budget at 0.01 oversight, constant"
            " learning rate",
            one_percent,
            ("routing",),
            BUDGET_SEEDS,
            settings=budget_paper,
            on_ladder=True,
            trained_on=CPU,
        ),
        Part(
            "paper-full",
            "the paper's settings at the paper's budget",
            DEFAULT_OVERSIGHT,
            **paper,
            settings={"total_env_steps": PAPER["total_env_steps"], "eval_every": 4_000_000},
        ),
    ]
    parts += imperfect_parts(parts_by_name(parts))
    return parts_by_name(parts)


def parts_by_name(parts: list[Part]) -> dict[str, Part]:
    return {part.name: part for part in parts}


def imperfect_parts(main: dict[str, Part]) -> list[Part]:
    """The parts that test the gradient-routing post's claims (:mod:`oversight_rl.study.imperfect`): label noise,
    spurious oversight, and the monitors of their runs and of the main grid's (``main``: the parts by name)."""
    methods = dict(methods=DEFAULT_METHODS, seeds=IMPERFECT_SEEDS)
    label_noise = Part(
        "label-noise",
        "true return against label noise E (each label wrong with probability E), at 3% and 10% oversight, default"
        f" settings, routing with the default estimator ({TrainConfig().routed_advantage})",
        LABEL_NOISE_OVERSIGHT,
        **methods,
        varied="label_noise",
        values=LABEL_NOISE,
    )
    spurious = Part(
        "spurious-oversight",
        f"true return against spurious oversight s (every other cell marked watched with probability s, no label)"
        f" at {SPURIOUS_AT:g} oversight, default settings; s = 0 is label-noise's E = 0",
        (SPURIOUS_AT,),
        **methods,
        varied="spurious_oversight",
        values=SPURIOUS_OVERSIGHT,
    )
    monitors = Part(
        "monitors",
        "the gate's and a separately trained probe's AUROC for flagging unlabeled Ghost-bound episodes, on the"
        " trained policy of every run of label-noise, and of main-default and main-routing where their runs keep"
        " their checkpoints",
        (),
        (),
        0,
        monitored=(label_noise, main["main-default"], main["main-routing"]),
    )
    return [label_noise, spurious, monitors]


def sweep_dir(part: Part, config: ReproduceConfig) -> Path:
    return Path(config.root) / (part.directory or part.name)


# ----- each part as a sweep ---------------------------------------------------------------------------------------


def untuned(methods: tuple[str, ...]) -> list[str]:
    """The methods among ``methods`` without a tuned setting."""
    missing = []
    for method in methods:
        try:
            tuned_config(method)
        except ValueError:
            missing.append(method)
    return missing


def skip_reason(part: Part) -> str | None:
    """Why ``part`` cannot be trained yet (one line), or None."""
    missing = untuned(part.methods) if part.preset == "tuned" else []
    if missing:
        return (
            f"no tuned setting for {', '.join(missing)} in oversight_rl/engine/tuned_presets.json "
            f"(run scripts/tune_methods.py --methods {' '.join(missing)} first)"
        )
    return None


def run_flags(part: Part, config: ReproduceConfig) -> dict:
    """The training settings the part's sweep command sets, beyond its preset."""
    return {**PINNED, **part.settings, "device": config.device}


def sweep_config(part: Part, config: ReproduceConfig) -> SweepConfig:
    """The part's sweep, exactly as ``sweep_oversight.py`` parses :func:`command` (a test checks it). Under the tuned
    preset each method's settings come from oversight_rl/engine/tuned_presets.json (``ValueError`` if one is
    missing)."""
    flags = run_flags(part, config)
    base = TrainConfig(preset="tuned") if part.preset == "tuned" else preset_config(part.preset)
    train = with_overrides(base, **flags)
    method_settings = {}
    if part.preset == "tuned":
        shared = dataclasses.asdict(train)
        for method in part.methods:
            mine = dataclasses.asdict(with_overrides(tuned_config(method), **flags))
            grid = ("method", "oversight", "seed")
            method_settings[method] = {k: v for k, v in mine.items() if k not in grid and v != shared[k]}
    return SweepConfig(
        oversight=part.oversight,
        methods=part.methods,
        seeds=part.seeds,
        out=str(sweep_dir(part, config)),
        workers=config.workers,
        population_size=config.population_size,
        train=train,
        method_settings=method_settings,
    )


def command(part: Part, config: ReproduceConfig) -> list[str]:
    """The arguments of the ``sweep_oversight.py`` command that trains (or resumes) the part alone."""
    argv = ["--out", str(sweep_dir(part, config))]
    argv += ["--oversight", *(f"{p:g}" for p in part.oversight), "--methods", *part.methods]
    argv += ["--seeds", str(part.seeds)]
    argv += ["--preset", part.preset] if part.preset != "default" else []
    for name, value in run_flags(part, config).items():
        argv += setting_flags(name, value)
    argv += ["--workers", str(config.workers), "--population-size", str(config.population_size)]
    return argv


def command_line(part: Part, config: ReproduceConfig) -> str:
    """The commands that train (or resume) the part alone, one line each: each of its sweeps'
    ``sweep_oversight.py`` command; the monitors part's ``monitor_runs.py`` commands."""
    if part.monitored:
        return "\n".join(
            shlex.join(["python", *monitor_command(part, source, config)]) for source in monitor_sources(part)
        )
    return "\n".join(shlex.join(["python", SWEEP_SCRIPT, *command(sweep, config)]) for sweep in part.sweeps())


def size(sweep: SweepConfig) -> tuple[int, int]:
    """Runs and training agent-env-steps of a sweep (each run's budget in whole steps of its environments; the
    oracle's share of it)."""
    grid = sweep.grid()
    steps = sum(c.trained_steps(get_method(c.method).budget_scales_with_oversight) for c in grid)
    return len(grid), steps


# ----- compute ----------------------------------------------------------------------------------------------------

DEFAULT_RUN_STEPS = 2_000_128
"""A default run's training steps (2M in whole windows of 256 environments)."""


def training_seconds(runs: int, steps: int) -> float:
    """Seconds of one core of the reference machine that ``runs`` runs of ``steps`` agent-env-steps in all take at
    the default preset, trained in populations: :data:`CPU_SECONDS_PER_RUN` per default run's steps, times
    :data:`POPULATION_FACTOR`, plus :data:`EVAL_SECONDS_PER_RUN` a run."""
    return steps / DEFAULT_RUN_STEPS * CPU_SECONDS_PER_RUN * POPULATION_FACTOR + runs * EVAL_SECONDS_PER_RUN


def compute_text(seconds: float) -> str:
    """``about 6.2 hours of one core of the reference machine, 5.3 hours of wall time with --workers 2 on its 2
    cores``."""
    hours = seconds / 3600
    return (
        f"about {hours:.1f} hours of one core of the reference machine, {hours / EFFECTIVE_CORES:.1f} hours of wall"
        " time with --workers 2 on its 2 cores"
    )


# ----- the monitors part ------------------------------------------------------------------------------------------


def monitor_sources(part: Part) -> list[Part]:
    """The sweeps whose runs the monitors part measures, in order."""
    return [sweep for source in part.monitored for sweep in source.sweeps()]


def monitor_command(part: Part, source: Part, config: ReproduceConfig) -> list[str]:
    """The ``monitor_runs.py`` command (without the interpreter) that measures the runs of the sweep ``source`` into
    its monitors.csv, skipping those measured already, with the monitors part's settings as its flags (none: the
    script's defaults)."""
    flags = [arg for name, value in part.settings.items() for arg in setting_flags(name, value)]
    return [MONITOR_SCRIPT, str(sweep_dir(source, config)), *flags]


def monitor_problem(source: Part, config: ReproduceConfig) -> str | None:
    """Why the runs of the sweep ``source`` cannot be measured here (one line), or None."""
    directory = sweep_dir(source, config)
    runs = [path.parent for path in directory.glob(f"*/{CONFIG}")] if directory.is_dir() else []
    if not runs:
        return f"{directory} holds no run yet"
    if not any((run / CHECKPOINT).is_file() for run in runs):
        return f"the runs in {directory} keep no checkpoint here (a monitor plays the trained policy)"
    return None


MONITOR_LOG = "monitors.log"
"""Where a ``monitor_runs.py`` process that runs beside others writes its output, in its sweep directory."""


def monitor_runs(part: Part, config: ReproduceConfig, say: Callable[[str], None]) -> bool:
    """Measure the runs of each of the monitors part's sweeps that has runs with checkpoints, ``config.workers``
    sweeps at a time (each a ``monitor_runs.py`` process, which skips the runs measured already; beside others, its
    output goes to :data:`MONITOR_LOG` in its sweep directory). Returns whether each exited cleanly.
    ``KeyboardInterrupt`` stops them and propagates."""
    ready = []
    for source in monitor_sources(part):
        problem = monitor_problem(source, config)
        if problem:
            say(f"{part.name}: {source.name}: skipped: {problem}")
        else:
            ready.append(source)
    logs = [
        sweep_dir(source, config) / MONITOR_LOG if config.workers > 1 and len(ready) > 1 else None for source in ready
    ]
    commands = []
    for source, log in zip(ready, logs, strict=True):
        script, *rest = monitor_command(part, source, config)
        commands.append([sys.executable, str(REPOSITORY / script), *rest])
        say(
            f"{part.name}: {source.name}: {shlex.join(['python', script, *rest])}"
            + (f" (output: {log})" if log else "")
        )
    statuses = run_processes(commands, config.workers, logs)
    for source, status in zip(ready, statuses, strict=True):
        if status != 0:
            say(f"{part.name}: {source.name}: error: {MONITOR_SCRIPT} exited with status {status}")
    return all(status == 0 for status in statuses)


def run_processes(
    commands: list[list[str]], workers: int, logs: list[Path | None] | None = None, poll_s: float = 0.5
) -> list[int]:
    """Run each command as a process of its own, at most ``workers`` at a time, its output into its file of ``logs``
    (None: this process's); their exit statuses in order. An exception (``KeyboardInterrupt``) terminates the
    processes still running, waits for them and propagates."""
    logs = logs or [None] * len(commands)
    waiting, running, statuses = list(range(len(commands))), {}, [0] * len(commands)
    try:
        while waiting or running:
            while waiting and len(running) < workers:
                index = waiting.pop(0)
                if logs[index] is None:
                    running[index] = subprocess.Popen(commands[index])
                else:
                    with open(logs[index], "ab") as log:
                        running[index] = subprocess.Popen(commands[index], stdout=log, stderr=subprocess.STDOUT)
            for index, process in list(running.items()):
                if process.poll() is not None:
                    statuses[index] = process.returncode
                    del running[index]
            if running:
                time.sleep(poll_s)
    finally:
        for process in running.values():
            process.terminate()
        for process in running.values():
            process.wait()
    return statuses


# ----- the command ------------------------------------------------------------------------------------------------


def dry_run(parts: dict[str, Part], config: ReproduceConfig, say: Callable[[str], None] = print) -> None:
    """Print each selected part's commands, size and (default preset, monitors) compute; nothing is trained or
    written."""
    total_runs = total_steps = 0
    total_seconds = 0.0
    for name in config.parts:
        part = parts[name]
        say(f"{name}: {part.description}")
        if part.monitored:
            total_seconds += dry_run_monitors(part, config, say)
            continue
        reason = skip_reason(part)
        runs = steps = 0
        for sweep in part.sweeps():
            say(f"  {command_line(sweep, config)}")
            if reason:
                continue
            sweep_runs, sweep_steps = size(sweep_config(sweep, config))
            if not part.one_sweep:
                say(f"    size: {sweep_runs} runs, {sweep_steps:,} agent-env-steps")
            runs, steps = runs + sweep_runs, steps + sweep_steps
        if reason:
            say(f"  skipped: {reason}")
            continue
        total_runs, total_steps = total_runs + runs, total_steps + steps
        say(f"  size: {runs} runs, {steps:,} agent-env-steps")
        if part.preset == "default":
            total_seconds += training_seconds(runs, steps)
            say(f"  compute: {compute_text(training_seconds(runs, steps))}")
    say(f"total: {total_runs} runs, {total_steps:,} agent-env-steps (training; evaluations not counted)")
    if total_seconds:
        say(f"compute of the parts above that state theirs: {compute_text(total_seconds)}")


def dry_run_monitors(part: Part, config: ReproduceConfig, say: Callable[[str], None]) -> float:
    """The monitors part's lines of :func:`dry_run`; returns its compute in seconds of one core. It counts the runs
    with checkpoints a sweep holds now, and those a sweep this invocation trains will hold."""
    runs = 0
    for source in monitor_sources(part):
        say(f"  {shlex.join(['python', *monitor_command(part, source, config)])}")
        directory = sweep_dir(source, config)
        problem = monitor_problem(source, config)
        if source.name.split("/")[0] in config.parts:
            count, note = len(source.points()), f"{len(source.points())} runs, as this invocation trains them"
        elif problem is None:
            count = sum((directory / run_name(*point) / CHECKPOINT).is_file() for point in source.points())
            note = f"{count} runs with checkpoints here"
        else:
            count, note = 0, f"none counted: {problem}"
        say(f"    size: {note}")
        runs += count
    seconds = runs * MONITOR_SECONDS_PER_RUN
    say(f"  size: {runs} runs to measure (no training)")
    say(f"  compute: {compute_text(seconds)}")
    return seconds


def train_parts(parts: dict[str, Part], config: ReproduceConfig, say: Callable[[str], None] = print) -> bool:
    """Train (or resume) each selected part's sweeps, then measure the monitors part's runs; a part that cannot
    start is reported and the others go on. Returns whether every selected part that could run finished every run.
    ``KeyboardInterrupt`` propagates."""
    ok = True
    measured_last = sorted(config.parts, key=lambda name: bool(parts[name].monitored))  # the runs first
    for name in measured_last:
        part = parts[name]
        reason = skip_reason(part)
        if reason:
            say(f"{name}: skipped: {reason}")
            continue
        if part.monitored:
            ok = monitor_runs(part, config, say) and ok
            continue
        for sweep in part.sweeps():
            ok = train_sweep(sweep, config, say) and ok
    return ok


def train_sweep(sweep: Part, config: ReproduceConfig, say: Callable[[str], None]) -> bool:
    """Train (or resume) one sweep; whether every run finished."""
    say(f"{sweep.name}: {command_line(sweep, config)}")
    try:
        report: SweepReport = run_sweep(sweep_config(sweep, config))
    except (ValueError, OSError) as error:  # OSError: a full or read-only disk
        say(f"{sweep.name}: error: {error_message(error)}")
        return False
    say(f"{sweep.name}: {report.summary_line()}")
    return report.ok
