"""Final values against the training budget, read from one long run per method and seed.

With a constant learning rate (``anneal_lr=False``) nothing a run computes up to step B depends on its budget: its
random streams are counter-based (keyed by its seed and the update), every update uses the same learning rate, and
every evaluation resets fresh environments with the same seeds. So the evaluation that a long run makes right after
B steps *is* the final evaluation of a run with budget B, to the bit (``tests/test_reproduce.py`` trains both and
compares them, and shows that it fails under an annealed learning rate). One run per seed at the largest budget then
gives the final value at every budget of a doubling ladder, provided that:

- every budget is a whole number of rollout windows (``num_envs x num_steps``): a budget that is not ends with a
  shorter last window (:meth:`oversight_rl.engine.config.TrainConfig.window_steps`), which the long run never trains;
- the long run evaluates right after each budget: its evaluation interval (in updates) divides each budget's updates;
- for the oracle, which trains ``oversight x`` the budget and scales its evaluation interval alike, the same holds
  of ``oversight x`` each budget.

Each method's ladder therefore starts at the budget that its run's own evaluation interval makes exact
(:func:`method_ladder`). With ``--total-env-steps 32000000 --eval-every 1000000`` at the default 256 x 32 window, a
run evaluates every 122 windows, so the nominal 1M is 999,424 steps (122 windows) for routing, filtering and naive;
the oracle at 10% evaluates every 12 windows of its share, so its 1M is 983,040 steps (of which it trains 98,304).
The budgets keep their nominal names (1M, 2M, ...) in tables and figures; the CSV holds the exact steps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from oversight_rl.core.methods import get_method
from oversight_rl.engine.config import TrainConfig


@dataclass(frozen=True)
class Ladder:
    """Budgets ``unit x 2**j`` for ``j < doublings``, named after ``nominal x 2**j`` (1M, 2M, ...): ``nominal`` is the
    evaluation interval asked for, ``unit`` the exact budget that a run's first evaluation ends."""

    unit: int
    doublings: int
    nominal: int = 1_000_000

    @property
    def budgets(self) -> list[int]:
        return [self.unit * 2**j for j in range(self.doublings)]

    @property
    def longest(self) -> int:
        return self.budgets[-1]

    def label(self, budget: int) -> str:
        """The nominal name of ``budget``: ``1M``, ``2M``, ..., ``32M``."""
        nominal = self.nominal * budget / self.unit
        return f"{nominal / 1e6:g}M" if nominal >= 1e6 else f"{nominal / 1e3:g}k"


def with_budget(train: TrainConfig, budget: int, **point) -> TrainConfig:
    return dataclasses.replace(train, total_env_steps=budget, **point)


def trained_steps(train: TrainConfig, method: str, oversight: float, budget: int) -> int:
    """Environment steps a run of ``method`` at ``oversight`` trains with budget ``budget`` (the oracle's share)."""
    scales = get_method(method).budget_scales_with_oversight
    return with_budget(train, budget, method=method, oversight=oversight).trained_steps(scales)


def ladder_problems(train: TrainConfig, method: str, oversight: float, budgets: list[int]) -> list[str]:
    """Why the evaluation that one run at budget ``max(budgets)`` (with ``train``'s other settings, its evaluation
    interval included) makes at each budget would not be the final evaluation of a run with that budget; empty when
    it is at every budget."""
    problems = []
    if train.anneal_lr:
        problems.append("the learning rate is annealed over the budget (use --no-anneal-lr)")
    if get_method(method).early_stopping:
        problems.append(f"{method} stops early, so its budget can end its run before the evaluation")
    scales = get_method(method).budget_scales_with_oversight
    long = with_budget(train, max(budgets), method=method, oversight=oversight)
    interval = long.eval_interval(scales)
    for budget in budgets:
        short = with_budget(train, budget, method=method, oversight=oversight)
        updates, steps = short.num_updates(scales), short.budget(scales)
        if steps != updates * short.steps_per_update:
            problems.append(
                f"{method} at budget {budget:,} trains {steps:,} steps, not a whole number of windows of "
                f"{short.steps_per_update:,}: its last window is shorter than the long run's"
            )
        elif updates % interval:
            problems.append(
                f"{method}'s long run evaluates every {interval} updates, which misses update {updates} where "
                f"budget {budget:,} ends"
            )
    return problems


def ladder_unit(train: TrainConfig, method: str, oversight: float) -> int:
    """The budget whose steps (the oracle: whose share of steps) end the first evaluation of a run of ``method``
    with ``train``'s settings."""
    scales = get_method(method).budget_scales_with_oversight
    share = oversight if scales else 1.0
    run = with_budget(train, train.total_env_steps, method=method, oversight=oversight)
    return round(run.eval_interval(scales) * train.steps_per_update / share)


def method_ladder(train: TrainConfig, method: str, oversight: float, doublings: int) -> Ladder:
    """The ladder that one run of ``method`` with ``train``'s settings reproduces exactly: its smallest budget is
    the budget whose (oracle: share of) steps end at the run's first evaluation; ``ValueError`` naming what breaks
    the premise (an annealed learning rate, early stopping, a budget too short for the ladder)."""
    ladder = Ladder(ladder_unit(train, method, oversight), doublings, nominal=train.eval_every)
    problems = ladder_problems(train, method, oversight, ladder.budgets)
    run = trained_steps(train, method, oversight, train.total_env_steps)
    if trained_steps(train, method, oversight, ladder.longest) > run:
        problems.append(f"{method}'s run of {train.total_env_steps:,} steps stops before budget {ladder.longest:,}")
    if problems:
        raise ValueError(f"no exact budget ladder for {method}: {'; '.join(problems)}")
    return ladder


def fitting_ladders(train: TrainConfig, methods: tuple[str, ...], oversight: float) -> dict[str, Ladder]:
    """Each method's ladder (:func:`method_ladder`) with as many doublings as every method's run of
    ``train.total_env_steps`` reaches, so that all share the same nominal budgets."""

    def reached(method: str) -> int:
        unit = ladder_unit(train, method, oversight)
        run = trained_steps(train, method, oversight, train.total_env_steps)
        doublings = 0
        while trained_steps(train, method, oversight, unit * 2**doublings) <= run:
            doublings += 1
        return doublings

    doublings = min(reached(method) for method in methods)
    if doublings == 0:
        raise ValueError(f"a run of {train.total_env_steps:,} steps ends before its first evaluation")
    return {method: method_ladder(train, method, oversight, doublings) for method in methods}
