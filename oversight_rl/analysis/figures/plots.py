"""Figures drawn from run directories: one run's learning curves, and a sweep's curves and final values against
oversight. With pictures.py, the only matplotlib user.

Every figure states how many seeds each point has, keeps its legend outside the axes, writes step counts as
``250k``/``1.5M``, and notes under the figure what it leaves out (and only then).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

from oversight_rl.analysis.stats import (  # noqa: E402
    MIN_SEEDS,
    bootstrap_ci,
    iqm,
    seed_band,
)
from oversight_rl.core.methods import get_method  # noqa: E402
from oversight_rl.rundir.files import SUMMARY, atomic_write_bytes, read_json  # noqa: E402
from oversight_rl.rundir.gather import SweepResults
from oversight_rl.rundir.readers import read_evaluations  # noqa: E402
from oversight_rl.rundir.status import DONE  # noqa: E402

# The policy variants in the colours of what they seek, as the environments draw the objects (envs/minigrid_envs.py):
# the Diamond expert in the Diamond's edge blue, the Ghost expert in the Ghost's violet.
VARIANT_COLORS = {"trained": "#505050", "diamond": "#005a96", "ghost": "#aa50eb", "best": "#2ca02c"}
REFERENCE_STYLE = {"optimal": ("0.3", "--"), "nearest terminal": ("0.3", ":")}
REFERENCE_LABELS = {
    "optimal": "optimal policy",
    "nearest terminal": "always the nearest terminal (Diamond on ties)",
}


# ----- shared pieces ----------------------------------------------------------------------------------------------


def steps_label(x: float, _position=None) -> str:
    """A step count as a short tick label: ``0``, ``500``, ``250k``, ``1.5M``, ``2B``."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.0f}"


def set_steps_axis(ax, label: str = "environment steps") -> None:
    """Environment steps on x: at most six round ticks, labelled like ``250k``."""
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10], min_n_ticks=3))
    ax.xaxis.set_major_formatter(FuncFormatter(steps_label))
    ax.set_xlabel(label)


def seeds_text(counts) -> str:
    """``n = 3 seeds per point``, or the range when points differ (``n = 1-3 seeds per point``)."""
    counts = [int(c) for c in counts if c > 0]
    if not counts:
        return "no finished runs"
    low, high = min(counts), max(counts)
    if low == high:
        return f"n = {low} seed{'s' if low != 1 else ''} per point"
    return f"n = {low}-{high} seeds per point"


def legend_outside(ax, handles) -> None:
    """A legend to the right of ``ax``, outside it: constrained layout makes room for it, so it hides no data, no
    title and no caption."""
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, fontsize=8)


def save(fig, path: Path, notes: list[str], dpi: int = 120) -> Path:
    """Save with the notes (if any) as a caption under the figure, then close it. The file is written atomically:
    a full disk leaves no half-written figure, and its error names the file."""
    if notes:
        fig.text(0.01, 0, "\n".join(notes), fontsize=7, va="top", ha="left", wrap=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = io.BytesIO()
    try:
        fig.savefig(image, format=path.suffix.removeprefix(".") or "png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    atomic_write_bytes(path, image.getvalue())
    return path


# ----- one run ----------------------------------------------------------------------------------------------------


def figure_run(run_dir: str | Path, references: dict[str, float] | None = None):
    """The figure of :func:`plot_run`, not yet saved."""
    run_dir = Path(run_dir)
    rows = read_evaluations(run_dir)
    summary = read_json(run_dir / SUMMARY)
    fig, (ret_ax, gap_ax) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    for variant in dict.fromkeys(row["policy"] for row in rows):
        mine = [row for row in rows if row["policy"] == variant]
        steps = [row["env_steps"] for row in mine]
        label = f"{variant} (deployed)" if variant == summary["deployed"] else variant
        style = dict(marker=".", color=VARIANT_COLORS.get(variant), label=label)
        ret_ax.plot(steps, [row["true_return"] for row in mine], **style)
        gap_ax.plot(steps, [row.get("hacking_gap", math.nan) for row in mine], **style)  # older runs lack it
    for name, value in (references or {}).items():
        color, dashes = REFERENCE_STYLE[name]
        ret_ax.axhline(value, color=color, ls=dashes, lw=1, label=f"{REFERENCE_LABELS[name]}: {value:.2f}")
    ret_ax.set(ylabel="true return", title="true return (the paper's metric)")
    gap_ax.set(
        ylabel="hacking gap",
        title="hacking gap: ghost rate where unwatched - where watched",
    )
    for ax in (ret_ax, gap_ax):
        set_steps_axis(ax)
        ax.axhline(0, color="black", lw=0.5)
        ax.grid(alpha=0.3)
        ax.title.set_fontsize(10)
    handles, labels = ret_ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 3), fontsize=8)
    fig.suptitle(f"{summary['method']}, oversight {summary['oversight']:g}, seed {summary['seed']}: each evaluation")
    return fig


