"""The paper's claims, each tested on the sweeps of :mod:`oversight_rl.study.reproduce` with a verdict computed from a
95% bootstrap interval, never written by hand.

Each claim is made measurable by one statistic with its interval (a mean, a difference of means, or the probability
that one method's run scores higher than another's, :mod:`oversight_rl.analysis.stats`) and a *claimed region* of that
statistic. The verdict is

- ``supported`` when the whole interval lies inside the claimed region,
- ``contradicted`` when the whole interval lies outside it,
- ``inconclusive`` when the interval straddles its edge,

and ``too few runs`` below :data:`MIN_RUNS` runs in a compared group (one run's interval is a point), ``no data``
without any. "Matches" and "on par" claims are tested for non-inferiority or equivalence within a margin of
:data:`MARGIN` true return (about six standard errors of one evaluation at 2048 environments).

The budget sweep's claims are read at the budgets they are about, named in each row's test: a claim about a ceiling
or a peak at the budget where that method's mean over seeds is highest (:meth:`Evidence.best_budget`; a choice among
the ladder's budgets, made the same way for each side), "the oracle needs 3-4x more steps to match routing" from
routing's best budget B among those with 4B on the ladder, and "once naive has had time to hack" at the longest
budget. Routing is the paper's estimator in the paper's rows (main-default, budget), but for one row that reads the
ceiling under the unbiased estimator (budget-routing's runs, the budget sweep's seeds). The rows marked "(default
estimator)" measure the main grid's claims about routing again with the package's default estimator, at default
settings and under each method's tuned preset, with one question the paper's rows do not ask: is routing's Diamond
expert at or above filtering at 1% and 3% oversight, where oversight is scarcest?

The gradient-routing post's two claims that fit the gridworld (rows marked "(post)"; routing with the package's
default estimator, from the parts label-noise, spurious-oversight and monitors, :mod:`oversight_rl.study.imperfect`)
are measured thus, each at 10% oversight unless its row says otherwise:

- "Routing works better with imperfect labels than filtering", read as robustness, by the **difference of drops**
  ``D = (F(0) - F(0.2)) - (R(0) - R(0.2))``, where ``F(E)`` and ``R(E)`` are the means over seeds of filtering's and
  routing's final deployed true return when each label is wrong with probability E (``--label-noise E``). D > 0: routing
  loses less than filtering as E goes from 0 to 0.2. Its interval resamples the four groups' runs independently
  (:func:`oversight_rl.analysis.stats.contrast_of_means_ci`; the seeds of E = 0 and E = 0.2 are different runs). The
  same at 3% oversight; the same with spurious oversight in place of label noise (s = 0 and s = 0.3: cells marked
  watched that carry no label, so the agent's view of oversight is wrong rather than the label); and, read as
  level, P(routing > filtering) at E = 0.2.
- "Routing's gate allows monitoring", by routing's **gate AUROC** (mean over runs of the AUROC of ``1 - gate`` for
  telling the unlabeled episodes that end at the Ghost from those that end at the Diamond, above 0.5: better than
  chance), and by the **gate-minus-probe difference**: the mean over routing's runs of that run's gate AUROC minus
  the AUROC of a probe trained on the same run's labels and scored on the same episodes
  (:mod:`oversight_rl.engine.monitor`), with the percentile bootstrap of the per-run differences; the claimed region
  is "not below -:data:`AUROC_MARGIN`" (the gate monitors at least as well as the obvious alternative). The same
  under label noise E = 0.2.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from oversight_rl.analysis import stats
from oversight_rl.analysis.comparison import final_values, interval, number
from oversight_rl.analysis.stats import NAN_INTERVAL, Interval
from oversight_rl.rundir.gather import SweepResults

MIN_RUNS = stats.MIN_SEEDS
CLAIM_COLUMNS = ("claim", "test", "claimed", "estimate", "low", "high", "runs", "verdict")
MARGIN = 0.05
AUROC_MARGIN = 0.05
"""How far below a probe's AUROC the gate's may lie and still count as "at least as good"."""
NOISE_FROM, NOISE_TO = 0.0, 0.2
"""The label noise E between which the drops are read."""
SPURIOUS_TO = 0.3
"""The spurious oversight s to which the drops are read (from s = 0)."""
SUPPORTED, CONTRADICTED, INCONCLUSIVE, TOO_FEW, NO_DATA = (
    "supported",
    "contradicted",
    "inconclusive",
    "too few runs",
    "no data",
)


@dataclass(frozen=True)
class Measurement:
    """A statistic and its interval, and the number of runs in the smallest group it compares."""

    interval: Interval
    runs: int


NO_MEASUREMENT = Measurement(NAN_INTERVAL, 0)


@dataclass(frozen=True)
class Region:
    """The values of a statistic that a claim asserts: ``(low, high)``, either end open (infinite)."""

    low: float = -math.inf
    high: float = math.inf

    def describe(self) -> str:
        if math.isinf(self.low):
            return f"< {self.high:.3g}"
        if math.isinf(self.high):
            return f"> {self.low:.3g}"
        return f"in [{self.low:.3g}, {self.high:.3g}]"


def verdict(measurement: Measurement, region: Region, min_runs: int = MIN_RUNS) -> str:
    """``supported`` / ``contradicted`` / ``inconclusive`` from where the interval lies against the claimed region
    (strictly inside, strictly outside, across an edge); ``no data`` or ``too few runs`` before that."""
    estimate, low, high = measurement.interval
    if measurement.runs == 0 or not all(map(math.isfinite, (estimate, low, high))):
        return NO_DATA
    if measurement.runs < min_runs:
        return TOO_FEW
    if region.low < low and high < region.high:
        return SUPPORTED
    if high < region.low or low > region.high:
        return CONTRADICTED
    return INCONCLUSIVE


# ----- the evidence and its statistics ----------------------------------------------------------------------------


@dataclass
class Evidence:
    """What the claims are tested on: the main grid, the ablations (with routing and naive from the main grid), the
    budget rows (:func:`oversight_rl.study.budget.budget_rows`) with their nominal labels, and the score of always
    walking to the nearest terminal (:mod:`oversight_rl.engine.references`)."""

    main: SweepResults
    ablations: SweepResults
    budget: list[dict] = field(default_factory=list)
    nearest_terminal: float = math.nan
    budget_routing: list[dict] = field(default_factory=list)
    """Routing's budget rows under the unbiased estimator (the part budget-routing: the budget sweep's seeds)."""
    label_noise: list[dict] = field(default_factory=list)
    """The label-noise part's rows: one per planned run, with its ``label_noise`` (the post's claims)."""
    spurious: list[dict] = field(default_factory=list)
    """The spurious-oversight part's rows: one per planned run, with its ``spurious_oversight``."""
    monitors: list[dict] = field(default_factory=list)
    """The monitors part's rows: one per run measured or to measure, with the ``part`` whose run it is, its
    ``label_noise``, ``probe_auroc`` and ``gate_auroc``."""
    main_unbiased: SweepResults | None = None
    """The main grid with routing under the package's default (unbiased) estimator: main-routing's routing beside
    main-default's baselines (the same seeds and settings)."""
    tuned_unbiased: SweepResults | None = None
    """The same under each method's tuned preset: main-tuned-routing's routing beside main-tuned's baselines."""

    def final(self, results: SweepResults, method: str, oversight: float, metric: str = "true_return") -> np.ndarray:
        return stats.finite(final_values(results.rows_at(method, oversight), metric))

    def at_budget(
        self, method: str, label: str | None, metric: str = "true_return", rows: list[dict] | None = None
    ) -> dict[int, float]:
        """``{seed: value}`` of ``method``'s evaluations at the budget named ``label`` (1M, ..., 32M) among ``rows``
        (the budget sweep's by default); empty when ``label`` is None."""
        rows = self.budget if rows is None else rows
        mine = [r for r in rows if r["method"] == method and r["budget_label"] == label]
        values = {r["seed"]: r.get(metric) for r in mine if r["status"] == "done"}
        return {seed: float(v) for seed, v in values.items() if v is not None and math.isfinite(float(v))}

    @property
    def labels(self) -> list[str]:
        """The budget sweep's budgets by name, smallest first (each twice the last)."""
        smallest: dict[str, float] = {}
        for row in self.budget:
            smallest[row["budget_label"]] = min(row["budget"], smallest.get(row["budget_label"], math.inf))
        return sorted(smallest, key=smallest.get)

    def later(self, label: str | None, doublings: int) -> str | None:
        """The budget ``2 ** doublings`` times ``label`` (None past the ladder's end, or for None)."""
        if label not in self.labels:
            return None
        index = self.labels.index(label) + doublings
        return self.labels[index] if index < len(self.labels) else None

    def best_budget(self, method: str, rows: list[dict] | None = None, room: int = 0) -> str | None:
        """The budget at which ``method``'s mean over seeds is highest (the first on a tie): where a claim about its
        ceiling or its peak reads it. ``room`` keeps that many doublings of the ladder after it. None without a
        budget that has :data:`MIN_RUNS` runs."""
        labels = self.labels[: len(self.labels) - room]
        means = {label: values(self.at_budget(method, label, rows=rows)) for label in labels}
        means = {label: v.mean() for label, v in means.items() if v.size >= MIN_RUNS}
        return max(means, key=means.get) if means else None


