"""The statistics over seeds against hand-computed values: IQM, stratified bootstrap intervals, probability of
improvement; edge cases (one seed, ties, non-finite values), reproducibility and coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from oversight_rl.analysis import stats
from oversight_rl.analysis.stats import Interval, iqm, mean, probability_of_improvement, stratified_bootstrap_ci

NAN = float("nan")


def is_nan_interval(interval) -> bool:
    return all(math.isnan(x) for x in interval)


# ----- IQM --------------------------------------------------------------------------------------------------------


def test_iqm_cuts_whole_quarters_like_rliable():
    # 10 values: floor(10 / 4) = 2 cut from each end, the middle 6 averaged: (0 + 1 + 2 + 3 + 4 + 100) / 6 = 18.33.
    # (A fractionally weighted IQM would give (0.5 * 0 + 1 + 2 + 3 + 4 + 0.5 * 100) / 5 = 12; the mean is 31.)
    values = [100, 3, 0, 100, 1, 0, 4, 100, 2, 0]
    assert iqm(values) == pytest.approx(110 / 6)
    assert iqm([4, 1, 3, 2]) == pytest.approx(2.5)  # cut one from each end: (2 + 3) / 2
    assert iqm([1, 2, 9]) == pytest.approx(4.0)  # fewer than 4 values: floor(3 / 4) = 0, the plain mean
    assert iqm([7.0]) == 7.0
    assert math.isnan(iqm([]))


def test_iqm_works_along_the_last_axis():
    rows = np.array([[4, 1, 3, 2], [10, 10, 0, 20]])  # middles (2, 3) and (10, 10)
    np.testing.assert_allclose(iqm(rows), [2.5, 10.0])
    np.testing.assert_allclose(mean(rows), [2.5, 10.0])


# ----- stratified bootstrap ---------------------------------------------------------------------------------------


def test_one_seed_gives_a_point_interval():
    assert stratified_bootstrap_ci([0.3]) == (0.3, 0.3, 0.3)
    assert stratified_bootstrap_ci([0.3], iqm) == Interval(0.3, 0.3, 0.3)


def test_non_finite_values_are_ignored():
    assert stratified_bootstrap_ci([NAN, 1.0, math.inf, -math.inf]) == (1.0, 1.0, 1.0)
    assert is_nan_interval(stratified_bootstrap_ci([NAN, NAN]))
    assert is_nan_interval(stratified_bootstrap_ci([]))
    assert is_nan_interval(stratified_bootstrap_ci({"a": [NAN], "b": []}))


def test_resampling_stays_within_each_task():
    # Task a always scores 0 and task b always 1: every stratified draw keeps two of each, so the pooled mean is
    # 0.5 in every draw. Resampling the four values together would give draws from 0 to 1.
    assert stratified_bootstrap_ci({"a": [0.0, 0.0], "b": [1.0, 1.0]}) == (0.5, 0.5, 0.5)
    assert stratified_bootstrap_ci([[0.0, 0.0], [1.0, 1.0]]) == (0.5, 0.5, 0.5)  # tasks by position


def test_ragged_tasks_by_hand():
    # Task a = [0, 1] draws a sum of 0, 1 or 2 (probabilities 1/4, 1/2, 1/4); task b = [5] always draws 5. The pooled
    # mean of three values is then 5/3, 2 or 7/3, so the central 95% of the draws runs from 5/3 to 7/3.
    estimate, low, high = stratified_bootstrap_ci({"a": [0.0, 1.0], "b": [5.0]})
    assert estimate == pytest.approx(2.0)
    assert (low, high) == (pytest.approx(5 / 3), pytest.approx(7 / 3))


def test_the_statistic_is_recomputed_on_each_draw():
    values = [100, 3, 0, 100, 1, 0, 4, 100, 2, 0]
    estimate, low, high = stratified_bootstrap_ci(values, iqm)
    assert estimate == pytest.approx(110 / 6)
    assert low < estimate < high and high < 100  # the IQM's draws never reach the outliers' level
    assert stratified_bootstrap_ci(values, mean).estimate == pytest.approx(31.0)


def test_same_seed_same_interval_and_another_seed_another():
    values = np.random.default_rng(0).normal(size=12)
    assert stratified_bootstrap_ci(values, seed=3) == stratified_bootstrap_ci(values, seed=3)
    assert stratified_bootstrap_ci(values, seed=3) != stratified_bootstrap_ci(values, seed=4)


def test_a_wider_confidence_gives_a_wider_interval():
    values = np.random.default_rng(0).normal(size=12)
    _, low80, high80 = stratified_bootstrap_ci(values, confidence=0.8)
    _, low99, high99 = stratified_bootstrap_ci(values, confidence=0.99)
    assert low99 < low80 < high80 < high99


@pytest.mark.parametrize("kwargs", [{"confidence": 1.0}, {"confidence": 0.0}, {"resamples": 0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        stratified_bootstrap_ci([1.0, 2.0], **kwargs)


def test_a_two_dimensional_array_is_refused_as_ambiguous():
    with pytest.raises(ValueError, match="per task"):
        stratified_bootstrap_ci(np.zeros((3, 2)))


@pytest.mark.parametrize("n, lowest", [(10, 0.85), (40, 0.90)])
def test_the_interval_covers_the_true_mean_about_95_percent_of_the_time(n, lowest):
    """200 samples of ``n`` values from N(0.3, 1) (fixed seed): the share of intervals that cover 0.3. The
    percentile bootstrap undercovers on small samples (it spreads like the plug-in standard deviation, without the
    t distribution's heavier tails): about 0.90 at n = 10 and 0.94 at n = 40 for normal data. A broken interval (too
    narrow, wrong quantiles, resampling the wrong axis) falls far below either bound."""
    rng = np.random.default_rng(12345)
    covered = [
        (lambda interval: interval.low <= 0.3 <= interval.high)(stratified_bootstrap_ci(rng.normal(0.3, 1, n), seed=k))
        for k in range(200)
    ]
    assert lowest <= np.mean(covered) <= 0.99


# ----- probability of improvement ---------------------------------------------------------------------------------


def test_probability_of_improvement_by_hand():
    # x = [2, 3, 4], y = [1, 2]: of the 6 pairs, 5 have x > y and one (2, 2) ties, counting half: 5.5 / 6.
    assert probability_of_improvement([2, 3, 4], [1, 2]).estimate == pytest.approx(5.5 / 6)
    assert probability_of_improvement([1, 2], [0, 3]).estimate == pytest.approx(0.5)  # 2 of 4 pairs
    # Swapping X and Y gives the complement.
    assert probability_of_improvement([1, 2], [2, 3, 4]).estimate == pytest.approx(0.5 / 6)


def test_probability_of_improvement_averages_over_tasks_not_pooled_runs():
    # Task a: x = [1] beats y = [0] for sure (1). Task b: x = [0, 0], y = [1, 0]: 2 of 4 pairs tie (0.25).
    # The mean over tasks is 0.625; pooling all runs would give 4.5 / 9 = 0.5.
    x, y = {"a": [1.0], "b": [0.0, 0.0]}, {"a": [0.0], "b": [1.0, 0.0]}
    assert probability_of_improvement(x, y).estimate == pytest.approx(0.625)


def test_ties_count_half():
    assert probability_of_improvement([1.0, 1.0], [1.0, 1.0]) == (0.5, 0.5, 0.5)


def test_one_run_each_gives_a_point_interval():
    assert probability_of_improvement([1.0], [0.0]) == (1.0, 1.0, 1.0)


def test_probability_of_improvement_interval_by_hand():
    # x = [0, 1], y = [0.5]: a draw of x holds k ones, k ~ Binomial(2, 1/2), and scores k / 2 in {0, 0.5, 1} with
    # probabilities 1/4, 1/2, 1/4; the central 95% of the draws is [0, 1].
    assert probability_of_improvement([0.0, 1.0], [0.5]) == (0.5, 0.0, 1.0)


def test_probability_of_improvement_ignores_non_finite_values_and_empty_tasks():
    assert probability_of_improvement([NAN, 1.0], [0.0, math.inf]).estimate == 1.0
    x, y = {"a": [1.0], "b": [NAN]}, {"a": [0.0], "b": [5.0]}  # task b has no finite x: left out
    assert probability_of_improvement(x, y) == (1.0, 1.0, 1.0)
    assert is_nan_interval(probability_of_improvement([NAN], [1.0]))


def test_probability_of_improvement_needs_the_same_tasks():
    with pytest.raises(ValueError, match="same tasks"):
        probability_of_improvement({"a": [1.0]}, {"b": [1.0]})


def test_probability_of_improvement_is_reproducible_and_chunking_changes_nothing(monkeypatch):
    rng = np.random.default_rng(1)
    x = {p: rng.normal(0.2, 1, 7) for p in ("p1", "p2")}
    y = {p: rng.normal(0.0, 1, 5) for p in ("p1", "p2")}
    whole = probability_of_improvement(x, y, seed=5)
    assert whole == probability_of_improvement(x, y, seed=5)
    monkeypatch.setattr(stats, "CHUNK_ELEMENTS", 70)  # two draws of 7 x 5 pairs at a time
    assert probability_of_improvement(x, y, seed=5) == whole
    assert whole.low < whole.estimate < whole.high


# ----- difference of means ---------------------------------------------------------------------------------------


def test_difference_of_means_interval_by_hand():
    # x = [0, 1] (mean 0.5), y = [0.25]: a draw of x holds k ones, k ~ Binomial(2, 1/2), so the difference is
    # k / 2 - 0.25 in {-0.25, 0.25, 0.75} with probabilities 1/4, 1/2, 1/4; the central 95% is [-0.25, 0.75].
    assert stats.difference_of_means_ci([0.0, 1.0], [0.25]) == (0.25, -0.25, 0.75)
    assert stats.difference_of_means_ci([1.0, 1.0], [0.0, 0.0, 0.0]) == (1.0, 1.0, 1.0)


def test_difference_of_means_resamples_each_side_and_ignores_non_finite_values():
    rng = np.random.default_rng(3)
    x, y = rng.normal(0.5, 0.1, 10), rng.normal(0.0, 0.1, 4)
    interval = stats.difference_of_means_ci([*x, NAN], [*y, math.inf], seed=2)
    assert interval == stats.difference_of_means_ci(x, y, seed=2)
    assert interval.estimate == pytest.approx(x.mean() - y.mean()) and interval.low < interval.estimate < interval.high
    assert 0.3 < interval.low and interval.high < 0.7
    assert is_nan_interval(stats.difference_of_means_ci([NAN], [1.0]))


# ----- one grid point ---------------------------------------------------------------------------------------------


def test_describe_one_sample():
    summary = stats.describe([4.0, 1.0, NAN, 3.0, 2.0])
    assert summary["n"] == 4
    assert summary["mean"] == pytest.approx(2.5) and summary["iqm"] == pytest.approx(2.5)
    assert summary["mean_low"] < 2.5 < summary["mean_high"] and summary["iqm_low"] < 2.5 < summary["iqm_high"]
    empty = stats.describe([NAN])
    assert empty["n"] == 0 and math.isnan(empty["mean"]) and math.isnan(empty["iqm_high"])