def plot_run(run_dir: str | Path, references: dict[str, float] | None = None) -> Path:
    """``learning_curve.png`` of one run: true return and hacking gap against environment steps, one line per
    policy variant, with ``references`` (``{"optimal": ..., "nearest terminal": ...}`` of its environment, from
    :func:`oversight_rl.engine.references.reference_returns`) as horizontal lines."""
    run_dir = Path(run_dir)
    return save(figure_run(run_dir, references), run_dir / "learning_curve.png", notes=[], dpi=110)


# ----- sweeps -----------------------------------------------------------------------------------------------------

METHOD_COLORS = {
    "routing": "tab:blue",
    "no_routing": "tab:cyan",
    "constant_gate": "tab:purple",
    "naive": "tab:red",
    "naive_early_stop": "tab:orange",
    "filtering": "tab:green",
    "oracle": "black",
}
"""The built-in methods' colours; every other method gets one of :data:`OTHER_COLORS` (:func:`method_color`)."""
OTHER_COLORS = ("tab:brown", "tab:pink", "tab:olive", "tab:gray", "gold", "navy", "teal", "crimson", "darkkhaki")
OTHER_MARKERS = ("s", "^", "D", "v", "P", "X", "*", "<", ">")
_OTHERS: dict[str, int] = {}
"""The methods other than the built-ins, numbered in the order they are first drawn (a sweep's own order)."""


def method_color(method: str) -> str:
    """The method's colour: a built-in's own; every other method its own of :data:`OTHER_COLORS`."""
    return METHOD_COLORS.get(method) or OTHER_COLORS[_other_index(method) % len(OTHER_COLORS)]


def method_marker(method: str) -> str:
    """The method's marker: ``o`` for the built-ins; every other method its own of :data:`OTHER_MARKERS`."""
    return "o" if method in METHOD_COLORS else OTHER_MARKERS[_other_index(method) % len(OTHER_MARKERS)]


def _other_index(method: str) -> int:
    return _OTHERS.setdefault(method, len(_OTHERS))


ORACLE_X_NOTE = (
    "x / p: a method that trains on p x the budget with every episode labeled (the oracle) is drawn at "
    "env steps / p, the steps it would need if only a fraction p were labeled (as in the paper)"
)
MISSING_NOTE = (
    "x at the bottom: runs missing, failed or unreadable at that point (count beside it); the script lists them"
)
TOO_FEW_NOTE = f"no 95% interval (band or bar) where a point has fewer than {MIN_SEEDS} seeds"
SEED_DOTS_NOTE = "small dots: each seed's value, drawn beside its mean"
IQM_MARKER = dict(marker="D", ms=4.5, mfc="white", ls="none")
IQM_NOTE = "open diamonds: the IQM, the mean of the middle 50% of seeds (robust to one outlying seed)"


def plot_sweep(results: SweepResults, out_dir: str | Path) -> list[Path]:
    """All sweep figures into ``out_dir``: learning curves, final return vs oversight, hacking vs oversight."""
    out_dir = Path(out_dir)
    figures = {
        "learning_curves.png": figure_learning_curves,
        "return_vs_oversight.png": figure_return_vs_oversight,
        "hacking_vs_oversight.png": figure_hacking_vs_oversight,
    }
    paths = []
    for name, draw in figures.items():
        fig, notes = draw(results)
        paths.append(save(fig, out_dir / name, notes))
    return paths


def scales_x_by_oversight(method: str) -> bool:
    """Whether a method's curve is drawn at env steps / oversight (the oracle trains on that fraction of steps)."""
    try:
        return get_method(method).budget_scales_with_oversight
    except ValueError:  # a method of the user's that is not importable here
        return False


def method_label(method: str) -> str:
    return f"{method} (x / p)" if scales_x_by_oversight(method) else method


def method_handles(methods: list[str]) -> list[Line2D]:
    return [
        Line2D([], [], color=method_color(m), marker=method_marker(m), ms=4, label=method_label(m)) for m in methods
    ]


def iqm_handle() -> Line2D:
    return Line2D([], [], color="0.3", label="IQM of the seeds", **IQM_MARKER)