def mean_of(x: np.ndarray) -> Measurement:
    return Measurement(stats.stratified_bootstrap_ci([x]), x.size) if x.size else NO_MEASUREMENT


def improvement_of(x: np.ndarray, y: np.ndarray) -> Measurement:
    """P(a run of x scores higher than a run of y), ties half."""
    if not x.size or not y.size:
        return NO_MEASUREMENT
    return Measurement(stats.probability_of_improvement([x], [y]), min(x.size, y.size))


def difference_of(x: np.ndarray, y: np.ndarray) -> Measurement:
    if not x.size or not y.size:
        return NO_MEASUREMENT
    return Measurement(stats.difference_of_means_ci(x, y), min(x.size, y.size))


def paired_difference_of(x: dict[int, float], y: dict[int, float]) -> Measurement:
    """Mean over seeds of ``x[seed] - y[seed]`` (the same runs at two budgets), over the seeds both have."""
    seeds = sorted(set(x) & set(y))
    return mean_of(np.array([x[s] - y[s] for s in seeds], dtype=float))


def values(d: dict[int, float]) -> np.ndarray:
    return np.array(list(d.values()), dtype=float)


def same(a, b) -> bool:
    """Two settings equal as numbers (a CSV's ``0.05`` and the part's)."""
    return a is not None and math.isclose(float(a), float(b), abs_tol=1e-12)


