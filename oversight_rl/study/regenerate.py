"""docs/results.md's generated sections, CSVs and figures, rebuilt from whatever runs of the comparison's parts
(:mod:`oversight_rl.study.reproduce`) have finished. Nothing fails because runs are missing: each section says how many
of how many runs it holds, and a figure is drawn once a part has a finished run.

A part whose committed CSV holds more finished runs than its sweep directory has here (a fresh clone has no sweep
directories) is *kept*: its CSV, figures and section are left as they are (but for the command, restated), and one
line says so. The ablations are kept with main-default, since their section and figure show main-default's routing
and naive runs. The claims are computed from the rows the CSVs publish, kept or rebuilt, so a kept part's committed
rows still count in them.
``force`` rebuilds every part from the runs that exist.

Written into ``docs``: ``results_<part>.csv`` (one row per planned run, or per run and budget in the parts reported
against the budget: budget and paper), ``results_<part>_mixtures.csv`` (those parts' routing runs: each policy they
evaluate), ``results_claims.csv``, ``img/<part>/*.png``, and in ``results.md`` one generated section per part plus
``summary`` (the headline, :mod:`oversight_rl.study.summary`), ``claims`` and ``estimators``. Each part's section
prints its sweep command on the devices its runs were trained on (:mod:`oversight_rl.study.commands`); a kept part's
section keeps its tables and figures, and only that command is restated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from oversight_rl.analysis import report
from oversight_rl.analysis.figures import budget_plots, plots
from oversight_rl.core.methods import METHODS, get_method
from oversight_rl.engine.config import TrainConfig
from oversight_rl.engine.references import reference_returns
from oversight_rl.rundir.files import read_csv
from oversight_rl.rundir.gather import SweepResults, gather_points
from oversight_rl.rundir.status import DONE
from oversight_rl.study.budget import budget_rows
from oversight_rl.study.claims import CLAIM_COLUMNS, Evidence, claim_rows, claims_table
from oversight_rl.study.commands import command_block, kept_section, published_devices
from oversight_rl.study.imperfect import (
    IMPERFECT_PARTS,
    LABEL_NOISE,
    MONITORS,
    SPURIOUS,
    imperfect_rows,
    write_outputs,
)
from oversight_rl.study.imperfect import columns as imperfect_columns
from oversight_rl.study.reproduce import Part, ReproduceConfig, skip_reason, sweep_dir
from oversight_rl.study.summary import SUMMARY, summary_section

RESULTS_MD = "results.md"
CLAIMS = "claims"
ESTIMATORS = "estimators"
ESTIMATOR_PARTS = {
    "main-default": "shared_baseline",
    "main-routing": "unwatched_baseline",
    "main-routed-no-baseline": "routed_no_baseline",
}
"""The main-grid parts of routing under each routed estimator (main-default's is the paper's)."""
TUNED_ESTIMATOR_PARTS = {
    "main-tuned": "shared_baseline",
    "main-tuned-routing": "unwatched_baseline",
    "main-tuned-expert-returns": "expert_returns",
}
"""The same under each method's tuned preset (main-tuned's routing is the paper estimator's earlier tuning;
expert_returns' is its own tuning's best setting over the default preset)."""
BUDGET_STUDIES = {
    "budget and budget-routing": {"budget": "shared_baseline", "budget-routing": "unwatched_baseline"},
    "budget-1pct and budget-1pct-paper-routing": {
        "budget-1pct": "unwatched_baseline",
        "budget-1pct-paper-routing": "shared_baseline",
    },
}
"""Each budget study of the summary, named by its parts: its parts with the estimator of their routing runs (the
first part holds every method)."""
HEADLINE_ROUTING = ("unwatched_baseline", "shared_baseline", "routed_no_baseline")
"""Routing's rows of the summary, the default estimator first."""
TUNED_HEADLINE_ROUTING = ("unwatched_baseline", "expert_returns", "shared_baseline")
"""Routing's rows of the summary's tuned grid, the default estimator first."""
BASELINES = ("filtering", "naive", "oracle")
MIXTURE_POLICIES = {"trained": "trained mixture", "diamond": "Diamond expert", "ghost": "Ghost expert"}
"""A mixture run's evaluated policies, as the budget section names them."""


