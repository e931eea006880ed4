"""Tests of what the user reads: the summary table of train_policy.py, one run's learning-curve figure and its
reference lines, and the sweep figures (seed counts, captions, legends, tick labels). Runs are written by hand, so
nothing here trains."""

from __future__ import annotations

import math
import re
from itertools import pairwise, product
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from cli import load_script
from matplotlib.colors import to_hex
from matplotlib.text import Text

import envs
from oversight_rl.analysis.comparison import format_improvement, format_table
from oversight_rl.analysis.figures import plots
from oversight_rl.engine import references
from oversight_rl.rundir.files import CONFIG, EVAL_CSV, SUMMARY, read_csv, write_csv, write_json
from oversight_rl.rundir.gather import Curve, SweepResults, tidy

SMALL_GRID = "OversightRL/DiamondGhost-5x5-v0"

ROOT = Path(__file__).resolve().parents[1]


train_policy = load_script("train_policy")

METRICS = dict(true_return=0.5, diamond_rate=0.7, ghost_rate=0.2, hacking_gap=-0.05, gate_auroc=0.9)


def summary(deployed: str = "diamond", **variants: dict) -> dict:
    """A summary.json as the trainer returns it; ``best`` differs from ``final`` so that a table showing it shows."""
    variants = variants or {"trained": {}, "diamond": {}, "ghost": {}}
    return {
        "method": "routing",
        "oversight": 0.1,
        "seed": 0,
        "deployed": deployed,
        "env_steps": 4096,
        "wall_s": 3.0,
        "variants": {
            name: {"final": {**METRICS, **final}, "best": {**METRICS, "true_return": 0.777}}
            for name, final in variants.items()
        },
    }


# ----- the summary table ------------------------------------------------------------------------------------------


def table_rows(capsys, run_summary: dict) -> dict[str, str]:
    train_policy.print_table(run_summary)
    lines = capsys.readouterr().out.strip().splitlines()
    return {line.split()[0]: line for line in lines[2:] if line.split()[0] in run_summary["variants"]}


def test_table_marks_the_deployed_variant(capsys):
    rows = table_rows(capsys, summary(deployed="diamond"))
    assert rows["diamond"].startswith("diamond *")
    assert "*" not in rows["trained"] and "*" not in rows["ghost"]


def test_table_writes_n_a_for_missing_metrics_whether_nan_or_none(capsys):
    run = summary(trained={}, diamond={"gate_auroc": math.nan}, ghost={"gate_auroc": None})
    rows = table_rows(capsys, run)
    assert rows["diamond"].split()[-1] == "n/a" and rows["ghost"].split()[-1] == "n/a"
    assert rows["trained"].split()[-1] == "0.900"
    assert not any("nan" in row for row in rows.values())


def test_table_shows_final_values_not_the_best_seen_on_test_episodes(capsys):
    train_policy.print_table(summary())
    printed = capsys.readouterr().out
    assert "0.500" in printed and "0.777" not in printed and "best" not in printed


def test_table_columns_line_up(capsys):
    train_policy.print_table(summary(deployed="trained", trained={"gate_auroc": None}, diamond={}, ghost={}))
    header, *rows = capsys.readouterr().out.strip().splitlines()[1:5]
    ends = [header.index(metric) + len(metric) for metric in train_policy.TABLE_METRICS]
    for row in rows:  # every value ends where its column's name ends
        assert len(row) == len(header)
        assert all(row[end - 1] != " " and row[end : end + 1] in ("", " ") for end in ends), row


# ----- reference scores -------------------------------------------------------------------------------------------


def test_shortest_path_steps_round_a_ghost_in_line():
    cell, diamond = np.array([[0, 0], [0, 0], [0, 0]]), np.array([[0, 4], [0, 4], [2, 3]])
    ghost = np.array([[0, 2], [1, 2], [0, 2]])  # between them in a row; off the row; beside an L-shaped path
    np.testing.assert_array_equal(references.path_to_diamond(cell, diamond, ghost), [6, 4, 5])