def finals_where(rows: list[dict], method: str, oversight: float, metric: str = "true_return", **setting) -> np.ndarray:
    """``metric`` of the finished runs among ``rows`` of ``method`` at ``oversight`` whose settings are ``setting``
    (``label_noise=0.2``), finite values only."""
    mine = [
        row
        for row in rows
        if row["method"] == method
        and same(row["oversight"], oversight)
        and all(same(row.get(key), value) for key, value in setting.items())
    ]
    return stats.finite(final_values(mine, metric))


def contrast_of(groups: list[np.ndarray], weights: tuple[float, ...]) -> Measurement:
    """``sum(weights * means)`` of independent groups of runs with its interval; runs: the smallest group."""
    if not all(group.size for group in groups):
        return NO_MEASUREMENT
    return Measurement(stats.contrast_of_means_ci(groups, weights), min(group.size for group in groups))


# ----- the claims -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A claim as its source states it, how it is measured here, the statistic and the region it claims."""

    claim: str
    test: str | Callable[[Evidence], str]
    """How it is measured; a function of the evidence where it names budgets read off the runs."""
    measure: Callable[[Evidence], Measurement]
    region: Callable[[Evidence], Region]

    def describe_test(self, evidence: Evidence) -> str:
        return self.test(evidence) if callable(self.test) else self.test


def above(value: float) -> Callable[[Evidence], Region]:
    return lambda evidence: Region(low=value)


def below(value: float) -> Callable[[Evidence], Region]:
    return lambda evidence: Region(high=value)


def above_nearest(evidence: Evidence) -> Region:
    return Region(low=evidence.nearest_terminal)


def below_nearest(evidence: Evidence) -> Region:
    return Region(high=evidence.nearest_terminal)


def longest(evidence: Evidence) -> str | None:
    """The budget sweep's longest budget: where "once naive has had time to hack" is read."""
    return evidence.labels[-1] if evidence.labels else None


def named(label: str | None) -> str:
    return label or "none yet"