def figure_learning_curves(results: SweepResults):
    """Deployed true return against environment steps: one panel per oversight level, one line per method, mean
    and 95% bootstrap band over seeds. Returns the figure and its caption notes."""
    oversights = results.oversights
    ncols = max(1, min(len(oversights), 3))
    nrows = max(1, -(-len(oversights) // ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.3 * ncols, 3.1 * nrows + 0.9), sharey=True, squeeze=False, constrained_layout=True
    )
    seeds, not_drawn = [], []
    for ax, oversight in zip(axes.flat, oversights, strict=False):
        counts, missing = draw_learning_panel(ax, results, oversight)
        seeds += counts
        not_drawn += missing
    for ax in axes.flat[len(oversights) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("true return")
    methods = [m for m in results.methods if any(curve.method == m for curve in results.curves)]
    if methods:
        legend_outside(axes[0, min(len(oversights), ncols) - 1], method_handles(methods))
    fig.suptitle(
        f"deployed policy: true return during training\nmean and 95% bootstrap band over seeds; {seeds_text(seeds)}",
        fontsize=11,
    )
    notes = [ORACLE_X_NOTE] if any(scales_x_by_oversight(m) for m in methods) else []
    notes += [TOO_FEW_NOTE] if any(0 < n < MIN_SEEDS for n in seeds) else []
    if not_drawn:
        notes.append("no curve (missing, failed or unreadable runs; the script lists them): " + "; ".join(not_drawn))
    return fig, notes


def draw_learning_panel(ax, results: SweepResults, oversight: float) -> tuple[list[int], list[str]]:
    """One oversight level's curves; returns the seed count of every point drawn, and a note per method whose runs
    are not all drawn."""
    seeds, not_drawn = [], []
    for method in results.methods:
        curves, rows = results.curves_at(method, oversight), results.rows_at(method, oversight)
        if len(curves) < len(rows):
            not_drawn.append(f"{method} at p={oversight:g}: {len(rows) - len(curves)} of {len(rows)} runs")
        if not curves:
            continue
        steps, mean, low, high, count = seed_band(curves)
        if scales_x_by_oversight(method) and oversight > 0:
            steps = steps / oversight
        color = method_color(method)
        ax.plot(steps, mean, color=color, label=method_label(method), lw=1.5)
        ax.fill_between(steps, low, high, where=count >= MIN_SEEDS, color=color, alpha=0.2, lw=0)
        seeds += list(count)
    ax.axhline(0, color="black", lw=0.5)
    ax.set_title(f"oversight {oversight:g}")
    set_steps_axis(ax)
    ax.grid(alpha=0.3)
    return seeds, not_drawn


def figure_return_vs_oversight(results: SweepResults):
    """Final true return of the deployed policy against oversight (the paper's Fig. 6a)."""
    fig, ax = plt.subplots(figsize=(7.2, 4.4), constrained_layout=True)
    drawn = draw_vs_oversight(ax, results, "true_return")
    set_oversight_axis(ax, results.oversights)
    ax.set_ylabel("final true return")
    ax.set_title(
        "final true return of the deployed policy vs oversight\n"
        f"mean and 95% bootstrap CI over seeds, IQM (open diamond); {seeds_text(drawn.seeds)}",
        fontsize=10,
    )
    legend_outside(ax, method_handles(results.methods) + [iqm_handle()])
    return fig, drawn.notes("true_return")


def figure_hacking_vs_oversight(results: SweepResults):
    """Hacking gap of the deployed policy against oversight, and below it the two ghost rates it is made of."""
    fig, (gap_ax, rate_ax) = plt.subplots(2, 1, figsize=(7.2, 7.2), sharex=True, constrained_layout=True)
    gap = draw_vs_oversight(gap_ax, results, "hacking_gap")
    unwatched = draw_vs_oversight(rate_ax, results, "ghost_rate_unoverseen", details=False)
    watched = draw_vs_oversight(rate_ax, results, "ghost_rate_overseen", dashed=True, details=False)
    set_oversight_axis(rate_ax, results.oversights)
    gap_ax.set_xlabel("")
    gap_ax.set_ylabel("hacking gap")
    gap_ax.set_title(
        "hacking gap of the deployed policy: ghost rate where unwatched - where watched\n"
        f"mean and 95% bootstrap CI over seeds, IQM (open diamond); {seeds_text(gap.seeds)}",
        fontsize=10,
    )
    rate_ax.set_ylabel("ghost rate")
    rate_ax.set_title(
        "ghost rate where the Ghost is unwatched (solid) and watched (dashed); "
        f"{seeds_text(unwatched.seeds + watched.seeds)}",
        fontsize=9,
    )
    kinds = [
        Line2D([], [], color="0.3", marker="o", ms=4, label="unwatched Ghost"),
        Line2D([], [], color="0.3", marker="o", ms=4, mfc="white", ls="--", label="watched Ghost"),
    ]
    legend_outside(gap_ax, method_handles(results.methods) + kinds + [iqm_handle()])
    notes = gap.notes("hacking_gap") + unwatched.notes("ghost_rate_unoverseen") + watched.notes("ghost_rate_overseen")
    return fig, list(dict.fromkeys(notes))


class VsOversight:
    """What :func:`draw_vs_oversight` drew: each point's seed count, whether any run is marked missing, and the
    grid cells where the metric is undefined in every finished run."""

    def __init__(self):
        self.seeds: list[int] = []
        self.missing = False
        self.undefined: dict[str, list[str]] = {}
        self.seed_dots = False

    def notes(self, metric: str) -> list[str]:
        notes = [SEED_DOTS_NOTE, IQM_NOTE] if self.seed_dots else []
        if any(0 < n < MIN_SEEDS for n in self.seeds):
            notes.append(TOO_FEW_NOTE)
        if self.missing:
            notes.append(MISSING_NOTE)
        if self.undefined:
            cells = "; ".join(f"{p} ({', '.join(methods)})" for p, methods in self.undefined.items())
            notes.append(f"not drawn, {metric} undefined (no qualifying episodes) in every finished run: {cells}")
        return notes


def draw_vs_oversight(ax, results: SweepResults, metric: str, dashed: bool = False, details: bool = True):
    """Final ``metric`` of the deployed policy against oversight (log x), one line per method: mean and 95%
    bootstrap interval over seeds and, with ``details``, each seed as a small dot beside it, the IQM as an open
    diamond on its other side and runs missing, failed or unreadable as an x at the bottom. Returns a
    :class:`VsOversight`."""
    drawn = VsOversight()
    methods = results.methods
    for index, method in enumerate(methods):
        shift = 1.06 ** (index - (len(methods) - 1) / 2)  # spread the methods' error bars apart on the log axis
        draw_method_vs_oversight(ax, results, method, metric, shift, dashed, details, drawn)
    ax.axhline(0, color="black", lw=0.5)
    ax.grid(alpha=0.3)
    if drawn.missing:  # a strip at the bottom, free of data, for the missing-run marks
        low, high = ax.get_ylim()
        ax.set_ylim(low - 0.2 * (high - low), high)
    return drawn


def draw_method_vs_oversight(ax, results, method, metric, shift, dashed, details, drawn: VsOversight) -> None:
    color = method_color(method)
    points = []
    for oversight in results.oversights:
        rows = results.rows_at(method, oversight)
        if not rows:
            continue
        done = [r for r in rows if r["status"] == DONE]
        values = np.array([np.nan if r.get(metric) is None else r[metric] for r in done], dtype=float)
        values = values[np.isfinite(values)]
        x = oversight * shift
        mean, low, high = bootstrap_ci(values)  # as in summary.csv (oversight_rl.analysis.comparison)
        if values.size < MIN_SEEDS:
            low = high = mean  # no interval from fewer seeds: the caption says so
        points.append((x, mean, low, high))
        drawn.seeds.append(values.size)
        if done and values.size == 0:
            drawn.undefined.setdefault(f"p={oversight:g}", []).append(method)
        if details and values.size:
            ax.plot(np.full(values.size, x * 1.025), values, ls="none", marker=".", ms=3.5, color=color, alpha=0.6)
            ax.plot([x / 1.025], [iqm(values)], color=color, **IQM_MARKER)
            drawn.seed_dots = True
        if details and len(done) < len(rows):
            mark_missing(ax, x, len(rows) - len(done), color)
            drawn.missing = True
    x, mean, low, high = np.array(points, dtype=float).reshape(-1, 4).T
    style = dict(ls="--", mfc="white") if dashed else {}
    marker = method_marker(method)
    ax.errorbar(x, mean, yerr=[mean - low, high - mean], color=color, marker=marker, ms=4, capsize=3, **style)


def mark_missing(ax, x: float, count: int, color) -> None:
    """An x at the bottom of the axes (in data x) with the number of missing, failed or unreadable runs beside it."""
    transform = blended_transform_factory(ax.transData, ax.transAxes)
    ax.plot([x], [0.03], marker="x", ms=8, mew=2, color=color, transform=transform, clip_on=False, ls="none")
    ax.text(x, 0.06, str(count), transform=transform, color=color, fontsize=7, ha="center")


def set_oversight_axis(ax, oversights: list[float]) -> None:
    """Log x over the oversight fractions (symlog when 0 is among them), ticked at each fraction."""
    positive = [p for p in oversights if p > 0]
    if len(positive) < len(oversights):
        ax.set_xscale("symlog", linthresh=min(positive, default=0.01))
    else:
        ax.set_xscale("log")
    ax.set_xticks(oversights, [f"{p:g}" for p in oversights])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("oversight fraction p")


def plot_learning_curves(results: SweepResults, path: str | Path) -> Path:
    """Only the learning-curves figure of :func:`plot_sweep`, into ``path`` (for a sweep at one oversight level)."""
    fig, notes = figure_learning_curves(results)
    return save(fig, Path(path), notes)
