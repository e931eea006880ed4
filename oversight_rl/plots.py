"""Figures drawn from run directories. Only this module imports matplotlib."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

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
