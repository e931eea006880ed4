"""The budget study's rows: each method's final values at every budget of its ladder, read from one long run per
method and seed (:mod:`oversight_rl.experiments.ladders` explains why that is exact)."""

from __future__ import annotations

from pathlib import Path

from oversight_rl.core.methods import get_method
from oversight_rl.engine.config import TrainConfig
from oversight_rl.experiments.ladders import Ladder, trained_steps
from oversight_rl.rundir.files import EVAL_CSV, run_name
from oversight_rl.rundir.metrics import TABLE_METRICS
from oversight_rl.rundir.readers import Unreadable, read_evaluations
from oversight_rl.rundir.status import run_status


def budget_rows(
    sweep_dir: str | Path,
    train: TrainConfig,
    points: list[tuple[str, float, int]],
    ladders: dict[str, Ladder],
    policy: str | None = None,
) -> list[dict]:
    """One row per grid point and budget: the evaluation of ``policy`` (by default the method's deployed policy)
    right after that budget (``status`` ``done``), or the run's state when it has not reached it (``missing``,
    ``interrupted``, ``failed``; a run need not be finished for its earlier budgets to count). ``budget`` is the
    nominal-named budget's steps, ``env_steps`` the steps the run had trained (the oracle's share of it)."""
    sweep_dir = Path(sweep_dir)
    rows = []
    for method, oversight, seed in points:
        run_dir = sweep_dir / run_name(method, oversight, seed)
        deployed = get_method(method).deploy
        evaluated = policy or deployed
        evaluations, status, reason = policy_evaluations(run_dir, evaluated)
        ladder = ladders[method]
        for budget in ladder.budgets:
            steps = trained_steps(train, method, oversight, budget)
            row = {"method": method, "oversight": oversight, "seed": seed, "budget": budget}
            row.update(budget_label=ladder.label(budget), env_steps=steps, deployed=deployed, policy=evaluated)
            found = evaluations.get(steps)
            if found is None:
                row.update(status=status, **dict.fromkeys(TABLE_METRICS), run=run_dir.name, reason=reason)
            else:
                metrics = {name: found.get(name) for name in TABLE_METRICS}
                row.update(status="done", **metrics, run=run_dir.name, reason=None)
            rows.append(row)
    return rows


def policy_evaluations(run_dir: Path, policy: str) -> tuple[dict[int, dict], str, str | None]:
    """The eval.csv rows of variant ``policy`` by env_steps, the run's state, and why eval.csv cannot be read (if)."""
    status = run_status(run_dir)
    if not (run_dir / EVAL_CSV).exists():
        return {}, status, None
    try:
        rows = read_evaluations(run_dir)
    except Unreadable as error:
        return {}, "unreadable", str(error)
    return {int(row["env_steps"]): row for row in rows if row["policy"] == policy}, status, None