def part_results(part: Part, config: ReproduceConfig) -> SweepResults:
    """The part's planned runs as the sweep directory holds them (all missing before it starts)."""
    return gather_points(sweep_dir(part, config), part.points())


def budget_train(part: Part, config: ReproduceConfig) -> TrainConfig:
    """The shared settings of a budget-ladder part's runs (its ladder and budget rows depend on the window only)."""
    return dataclasses.replace(part.base(), device=config.device)


def ablation_results(main: SweepResults, ablations: SweepResults, oversight: float = 0.1) -> SweepResults:
    """The ablations beside routing and naive at ``oversight`` from the main grid, in the registry's order."""
    rows = [r for r in main.rows if r["method"] in ("routing", "naive") and r["oversight"] == oversight]
    rows += ablations.rows
    order = list(METHODS)
    rows.sort(key=lambda r: (order.index(r["method"]) if r["method"] in order else len(order), r["seed"]))
    curves = [c for c in main.curves if c.method in ("routing", "naive") and c.oversight == oversight]
    return SweepResults(rows, curves + ablations.curves)


def relative(path: Path, docs: Path) -> str:
    return path.relative_to(docs).as_posix()


# ----- sections ---------------------------------------------------------------------------------------------------


def header(part: Part, config: ReproduceConfig, rows: list[dict], title: str | None = None) -> list[str]:
    lines = [f"**{title or part.name}**: {part.description}. {report.finished_line(rows)}."]
    reason = skip_reason(part)
    if reason:
        lines.append(f"Not trained yet: {reason}.")
    return [*lines, "", command_block(part, config, published_devices(part, config)), ""]


def figure_lines(paths: list[Path], docs: Path) -> list[str]:
    if not paths:
        return ["No figure yet: no finished run.", ""]
    return [f"![{path.stem.replace('_', ' ')}]({relative(path, docs)})" for path in paths] + [""]


def sweep_section(part: Part, config: ReproduceConfig, results: SweepResults, figures: list[Path]) -> str:
    docs = Path(config.docs)
    lines = header(part, config, results.rows)
    lines += ["Final deployed values over seeds:", "", report.summary_table(results), ""]
    improvement = report.improvement_table(results)
    if improvement and len(results.methods) > 1:
        lines += ["Probability that routing's final true return beats each baseline's [95% CI]:", ""]
        lines += [improvement, ""]
    return "\n".join(lines + figure_lines(figures, docs))


def ablation_section(part: Part, config: ReproduceConfig, results: SweepResults, figures: list[Path]) -> str:
    docs = Path(config.docs)
    lines = header(part, config, [r for r in results.rows if r["method"] in part.methods])
    lines += ["Routing and naive at 10% are main-default's runs.", "", report.summary_table(results), ""]
    lines += ["Probability that routing's final true return beats each [95% CI]:", ""]
    lines += [report.improvement_table(results), ""]
    return "\n".join(lines + figure_lines(figures, docs))


def budget_section(
    part: Part, config: ReproduceConfig, rows: list[dict], mixtures: list[dict], figures: list[Path]
) -> str:
    docs, labels = Path(config.docs), budget_labels(part)
    runs = [r for r in rows if r["budget_label"] == labels[-1]]
    lines = header(part, config, runs)
    oracle = f" The oracle trains {part.oversight[0]:g} x each budget." if "oracle" in part.methods else ""
    lines += [
        f"{unit_note(part, budget_train(part, config))}. Each value is the evaluation the run made right after that"
        " budget, which is the final evaluation of a run with that budget (constant learning rate;"
        f" tests/test_reproduce.py checks it).{oracle}"
        f" {report.finished_line(rows).replace('runs finished', '(run, budget) points reached')}.",
        "",
        "Final deployed true return, mean [95% CI] (seeds):",
        "",
        report.budget_table(rows, labels, "true_return"),
        "",
        "Final hacking gap, mean [95% CI] (seeds):",
        "",
        report.budget_table(rows, labels, "hacking_gap"),
        "",
    ]
    if mixtures:
        named = [{**row, "method": f"{row['method']}: {MIXTURE_POLICIES[row['policy']]}"} for row in mixtures]
        for metric, where in (("ghost_rate_unoverseen", "unwatched"), ("ghost_rate_overseen", "watched")):
            lines += [f"Ghost rate in {where} episodes of the mixture and of each expert, mean [95% CI] (seeds):", ""]
            lines += [report.budget_table(named, labels, metric), ""]
    return "\n".join(lines + figure_lines(figures, docs))