def routing_rows(evidence: Evidence, unbiased: bool) -> list[dict] | None:
    """Routing's budget rows: budget-routing's (the unbiased estimator) with ``unbiased``, else the budget sweep's."""
    return evidence.budget_routing if unbiased else None


def routing_at(evidence: Evidence, label: str | None, unbiased: bool = False) -> np.ndarray:
    return values(evidence.at_budget("routing", label, rows=routing_rows(evidence, unbiased)))


def oracle_at(evidence: Evidence, label: str | None) -> np.ndarray:
    return values(evidence.at_budget("oracle", label))


# "Oracle filtering needs 3-4x more steps to match routing" is read at routing's performance where it is best (among
# the budgets B with 4B still on the ladder). The oracle trains 10% of each budget, so at kB it has seen k times the
# labeled episodes routing has at B.


def steps_to_match(evidence: Evidence) -> tuple[str | None, str | None, str | None]:
    """Routing's best budget B with room for 4B on the ladder, 2B and 4B."""
    routing = evidence.best_budget("routing", room=2)
    return routing, evidence.later(routing, 1), evidence.later(routing, 2)


def more_than_twice(evidence: Evidence) -> Measurement:
    routing, twice, _ = steps_to_match(evidence)
    return improvement_of(routing_at(evidence, routing), oracle_at(evidence, twice))


def more_than_twice_test(evidence: Evidence) -> str:
    routing, twice, _ = map(named, steps_to_match(evidence))
    return f"P(routing at its best budget B up to a quarter of the longest ({routing}) > oracle at 2B ({twice}))"


def at_most_four_times(evidence: Evidence) -> Measurement:
    routing, _, four_times = steps_to_match(evidence)
    return difference_of(oracle_at(evidence, four_times), routing_at(evidence, routing))


def at_most_four_times_test(evidence: Evidence) -> str:
    routing, _, four_times = map(named, steps_to_match(evidence))
    return f"oracle at 4B ({four_times}) minus routing at B ({routing}), not below -{MARGIN:g}"


# A ceiling is read where each method is best: the budget of its highest mean over seeds (chosen among the ladder's
# budgets, which favours each side equally).


def ceiling_gap(unbiased: bool = False) -> Callable[[Evidence], Measurement]:
    def measure(evidence: Evidence) -> Measurement:
        routing = evidence.best_budget("routing", routing_rows(evidence, unbiased))
        oracle = evidence.best_budget("oracle")
        return difference_of(oracle_at(evidence, oracle), routing_at(evidence, routing, unbiased))

    return measure


def ceiling_test(unbiased: bool = False) -> Callable[[Evidence], str]:
    def describe(evidence: Evidence) -> str:
        routing = named(evidence.best_budget("routing", routing_rows(evidence, unbiased)))
        oracle = named(evidence.best_budget("oracle"))
        which = "budget-routing's routing (unwatched_baseline)" if unbiased else "routing"
        return f"oracle at its best budget ({oracle}) minus {which} at its best ({routing}), in [0.1, 0.3]"

    return describe


def naive_degrades(evidence: Evidence) -> Measurement:
    return paired_difference_of(
        evidence.at_budget("naive", longest(evidence)), evidence.at_budget("naive", evidence.best_budget("naive"))
    )


def naive_degrades_test(evidence: Evidence) -> str:
    end, best = named(longest(evidence)), named(evidence.best_budget("naive"))
    return f"naive at the longest budget ({end}) minus naive at its best ({best}), same runs, below 0"


def beats_hacked_naive(evidence: Evidence) -> Measurement:
    label = longest(evidence)
    return improvement_of(routing_at(evidence, label), values(evidence.at_budget("naive", label)))


def beats_hacked_naive_test(evidence: Evidence) -> str:
    return f"P(routing > naive) at the longest budget ({named(longest(evidence))})"


# The gradient-routing post's claims (the module's docstring defines each statistic).


def drop_difference(rows_of: Callable[[Evidence], list[dict]], setting: str, high: float, oversight: float):
    """``D = (F(0) - F(high)) - (R(0) - R(high))`` of filtering (F) and routing (R) at ``oversight``, from the runs
    ``rows_of(evidence)`` at ``setting`` 0 and ``high``."""

    def measure(evidence: Evidence) -> Measurement:
        rows = rows_of(evidence)
        groups = [
            finals_where(rows, method, oversight, **{setting: value})
            for method in ("filtering", "routing")
            for value in (0.0, high)
        ]
        return contrast_of(groups, (1.0, -1.0, -1.0, 1.0))

    return measure


