"""Statistics over seeds that survive review (Agarwal et al. 2021, "Deep RL at the edge of the statistical
precipice"): the interquartile mean, stratified bootstrap confidence intervals and the probability of improvement.
Plain numpy, so that no plotting or data-frame library is needed.

A *task* is a group of runs that must not be mixed when resampling: here one oversight level (or a single grid
point, for which the stratified bootstrap is the ordinary percentile bootstrap over seeds). Scores are given per
task, either as a mapping ``{task: values}`` or as a sequence of per-task value arrays; a flat array of numbers is
one task. Tasks may hold different numbers of runs.

**Non-finite values are ignored** everywhere (a NaN marks a metric that a run could not define, such as the hacking
gap of a run that met no watched Ghost); a task left with no value is dropped, and a result with no task left is
NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

DEFAULT_RESAMPLES = 2000
MIN_SEEDS = 3
"""Fewest seeds (runs) in a group for its 95% interval to be shown: below it a bootstrap interval is a point or two."""
CHUNK_ELEMENTS = 4_000_000
"""Most pairwise comparisons held in memory at once by :func:`probability_of_improvement`."""


class Interval(NamedTuple):
    """A point estimate and its confidence interval ``[low, high]``; compares equal to ``(estimate, low, high)``."""

    estimate: float
    low: float
    high: float


NAN_INTERVAL = Interval(float("nan"), float("nan"), float("nan"))


# ----- statistics of one sample -----------------------------------------------------------------------------------


def mean(values) -> np.ndarray | float:
    """Mean along the last axis (a statistic for :func:`stratified_bootstrap_ci`)."""
    return np.mean(np.asarray(values, dtype=float), axis=-1)


def iqm(values) -> np.ndarray | float:
    """Interquartile mean along the last axis: the mean of the middle 50% of the values.

    Defined as rliable's ``aggregate_iqm`` is, a 25% trimmed mean with whole values cut (scipy's ``trim_mean``
    semantics): of ``n`` values, ``floor(n / 4)`` are dropped from each end and the rest averaged, with no fractional
    weights. So 10 values average their middle 6, and fewer than 4 values their plain mean. Non-finite values are not
    removed here (a NaN makes the result NaN); :func:`stratified_bootstrap_ci` removes them first.
    """
    values = np.sort(np.asarray(values, dtype=float), axis=-1)
    n = values.shape[-1]
    if n == 0:
        return np.full(values.shape[:-1], np.nan) if values.ndim > 1 else float("nan")
    cut = n // 4
    return np.mean(values[..., cut : n - cut], axis=-1)


# ----- inputs -----------------------------------------------------------------------------------------------------


def finite(values) -> np.ndarray:
    """The finite values of ``values`` as a flat float array."""
    values = np.asarray(values, dtype=float).ravel()
    return values[np.isfinite(values)]


def as_tasks(scores_by_task) -> dict:
    """``{task: finite values}`` from a mapping, a sequence of per-task arrays, or a flat array (one task, ``0``)."""
    if isinstance(scores_by_task, Mapping):
        items = scores_by_task.items()
    elif isinstance(scores_by_task, np.ndarray) and scores_by_task.ndim > 1:
        raise ValueError("give scores per task as a mapping or a list of 1-D arrays, not one 2-D array")
    elif isinstance(scores_by_task, np.ndarray) or all(np.ndim(v) == 0 for v in scores_by_task):
        items = [(0, scores_by_task)]
    else:
        items = enumerate(scores_by_task)
    return {task: finite(values) for task, values in items}


def nonempty(tasks: dict) -> list[np.ndarray]:
    return [values for values in tasks.values() if values.size]


def resample(rng: np.random.Generator, values: np.ndarray, resamples: int) -> np.ndarray:
    """``resamples`` draws of ``values`` with replacement, each as large as ``values``: ``(resamples, n)``."""
    return values[rng.integers(0, values.size, size=(resamples, values.size))]


def percentile_interval(estimate: float, draws: np.ndarray, confidence: float) -> Interval:
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(draws, [tail, 1.0 - tail])
    return Interval(float(estimate), float(low), float(high))


def check_confidence(confidence: float, resamples: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples!r}")


# ----- intervals --------------------------------------------------------------------------------------------------


def stratified_bootstrap_ci(
    scores_by_task,
    statistic: Callable[[np.ndarray], np.ndarray] = mean,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """``statistic`` of the scores of all tasks together, and its stratified percentile-bootstrap interval.

    Each bootstrap draw resamples the runs of every task with replacement *within* that task (so each task keeps
    its number of runs), pools the tasks' draws and recomputes ``statistic``; the interval is the central
    ``confidence`` range of ``resamples`` such draws. ``statistic`` maps scores along the last axis to one value
    (:func:`mean`, :func:`iqm`). With one task this is the ordinary percentile bootstrap over seeds; one run gives
    ``low == high == estimate``. The draws come from ``numpy.random.default_rng(seed)``: same seed, same interval.
    """
    check_confidence(confidence, resamples)
    tasks = nonempty(as_tasks(scores_by_task))
    if not tasks:
        return NAN_INTERVAL
    estimate = float(statistic(np.concatenate(tasks)))
    rng = np.random.default_rng(seed)
    draws = statistic(np.concatenate([resample(rng, values, resamples) for values in tasks], axis=1))
    return percentile_interval(estimate, draws, confidence)


def difference_of_means_ci(
    x, y, confidence: float = 0.95, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> Interval:
    """``mean(x) - mean(y)`` of two independent samples (runs of two methods, or of one method at two settings) and
    its percentile-bootstrap interval: each draw resamples ``x`` and ``y`` independently, each keeping its size.
    Non-finite values are ignored; NaN when either sample has no finite value. (For paired samples, such as the same
    runs evaluated at two budgets, bootstrap the per-run differences with :func:`stratified_bootstrap_ci`.)"""
    check_confidence(confidence, resamples)
    x, y = finite(x), finite(y)
    if not x.size or not y.size:
        return NAN_INTERVAL
    rng = np.random.default_rng(seed)
    draws = mean(resample(rng, x, resamples)) - mean(resample(rng, y, resamples))
    return percentile_interval(float(x.mean() - y.mean()), draws, confidence)


def contrast_of_means_ci(
    samples: Sequence,
    weights: Sequence[float],
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """``sum_i weights[i] * mean(samples[i])`` of independent samples (runs of several methods or settings) and its
    percentile-bootstrap interval: each draw resamples every sample independently, each keeping its size, in the
    order given. A difference of two drops, ``(a0 - a1) - (b0 - b1)``, is the samples ``(a0, a1, b0, b1)`` with the
    weights ``(1, -1, -1, 1)``; with ``(x, y)`` and ``(1, -1)`` it is :func:`difference_of_means_ci`, draw for draw.
    Non-finite values are ignored; NaN when a sample has no finite value."""
    check_confidence(confidence, resamples)
    if len(samples) != len(weights) or not samples:
        raise ValueError(f"give one weight per sample, got {len(samples)} samples and {len(weights)} weights")
    samples = [finite(x) for x in samples]
    if not all(x.size for x in samples):
        return NAN_INTERVAL
    rng = np.random.default_rng(seed)
    draws = sum(w * mean(resample(rng, x, resamples)) for x, w in zip(samples, weights, strict=True))
    estimate = sum(w * float(x.mean()) for x, w in zip(samples, weights, strict=True))
    return percentile_interval(float(estimate), draws, confidence)


def improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + P(X = Y) / 2 for samples ``x`` ``(..., n)`` and ``y`` ``(..., m)``: the Mann-Whitney U statistic
    of ``x`` over ``y`` divided by ``n * m``, along the last axis."""
    wins = (x[..., :, None] > y[..., None, :]).sum(axis=(-2, -1))
    ties = (x[..., :, None] == y[..., None, :]).sum(axis=(-2, -1))
    return (wins + 0.5 * ties) / (x.shape[-1] * y.shape[-1])