# ----- the whole write-up -----------------------------------------------------------------------------------------


def regenerate(parts: dict[str, Part], config: ReproduceConfig, say: Callable[[str], None] = print) -> Path:
    """Rewrite every part's CSV, figures and section of results.md, and the claims, from the runs that exist; a part
    with fewer finished runs here than its committed CSV holds is kept as committed (unless ``config.force``)."""
    docs = Path(config.docs)
    plain = {name: part for name, part in parts.items() if part.one_sweep}
    results = {name: part_results(part, config) for name, part in plain.items() if part.ladders is None}
    ladder_rows = {name: budget_results(part, config) for name, part in plain.items() if part.ladders is not None}
    imperfect = imperfect_rows(parts, config)
    finished = {name: finished_count(r.rows) for name, r in results.items()}
    finished |= {name: finished_count(rows) for name, rows in (ladder_rows | imperfect).items()}
    kept = set() if config.force else kept_parts(parts, config, finished, say)
    sections = {name: sweep_part(parts[name], config, results, say) for name in results if name not in kept}
    for name, rows in ladder_rows.items():
        if name not in kept:
            sections[name] = budget_part(parts[name], config, rows, say)
    main, ablations = (
        SweepResults(published(parts[name], docs, kept, results[name].rows)) for name in ("main-default", "ablations")
    )
    budget = parts["budget"]
    studied = [name for study in BUDGET_STUDIES.values() for name in study]
    budget_rows = {name: published(parts[name], docs, kept, ladder_rows[name]) for name in studied}
    budget_published, unbiased_budget = budget_rows["budget"], budget_rows["budget-routing"]
    references = part_references(budget, config)
    by_part = {
        name: published(parts[name], docs, kept, results[name].rows)
        for name in (*ESTIMATOR_PARTS, *TUNED_ESTIMATOR_PARTS)
    }
    evidence = Evidence(
        main=main,
        ablations=ablation_results(main, ablations),
        budget=budget_published,
        nearest_terminal=references.get("nearest terminal", float("nan")),
        budget_routing=unbiased_budget,
        label_noise=published(parts[LABEL_NOISE], docs, kept, imperfect[LABEL_NOISE]),
        spurious=published(parts[SPURIOUS], docs, kept, imperfect[SPURIOUS]),
        monitors=published(parts[MONITORS], docs, kept, imperfect[MONITORS]),
        main_unbiased=routing_beside(by_part["main-default"], by_part["main-routing"]),
        tuned_unbiased=routing_beside(by_part["main-tuned"], by_part["main-tuned-routing"]),
    )
    sections[CLAIMS] = claims_part(evidence, references, docs)
    for name in (name for name in IMPERFECT_PARTS if name not in kept):
        sections[name] = imperfect_part(name, parts, config, imperfect[name], evidence, say)
    estimators = estimator_results(by_part, ESTIMATOR_PARTS)
    sections[ESTIMATORS] = estimators_section(estimators)
    tuned = estimator_results(by_part, TUNED_ESTIMATOR_PARTS)
    sections[SUMMARY] = headline(estimators, tuned, budget_rows)
    text = (docs / RESULTS_MD).read_text() if (docs / RESULTS_MD).exists() else ""
    for name in kept:  # tables and figures as committed, the command restated
        body = kept_section(text, parts[name], config)
        if body is not None:
            sections[name] = body
    ordered = {name: sections[name] for name in (SUMMARY, CLAIMS, *parts, ESTIMATORS) if name in sections}
    path = report.update_generated(docs / RESULTS_MD, ordered)
    say(f"tables: {path}")
    return path