def drop_test(symbol: str, high: float, oversight: float) -> str:
    return (
        f"filtering's drop in mean true return from {symbol} = 0 to {symbol} = {high:g} minus routing's, at p ="
        f" {oversight:g}: (F(0) - F({high:g})) - (R(0) - R({high:g}))"
    )


def routing_monitors(evidence: Evidence, label_noise: float, oversight: float = 0.1) -> list[dict]:
    """The monitors rows of routing's finished label-noise runs at ``oversight`` and ``label_noise``."""
    return [
        row
        for row in evidence.monitors
        if row["part"] == "label-noise"
        and row["method"] == "routing"
        and row["status"] == "done"
        and same(row["oversight"], oversight)
        and same(row["label_noise"], label_noise)
    ]


def monitor_values(rows: list[dict], key: str) -> np.ndarray:
    """``key`` of each row, NaN where it is empty (not finite values only: kept in step with the rows)."""
    return np.array([math.nan if row.get(key) is None else float(row[key]) for row in rows], dtype=float)


def gate_auroc(label_noise: float) -> Callable[[Evidence], Measurement]:
    return lambda evidence: mean_of(stats.finite(monitor_values(routing_monitors(evidence, label_noise), "gate_auroc")))


def gate_minus_probe(label_noise: float) -> Callable[[Evidence], Measurement]:
    """Mean over routing's runs of the run's gate AUROC minus its probe's (the same episodes), over the runs where
    both are defined."""

    def measure(evidence: Evidence) -> Measurement:
        rows = routing_monitors(evidence, label_noise)
        return mean_of(stats.finite(monitor_values(rows, "gate_auroc") - monitor_values(rows, "probe_auroc")))

    return measure


def noisy(evidence: Evidence) -> list[dict]:
    return evidence.label_noise


def spurious(evidence: Evidence) -> list[dict]:
    return evidence.spurious


IMPERFECT_LABEL_CLAIMS = (
    Claim(
        "(post) Routing works better with imperfect labels than filtering: it loses less to label noise",
        drop_test("E", NOISE_TO, 0.1) + ", above 0",
        drop_difference(noisy, "label_noise", NOISE_TO, 0.1),
        above(0.0),
    ),
    Claim(
        "(the same, at 3% oversight)",
        drop_test("E", NOISE_TO, 0.03) + ", above 0",
        drop_difference(noisy, "label_noise", NOISE_TO, 0.03),
        above(0.0),
    ),
    Claim(
        "(the same: routing beats filtering with wrong labels)",
        f"P(routing > filtering) at p = 0.1, E = {NOISE_TO:g}",
        lambda e: improvement_of(
            finals_where(e.label_noise, "routing", 0.1, label_noise=NOISE_TO),
            finals_where(e.label_noise, "filtering", 0.1, label_noise=NOISE_TO),
        ),
        above(0.5),
    ),
    Claim(
        "(the same, when the agent's view of oversight is wrong: spurious oversight)",
        drop_test("s", SPURIOUS_TO, 0.1) + ", above 0",
        drop_difference(spurious, "spurious_oversight", SPURIOUS_TO, 0.1),
        above(0.0),
    ),
)
"""The post's claim 1, "gradient routing works better with imperfect labels"."""
MONITOR_CLAIMS = (
    Claim(
        "(post) Routing's gate allows monitoring: it flags the unlabeled episodes heading for the Ghost",
        "routing's mean gate AUROC on unlabeled Ghost- vs Diamond-bound episodes at p = 0.1, E = 0, above 0.5",
        gate_auroc(0.0),
        above(0.5),
    ),
    Claim(
        "(the same: at least as well as a probe trained on the same labels)",
        f"mean over routing's runs of gate AUROC minus probe AUROC (same run, same episodes) at p = 0.1, E = 0,"
        f" not below -{AUROC_MARGIN:g}",
        gate_minus_probe(0.0),
        above(-AUROC_MARGIN),
    ),
    Claim(
        "(the same, under label noise)",
        f"mean over routing's runs of gate AUROC minus probe AUROC at p = 0.1, E = {NOISE_TO:g}, not below"
        f" -{AUROC_MARGIN:g}",
        gate_minus_probe(NOISE_TO),
        above(-AUROC_MARGIN),
    ),
)
"""The post's claim 2, "gradient routing allows monitoring when models use dangerous knowledge"."""