def test_reference_scores_match_the_design_on_5x5_and_differ_on_8x8():
    small = references.reference_returns("OversightRL/DiamondGhost-5x5-v0", gamma=0.97)
    assert small["optimal"] == pytest.approx(0.91, abs=0.02)
    assert small["nearest terminal"] == pytest.approx(0.16, abs=0.03)
    large = references.reference_returns("OversightRL/DiamondGhost-8x8-v0", gamma=0.97)
    assert large["optimal"] < small["optimal"] - 0.015 and large["nearest terminal"] < small["nearest terminal"] - 0.03
    assert references.reference_returns("OversightRL/MiniGrid-DiamondGhost-TwoRooms-v0", gamma=0.97) is None


def test_the_optimal_policy_never_reaches_the_ghost():
    env = envs.make_batched("OversightRL/DiamondGhost-5x5-v0", 256, vectorization="native")
    obs, _ = env.reset(seed=3)
    for _ in range(8):
        obs, _, _, _, info = env.step(references.optimal_actions(obs))
        if "final_info" in info:
            assert (info["final_info"]["true_reward"][info["_final_info"]] == 1.0).all()


# ----- one run's learning curve -----------------------------------------------------------------------------------


def visible_tick_labels(ax) -> list[str]:
    """The x tick labels drawn inside the axes' limits."""
    ax.figure.canvas.draw()
    low, high = ax.get_xlim()
    return [tick.get_text() for tick in ax.get_xticklabels() if low <= tick.get_position()[0] <= high]


def write_run(run_dir: Path, env: str = "OversightRL/DiamondGhost-5x5-v0") -> Path:
    """A finished routing run's config.json, eval.csv and summary.json, written by hand."""
    run_dir.mkdir(parents=True)
    write_json(run_dir / CONFIG, {"method": "routing", "oversight": 0.1, "seed": 0, "env": env, "gamma": 0.97})
    rows = [
        {"update": u, "env_steps": 100_000 * u, "policy": v, "true_return": 0.1 * u + k, "hacking_gap": 0.02 * u - k}
        for u in range(4)
        for k, v in enumerate(("trained", "diamond", "ghost"))
    ]
    write_csv(run_dir / EVAL_CSV, rows)
    write_json(run_dir / SUMMARY, summary(deployed="diamond"))
    return run_dir


def test_run_figure_has_a_hacking_gap_panel_and_reference_lines(tmp_path):
    fig = plots.figure_run(write_run(tmp_path / "run"), references.reference_returns(SMALL_GRID, gamma=0.97))
    returns, gaps = fig.axes
    assert gaps.get_ylabel().startswith("hacking gap")
    diamond = [line for line in gaps.get_lines() if line.get_label() == "diamond (deployed)"]
    np.testing.assert_allclose(diamond[0].get_ydata(), [-1.0, -0.98, -0.96, -0.94])
    drawn = {line.get_label().split(":")[0]: line.get_ydata()[0] for line in returns.get_lines()}
    optimal, nearest = (drawn[plots.REFERENCE_LABELS[name]] for name in ("optimal", "nearest terminal"))
    assert optimal == pytest.approx(0.91, abs=0.02) and nearest == pytest.approx(0.16, abs=0.03)
    assert visible_tick_labels(returns) == ["0", "100k", "200k", "300k"]
    plt.close(fig)


def test_run_figure_draws_no_reference_where_there_is_none(tmp_path):
    two_rooms = "OversightRL/MiniGrid-DiamondGhost-TwoRooms-v0"
    fig = plots.figure_run(write_run(tmp_path / "run", env=two_rooms), references.reference_returns(two_rooms, 0.97))
    assert not [line for line in fig.axes[0].get_lines() if ":" in line.get_label()]
    plt.close(fig)


