"""The gradient-routing post's claims as parts of reproduce_results.py: label-noise, spurious-oversight and
monitors plan the right grids and commands, the claims are computed from hand-made rows (statistic, interval,
verdict), regenerating with no runs gives honest placeholders, and a tiny end-to-end run trains, measures, resumes and
regenerates the CSVs, figures and sections."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest
from cli import load_script

from oversight_rl.analysis import stats
from oversight_rl.analysis.report import RUN_COLUMNS, generated_section
from oversight_rl.engine import config as config_module
from oversight_rl.rundir.files import read_csv
from oversight_rl.rundir.gather import SweepResults
from oversight_rl.study import imperfect, reproduce
from oversight_rl.study.claims import (
    CONTRADICTED,
    IMPERFECT_LABEL_CLAIMS,
    MONITOR_CLAIMS,
    NO_DATA,
    SUPPORTED,
    TOO_FEW,
    Evidence,
    claim_rows,
)

reproduce_cli = load_script("reproduce_results")
sweep_cli = load_script("sweep_oversight")
NEW_PARTS = ("label-noise", "spurious-oversight", "monitors")


@pytest.fixture(autouse=True)
def no_tuned_presets(tmp_path, monkeypatch):
    monkeypatch.setattr(config_module, "TUNED_PRESETS", tmp_path / "none.json")


# ----- the parts' grids and commands ------------------------------------------------------------------------------


def test_the_parts_are_optional_and_each_value_is_a_sweep_of_its_own(tmp_path):
    config = reproduce.ReproduceConfig(root=str(tmp_path), workers=3, population_size=7)
    parts = reproduce.default_parts(config)
    assert set(NEW_PARTS) <= set(reproduce.PART_NAMES) and not set(NEW_PARTS) & set(reproduce.DEFAULT_PARTS)
    noise = parts["label-noise"]
    assert [s.name for s in noise.sweeps()] == [f"label-noise/E{e}" for e in ("0", "0.05", "0.1", "0.2", "0.3")]
    for value, sweep in zip((0.0, 0.05, 0.1, 0.2, 0.3), noise.sweeps(), strict=True):
        assert reproduce.sweep_dir(sweep, config) == tmp_path / "label-noise" / f"E{value:g}"
        parsed = sweep_cli.parse(reproduce.command(sweep, config))
        assert parsed == reproduce.sweep_config(sweep, config)  # the printed command is the sweep it trains
        grid = parsed.grid()
        assert len(grid) == 80 and {c.label_noise for c in grid} == {value}
        assert {(c.method, c.oversight) for c in grid} == {
            (m, p) for m in ("routing", "filtering", "naive", "oracle") for p in (0.03, 0.1)
        }
        default = config_module.TrainConfig()  # default settings but the pinned ones and the noise
        assert all(c.routed_advantage == default.routed_advantage and c.env_kwargs == "{}" for c in grid)
        assert all((c.env_backend, c.eval_envs, c.total_env_steps) == ("torch", 2048, 2_000_000) for c in grid)
    spurious = parts["spurious-oversight"]
    for value, sweep in zip((0.1, 0.3), spurious.sweeps(), strict=True):
        assert reproduce.sweep_dir(sweep, config) == tmp_path / "spurious-oversight" / f"S{value:g}"
        parsed = sweep_cli.parse(reproduce.command(sweep, config))
        assert parsed == reproduce.sweep_config(sweep, config)
        assert {json.loads(c.env_kwargs)["spurious_oversight"] for c in parsed.grid()} == {value}
        assert {c.oversight for c in parsed.grid()} == {0.1} and len(parsed.grid()) == 40
    monitors = parts["monitors"].sweeps(), reproduce.monitor_sources(parts["monitors"])
    assert monitors[0] == [] and [s.name for s in monitors[1]] == [
        *(s.name for s in noise.sweeps()),
        "main-default",
        "main-routing",
    ]


def test_dry_run_lists_the_parts_with_their_sizes_and_compute(tmp_path, capsys):
    root = tmp_path / "sweeps"
    assert reproduce_cli.main(["--dry-run", "--root", str(root), "--parts", *NEW_PARTS]) == 0
    out = capsys.readouterr().out
    # Each E: 10 seeds x (3 methods x 2 levels x 2,000,128 + the oracle's 60,160 + 200,192) = 122,611,200.
    assert out.count("    size: 80 runs, 122,611,200 agent-env-steps") == 5
    assert "  size: 400 runs, 613,056,000 agent-env-steps" in out
    # Each s: 10 x (3 x 2,000,128 + 200,192).
    assert out.count("    size: 40 runs, 62,005,760 agent-env-steps") == 2
    assert "  size: 80 runs, 124,011,520 agent-env-steps" in out
    # 613,056,000 / 2,000,128 x 85 s x 0.85 + 400 x 10 s = 26,146 s; 124,011,520: 5,280 s; 400 x 100 s to monitor.
    assert "compute: about 7.3 hours of one core of the reference machine, 6.3 hours of wall time" in out
    assert "compute: about 1.5 hours of one core" in out and "compute: about 11.1 hours of one core" in out
    assert "size: 400 runs to measure (no training)" in out
    assert f"size: none counted: {root / 'main-default'} holds no run yet" in out
    commands = re.findall(r"python scripts/sweep_oversight.py .*", out)
    assert len(commands) == 7 and all("--env-backend torch --eval-envs 2048" in c for c in commands)
    assert "--label-noise 0.05 " in commands[1] and "--env-kwargs '{\"spurious_oversight\": 0.3}'" in commands[6]
    assert f"python scripts/monitor_runs.py {root / 'label-noise' / 'E0.2'}" in out
    assert "total: 480 runs, 737,067,520 agent-env-steps" in out and not root.exists()


def test_the_monitor_processes_run_side_by_side_and_stop_with_the_command(tmp_path, monkeypatch):
    python = sys.executable
    logs = [tmp_path / "a.log", None, tmp_path / "c.log"]
    commands = [[python, "-c", "print('a')"], [python, "-c", "raise SystemExit(3)"], [python, "-c", "print('c')"]]
    assert reproduce.run_processes(commands, workers=2, logs=logs, poll_s=0.01) == [0, 3, 0]
    assert logs[0].read_text() == "a\n" and logs[2].read_text() == "c\n"
    started = []
    popen = subprocess.Popen

    def record(*args, **kwargs):
        started.append(popen(*args, **kwargs))
        return started[-1]

    def interrupt(_seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(subprocess, "Popen", record)
    monkeypatch.setattr(reproduce.time, "sleep", interrupt)
    with pytest.raises(KeyboardInterrupt):
        reproduce.run_processes([[python, "-c", "import time; time.sleep(60)"]] * 3, workers=2)
    assert len(started) == 2 and all(process.poll() is not None for process in started)  # stopped, not left behind


# ----- the claims on hand-made rows -------------------------------------------------------------------------------


def test_a_contrast_of_two_samples_is_their_difference_of_means_draw_for_draw():
    x, y = np.array([0.1, 0.5, 0.3, 0.8]), np.array([0.2, 0.1, np.nan, 0.4])
    assert stats.contrast_of_means_ci([x, y], (1, -1)) == stats.difference_of_means_ci(x, y)
    estimate, low, high = stats.contrast_of_means_ci([x, y, x], (1, -1, 2))
    assert estimate == pytest.approx(3 * x.mean() - np.nanmean(y)) and low < estimate < high
    assert all(map(math.isnan, stats.contrast_of_means_ci([x, [math.nan]], (1, -1))))
    with pytest.raises(ValueError, match="one weight per sample"):
        stats.contrast_of_means_ci([x, y], (1,))


def runs(method: str, oversight: float, values: list[float], **setting) -> list[dict]:
    return [
        {"method": method, "oversight": oversight, "seed": s, "status": "done", "true_return": v, **setting}
        for s, v in enumerate(values)
    ]


def monitored(gate: list[float], probe: list[float], label_noise: float = 0.0, oversight: float = 0.1) -> list[dict]:
    return [
        {"part": "label-noise", "method": "routing", "oversight": oversight, "seed": s, "label_noise": label_noise}
        | {"status": "done", "gate_auroc": g, "probe_auroc": p}
        for s, (g, p) in enumerate(zip(gate, probe, strict=True))
    ]


def evidence(**rows) -> Evidence:
    return Evidence(main=SweepResults([]), ablations=SweepResults([]), **rows)


R0, R2, F0, F2 = [0.5, 0.6, 0.7], [0.45, 0.55, 0.65], [0.8, 0.8, 0.8], [0.5, 0.5, 0.5]


def noisy_rows(r0=R0, r2=R2, f0=F0, f2=F2, oversight: float = 0.1) -> list[dict]:
    rows = runs("routing", oversight, r0, label_noise=0.0) + runs("routing", oversight, r2, label_noise=0.2)
    rows += runs("filtering", oversight, f0, label_noise=0.0) + runs("filtering", oversight, f2, label_noise=0.2)
    rows += runs("routing", oversight, [0.0] * 3, label_noise=0.1)  # other values of E count in nothing
    return rows + [{**runs("filtering", oversight, [9.0], label_noise=0.2)[0], "status": "missing"}]


def test_the_difference_of_drops_is_filtering_s_drop_minus_routing_s_with_its_interval():
    rows = claim_rows(evidence(label_noise=noisy_rows()), IMPERFECT_LABEL_CLAIMS)
    drop = rows[0]  # at p = 0.1: (0.8 - 0.5) - (0.6 - 0.55) = 0.25
    expected = stats.contrast_of_means_ci([F0, F2, R0, R2], (1, -1, -1, 1))
    assert drop["estimate"] == pytest.approx(0.25) and (drop["low"], drop["high"]) == expected[1:]
    assert 0 < drop["low"] < 0.25 < drop["high"] and drop["runs"] == 3 and drop["verdict"] == SUPPORTED
    assert drop["claimed"] == "> 0" and "E = 0 to E = 0.2" in drop["test"]
    assert rows[1]["verdict"] == NO_DATA  # no run at 3%
    level = rows[2]  # P(routing > filtering) at E = 0.2: 0.55 and 0.65 beat every filtering run's 0.5
    assert level["estimate"] == pytest.approx(2 / 3) and level["runs"] == 3
    # routing loses more than filtering: contradicted
    worse = claim_rows(evidence(label_noise=noisy_rows(r2=[0.0, 0.05, 0.1], f2=F0)), IMPERFECT_LABEL_CLAIMS)
    assert worse[0]["estimate"] == pytest.approx(-0.55) and worse[0]["verdict"] == CONTRADICTED
    # two seeds in a group are too few for a verdict
    few = claim_rows(evidence(label_noise=noisy_rows(r2=R2[:2])), IMPERFECT_LABEL_CLAIMS)
    assert few[0]["runs"] == 2 and few[0]["verdict"] == TOO_FEW


def test_the_spurious_claim_reads_the_spurious_rows():
    rows = runs("routing", 0.1, R0, spurious_oversight=0.0) + runs("routing", 0.1, R2, spurious_oversight=0.3)
    rows += runs("filtering", 0.1, F0, spurious_oversight=0.0) + runs("filtering", 0.1, F2, spurious_oversight=0.3)
    spurious = claim_rows(evidence(spurious=rows), IMPERFECT_LABEL_CLAIMS)[3]
    assert spurious["estimate"] == pytest.approx(0.25) and spurious["verdict"] == SUPPORTED
    assert claim_rows(evidence(label_noise=noisy_rows()), IMPERFECT_LABEL_CLAIMS)[3]["verdict"] == NO_DATA


def test_the_monitor_claims_compare_each_run_s_gate_with_its_own_probe():
    gate, probe = [0.9, 0.92, 0.95], [0.8, 0.85, 0.9]
    rows = monitored(gate, probe) + monitored([0.1] * 3, [0.9] * 3, label_noise=0.2)
    rows += [{**monitored([0.0], [1.0])[0], "method": "filtering"}]  # another method's rows count in nothing
    auroc, versus, noisy = claim_rows(evidence(monitors=rows), MONITOR_CLAIMS)
    assert auroc["estimate"] == pytest.approx(np.mean(gate)) and auroc["verdict"] == SUPPORTED
    differences = np.subtract(gate, probe)
    assert (versus["estimate"], versus["low"], versus["high"]) == stats.stratified_bootstrap_ci([differences])
    assert versus["estimate"] == pytest.approx(0.07333, abs=1e-4) and versus["verdict"] == SUPPORTED
    assert noisy["estimate"] == pytest.approx(-0.8) and noisy["verdict"] == CONTRADICTED
    # a run without a gate value, or not measured, counts in nothing; two runs are too few
    rows = monitored(gate, probe)
    rows[0]["gate_auroc"], rows[1]["status"] = math.nan, "missing"
    assert [row["verdict"] for row in claim_rows(evidence(monitors=rows), MONITOR_CLAIMS)[:2]] == [TOO_FEW, TOO_FEW]


# ----- regenerating with no runs ----------------------------------------------------------------------------------


def test_regenerating_with_no_runs_gives_placeholder_sections(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "results.md").write_text("# Results\n\n<!-- generated: label-noise -->\n<!-- end generated -->\n\nEnd.\n")
    assert reproduce_cli.main(["--docs", str(docs), "--root", str(tmp_path / "none"), "--skip-training"]) == 0
    out = capsys.readouterr().out
    assert "label-noise: 0 of 400 runs finished (400 missing)" in out
    assert "spurious-oversight: 0 of 120 runs finished (120 missing)" in out
    assert "monitors: 0 of 650 runs measured (650 missing)" in out
    text = (docs / "results.md").read_text()
    assert text.startswith("# Results\n\n<!-- generated: label-noise -->") and "\n\nEnd.\n" in text
    noise, spurious, monitors = (generated_section(text, name) for name in NEW_PARTS)
    assert "0 of 400 runs finished (400 missing)" in noise and "No figure yet: no finished run." in noise
    assert "| routing | 0.1 | - | - | - | - | - |" in noise and "Verdict: **no data**" in noise
    assert "python scripts/sweep_oversight.py --out sweeps/label-noise/E0.3 " in noise
    assert "0 of 80 runs finished (80 missing)" in spurious and "| oracle | 0.1 | - | - | - |" in spurious
    assert "0 of 650 runs measured" in monitors and "python scripts/monitor_runs.py sweeps/main-routing" in monitors
    assert monitors.count("Verdict: **no data**") == 3
    header = read_csv(docs / "results_label_noise.csv")
    assert len(header) == 400 and list(header[0]) == [*RUN_COLUMNS[:4], "label_noise", *RUN_COLUMNS[4:]]
    assert list(read_csv(docs / "results_monitors.csv")[0]) == list(imperfect.MONITOR_COLUMNS)
    claims = [row for row in read_csv(docs / "results_claims.csv") if row["claim"].startswith("(post)")]
    assert len(claims) == 2 and {row["verdict"] for row in claims} == {NO_DATA}
    assert not (docs / "img" / "label-noise").exists()


# ----- a tiny end-to-end run --------------------------------------------------------------------------------------

TINY = dict(num_envs=8, num_steps=8, total_env_steps=1280, eval_every=640, eval_envs=32, width=16)


def tiny_parts(seeds: int = 3):
    """The post's parts at tiny budgets: label noise E in 0 and 0.2, spurious s in 0.3, at 10% oversight, routing
    and filtering; the monitors of the label-noise runs only, on few episodes."""

    def parts(config):
        real = reproduce.default_parts(config)
        grid = dict(oversight=(0.1,), methods=("routing", "filtering"), seeds=seeds, settings=TINY)
        noise = dataclasses.replace(real["label-noise"], values=(0.0, 0.2), **grid)
        spurious = dataclasses.replace(real["spurious-oversight"], values=(0.3,), **grid)
        monitors = dataclasses.replace(real["monitors"], monitored=(noise,), settings={"episodes": 200})
        return {**real, "label-noise": noise, "spurious-oversight": spurious, "monitors": monitors}

    return parts


def test_a_tiny_run_trains_measures_resumes_and_regenerates(tmp_path, monkeypatch, capfd):
    """capfd: the monitors run as processes of their own."""
    docs, root = tmp_path / "docs", tmp_path / "sweeps"
    docs.mkdir()
    flags = ["--root", str(root), "--docs", str(docs), "--workers", "1"]
    monkeypatch.setattr(reproduce_cli, "default_parts", tiny_parts())
    assert reproduce_cli.main([*flags, "--parts", *NEW_PARTS]) == 0
    out = capfd.readouterr().out
    assert "label-noise: 12 of 12 runs finished" in out and "spurious-oversight: 12 of 12 runs finished" in out
    assert "monitors: 12 of 12 runs measured" in out
    for sweep in ("label-noise/E0", "label-noise/E0.2", "spurious-oversight/S0.3"):
        assert len(list((root / sweep).glob("*/checkpoint.pt"))) == 6, sweep
    assert (root / "label-noise" / "E0.2" / "monitors.csv").is_file()

    noise = read_csv(docs / "results_label_noise.csv")
    assert [(r["label_noise"], r["status"]) for r in noise] == [(0.0, "done")] * 6 + [(0.2, "done")] * 6
    assert noise[6]["run"] == "label-noise/E0.2/routing-p0.1-s0" and math.isfinite(noise[6]["true_return"])
    spurious = read_csv(docs / "results_spurious_oversight.csv")  # s = 0: label-noise's E = 0 runs
    assert [(r["part"], r["spurious_oversight"]) for r in spurious] == [("label-noise", 0.0)] * 6 + [
        ("spurious-oversight", 0.3)
    ] * 6
    assert spurious[0]["true_return"] == noise[0]["true_return"]
    monitors = read_csv(docs / "results_monitors.csv")
    assert len(monitors) == 12 and {r["status"] for r in monitors} == {"done"}
    routing = [r for r in monitors if r["method"] == "routing"]
    assert all(0 <= r["gate_auroc"] <= 1 for r in routing) and all(0 <= r["probe_auroc"] <= 1 for r in monitors)
    assert all(math.isnan(r["gate_auroc"]) for r in monitors if r["method"] == "filtering")

    claims = {row["test"]: row for row in read_csv(docs / "results_claims.csv")}
    post = [row for test, row in claims.items() if "E = 0 to E = 0.2" in test and "p = 0.1:" in test]
    assert post[0]["runs"] == 3 and post[0]["verdict"] in (SUPPORTED, CONTRADICTED, "inconclusive")
    assert sum(row["verdict"] != NO_DATA for row in claims.values() if "gate AUROC" in row["test"]) == 3  # E = 0, 0.2

    for name in ("label-noise/return_vs_label_noise", "spurious-oversight/return_vs_spurious_oversight"):
        assert (docs / "img" / f"{name}.png").stat().st_size > 10_000
    assert (docs / "img" / "monitors" / "monitors_vs_label_noise.png").stat().st_size > 10_000
    text = (docs / "results.md").read_text()
    assert "![return vs label noise](img/label-noise/return_vs_label_noise.png)" in text
    cell = r"[-0-9.]+ \[[-0-9., ]+\] \(3\)"  # mean [95% CI] (runs)
    assert re.search(rf"\| routing \| 0\.1 \| {cell} \| {cell} \|", generated_section(text, "label-noise"))
    assert re.search(rf"\| routing \| gate \| 0\.1 \| {cell} \| {cell} \|", generated_section(text, "monitors"))

    assert reproduce_cli.main([*flags, "--parts", *NEW_PARTS]) == 0  # everything done: nothing trained again
    out = capfd.readouterr().out
    assert out.count("0 trained, 0 resumed, 6 already done") == 3 and out.count("6 of 6 runs already measured") == 2
    assert (docs / "results.md").read_text() == text

    empty = tmp_path / "clone"  # a fresh clone: the committed CSVs and sections are kept
    assert reproduce_cli.main(["--root", str(empty), "--docs", str(docs), "--workers", "1", "--skip-training"]) == 0
    out = capfd.readouterr().out
    assert f"label-noise: kept {docs / 'results_label_noise.csv'} (12 finished runs; 0 here)" in out
    assert f"monitors: kept {docs / 'results_monitors.csv'} (12 finished runs; 0 here)" in out
    assert len(read_csv(docs / "results_monitors.csv")) == 12
    assert generated_section((docs / "results.md").read_text(), "label-noise") == generated_section(text, "label-noise")

    moved = root / "label-noise" / "E0.2" / "routing-p0.1-s2" / "config.json"  # a run of E = 0.1 in E = 0.2's place
    moved.write_text(json.dumps({**json.loads(moved.read_text()), "label_noise": 0.1}))
    assert reproduce_cli.main([*flags, "--skip-training", "--force"]) == 0
    capfd.readouterr()
    row = next(r for r in read_csv(docs / "results_label_noise.csv") if r["run"].endswith("E0.2/routing-p0.1-s2"))
    assert row["status"] == "unreadable" and math.isnan(row["true_return"])
    assert row["reason"] == "its config.json records label_noise 0.1, not its sweep's 0.2"
