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
budget-routing  routing alone as budget, under ``unwatched_baseline``
budget-1pct     the budget study at 1% oversight, the 4 methods, routing under ``unwatched_baseline``
paper-full      ``--preset paper`` at the paper's own budget (327,680,000 steps), 5 levels x 4 methods x 3 seeds;
                not in the default ``--parts`` (16.2G agent-env-steps; run it on a GPU with
                ``--parts paper-full --device cuda``)
==============  ============================================================================================

``--dry-run`` prints each part's ``sweep_oversight.py`` command (each part can be run, and resumed, with it alone) and
its size in agent-env-steps.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from oversight_rl.core.methods import get_method
from oversight_rl.engine.config import PAPER, TrainConfig, preset_config, setting_flags, tuned_config, with_overrides
from oversight_rl.experiments.ladders import Ladder, fitting_ladders
from oversight_rl.experiments.sweep import DEFAULT_METHODS, DEFAULT_OVERSIGHT, SweepConfig, SweepReport, run_sweep
from oversight_rl.rundir.files import check_directory, error_message

PartName = Literal[
    "main-default",
    "main-tuned",
    "budget",
    "ablations",
    "paper",
    "main-routing",
    "main-routed-no-baseline",
    "budget-routing",
    "budget-1pct",
    "paper-full",
]
PART_NAMES: tuple[str, ...] = get_args(PartName)
DEFAULT_PARTS: tuple[str, ...] = PART_NAMES[:-1]
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
PAPER_BEFORE_AUTHORS = {"critic": "mlp", "gate_net": "mlp", "zero_bias": False, "adam_eps": 1e-5, "vf_coef": 0.5}
"""The networks, Adam epsilon and value coefficient ``--preset paper`` had before it followed the authors' code,
pinned in the paper part, which was run with them, so that it resumes as run."""
"""The estimator without a baseline on labeled samples only: biased, but the best of four in a pilot."""
SWEEP_SCRIPT = "scripts/sweep_oversight.py"
CPU, GPU = ("cpu",), ("cuda",)
"""Where a part's committed runs were trained (:attr:`Part.trained_on`): the reference machine's CPU, or one NVIDIA
H200 (docs/results.md, "Where the runs below were trained")."""


@dataclass
class ReproduceConfig:
    """Train the sweeps of the comparison (resuming what exists) and regenerate docs/results.md's tables, CSVs and
    figures from every finished run."""

    parts: tuple[PartName, ...] = DEFAULT_PARTS
    """Parts to train: main-default, main-tuned, budget, ablations, paper, and paper-full (not in the default).
    The docs are regenerated from every part's finished runs either way."""
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
        ladders: each method's budgets read from its runs (parts whose runs have a constant learning rate, reported
            against the budget: budget and paper; see :mod:`oversight_rl.study.budget`).
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
    ladders: dict[str, Ladder] | None = None
    trained_on: tuple[str, ...] = ()

    @property
    def slug(self) -> str:
        """The part's name in file names: ``main_default``."""
        return self.name.replace("-", "_")

    def points(self) -> list[tuple[str, float, int]]:
        """Every (method, oversight, seed) of the grid, methods outermost (as the sweep orders them)."""
        return [(m, float(p), s) for m in self.methods for p in self.oversight for s in range(self.seeds)]


def part_base(preset: str, settings: dict) -> TrainConfig:
    """A part's shared run settings: ``preset``, pinned, with ``settings`` over it (as its sweep command sets them)."""
    return with_overrides(preset_config(preset), **{**PINNED, **settings})


def budget_base() -> TrainConfig:
    """The budget part's settings: the default preset, pinned, constant learning rate, 32M steps."""
    return part_base("default", BUDGET)


def default_parts(config: ReproduceConfig) -> dict[str, Part]:
    """The comparison's parts, as the module docstring lists them."""
    ladders = fitting_ladders(budget_base(), DEFAULT_METHODS, BUDGET_OVERSIGHT)  # 1M ... 32M
    main = dict(oversight=DEFAULT_OVERSIGHT, methods=DEFAULT_METHODS, seeds=10)
    budget_unbiased = {**BUDGET, **UNBIASED}
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
            settings={**BUDGET, **SHARED_BASELINE},
            ladders=ladders,
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
            ladders=fitting_ladders(part_base("paper", paper_settings), DEFAULT_METHODS, 0.1),
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
            "budget-routing",
            f"routing with the unbiased estimator against the budget at {BUDGET_OVERSIGHT:g} oversight, constant"
            " learning rate",
            (BUDGET_OVERSIGHT,),
            ("routing",),
            BUDGET_SEEDS,
            settings=budget_unbiased,
            ladders=fitting_ladders(part_base("default", budget_unbiased), ("routing",), BUDGET_OVERSIGHT),
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
            ladders=fitting_ladders(part_base("default", budget_unbiased), DEFAULT_METHODS, one_percent[0]),
        ),
        Part(
            "paper-full",
            "the paper's settings at the paper's budget",
            DEFAULT_OVERSIGHT,
            **paper,
            settings={"total_env_steps": PAPER["total_env_steps"], "eval_every": 4_000_000},
        ),
    ]
    return {part.name: part for part in parts}


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
    return shlex.join(["python", SWEEP_SCRIPT, *command(part, config)])


def size(sweep: SweepConfig) -> tuple[int, int]:
    """Runs and training agent-env-steps of a sweep (each run's budget in whole steps of its environments; the
    oracle's share of it)."""
    grid = sweep.grid()
    steps = sum(c.trained_steps(get_method(c.method).budget_scales_with_oversight) for c in grid)
    return len(grid), steps


# ----- the command ------------------------------------------------------------------------------------------------


def dry_run(parts: dict[str, Part], config: ReproduceConfig, say: Callable[[str], None] = print) -> None:
    """Print each selected part's sweep command and size; nothing is trained or written."""
    total_runs = total_steps = 0
    for name in config.parts:
        part = parts[name]
        say(f"{name}: {part.description}")
        say(f"  {command_line(part, config)}")
        reason = skip_reason(part)
        if reason:
            say(f"  skipped: {reason}")
            continue
        runs, steps = size(sweep_config(part, config))
        total_runs, total_steps = total_runs + runs, total_steps + steps
        say(f"  size: {runs} runs, {steps:,} agent-env-steps")
    say(f"total: {total_runs} runs, {total_steps:,} agent-env-steps (training; evaluations not counted)")


def train_parts(parts: dict[str, Part], config: ReproduceConfig, say: Callable[[str], None] = print) -> bool:
    """Train (or resume) each selected part's sweep; a part that cannot start is reported and the others go on.
    Returns whether every selected part that could run finished every run. ``KeyboardInterrupt`` propagates."""
    ok = True
    for name in config.parts:
        part = parts[name]
        reason = skip_reason(part)
        if reason:
            say(f"{name}: skipped: {reason}")
            continue
        say(f"{name}: {command_line(part, config)}")
        try:
            report: SweepReport = run_sweep(sweep_config(part, config))
        except (ValueError, OSError) as error:  # OSError: a full or read-only disk
            say(f"{name}: error: {error_message(error)}")
            ok = False
            continue
        say(f"{name}: {report.summary_line()}")
        ok = ok and report.ok
    return ok