NONTRIVIAL_AT_1PCT = Claim(
    "Routing reaches nontrivial return at 1% oversight",
    "routing's mean at p = 0.01 is above the score of always walking to the nearest terminal",
    lambda e: mean_of(e.final(e.main, "routing", 0.01)),
    above_nearest,
)
BEATS_NAIVE_AT_1PCT = Claim(
    "Routing beats naive training at 1% oversight (Fig. 6a)",
    "P(routing > naive) at p = 0.01",
    lambda e: improvement_of(e.final(e.main, "routing", 0.01), e.final(e.main, "naive", 0.01)),
    above(0.5),
)
MATCHES_MORE_OVERSIGHT = Claim(
    "The Diamond expert matches baselines trained with about 6x more oversight (at 5%)",
    f"routing at p = 0.03 minus filtering at p = 0.1 (3.3x; the grid has no 5%), not below -{MARGIN:g}",
    lambda e: difference_of(e.final(e.main, "routing", 0.03), e.final(e.main, "filtering", 0.1)),
    above(-MARGIN),
)
BEATS_FILTERING_AT_10PCT = Claim(
    "Routing beats filtering at 10% oversight",
    "P(routing > filtering) at p = 0.1",
    lambda e: improvement_of(e.final(e.main, "routing", 0.1), e.final(e.main, "filtering", 0.1)),
    above(0.5),
)


def matches_filtering(oversight: float) -> Claim:
    """Routing's Diamond expert at least as good as filtering at the same oversight (non-inferiority)."""
    return Claim(
        f"Routing's Diamond expert at or above filtering at {oversight:.0%} oversight",
        f"routing minus filtering at p = {oversight:g}, not below -{MARGIN:g}",
        lambda e: difference_of(e.final(e.main, "routing", oversight), e.final(e.main, "filtering", oversight)),
        above(-MARGIN),
    )


def on_grid(grid: str, claim: Claim, label: str) -> Claim:
    """``claim`` measured on another main grid of the evidence (:attr:`Evidence.main_unbiased` or
    :attr:`Evidence.tuned_unbiased`) in place of :attr:`Evidence.main`, under the label ``label``."""

    def measure(evidence: Evidence) -> Measurement:
        other = getattr(evidence, grid)
        return NO_MEASUREMENT if other is None else claim.measure(dataclasses.replace(evidence, main=other))

    return Claim(f"{label} {claim.claim}", claim.test, measure, claim.region)