def test_plot_run_writes_the_png(tmp_path):
    path = plots.plot_run(write_run(tmp_path / "run"))
    assert path.name == "learning_curve.png" and path.stat().st_size > 10_000


# ----- sweep figures ----------------------------------------------------------------------------------------------

STEPS = (0, 50_000, 150_000, 250_000, 300_000)  # once drawn as "50000150000250000300000"


def sweep_results(
    seeds: int = 3, missing: tuple = (), methods=("routing", "naive", "oracle"), oversights=(0.01, 0.1, 1)
):
    """A sweep's results built in memory: every run finished except the ``(method, oversight, seed)`` in
    ``missing``; fixed random values."""
    rng = np.random.default_rng(0)
    rows, curves = [], []
    for method, oversight, seed in product(methods, map(float, oversights), range(seeds)):
        row = {"method": method, "oversight": oversight, "seed": seed, "run": f"{method}-p{oversight:g}-s{seed}"}
        if (method, oversight, seed) in missing:
            rows.append({**row, "status": "missing"})
            continue
        unwatched, watched = rng.uniform(0, 1, size=2)
        rows.append(
            {
                **row,
                "status": "done",
                "true_return": rng.uniform(-0.3, 0.9),
                "ghost_rate_unoverseen": unwatched,
                "ghost_rate_overseen": watched,
                "hacking_gap": unwatched - watched,
            }
        )
        curves.append(Curve(method, oversight, seed, np.array(STEPS, float), rng.uniform(-0.3, 0.9, len(STEPS))))
    return SweepResults(tidy(rows), curves)


FIGURES = {
    "learning_curves": plots.figure_learning_curves,
    "return_vs_oversight": plots.figure_return_vs_oversight,
    "hacking_vs_oversight": plots.figure_hacking_vs_oversight,
}


def texts(fig) -> list[str]:
    return [text.get_text() for text in fig.findobj(Text) if text.get_text()]


@pytest.mark.parametrize(
    "value, label",
    [
        (0, "0"),
        (500, "500"),
        (50_000, "50k"),
        (150_000, "150k"),
        (1e6, "1M"),
        (1.5e6, "1.5M"),
        (2.5e7, "25M"),
        (2e9, "2B"),
    ],
)
def test_step_labels_are_short(value, label):
    assert plots.steps_label(value) == label


def test_seeds_text():
    assert plots.seeds_text([3, 3, 3]) == "n = 3 seeds per point"
    assert plots.seeds_text([1]) == "n = 1 seed per point"
    assert plots.seeds_text([3, 2, 0, 3]) == "n = 2-3 seeds per point"  # a point with no seed is not drawn


def test_learning_curve_ticks_are_short_and_apart():
    fig, _ = plots.figure_learning_curves(sweep_results())
    fig.canvas.draw()
    for ax in (ax for ax in fig.axes if ax.get_visible()):
        labels = visible_tick_labels(ax)
        assert 3 <= len(labels) <= 7 and all(re.fullmatch(r"-?\d+(\.\d+)?[kMB]?", label) for label in labels), labels
        boxes = [t.get_window_extent() for t in ax.get_xticklabels() if t.get_text() in labels]
        assert all(a.x1 < b.x0 for a, b in pairwise(sorted(boxes, key=lambda box: box.x0))), labels
    plt.close(fig)


@pytest.mark.parametrize("name", FIGURES)
def test_legend_hides_no_data_and_no_title(name):
    fig, _ = FIGURES[name](sweep_results(missing=(("naive", 0.1, 1),)))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + fig.legends
    axes = [ax.get_window_extent() for ax in fig.axes if ax.get_visible()]
    titles = [
        t.get_window_extent(renderer) for t in [fig._suptitle, *(ax.title for ax in fig.axes)] if t and t.get_text()
    ]
    assert len(legends) == 1
    box = legends[0].get_window_extent(renderer)
    assert not any(box.overlaps(other) for other in axes + titles)
    plt.close(fig)