def routing_beside(baselines: list[dict], routing: list[dict]) -> SweepResults:
    """``routing``'s routing rows in place of those of ``baselines`` (a grid of every method)."""
    rows = [row for row in baselines if row["method"] != "routing"]
    return SweepResults(rows + [row for row in routing if row["method"] == "routing"], [])


def estimator_results(rows_by_part: dict[str, list[dict]], estimator_parts: dict[str, str]) -> SweepResults:
    """Routing's rows of each part of ``estimator_parts`` (part name to routed estimator), named by their
    estimator, beside the baselines of the first part."""
    rows = [row for row in rows_by_part[next(iter(estimator_parts))] if row["method"] != "routing"]
    for part, estimator in estimator_parts.items():
        routing = (row for row in rows_by_part[part] if row["method"] == "routing")
        rows += [{**row, "method": f"routing ({estimator})"} for row in routing]
    return SweepResults(rows, [])


def headline(estimators: SweepResults, tuned: SweepResults, budget_rows: dict[str, list[dict]]) -> str:
    """The summary at the top of results.md (:mod:`oversight_rl.study.summary`): the main grid with routing under each
    estimator, the tuned grid, and each budget study's longest budget with routing under the paper's estimator and the
    default one (``budget_rows``: each budget part's rows)."""
    routing = [f"routing ({estimator})" for estimator in HEADLINE_ROUTING]
    paper, unbiased = (f"routing ({estimator})" for estimator in ("shared_baseline", "unwatched_baseline"))
    budgets = {
        parts: [
            {**row, "method": f"routing ({estimator})"} if row["method"] == "routing" else row
            for part, estimator in study.items()
            for row in budget_rows[part]
        ]
        for parts, study in BUDGET_STUDIES.items()
    }
    tuned_routing = [f"routing ({e})" for e in TUNED_HEADLINE_ROUTING]
    return summary_section(
        estimators, [*routing, *BASELINES], tuned, [*tuned_routing, *BASELINES], budgets, [unbiased, paper, *BASELINES]
    )


def estimators_section(results: SweepResults) -> str:
    lines = ["Final deployed values over seeds (routing: the Diamond expert):", "", report.summary_table(results), ""]
    for estimator in ESTIMATOR_PARTS.values():
        method = f"routing ({estimator})"
        lines += [f"Probability that {method}'s final true return beats each other row's [95% CI]:", ""]
        lines += [report.improvement_table(results, method), ""]
    return "\n".join(lines)


# ----- parts kept as committed ------------------------------------------------------------------------------------


def csv_path(part: Part, docs: Path) -> Path:
    return docs / f"results_{part.slug}.csv"


def finished_count(rows: list[dict]) -> int:
    """Rows of finished runs (of finished (run, budget) points in the budget part's rows)."""
    return sum(row["status"] == DONE for row in rows)


def committed_count(path: Path) -> int:
    """Rows with status done in the CSV at ``path`` (0 when there is none)."""
    return finished_count(read_csv(path)) if path.exists() else 0


def kept_parts(parts: dict[str, Part], config: ReproduceConfig, finished: dict[str, int], say) -> set[str]:
    """The parts whose committed CSV holds more finished runs than ``finished`` counts here (one line each), and the
    ablations with main-default."""
    kept = set()
    for name, count in finished.items():
        part = parts[name]
        path, unit = csv_path(part, Path(config.docs)), "runs" if part.ladders is None else "(run, budget) points"
        committed = committed_count(path)
        if count < committed:
            kept.add(name)
            say(
                f"{name}: kept {path} ({committed} finished {unit}; {count} here): train or copy"
                f" {sweep_dir(part, config)} to regenerate it"
            )
    if "main-default" in kept and "ablations" in finished and "ablations" not in kept:
        kept.add("ablations")
        say(
            f"ablations: kept {csv_path(parts['ablations'], Path(config.docs))} and its section, which show"
            " main-default's runs beside the ablations, since main-default was kept"
        )
    return kept


