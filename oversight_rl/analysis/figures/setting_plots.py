"""Figures of final values against a setting that makes oversight imperfect (label noise, spurious oversight): one
panel per oversight level, one line per method (or per monitor), the mean over seeds with its 95% bootstrap interval
and each seed's value beside it. Same conventions as :mod:`oversight_rl.analysis.figures.plots`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.lines import Line2D

from oversight_rl.analysis.figures.plots import TOO_FEW_NOTE, legend_outside, save, seeds_text
from oversight_rl.analysis.stats import MIN_SEEDS, bootstrap_ci
from oversight_rl.rundir.status import DONE


@dataclass(frozen=True)
class Series:
    """One line: the rows it is drawn from (one per planned run, each with its oversight and setting), the metric,
    and how it looks."""

    label: str
    rows: list[dict]
    metric: str
    color: str
    marker: str = "o"
    dashed: bool = False


def figure_against(
    series: list[Series],
    setting: str,
    values: list[float],
    oversights: list[float],
    symbol: str,
    ylabel: str,
    title: str,
    level: tuple[float, str] | None = None,
):
    """``series`` against ``setting`` (x, at ``values``, named ``symbol`` on the axis), one panel per oversight level,
    with ``level`` (a value and its name: chance) as a dotted line. Returns the figure and its caption notes."""
    panels = max(1, len(oversights))
    fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels + 1.8, 4.0), sharey=True, squeeze=False)
    fig.set_layout_engine("constrained")
    seeds, missing = [], 0
    for ax, oversight in zip(axes[0], oversights, strict=False):
        for index, line in enumerate(series):
            shift = (index - (len(series) - 1) / 2) * spread(values) * 0.012
            counts, absent = draw_line(ax, line, setting, values, oversight, shift)
            seeds += counts
            missing += absent
        ax.axhline(
            level[0] if level else 0.0,
            color="0.3" if level else "black",
            lw=0.8 if level else 0.5,
            ls=":" if level else "-",
        )
        ax.set_title(f"oversight {oversight:g}", fontsize=10)
        ax.set_xticks(values, [f"{v:g}" for v in values])
        ax.set_xlabel(f"{setting.replace('_', ' ')} {symbol}")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(ylabel)
    handles = [
        Line2D([], [], color=s.color, marker=s.marker, ms=4, ls="--" if s.dashed else "-", label=s.label)
        for s in series
    ]
    handles.append(Line2D([], [], color="0.3", marker=".", ls="none", label="one seed"))
    if level:
        handles.append(Line2D([], [], color="0.3", ls=":", lw=0.8, label=level[1]))
    legend_outside(axes[0, -1], handles)
    fig.suptitle(f"{title}\nmean and 95% bootstrap CI over seeds; dots: every seed; {seeds_text(seeds)}", fontsize=11)
    notes = [TOO_FEW_NOTE] if any(0 < n < MIN_SEEDS for n in seeds) else []
    if missing:
        notes.append(f"{missing} planned points not drawn: runs missing, running, failed or not measured")
    return fig, notes


def spread(values: list[float]) -> float:
    return (max(values) - min(values)) or 1.0


def draw_line(ax, line: Series, setting: str, values: list[float], oversight: float, shift: float):
    """One series in one panel: each seed's value, and the mean with its interval (none below
    :data:`~oversight_rl.analysis.stats.MIN_SEEDS` seeds). Returns the seed count of each point drawn and the
    number of the series' planned (run, value) points without a value."""
    points, counts, absent = [], [], 0
    for value in values:
        rows = [r for r in line.rows if close(r["oversight"], oversight) and close(r.get(setting), value)]
        done = [r for r in rows if r["status"] == DONE]
        finite = np.array([np.nan if r.get(line.metric) is None else r[line.metric] for r in done], dtype=float)
        finite = finite[np.isfinite(finite)]
        absent += len(rows) - finite.size
        if not finite.size:
            continue
        x = value + shift
        ax.plot(np.full(finite.size, x), finite, ls="none", marker=".", ms=3.5, color=line.color, alpha=0.5)
        mean, low, high = bootstrap_ci(finite)
        if finite.size < MIN_SEEDS:
            low = high = mean
        points.append((x, mean, low, high))
        counts.append(finite.size)
    if points:
        x, mean, low, high = np.array(points, dtype=float).T
        style = dict(ls="--", mfc="white") if line.dashed else {}
        ax.errorbar(
            x, mean, yerr=[mean - low, high - mean], color=line.color, marker=line.marker, ms=4, capsize=3, **style
        )
    return counts, absent


def close(a, b) -> bool:
    return a is not None and b is not None and abs(float(a) - float(b)) < 1e-9


def plot_against(series: list[Series], path: str | Path, **details) -> Path:
    """:func:`figure_against` saved into ``path``."""
    fig, notes = figure_against(series, **details)
    return save(fig, Path(path), notes)