@pytest.mark.parametrize("name", FIGURES)
def test_titles_state_the_seed_count(name):
    fig, _ = FIGURES[name](sweep_results(seeds=3))
    assert any("n = 3 seeds per point" in text for text in texts(fig))
    plt.close(fig)
    fig, _ = FIGURES[name](sweep_results(seeds=3, missing=(("naive", 0.1, 1),)))
    assert any("n = 2-3 seeds per point" in text for text in texts(fig))
    plt.close(fig)


@pytest.mark.parametrize("name", FIGURES)
def test_missing_runs_are_noted_only_when_some_are_missing(name):
    fig, notes = FIGURES[name](sweep_results())
    plt.close(fig)
    assert not any("missing" in note for note in notes)
    fig, notes = FIGURES[name](sweep_results(missing=(("naive", 0.1, 1),)))
    plt.close(fig)
    assert sum("missing" in note for note in notes) == 1
    if name == "learning_curves":
        assert "naive at p=0.1: 1 of 3 runs" in notes[-1]


def errorbar_means(ax) -> list[np.ndarray]:
    return [container.lines[0].get_ydata() for container in ax.containers]


def test_hacking_figure_plots_the_gap_above_the_two_ghost_rates():
    results = sweep_results()
    fig, _ = plots.figure_hacking_vs_oversight(results)
    gap_ax, rate_ax = fig.axes

    def means(metric: str, method: str) -> list[float]:
        return [np.mean([r[metric] for r in results.rows_at(method, p)]) for p in results.oversights]

    for index, method in enumerate(results.methods):
        np.testing.assert_allclose(errorbar_means(gap_ax)[index], means("hacking_gap", method))
        np.testing.assert_allclose(errorbar_means(rate_ax)[index], means("ghost_rate_unoverseen", method))
        np.testing.assert_allclose(errorbar_means(rate_ax)[3 + index], means("ghost_rate_overseen", method))
    assert "hacking gap" in gap_ax.get_ylabel() and "ghost rate" in rate_ax.get_ylabel()
    plt.close(fig)


@pytest.mark.parametrize(
    "name, metric", [("return_vs_oversight", "true_return"), ("hacking_vs_oversight", "hacking_gap")]
)
def test_every_seed_is_drawn_beside_its_mean(name, metric):
    results = sweep_results(missing=(("naive", 0.1, 1),))
    fig, notes = FIGURES[name](results)
    dots = [line for line in fig.axes[0].get_lines() if line.get_linestyle() == "None" and line.get_marker() == "."]
    drawn = np.sort(np.concatenate([line.get_ydata() for line in dots]))
    np.testing.assert_allclose(drawn, np.sort([row[metric] for row in results.rows if row["status"] == "done"]))
    assert plots.SEED_DOTS_NOTE in notes
    plt.close(fig)


def test_the_mixture_budget_figure_draws_each_policys_seeds_and_mean_in_both_panels():
    from oversight_rl.analysis.figures.budget_plots import figure_mixture_budget

    rates = {"trained": (0.5, 0.6), "diamond": (0.2, 0.4), "ghost": (0.8, 0.6)}  # (seed 0, seed 1) at budget 2M
    rows = []
    for (policy, (s0, s1)), label in product(rates.items(), ["1M", "2M"]):
        for seed, value in enumerate((s0, s1) if label == "2M" else (0.5, 0.5)):
            row = {"method": "routing", "policy": policy, "seed": seed, "budget_label": label, "status": "done"}
            rows.append({**row, "ghost_rate_unoverseen": value, "ghost_rate_overseen": value / 2})
    rows.append({**rows[0], "seed": 2, "status": "missing", "ghost_rate_unoverseen": None})
    fig, notes = figure_mixture_budget(rows, ["1M", "2M"], oversight=0.1)
    unwatched, watched = fig.axes[:2]
    assert "ghost rate in unwatched episodes" in unwatched.get_title()
    assert "n = 2 seeds per point" in fig._suptitle.get_text()
    means = {tuple(np.round(line.get_ydata(), 6)) for line in unwatched.get_lines() if len(line.get_ydata()) == 2}
    assert {(0.5, 0.55), (0.5, 0.3), (0.5, 0.7)} <= means  # each policy's mean over its two seeds, at 1M and 2M
    halves = {tuple(np.round(line.get_ydata(), 6)) for line in watched.get_lines() if len(line.get_ydata()) == 2}
    assert (0.25, 0.15) in halves
    assert notes == ["1 of 13 (run, budget, policy) points not reached yet"]
    plt.close(fig)


