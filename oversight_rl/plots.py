"""Figures drawn from run directories. Only this module imports matplotlib."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

from oversight_rl.methods import METHODS, get_method  # noqa: E402
from oversight_rl.results import DONE, SweepResults, bootstrap_ci, seed_band  # noqa: E402
from oversight_rl.rundir import EVAL_CSV, SUMMARY, read_csv, read_json  # noqa: E402

VARIANT_STYLE = {"trained": "tab:gray", "diamond": "tab:blue", "ghost": "tab:red", "best": "tab:green"}


def plot_run(run_dir: str | Path, metric: str = "true_return") -> Path:
    """Learning curve of one run: ``metric`` against environment steps, one line per policy variant."""
    run_dir = Path(run_dir)
    rows = read_csv(run_dir / EVAL_CSV)
    summary = read_json(run_dir / SUMMARY)
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for variant in dict.fromkeys(row["policy"] for row in rows):
        points = [(row["env_steps"], row[metric]) for row in rows if row["policy"] == variant]
        label = f"{variant} (deployed)" if variant == summary["deployed"] else variant
        ax.plot(*zip(*points, strict=True), marker=".", label=label, color=VARIANT_STYLE.get(variant))
    ax.set(
        xlabel="environment steps",
        ylabel=metric.replace("_", " "),
        title=f"{summary['method']}, oversight {summary['oversight']:g}, seed {summary['seed']}",
    )
    ax.axhline(0, color="black", lw=0.5)
    ax.grid(alpha=0.3)
    ax.legend()
    path = run_dir / "learning_curve.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
ORACLE_X_NOTE = (
    "x / p: a method that trains on p x the budget with every episode labeled (the oracle) is drawn at "
    "env steps / p, the steps it would need if only a fraction p were labeled (as in the paper)"
)
MISSING_NOTE = "x at the bottom: runs missing or failed at that point (count beside it); they are listed by the script"


def plot_sweep(results: SweepResults, out_dir: str | Path) -> list[Path]:
    """All sweep figures into ``out_dir``: learning curves, final return and unoverseen ghost rate vs oversight."""
    out_dir = Path(out_dir)
    return [
        plot_learning_curves(results, out_dir / "learning_curves.png"),
        plot_metric_vs_oversight(
            results, "true_return", out_dir / "return_vs_oversight.png", "final true return of the deployed policy"
        ),
        plot_metric_vs_oversight(
            results,
            "ghost_rate_unoverseen",
            out_dir / "hacking_vs_oversight.png",
            "ghost rate where the Ghost is unoverseen (deployed policy)",
        ),
    ]


def scales_x_by_oversight(method: str) -> bool:
    """Whether a method's curve is drawn at env steps / oversight (the oracle trains on that fraction of steps)."""
    return method in METHODS and get_method(method).budget_scales_with_oversight


def method_label(method: str) -> str:
    return f"{method} (x / p)" if scales_x_by_oversight(method) else method


def plot_learning_curves(results: SweepResults, path: Path) -> Path:
    """Deployed true return against environment steps: one panel per oversight level, one line per method, mean
    and 95% bootstrap band over seeds. Unfinished runs are noted in their panel."""
    oversights = results.oversights
    ncols = min(len(oversights), 3)
    nrows = -(-len(oversights) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.3 * ncols, 3.3 * nrows), sharey=True, squeeze=False, constrained_layout=True
    )
    for ax, oversight in zip(axes.flat, oversights, strict=False):
        draw_learning_panel(ax, results, oversight)
    for ax in axes.flat[len(oversights) :]:
        ax.set_visible(False)
    handles = {}
    for ax in axes.flat:
        handles.update({label: handle for handle, label in zip(*ax.get_legend_handles_labels(), strict=True)})
    fig.legend(handles.values(), handles.keys(), loc="outside right upper")
    notes = [ORACLE_X_NOTE] if any(scales_x_by_oversight(m) for m in results.methods) else []
    fig.suptitle("deployed policy: true return during training (mean, 95% bootstrap band over seeds)")
    return save(fig, path, notes)