def paired_tasks(x_by_task, y_by_task) -> list[tuple[np.ndarray, np.ndarray]]:
    """The tasks of ``x`` and ``y`` side by side (by key for mappings, else by position), keeping those where both
    have a finite value."""
    x, y = as_tasks(x_by_task), as_tasks(y_by_task)
    if x.keys() != y.keys():
        raise ValueError(f"x and y must have the same tasks, got {sorted(x, key=str)} and {sorted(y, key=str)}")
    return [(x[task], y[task]) for task in x if x[task].size and y[task].size]


def probability_of_improvement(
    x_by_task,
    y_by_task,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Probability that a run of X scores higher than a run of Y, averaged over tasks, with its stratified
    percentile-bootstrap interval.

    Per task it is ``P(X > Y) + P(X = Y) / 2`` over all pairs of X's and Y's runs (ties count half: the
    Mann-Whitney U statistic over ``n * m``); the estimate is the mean over the tasks where both have a finite
    value. Each bootstrap draw resamples X's runs and Y's runs independently within each task. 0.5 means no
    difference; above 0.5, X tends to score higher.
    """
    check_confidence(confidence, resamples)
    tasks = paired_tasks(x_by_task, y_by_task)
    if not tasks:
        return NAN_INTERVAL
    estimate = float(np.mean([improvement(x, y) for x, y in tasks]))
    rng = np.random.default_rng(seed)
    draws = np.zeros(resamples)
    for x, y in tasks:
        x_draws, y_draws = resample(rng, x, resamples), resample(rng, y, resamples)
        chunk = max(1, CHUNK_ELEMENTS // (x.size * y.size))
        for start in range(0, resamples, chunk):
            draws[start : start + chunk] += improvement(x_draws[start : start + chunk], y_draws[start : start + chunk])
    return percentile_interval(estimate, draws / len(tasks), confidence)


def describe(values: Sequence[float]) -> dict[str, float]:
    """``n`` (finite values), ``mean`` and ``iqm`` of one sample, and 95% bootstrap intervals of both
    (``mean_low``, ``mean_high``, ``iqm_low``, ``iqm_high``; NaN without a finite value)."""
    values = finite(values)
    mean_ci, iqm_ci = stratified_bootstrap_ci([values], mean), stratified_bootstrap_ci([values], iqm)
    return {
        "n": int(values.size),
        "mean": mean_ci.estimate,
        "mean_low": mean_ci.low,
        "mean_high": mean_ci.high,
        "iqm": iqm_ci.estimate,
        "iqm_low": iqm_ci.low,
        "iqm_high": iqm_ci.high,
    }


def bootstrap_ci(values, confidence: float = 0.95, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> Interval:
    """Mean and percentile-bootstrap confidence interval of the mean of ``values`` over seeds (non-finite values
    ignored): the one-task case of :func:`oversight_rl.analysis.stats.stratified_bootstrap_ci`.

    Returns ``(mean, low, high)``; all NaN when no value is finite, and ``low == high == mean`` for a single value.
    """
    return stratified_bootstrap_ci({"seeds": values}, mean, confidence, resamples, seed)


def seed_band(curves: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Mean and 95% bootstrap band over the seeds' :class:`~oversight_rl.rundir.gather.Curve`\s at each evaluated step
    count, and how many seeds each point has:
    ``(env_steps, mean, low, high, seeds)``.

    Runs are matched by step count; where a run has no evaluation (it stopped early) the band uses the others.
    """
    steps = np.unique(np.concatenate([curve.env_steps for curve in curves]))
    stats, seeds = [], []
    for step in steps:
        values = np.concatenate([curve.true_return[curve.env_steps == step] for curve in curves])
        stats.append(bootstrap_ci(values))
        seeds.append(int(np.isfinite(values).sum()))
    mean, low, high = np.array(stats, dtype=float).reshape(-1, 3).T
    return steps, mean, low, high, np.array(seeds, dtype=int)