def published(part: Part, docs: Path, kept: set[str], rows: list[dict]) -> list[dict]:
    """The part's rows as its CSV holds them afterwards: the committed ones if it is kept, else ``rows``."""
    return read_csv(csv_path(part, docs)) if part.name in kept else rows


# ----- each part's CSV, figures and section -----------------------------------------------------------------------


def sweep_part(part: Part, config: ReproduceConfig, results: dict[str, SweepResults], say) -> str:
    """A sweep part's CSV and figures; returns its section."""
    docs, mine = Path(config.docs), results[part.name]
    rows = report.run_rows(mine, part.name, part.preset)
    csv = report.write_rows(csv_path(part, docs), rows, report.RUN_COLUMNS)
    say(f"{part.name}: {report.finished_line(mine.rows)} -> {csv}")
    img = docs / "img" / part.name
    if part.name == "ablations":
        combined = ablation_results(results["main-default"], mine)
        return ablation_section(part, config, combined, learning_curves(combined, img))
    figures = sweep_figures(mine, img) if len(part.oversight) > 1 else learning_curves(mine, img)
    return sweep_section(part, config, mine, figures)


def budget_results(
    part: Part, config: ReproduceConfig, points: list[tuple] | None = None, policy: str | None = None
) -> list[dict]:
    """A budget-ladder part's rows (one per planned run, or per run of ``points``, and budget) as its sweep directory
    holds them, of each run's deployed policy or of ``policy``."""
    points = part.points() if points is None else points
    rows = budget_rows(sweep_dir(part, config), budget_train(part, config), points, part.ladders, policy)
    for row in rows:
        row.update(part=part.name, preset=part.preset)
    return rows


def mixture_results(part: Part, config: ReproduceConfig) -> list[dict]:
    """A budget-ladder part's mixture runs (routing) as rows of each policy they evaluate: the trained mixture and each
    expert, so that one sees whether the experts stay apart as the budget grows."""
    points = [point for point in part.points() if get_method(point[0]).policy == "moe"]
    return [row for policy in MIXTURE_POLICIES for row in budget_results(part, config, points, policy)]


def part_references(part: Part, config: ReproduceConfig) -> dict:
    """The reference policies' true returns in the environment of ``part``'s runs (empty where there are none)."""
    train = budget_train(part, config)
    return reference_returns(train.env, train.gamma) or {}


def budget_part(part: Part, config: ReproduceConfig, rows: list[dict], say) -> str:
    """A budget-ladder part's CSVs (deployed policies; the mixture runs' every policy) and figures; returns its
    section."""
    docs, train = Path(config.docs), budget_train(part, config)
    csv = report.write_rows(csv_path(part, docs), rows, report.BUDGET_COLUMNS)
    longest = budget_labels(part)[-1]
    say(f"{part.name}: {report.finished_line([r for r in rows if r['budget_label'] == longest])} -> {csv}")
    mixtures = mixture_results(part, config)
    report.write_rows(docs / f"results_{part.slug}_mixtures.csv", mixtures, report.POLICY_BUDGET_COLUMNS)
    img = docs / "img" / part.name
    figures = budget_figure(rows, part, train, part_references(part, config), img / "return_vs_budget.png")
    figures += mixture_figure(mixtures, part, train, img / "experts_vs_budget.png")
    return budget_section(part, config, rows, mixtures, figures)


def imperfect_part(name: str, parts: dict[str, Part], config: ReproduceConfig, rows: list[dict], evidence, say) -> str:
    """One of the post's parts (:mod:`oversight_rl.study.imperfect`): its CSV and figures; returns its section."""
    csv = report.write_rows(csv_path(parts[name], Path(config.docs)), rows, imperfect_columns(name))
    line = report.finished_line(rows)
    say(f"{name}: {line.replace('finished', 'measured') if name == MONITORS else line} -> {csv}")
    return write_outputs(name, parts, config, rows, evidence)