def draw_learning_panel(ax, results: SweepResults, oversight: float) -> None:
    unfinished = []
    for method in results.methods:
        curves = [c for c in results.curves if c.method == method and c.oversight == oversight]
        rows = results.rows_at(method, oversight)
        if len(curves) < len(rows):
            unfinished.append(f"{method}: {len(rows) - len(curves)} of {len(rows)} runs missing/failed")
        if not curves:
            continue
        steps, mean, low, high = seed_band(curves)
        if scales_x_by_oversight(method) and oversight > 0:
            steps = steps / oversight
        color = METHOD_COLORS.get(method)
        ax.plot(steps, mean, color=color, label=method_label(method), lw=1.5)
        ax.fill_between(steps, low, high, color=color, alpha=0.2, lw=0)
    if unfinished:
        ax.text(0.02, 0.98, "\n".join(unfinished), transform=ax.transAxes, va="top", fontsize=7, color="darkred")
    ax.axhline(0, color="black", lw=0.5)
    ax.set(title=f"oversight {oversight:g}", xlabel="environment steps")
    ax.set_ylabel("true return")
    ax.grid(alpha=0.3)


def plot_metric_vs_oversight(results: SweepResults, metric: str, path: Path, ylabel: str) -> Path:
    """Final ``metric`` of the deployed policy against oversight fraction (log x), one line per method, mean and
    95% bootstrap interval over seeds; runs missing or failed are marked with an x at the bottom."""
    fig, ax = plt.subplots(figsize=(6.6, 4.4), constrained_layout=True)
    methods, oversights = results.methods, results.oversights
    undefined: dict[str, list[str]] = {}  # oversight -> methods whose finished runs all lack the metric
    for index, method in enumerate(methods):
        shift = 1.05 ** (index - (len(methods) - 1) / 2)  # spread the methods' error bars apart on the log axis
        for oversight in draw_method_vs_oversight(ax, results, method, metric, shift):
            undefined.setdefault(f"p={oversight:g}", []).append(method)
    set_oversight_axis(ax, oversights)
    ax.set(ylabel=ylabel, title=f"{metric} of the deployed policy vs oversight (mean, 95% bootstrap CI over seeds)")
    ax.title.set_fontsize(9)
    ax.axhline(0, color="black", lw=0.5)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    notes = [MISSING_NOTE]
    if undefined:
        cells = "; ".join(f"{p} ({', '.join(methods)})" for p, methods in undefined.items())
        notes.append(f"not drawn, {metric} undefined (no qualifying episodes) in every finished run: {cells}")
    return save(fig, path, notes)


def draw_method_vs_oversight(ax, results: SweepResults, method: str, metric: str, shift: float) -> list[float]:
    """One method's line with intervals and missing-run marks; returns the oversights where the metric is undefined."""
    color = METHOD_COLORS.get(method)
    points, undefined = [], []
    for oversight in results.oversights:
        rows = results.rows_at(method, oversight)
        if not rows:
            continue
        done = [r for r in rows if r["status"] == DONE]
        mean, low, high = bootstrap_ci([np.nan if r.get(metric) is None else r[metric] for r in done])
        points.append((oversight * shift, mean, low, high))
        if done and np.isnan(mean):
            undefined.append(oversight)
        if len(done) < len(rows):
            mark_missing(ax, oversight * shift, len(rows) - len(done), color)
    x, mean, low, high = np.array(points, dtype=float).reshape(-1, 4).T
    ax.errorbar(x, mean, yerr=[mean - low, high - mean], color=color, marker="o", ms=4, capsize=3, label=method)
    return undefined


def mark_missing(ax, x: float, count: int, color) -> None:
    """An x at the bottom of the axes (in data x) with the number of missing or failed runs beside it."""
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


def save(fig, path: Path, notes: list[str]) -> Path:
    """Save with the notes as a caption under the figure, then close it."""
    if notes:
        fig.text(0.01, -0.01, "\n".join(notes), fontsize=7, va="top", ha="left", wrap=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
