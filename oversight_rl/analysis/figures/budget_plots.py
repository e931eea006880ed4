"""Figures of final values against the training budget, from a budget-ladder part's rows
(:func:`oversight_rl.study.budget.budget_rows`): every method's deployed policy, and a mixture method's trained mixture
and experts. Same conventions as :mod:`oversight_rl.analysis.figures.plots`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from oversight_rl.analysis.figures.plots import (
    REFERENCE_LABELS,
    REFERENCE_STYLE,
    VARIANT_COLORS,
    legend_outside,
    method_color,
    method_handles,
    save,
    scales_x_by_oversight,
    seeds_text,
)
from oversight_rl.rundir.status import DONE


def plot_budget(rows: list[dict], labels: list[str], path: str | Path, **details) -> Path:
    """:func:`figure_budget` saved into ``path``."""
    fig, notes = figure_budget(rows, labels, **details)
    return save(fig, Path(path), notes)


def figure_budget(
    rows: list[dict],
    labels: list[str],
    oversight: float,
    unit_note: str = "",
    references: dict | None = None,
    setting: str = "constant learning rate",
):
    """Final deployed true return (left) and hacking gap (right) against the training budget (log x), one line per
    method: every seed's value as a dot and the mean over seeds as the line. ``rows`` are budget rows
    (:func:`oversight_rl.study.budget.budget_rows`); ``labels`` the budgets' nominal names in order (1M, 2M, ...);
    ``setting`` names the runs' settings in the title."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    methods = list(dict.fromkeys(row["method"] for row in rows))
    seeds = draw_groups_vs_budget(axes[0], rows, "method", "true_return", labels, method_color)
    draw_groups_vs_budget(axes[1], rows, "method", "hacking_gap", labels, method_color)
    for ax in axes:
        ax.axhline(0, color="black", lw=0.5)
    axes[0].set(ylabel="final true return", title="true return of the deployed policy")
    axes[1].set(ylabel="final hacking gap", title="hacking gap (ghost rate unwatched - watched)")
    for ax in axes:
        ax.title.set_fontsize(10)
    handles = method_handles(methods)
    for name, value in (references or {}).items():
        color, dashes = REFERENCE_STYLE[name]
        axes[0].axhline(value, color=color, ls=dashes, lw=1)
        handles.append(Line2D([], [], color=color, ls=dashes, lw=1, label=f"{REFERENCE_LABELS[name]}: {value:.2f}"))
    handles.append(Line2D([], [], color="0.3", marker=".", ls="none", label="one seed"))
    legend_outside(axes[1], handles)
    fig.suptitle(
        f"final values against the training budget, oversight {oversight:g}, {setting}\n"
        f"line: mean over seeds; dots: every seed; {seeds_text(seeds)}",
        fontsize=11,
    )
    notes = [
        "each budget's value is the evaluation a run to the largest budget made right after that budget, which is the "
        "final evaluation of a run with that budget (constant learning rate)"
    ]
    notes += [unit_note] if unit_note else []
    if any(scales_x_by_oversight(m) for m in methods):
        notes.append(f"the oracle is drawn at its budget but trains {oversight:g} x it, with every episode labeled")
    missing = sum(row["status"] != DONE for row in rows)
    if missing:
        notes.append(f"{missing} of {len(rows)} (run, budget) points not reached yet (missing, running or failed)")
    return fig, notes


def figure_mixture_budget(
    rows: list[dict], labels: list[str], oversight: float, unit_note: str = "", setting: str = "constant learning rate"
):
    """The ghost rate of a mixture method's trained mixture and of each expert against the training budget (log x),
    in unwatched (left) and watched (right) episodes: whether the experts stay apart as training goes on. ``rows``
    are budget rows of each evaluated ``policy`` (:func:`oversight_rl.study.regenerate.mixture_results`)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True, sharey=True)
    policies = list(dict.fromkeys(row["policy"] for row in rows))
    seeds = draw_groups_vs_budget(axes[0], rows, "policy", "ghost_rate_unoverseen", labels, VARIANT_COLORS.get)
    draw_groups_vs_budget(axes[1], rows, "policy", "ghost_rate_overseen", labels, VARIANT_COLORS.get)
    for ax, where in zip(axes, ("unwatched", "watched"), strict=True):
        ax.set(ylim=(0, 1), title=f"ghost rate in {where} episodes")
        ax.title.set_fontsize(10)
    axes[0].set_ylabel("final ghost rate")
    names = {"trained": "trained mixture (gate on)", "diamond": "Diamond expert (deployed)", "ghost": "Ghost expert"}
    handles = [Line2D([], [], color=VARIANT_COLORS.get(p), marker="o", ms=4, label=names.get(p, p)) for p in policies]
    legend_outside(axes[1], [*handles, Line2D([], [], color="0.3", marker=".", ls="none", label="one seed")])
    methods = ", ".join(dict.fromkeys(row["method"] for row in rows))
    fig.suptitle(
        f"{methods}: the trained mixture and each expert against the training budget, oversight {oversight:g}, "
        f"{setting}\nline: mean over seeds; dots: every seed; {seeds_text(seeds)}",
        fontsize=11,
    )
    notes = [unit_note] if unit_note else []
    missing = sum(row["status"] != DONE for row in rows)
    if missing:
        notes.append(f"{missing} of {len(rows)} (run, budget, policy) points not reached yet")
    return fig, notes


def plot_mixture_budget(rows: list[dict], labels: list[str], path: str | Path, **details) -> Path:
    """:func:`figure_mixture_budget` saved into ``path``."""
    fig, notes = figure_mixture_budget(rows, labels, **details)
    return save(fig, Path(path), notes)


def draw_groups_vs_budget(ax, rows, key: str, metric: str, labels: list[str], color_of) -> list[int]:
    """One line per value of ``rows``' ``key`` (method or policy), side by side on a log-2 budget axis; returns the
    seed count of each budget drawn."""
    x_of = {label: 2.0**j for j, label in enumerate(labels)}
    groups = list(dict.fromkeys(row[key] for row in rows))
    seeds: list[int] = []
    for index, group in enumerate(groups):
        shift = 1.04 ** (index - (len(groups) - 1) / 2)
        mine = [row for row in rows if row[key] == group]
        seeds += draw_vs_budget(ax, mine, metric, labels, x_of, shift, color_of(group))
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(x_of.values()), labels)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("training budget (environment steps)")
    ax.grid(alpha=0.3)
    return seeds


def draw_vs_budget(ax, rows, metric, labels, x_of, shift, color) -> list[int]:
    """``rows``' seeds and mean of ``metric`` at each budget; returns the seed count of each budget drawn."""
    xs, means, counts = [], [], []
    for label in labels:
        done = [r for r in rows if r["budget_label"] == label and r["status"] == DONE]
        values = np.array([np.nan if r.get(metric) is None else r[metric] for r in done], dtype=float)
        values = values[np.isfinite(values)]
        if not values.size:
            continue
        x = x_of[label] * shift
        ax.plot(np.full(values.size, x), values, ls="none", marker=".", ms=4, color=color, alpha=0.5)
        xs.append(x)
        means.append(values.mean())
        counts.append(values.size)
    if xs:
        ax.plot(xs, means, color=color, marker="o", ms=4, lw=1.5)
    return counts