def claims_part(evidence: Evidence, references: dict, docs: Path) -> str:
    """The claims' CSV; returns their section."""
    claims = claim_rows(evidence)
    report.write_rows(docs / "results_claims.csv", claims, CLAIM_COLUMNS)
    return claims_section(claims, references)


def claims_section(rows: list[dict], references: dict) -> str:
    nearest = references.get("nearest terminal")
    lines = [
        "Each claim is measured by one statistic with its 95% bootstrap CI; the verdict is computed from where the CI"
        " lies against the claimed region (oversight_rl/study/claims.py): *supported* inside it, *contradicted*"
        " outside it,"
        " *inconclusive* across its edge, *too few runs* below 3 runs per group. Main-grid claims use main-default"
        " (routing with the paper's estimator, `shared_baseline`: the claims are about the paper's method); budget"
        " claims the budget sweep (10% oversight, constant learning rate), each read at the budgets it is about: a"
        " ceiling or a peak at the budget where that method's mean over seeds is highest, the oracle's steps to"
        " match routing from routing's best budget B (up to a quarter of the longest, so that 4B is measured), and"
        ' "once naive has had time to hack" at the longest budget. One row reads the ceiling with routing under the'
        " unbiased estimator (budget-routing, the same seeds). The rows marked (default estimator) test the main"
        " grid's claims about routing again with the package's default estimator, `unwatched_baseline` (main-routing"
        " beside main-default's baselines); those marked (default estimator, each method tuned) under each method's"
        " tuned preset (main-tuned-routing beside main-tuned's baselines). The rows marked (post) test the"
        " gradient-routing post's claims on the parts label-noise, spurious-oversight and monitors (routing with"
        " the default estimator; section 4 defines each statistic)."
        + (f" The nearest-terminal score is {nearest:.3f}." if nearest is not None else ""),
        "",
        claims_table(rows),
    ]
    return "\n".join(lines)


def sweep_figures(results: SweepResults, out: Path) -> list[Path]:
    if not any(row["status"] == DONE for row in results.rows):
        return []
    return plots.plot_sweep(results, out)


def learning_curves(results: SweepResults, out: Path) -> list[Path]:
    if not results.curves:
        return []
    return [plots.plot_learning_curves(results, out / "learning_curves.png")]


def budget_figure(rows: list[dict], part: Part, train: TrainConfig, references: dict, path: Path) -> list[Path]:
    if not any(row["status"] == DONE for row in rows):
        return []
    return [
        budget_plots.plot_budget(rows, budget_labels(part), path, references=references, **figure_details(part, train))
    ]


def mixture_figure(rows: list[dict], part: Part, train: TrainConfig, path: Path) -> list[Path]:
    if not any(row["status"] == DONE for row in rows):
        return []
    return [budget_plots.plot_mixture_budget(rows, budget_labels(part), path, **figure_details(part, train))]


def figure_details(part: Part, train: TrainConfig) -> dict:
    """What a budget-ladder part's figures say of its runs: oversight, budget unit and settings."""
    setting = f"{part.preset} preset, constant learning rate"
    return dict(oversight=part.oversight[0], unit_note=unit_note(part, train), setting=setting)


def budget_labels(part: Part) -> list[str]:
    """The budgets' nominal names (1M, 2M, ...), the same for every method."""
    ladder = next(iter(part.ladders.values()))
    return [ladder.label(b) for b in ladder.budgets]


def unit_note(part: Part, train: TrainConfig) -> str:
    """What the smallest budget means in environment steps for each method (see :mod:`oversight_rl.study.budget`)."""
    label, window = budget_labels(part)[0], train.steps_per_update
    by_unit: dict[int, list[str]] = {}
    for method, ladder in part.ladders.items():
        by_unit.setdefault(ladder.unit, []).append(method)
    meanings = [f"{unit:,} steps for {', '.join(methods)}" for unit, methods in by_unit.items()]
    return (
        f"Budget {label} means {'; '.join(meanings)} (whole windows of {train.num_envs} x {train.num_steps} = "
        f"{window:,} steps in what each trains), each next budget twice the last"
    )
