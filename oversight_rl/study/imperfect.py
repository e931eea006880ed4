"""The gradient-routing post's claims on imperfect labels and monitoring, from the parts label-noise,
spurious-oversight and monitors (:mod:`oversight_rl.study.reproduce`): their rows, figures and sections of
docs/results.md (:mod:`oversight_rl.study.regenerate` writes them, keeps them as committed where this clone has fewer
runs, and computes the claims from the rows the CSVs publish, :mod:`oversight_rl.study.claims`).

Rows, one per planned run, as their CSVs hold them:

- ``results_label_noise.csv``: the run columns of every sweep part (:data:`~oversight_rl.analysis.report.RUN_COLUMNS`)
  with ``label_noise`` after ``seed``; ``run`` is the run directory under the root (``label-noise/E0.1/naive-p0.1-s3``).
- ``results_spurious_oversight.csv``: the same with ``spurious_oversight``; its s = 0 rows are label-noise's E = 0 runs
  at 10% oversight (``part`` says label-noise), which have the same settings.
- ``results_monitors.csv`` (:data:`MONITOR_COLUMNS`): each run of each monitored sweep with what its sweep's
  monitors.csv (``scripts/monitor_runs.py``) holds of it, ``missing`` where nothing yet; ``part`` is the part the run
  belongs to.

A run whose config.json records another value of its sweep's setting than the sweep's (a directory copied into the
wrong place) is ``unreadable``, with the reason, and counts in nothing.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from oversight_rl.analysis import report
from oversight_rl.analysis.comparison import interval, number
from oversight_rl.analysis.figures import plots, setting_plots
from oversight_rl.analysis.figures.setting_plots import Series
from oversight_rl.analysis.stats import MIN_SEEDS, finite, stratified_bootstrap_ci
from oversight_rl.rundir.files import CONFIG, read_csv, read_json, run_name
from oversight_rl.rundir.gather import gather_points
from oversight_rl.rundir.status import DONE, UNREADABLE
from oversight_rl.study import claims as claims_module
from oversight_rl.study.claims import Evidence, claim_rows
from oversight_rl.study.commands import command_block, published_devices
from oversight_rl.study.reproduce import (
    MONITOR_SECONDS_PER_RUN,
    SPURIOUS_AT,
    Part,
    ReproduceConfig,
    compute_text,
    monitor_sources,
    size,
    sweep_config,
    sweep_dir,
    training_seconds,
)

LABEL_NOISE, SPURIOUS, MONITORS = "label-noise", "spurious-oversight", "monitors"
IMPERFECT_PARTS = (LABEL_NOISE, SPURIOUS, MONITORS)
SETTINGS = {LABEL_NOISE: "label_noise", SPURIOUS: "spurious_oversight"}
SYMBOLS = {"label_noise": "E", "spurious_oversight": "s"}
MONITORS_CSV = "monitors.csv"
"""The file ``scripts/monitor_runs.py`` writes into a sweep directory."""
MONITOR_COLUMNS = (
    *("part", "method", "oversight", "seed", "label_noise", "status", "probe_auroc", "gate_auroc"),
    *("label_budget", "probe_labels", "probe_flipped", "test_ghost", "test_diamond", "run", "reason"),
)
MONITORS_KEPT = (*MONITOR_COLUMNS[6:13],)
"""The columns taken from monitors.csv (beside the run's identity and status)."""


def columns(name: str) -> tuple[str, ...]:
    """The CSV columns of the part ``name``."""
    if name == MONITORS:
        return MONITOR_COLUMNS
    run = report.RUN_COLUMNS
    return (*run[:4], SETTINGS[name], *run[4:])


# ----- rows -------------------------------------------------------------------------------------------------------


def recorded_setting(saved: dict, setting: str) -> float:
    """The value of ``setting`` a run's config.json records (an environment setting inside ``env_kwargs``; 0 where
    it is not set)."""
    if setting in saved:
        return float(saved[setting])
    return float(json.loads(saved.get("env_kwargs") or "{}").get(setting, 0.0))


def setting_problem(run_dir: Path, setting: str, value: float) -> str | None:
    """Why a finished run does not belong to the sweep of ``setting = value`` (one line), or None."""
    try:
        recorded = recorded_setting(read_json(run_dir / CONFIG), setting)
    except (OSError, ValueError, TypeError, AttributeError) as error:
        return f"{CONFIG} cannot be read ({error})"
    if not math.isclose(recorded, value, abs_tol=1e-12):
        return f"its {CONFIG} records {setting} {recorded:g}, not its sweep's {value:g}"
    return None


def sweep_rows(name: str, sweep: Part, setting: str, value: float, config: ReproduceConfig) -> list[dict]:
    """One row per planned run of the sweep ``sweep`` (of the part ``name``, at ``setting = value``)."""
    directory = sweep_dir(sweep, config)
    rows = report.run_rows(gather_points(directory, sweep.points()), name, sweep.preset)
    for row in rows:
        problem = setting_problem(directory / row["run"], setting, value) if row["status"] == DONE else None
        if problem:
            row.update({m: None for m in report.RUN_COLUMNS[6:-3]}, status=UNREADABLE, reason=problem)
        row.update({setting: value, "run": f"{sweep.directory}/{row['run']}"})
    return rows


def varied_rows(part: Part, config: ReproduceConfig) -> list[dict]:
    """The rows of every sweep of a part that varies a setting, in the order of its values."""
    return [
        row
        for value, sweep in zip(part.values, part.sweeps(), strict=True)
        for row in sweep_rows(part.name, sweep, part.varied, value, config)
    ]


def spurious_rows(parts: dict[str, Part], config: ReproduceConfig) -> list[dict]:
    """The spurious-oversight part's rows: s = 0 from label-noise's E = 0 sweep at its oversight level, then its own
    sweeps."""
    base = dataclasses.replace(parts[LABEL_NOISE].at(0.0), oversight=(SPURIOUS_AT,))
    part = parts[SPURIOUS]
    return sweep_rows(LABEL_NOISE, base, part.varied, 0.0, config) + varied_rows(part, config)


def monitor_rows(part: Part, config: ReproduceConfig) -> list[dict]:
    """One row per run of each sweep the monitors part measures, with what its monitors.csv holds of it."""
    rows = []
    for source in monitor_sources(part):
        measured, problem = read_monitors(sweep_dir(source, config) / MONITORS_CSV)
        noise = float(source.settings.get("label_noise", 0.0))
        for method, oversight, seed in source.points():
            name = run_name(method, oversight, seed)
            row = dict(part=source.name.split("/")[0], method=method, oversight=oversight, seed=seed)
            row.update(label_noise=noise, status="missing", run=f"{source.directory or source.name}/{name}")
            row["reason"] = problem
            found = measured.get(name)
            if found is not None:
                row.update({key: found.get(key) for key in MONITORS_KEPT}, status=found.get("status"))
                row["reason"] = found.get("reason") or None
            rows.append(row)
    return rows


def read_monitors(path: Path) -> tuple[dict[str, dict], str | None]:
    """A monitors.csv's rows by run directory name, and why it cannot be read (then none)."""
    if not path.is_file():
        return {}, None
    try:
        rows = read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        return {}, f"{path} cannot be read ({error})"
    return {str(row.get("run")): row for row in rows}, None


def imperfect_rows(parts: dict[str, Part], config: ReproduceConfig) -> dict[str, list[dict]]:
    """The rows of each of the three parts, as the sweep directories under ``config.root`` hold them."""
    return {
        LABEL_NOISE: varied_rows(parts[LABEL_NOISE], config),
        SPURIOUS: spurious_rows(parts, config),
        MONITORS: monitor_rows(parts[MONITORS], config),
    }


# ----- tables -----------------------------------------------------------------------------------------------------


def cell(values) -> str:
    """``0.56 [0.53, 0.60] (10)``; no interval below :data:`MIN_SEEDS` values; ``-`` without any."""
    values = finite(values)
    if not values.size:
        return "-"
    estimate, low, high = stratified_bootstrap_ci([values])
    if values.size < MIN_SEEDS:
        return f"{number(estimate, 2)} ({values.size}: no CI)"
    return f"{number(estimate, 2)} {interval(low, high, 2)} ({values.size})"


def metric_of(rows: list[dict], metric: str) -> list[float]:
    return [math.nan if r.get(metric) is None else float(r[metric]) for r in rows if r["status"] == DONE]


def matching(rows: list[dict], **where) -> list[dict]:
    """The rows whose columns hold ``where``'s values (numbers compared as numbers)."""

    def holds(row: dict, key: str, value) -> bool:
        return row.get(key) == value if isinstance(value, str) else claims_module.same(row.get(key), value)

    return [row for row in rows if all(holds(row, key, value) for key, value in where.items())]


def setting_table(rows: list[dict], setting: str, values: list[float], metric: str = "true_return") -> str:
    """Per method and oversight level, ``metric`` at each value of ``setting``: mean [95% CI] (finished runs)."""
    symbol = SYMBOLS[setting]
    lines = ["| method | p | " + " | ".join(f"{symbol} = {v:g}" for v in values) + " |"]
    lines.append("|---" * (len(values) + 2) + "|")
    for method in dict.fromkeys(r["method"] for r in rows):
        for oversight in sorted({float(r["oversight"]) for r in rows}):
            cells = [
                cell(metric_of(matching(rows, method=method, oversight=oversight, **{setting: v}), metric))
                for v in values
            ]
            lines.append(f"| {method} | {oversight:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


MONITOR_KINDS = (("gate_auroc", "gate"), ("probe_auroc", "probe"))


def monitor_table(rows: list[dict], values: list[float]) -> str:
    """The label-noise runs' monitors: per method, oversight level and monitor, the AUROC at each E: mean [95% CI]
    (runs measured); the gate of mixture methods only."""
    lines = ["| policy of | monitor | p | " + " | ".join(f"E = {v:g}" for v in values) + " |"]
    lines.append("|---" * (len(values) + 3) + "|")
    for method in dict.fromkeys(r["method"] for r in rows):
        for key, monitor in MONITOR_KINDS:
            for oversight in sorted({float(r["oversight"]) for r in rows}):
                mine = [matching(rows, method=method, oversight=oversight, label_noise=v) for v in values]
                if (
                    key == "gate_auroc"
                    and not any(finite(metric_of(m, key)).size for m in mine)
                    and method != "routing"
                ):
                    continue
                cells = [cell(metric_of(m, key)) for m in mine]
                lines.append(f"| {method} | {monitor} | {oversight:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def grid_monitor_table(rows: list[dict]) -> str:
    """The main grid's monitors (each part's runs apart): per part, method and monitor, the AUROC at each oversight
    level."""
    levels = sorted({float(r["oversight"]) for r in rows})
    lines = ["| runs of | policy of | monitor | " + " | ".join(f"p = {p:g}" for p in levels) + " |"]
    lines.append("|---" * (len(levels) + 3) + "|")
    for part in dict.fromkeys(r["part"] for r in rows):
        for method in dict.fromkeys(r["method"] for r in rows if r["part"] == part):
            for key, monitor in MONITOR_KINDS:
                mine = [matching(rows, part=part, method=method, oversight=p) for p in levels]
                if key == "gate_auroc" and method != "routing":
                    continue
                cells = [cell(metric_of(m, key)) for m in mine]
                lines.append(f"| {part} | {method} | {monitor} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def measured_line(rows: list[dict]) -> str:
    """``3 of 400 runs measured (397 missing)``."""
    return report.finished_line(rows).replace("runs finished", "runs measured")


# ----- claims -----------------------------------------------------------------------------------------------------


def verdict_lines(evidence: Evidence, claims: tuple) -> list[str]:
    """One line per claim row: its test, estimate [95% CI], runs in the smallest group and verdict."""
    lines = []
    for row in claim_rows(evidence, claims):
        value = "n/a"
        if all(math.isfinite(row[k]) for k in ("estimate", "low", "high")):
            value = f"{number(row['estimate'], 2)} {interval(row['low'], row['high'], 2)}"
        lines.append(
            f"- {row['claim']}. Test: {row['test']} (claimed {row['claimed']}). Measured: {value}, {row['runs']:g}"
            f" runs in the smallest group. Verdict: **{row['verdict']}**."
        )
    return lines


# ----- figures ----------------------------------------------------------------------------------------------------


def method_series(rows: list[dict], metric: str = "true_return") -> list[Series]:
    methods = dict.fromkeys(r["method"] for r in rows)
    return [
        Series(m, [r for r in rows if r["method"] == m], metric, plots.method_color(m), plots.method_marker(m))
        for m in methods
    ]


def setting_figure(rows: list[dict], setting: str, values: list[float], path: Path, title: str) -> list[Path]:
    """True return against ``setting``, one panel per oversight level (none drawn before a run finishes)."""
    if not any(r["status"] == DONE for r in rows):
        return []
    oversights = sorted({float(r["oversight"]) for r in rows})
    details = dict(setting=setting, values=values, oversights=oversights, symbol=SYMBOLS[setting])
    fig = setting_plots.plot_against(method_series(rows), path, ylabel="final true return", title=title, **details)
    return [fig]


def monitor_figure(rows: list[dict], values: list[float], path: Path) -> list[Path]:
    """The label-noise runs' monitors against E, one panel per oversight level: routing's gate (solid) and the probe
    on each method's policy (dashed)."""
    mine = [r for r in rows if r["part"] == LABEL_NOISE]
    if not any(r["status"] == DONE for r in mine):
        return []
    series = [
        Series(
            "routing: gate", [r for r in mine if r["method"] == "routing"], "gate_auroc", plots.method_color("routing")
        )
    ]
    for method in dict.fromkeys(r["method"] for r in mine):
        series.append(
            Series(
                f"{method}: probe",
                [r for r in mine if r["method"] == method],
                "probe_auroc",
                plots.method_color(method),
                "s",
                dashed=True,
            )
        )
    oversights = sorted({float(r["oversight"]) for r in mine})
    details = dict(setting="label_noise", values=values, oversights=oversights, symbol="E")
    title = "AUROC of each monitor for telling unlabeled Ghost-bound episodes from Diamond-bound ones (0.5: chance)"
    chance = (0.5, "chance (0.5)")
    return [setting_plots.plot_against(series, path, ylabel="AUROC", title=title, level=chance, **details)]


# ----- sections ---------------------------------------------------------------------------------------------------


def header(part: Part, config: ReproduceConfig, line: str, compute: str) -> list[str]:
    return [
        f"**{part.name}**: {part.description}. {line}.",
        "",
        command_block(part, config, published_devices(part, config)),
        "",
        f"Compute: {compute}.",
        "",
    ]


def part_compute(part: Part, config: ReproduceConfig) -> str:
    """The compute of a part's training, in words."""
    seconds = sum(training_seconds(*size(sweep_config(sweep, config))) for sweep in part.sweeps())
    return f"{compute_text(seconds)}; each sweep (each command) resumes where it stopped"


def figure_lines(paths: list[Path], docs: Path) -> list[str]:
    if not paths:
        return ["No figure yet: no finished run.", ""]
    return [f"![{p.stem.replace('_', ' ')}]({p.relative_to(docs).as_posix()})" for p in paths] + [""]


def label_noise_section(
    part: Part, config: ReproduceConfig, rows: list[dict], evidence: Evidence, figures: list[Path]
) -> str:
    lines = header(part, config, report.finished_line(rows), part_compute(part, config))
    lines += [
        "Final deployed true return against label noise E, mean [95% CI] (finished runs):",
        "",
        setting_table(rows, "label_noise", list(part.values)),
        "",
        'The post\'s claim "gradient routing works better with imperfect labels" (rows of the claims table):',
        "",
        *verdict_lines(evidence, claims_module.IMPERFECT_LABEL_CLAIMS[:3]),
        "",
    ]
    return "\n".join(lines + figure_lines(figures, Path(config.docs)))


def spurious_section(
    part: Part, config: ReproduceConfig, rows: list[dict], evidence: Evidence, figures: list[Path]
) -> str:
    own = [r for r in rows if r["part"] == part.name]
    lines = header(part, config, report.finished_line(own), part_compute(part, config))
    values = [0.0, *part.values]
    lines += [
        f"Its s = 0 column is label-noise's E = 0 runs at {SPURIOUS_AT:g} oversight"
        f" ({report.finished_line([r for r in rows if r['part'] != part.name])}).",
        "",
        "Final deployed true return against spurious oversight s, mean [95% CI] (finished runs):",
        "",
        setting_table(rows, "spurious_oversight", values),
        "",
        *verdict_lines(evidence, claims_module.IMPERFECT_LABEL_CLAIMS[3:]),
        "",
    ]
    return "\n".join(lines + figure_lines(figures, Path(config.docs)))


def monitors_section(
    part: Part, config: ReproduceConfig, rows: list[dict], evidence: Evidence, values: list[float], figures: list[Path]
) -> str:
    noisy = [r for r in rows if r["part"] == LABEL_NOISE]
    grid = [r for r in rows if r["part"] != LABEL_NOISE]
    compute = (
        f"about {MONITOR_SECONDS_PER_RUN:.0f} s of one core of the reference machine per run measured: for the"
        f" {len(noisy)} label-noise runs {compute_text(len(noisy) * MONITOR_SECONDS_PER_RUN)}, and"
        f" {len(grid) * MONITOR_SECONDS_PER_RUN / 3600:.1f} hours more for the main grid's {len(grid)} where they keep"
        " their checkpoints; each command skips the runs it measured already"
    )
    lines = header(part, config, measured_line(rows), compute)
    lines += [
        "AUROC for telling the unlabeled episodes that end at the Ghost from those that end at the Diamond, on each"
        " run's trained policy: routing's gate (its weight on the Ghost expert) and a probe trained on the labels"
        " the run's training had (the same number, with the same label noise), mean [95% CI] (runs measured).",
        "",
        f"The label-noise runs ({measured_line(noisy)}):",
        "",
        monitor_table(noisy, values),
        "",
    ]
    if any(r["status"] == DONE for r in grid):
        lines += [f"The main grid's runs ({measured_line(grid)}):", "", grid_monitor_table(grid), ""]
    elif grid:
        parts = ", ".join(dict.fromkeys(r["part"] for r in grid))
        lines += [
            f"The main grid's runs ({parts}): {measured_line(grid)}; a run is measured where it keeps its checkpoint.",
            "",
        ]
    lines += [
        'The post\'s claim "gradient routing allows monitoring when models use dangerous knowledge" (rows of the'
        " claims table):",
        "",
        *verdict_lines(evidence, claims_module.MONITOR_CLAIMS),
        "",
    ]
    return "\n".join(lines + figure_lines(figures, Path(config.docs)))


def write_outputs(
    name: str, parts: dict[str, Part], config: ReproduceConfig, rows: list[dict], evidence: Evidence
) -> str:
    """The figures of the part ``name``; returns its section (the CSV is the caller's)."""
    part, img = parts[name], Path(config.docs) / "img" / name
    if name == LABEL_NOISE:
        title = "final true return of the deployed policy against label noise E (each label wrong with probability E)"
        figures = setting_figure(rows, part.varied, list(part.values), img / "return_vs_label_noise.png", title)
        return label_noise_section(part, config, rows, evidence, figures)
    if name == SPURIOUS:
        title = "final true return of the deployed policy against spurious oversight s"
        values = [0.0, *part.values]
        figures = setting_figure(rows, part.varied, values, img / "return_vs_spurious_oversight.png", title)
        return spurious_section(part, config, rows, evidence, figures)
    values = list(parts[LABEL_NOISE].values)
    figures = monitor_figure(rows, values, img / "monitors_vs_label_noise.png")
    return monitors_section(part, config, rows, evidence, values, figures)