USER_METHODS = ("routing", "my_methods:A", "my_methods:B")


@pytest.mark.parametrize("name", FIGURES)
def test_every_method_has_its_own_colour_and_the_legend_matches_the_lines(name):
    fig, _ = FIGURES[name](sweep_results(methods=USER_METHODS))
    (legend,) = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + fig.legends
    legend_colors = {
        text.get_text(): to_hex(handle.get_color())
        for text, handle in zip(legend.get_texts(), legend.legend_handles, strict=True)
        if text.get_text() in USER_METHODS
    }
    assert set(legend_colors) == set(USER_METHODS) and len(set(legend_colors.values())) == 3
    assert legend_colors["routing"] == to_hex("tab:blue")  # a built-in keeps its colour
    drawn = {to_hex(line.get_color()) for ax in fig.axes for line in ax.get_lines()}
    drawn |= {to_hex(c.get_facecolor()[0]) for ax in fig.axes for c in ax.collections if len(c.get_facecolor())}
    assert set(legend_colors.values()) <= drawn
    plt.close(fig)


def test_plot_curves_compares_against_the_chosen_reference_method(tmp_path, capsys):
    plot_curves = load_script("plot_curves")
    out = tmp_path / "sweep"
    sweep = load_script("sweep_oversight")
    flags = "--num-envs 16 --num-steps 8 --eval-envs 16 --width 16 --update-epochs 1 --num-minibatches 1".split()
    assert (
        sweep.main(
            [
                "--out",
                str(out),
                *flags,
                "--total-env-steps",
                "1024",
                "--eval-every",
                "512",
                "--methods",
                "naive",
                "filtering",
                "--seeds",
                "1",
                "--oversight",
                "0.5",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert plot_curves.main([str(out), "--reference", "naive"]) == 0
    printed = capsys.readouterr().out
    assert "probability that naive scores a higher final true_return" in printed
    assert [row["baseline"] for row in read_csv(out / "improvement.csv")][0] == "filtering"
    assert plot_curves.main([str(out), "--reference", "routing"]) == 2
    assert "--reference must be a method of the sweep (naive, filtering), got 'routing'" in capsys.readouterr().err


@pytest.mark.parametrize("name", FIGURES)
def test_points_from_fewer_than_3_seeds_get_no_interval_and_the_caption_says_so(name):
    fig, notes = FIGURES[name](sweep_results(seeds=2))
    assert plots.TOO_FEW_NOTE in notes
    bands = [c for ax in fig.axes for c in ax.collections if c.get_paths() and len(c.get_paths()[0].vertices)]
    bars = [seg for ax in fig.axes for c in ax.collections for seg in getattr(c, "get_segments", list)()]
    assert not any(np.ptp(seg[:, 1]) > 0 for seg in bars)  # error bars of zero length
    assert name != "learning_curves" or not bands  # no band at any step
    plt.close(fig)
    assert plots.TOO_FEW_NOTE not in FIGURES[name](sweep_results(seeds=3))[1]


def test_tables_give_no_interval_from_fewer_than_3_seeds():
    two, three = sweep_results(seeds=2), sweep_results(seeds=3)
    assert "(n=2 < 3: no CI)" in format_table(two) and "[" not in format_table(two).split("\n", 2)[2]
    assert "(n=2 < 3: no CI)" in format_improvement(two) and "no CI" not in format_improvement(three)