PAPER_CLAIMS = (
    NONTRIVIAL_AT_1PCT,
    BEATS_NAIVE_AT_1PCT,
    MATCHES_MORE_OVERSIGHT,
    Claim(
        "(the same, against naive training)",
        f"routing at p = 0.03 minus naive at p = 0.1, not below -{MARGIN:g}",
        lambda e: difference_of(e.final(e.main, "routing", 0.03), e.final(e.main, "naive", 0.1)),
        above(-MARGIN),
    ),
    Claim(
        "Below 40% oversight, filtering fails to learn",
        "filtering's mean at p = 0.1 is below the nearest-terminal score",
        lambda e: mean_of(e.final(e.main, "filtering", 0.1)),
        below_nearest,
    ),
    BEATS_FILTERING_AT_10PCT,
    Claim(
        "Naive training hacks (a precondition of every other claim)",
        "naive's mean hacking gap at p = 0.1 is above 0",
        lambda e: mean_of(e.final(e.main, "naive", 0.1, "hacking_gap")),
        above(0.0),
    ),
    Claim(
        "Naive training hacks more than routing's Diamond expert",
        "P(naive's hacking gap > routing's) at p = 0.1",
        lambda e: improvement_of(
            e.final(e.main, "naive", 0.1, "hacking_gap"), e.final(e.main, "routing", 0.1, "hacking_gap")
        ),
        above(0.5),
    ),
    Claim(
        "At 10%, oracle filtering needs about 3-4x more steps to match routing: more than 2x",
        more_than_twice_test,
        more_than_twice,
        above(0.5),
    ),
    Claim("(the same: at most 4x)", at_most_four_times_test, at_most_four_times, above(-MARGIN)),
    Claim(
        "Routing's ceiling is about 0.2 below the oracle's",
        ceiling_test(),
        ceiling_gap(),
        lambda e: Region(0.1, 0.3),
    ),
    Claim(
        "(the same, routing with the unbiased estimator)",
        ceiling_test(unbiased=True),
        ceiling_gap(unbiased=True),
        lambda e: Region(0.1, 0.3),
    ),
    Claim(
        "Without routing, performance is worse (the paper: unstable)",
        "P(routing > no_routing) at p = 0.1",
        lambda e: improvement_of(e.final(e.ablations, "routing", 0.1), e.final(e.ablations, "no_routing", 0.1)),
        above(0.5),
    ),
    Claim(
        "With a constant gate, performance is worse (the paper: unstable)",
        "P(routing > constant_gate) at p = 0.1",
        lambda e: improvement_of(e.final(e.ablations, "routing", 0.1), e.final(e.ablations, "constant_gate", 0.1)),
        above(0.5),
    ),
    Claim(
        "(critique) Naive early stopping is on par with routing",
        f"naive_early_stop (overseen signal) minus routing at p = 0.1, within +-{MARGIN:g}",
        lambda e: difference_of(e.final(e.ablations, "naive_early_stop", 0.1), e.final(e.ablations, "routing", 0.1)),
        lambda e: Region(-MARGIN, MARGIN),
    ),
    Claim("(reference) Naive training degrades as it learns to hack", naive_degrades_test, naive_degrades, below(0.0)),
    Claim(
        "Routing beats naive training once naive has had time to hack",
        beats_hacked_naive_test,
        beats_hacked_naive,
        above(0.5),
    ),
)
"""The paper's claims, the critique's and the reference reproduction's."""
DEFAULT = "(default estimator)"
TUNED = "(default estimator, each method tuned)"
UNBIASED_CLAIMS = (
    on_grid("main_unbiased", NONTRIVIAL_AT_1PCT, DEFAULT),
    on_grid("main_unbiased", BEATS_NAIVE_AT_1PCT, DEFAULT),
    on_grid("main_unbiased", MATCHES_MORE_OVERSIGHT, DEFAULT),
    on_grid("main_unbiased", BEATS_FILTERING_AT_10PCT, DEFAULT),
    on_grid("tuned_unbiased", BEATS_NAIVE_AT_1PCT, TUNED),
    on_grid("tuned_unbiased", matches_filtering(0.01), TUNED),
    on_grid("tuned_unbiased", matches_filtering(0.03), TUNED),
    on_grid("tuned_unbiased", BEATS_FILTERING_AT_10PCT, TUNED),
)
"""The main grid's claims about routing again with the package's default estimator (the paper's biases its
update), at default settings and under each method's tuned preset, where "at or above filtering at 1% and 3%" asks
whether routing wins where oversight is scarcest."""
CLAIMS = (*PAPER_CLAIMS, *UNBIASED_CLAIMS, *IMPERFECT_LABEL_CLAIMS, *MONITOR_CLAIMS)


def claim_rows(evidence: Evidence, claims: tuple[Claim, ...] = CLAIMS) -> list[dict]:
    """One row per claim: the claim, the test, the estimate and its 95% interval, the runs and the verdict."""
    rows = []
    for claim in claims:
        measurement, region = claim.measure(evidence), claim.region(evidence)
        estimate, low, high = measurement.interval
        rows.append(
            {
                "claim": claim.claim,
                "test": claim.describe_test(evidence),
                "claimed": region.describe(),
                "estimate": estimate,
                "low": low,
                "high": high,
                "runs": measurement.runs,
                "verdict": verdict(measurement, region),
            }
        )
    return rows


def claims_table(rows: list[dict]) -> str:
    """The claim rows as a markdown table."""
    lines = [
        "| claim | test | claimed | estimate [95% CI] | runs | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        cell = "n/a"
        if all(math.isfinite(row[k]) for k in ("estimate", "low", "high")):
            cell = f"{number(row['estimate'], 2)} {interval(row['low'], row['high'], 2)}"
        lines.append(
            f"| {row['claim']} | {row['test']} | {row['claimed']} | {cell} | {row['runs']} | **{row['verdict']}** |"
        )
    return "\n".join(lines)
