"""Methods compared over seeds: summary.csv (seeds, mean, IQM, intervals per method x oversight), improvement.csv
(probability that routing beats each baseline), their printed tables and the figures' IQM marks. Sweeps are written
by hand (in memory, or as run directories on disk), so nothing here trains."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from cli import load_script

from oversight_rl.analysis import comparison, stats
from oversight_rl.analysis.figures import plots
from oversight_rl.rundir.files import CONFIG, EVAL_CSV, SUMMARY, read_csv, write_csv, write_json
from oversight_rl.rundir.gather import SweepResults, gather, tidy

ROOT = Path(__file__).resolve().parents[1]
NAN = math.nan

# (method, oversight): [(true_return, hacking_gap), ...] of finished runs, one per seed; None: a missing run.
GRID = {
    ("routing", 0.1): [(0.0, 0.1), (0.2, NAN), (0.4, 0.3), (1.0, 0.5), None],
    ("routing", 1.0): [(1.0, 0.0)],
    ("naive", 0.1): [(0.5, 0.4), (0.5, 0.2)],
    ("naive", 1.0): [(0.0, 0.1)],
    ("filtering", 0.1): [None],
}


def hand_results() -> SweepResults:
    rows = []
    for (method, oversight), runs in GRID.items():
        for seed, run in enumerate(runs):
            row = {"method": method, "oversight": oversight, "seed": seed, "run": f"{method}-p{oversight:g}-s{seed}"}
            if run is None:
                rows.append({**row, "status": "missing"})
            else:
                rows.append({**row, "status": "done", "true_return": run[0], "hacking_gap": run[1]})
    return SweepResults(tidy(rows))


def by_cell(rows: list[dict]) -> dict[tuple, dict]:
    return {(row["method"], row["oversight"]): row for row in rows}


# ----- summary ----------------------------------------------------------------------------------------------------


def test_summary_counts_seeds_and_gives_mean_and_iqm_by_hand():
    rows = by_cell(comparison.summary_rows(hand_results()))
    assert set(rows) == {("routing", 0.1), ("routing", 1.0), ("naive", 0.1), ("naive", 1.0), ("filtering", 0.1)}
    routing = rows["routing", 0.1]
    # true_return [0, 0.2, 0.4, 1]: mean 0.4; IQM cuts one from each end: (0.2 + 0.4) / 2 = 0.3.
    assert (routing["runs"], routing["finished"], routing["true_return_n"]) == (5, 4, 4)
    assert routing["true_return_mean"] == pytest.approx(0.4) and routing["true_return_iqm"] == pytest.approx(0.3)
    # hacking_gap has no value for seed 1: [0.1, 0.3, 0.5], mean 0.3 and (fewer than 4) IQM 0.3.
    assert routing["hacking_gap_n"] == 3
    assert routing["hacking_gap_mean"] == pytest.approx(0.3) and routing["hacking_gap_iqm"] == pytest.approx(0.3)
    expected = stats.stratified_bootstrap_ci([0.0, 0.2, 0.4, 1.0], stats.iqm)
    assert (routing["true_return_iqm_low"], routing["true_return_iqm_high"]) == (expected.low, expected.high)
    assert routing["true_return_mean_low"] < 0.4 < routing["true_return_mean_high"]
    naive = rows["naive", 0.1]  # two equal seeds: a point interval
    assert (naive["true_return_mean_low"], naive["true_return_mean"], naive["true_return_mean_high"]) == (0.5,) * 3


def test_a_cell_without_finished_runs_is_listed_with_no_values():
    filtering = by_cell(comparison.summary_rows(hand_results()))["filtering", 0.1]
    assert (filtering["runs"], filtering["finished"], filtering["true_return_n"]) == (1, 0, 0)
    assert filtering["true_return_mean"] is None and filtering["true_return_iqm_high"] is None


def test_printed_table_shows_the_summary():
    printed = comparison.format_table(hand_results()).splitlines()
    assert "IQM" in printed[0] and "95% bootstrap CI" in printed[0]
    routing = next(line for line in printed if line.startswith("routing") and " 0.1 " in line).split()
    assert routing[:6] == ["routing", "0.1", "4/5", "4", "0.400", routing[5]] and routing[5].startswith("[")
    assert "0.300" in routing
    filtering = next(line for line in printed if line.startswith("filtering")).split()
    assert filtering == ["filtering", "0.1", "0/1", "0", "n/a", "n/a"]


# ----- probability of improvement ---------------------------------------------------------------------------------


def test_improvement_of_routing_over_each_baseline_by_hand():
    rows = comparison.improvement_rows(hand_results())
    cells = {(row["baseline"], row["oversight"]): row for row in rows}
    assert set(cells) == {("naive", 0.1), ("naive", 1.0), ("naive", None), ("filtering", 0.1), ("filtering", None)}
    # p = 0.1: routing [0, 0.2, 0.4, 1] vs naive [0.5, 0.5]: only the 1 beats them, 2 of 8 pairs.
    assert cells["naive", 0.1]["probability"] == pytest.approx(0.25)
    assert (cells["naive", 0.1]["n_method"], cells["naive", 0.1]["n_baseline"]) == (4, 2)
    assert cells["naive", 1.0]["probability"] == 1.0  # [1] vs [0]
    pooled = cells["naive", None]  # the mean over the two levels, not over pooled seeds (which gives 3 / 15)
    assert pooled["probability"] == pytest.approx(0.625) and pooled["levels"] == 2
    assert pooled["low"] < 0.625 < pooled["high"]
    assert cells["filtering", 0.1]["probability"] is None and cells["filtering", None]["levels"] == 0


def test_no_improvement_table_without_routing():
    results = hand_results()
    results.rows = [row for row in results.rows if row["method"] != "routing"]
    assert comparison.improvement_rows(results) == [] and comparison.format_improvement(results) == ""


def test_printed_improvement_table():
    printed = comparison.format_improvement(hand_results()).splitlines()
    assert printed[0].startswith("probability that routing scores a higher final true_return")
    assert printed[1].split() == ["baseline", "p=0.1", "p=1", "all", "levels"]
    naive = printed[2]
    # two seeds at p=0.1 and one at p=1: probabilities, but no interval from so few (the claims refuse them too)
    assert naive.split() == ["naive", *"0.25 (n=2 < 3: no CI) 1.00 (n=1 < 3: no CI) 0.62 (n=1 < 3: no CI)".split()]
    assert printed[3].split()[:3] == ["filtering", "n/a", "-"]


# ----- the figures show what summary.csv says ---------------------------------------------------------------------


def test_figure_error_bars_and_iqm_marks_match_the_summary():
    results = hand_results()
    fig, notes = plots.figure_return_vs_oversight(results)
    ax = fig.axes[0]
    summary = comparison.summary_rows(results)
    for index, method in enumerate(results.methods):
        mine = [row for row in summary if row["method"] == method]

        def column(name: str) -> list[float]:
            return [NAN if row[name] is None else row[name] for row in mine]  # noqa: B023

        line, _, (bars,) = ax.containers[index]
        np.testing.assert_allclose(line.get_ydata(), column("true_return_mean"))
        segments = [segment for segment in bars.get_segments() if len(segment)]  # none where no seed has a value
        lows, highs = (np.array(column(f"true_return_mean_{end}")) for end in ("low", "high"))
        np.testing.assert_allclose([s[0][1] for s in segments], lows[np.isfinite(lows)])
        np.testing.assert_allclose([s[1][1] for s in segments], highs[np.isfinite(highs)])
    marks = [line for line in ax.get_lines() if line.get_marker() == "D"]
    drawn = sorted(float(line.get_ydata()[0]) for line in marks)
    assert drawn == pytest.approx(sorted(row["true_return_iqm"] for row in summary if row["true_return_n"]))
    assert plots.IQM_NOTE in notes and "IQM" in ax.get_title()
    plt.close(fig)


# ----- the script, on run directories written by hand -------------------------------------------------------------


def write_runs(sweep_dir: Path) -> None:
    """A finished run directory (config.json, summary.json, eval.csv) per finished run of GRID."""
    for (method, oversight), runs in GRID.items():
        for seed, run in enumerate(runs):
            if run is None:
                continue
            run_dir = sweep_dir / f"{method}-p{oversight:g}-s{seed}"
            run_dir.mkdir(parents=True)
            write_json(run_dir / CONFIG, {"method": method, "oversight": oversight, "seed": seed})
            final = {"true_return": run[0], "hacking_gap": None if math.isnan(run[1]) else run[1]}
            write_json(run_dir / SUMMARY, {"deployed": "trained", "variants": {"trained": {"final": final}}})
            write_csv(run_dir / EVAL_CSV, [{"env_steps": s, "policy": "trained", **final} for s in (0, 100)])


def test_plot_script_writes_summary_and_improvement_csv(tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    write_runs(sweep_dir)
    assert load_script("plot_curves").main([str(sweep_dir)]) == 0
    printed = capsys.readouterr().out
    assert "probability that routing scores a higher final true_return" in printed
    summary = {(row["method"], row["oversight"]): row for row in read_csv(sweep_dir / comparison.SUMMARY_CSV)}
    assert len(summary) == 4  # filtering's run was never written: no sweep.json expects it
    routing = summary["routing", 0.1]
    assert (routing["finished"], routing["true_return_n"], routing["hacking_gap_n"]) == (4, 4, 3)
    assert routing["true_return_iqm"] == pytest.approx(0.3)
    improvement = read_csv(sweep_dir / comparison.IMPROVEMENT_CSV)
    assert list(improvement[0]) == list(comparison.IMPROVEMENT_COLUMNS)
    pooled = next(row for row in improvement if row["baseline"] == "naive" and math.isnan(row["oversight"]))
    assert pooled["probability"] == pytest.approx(0.625)
    assert gather(sweep_dir).rows  # the sweep itself is untouched and still reads
