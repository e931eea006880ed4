"""The comparison to publish: the budget sweep's premise (an evaluation at B steps of a longer run is the final
evaluation of a run with budget B, under a constant learning rate only), the parts' commands and sizes, verdicts,
generated sections, and the whole command on a tiny trained sweep (and with runs missing)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli import load_script

from oversight_rl.analysis.report import (
    BUDGET_COLUMNS,
    POLICY_BUDGET_COLUMNS,
    RUN_COLUMNS,
    generated_section,
    replace_generated,
)
from oversight_rl.analysis.stats import Interval
from oversight_rl.engine import config as config_module
from oversight_rl.engine.config import TrainConfig, setting_flags
from oversight_rl.engine.launch import train, train_population
from oversight_rl.experiments.ladders import Ladder, fitting_ladders, ladder_problems, method_ladder
from oversight_rl.rundir.files import EVAL_CSV, TRAIN_CSV, read_csv, write_json
from oversight_rl.rundir.gather import SweepResults, tidy
from oversight_rl.study import reproduce
from oversight_rl.study.claims import (
    CONTRADICTED,
    INCONCLUSIVE,
    NO_DATA,
    SUPPORTED,
    TOO_FEW,
    Evidence,
    Measurement,
    Region,
    claim_rows,
    verdict,
)
from oversight_rl.study.commands import command_block, published_devices, recorded_devices

reproduce_cli = load_script("reproduce_results")
ROOT = Path(__file__).resolve().parents[1]
sweep_cli = load_script("sweep_oversight")
TIMING = ("wall_s", "time/env_steps_per_s")  # differ between two identical runs


# ----- the budget sweep's premise ---------------------------------------------------------------------------------

# 8 envs x 8 steps = 64 steps per window. B = 1280 is 20 windows; the oracle at 10% trains 128, 2 windows. The long
# run (2B) evaluates every 1280 steps (20 updates; the oracle's 128 steps, 2 updates), so right after B.
BUDGET = 1280
PREMISE = dict(
    oversight=0.1,
    num_envs=8,
    num_steps=8,
    eval_envs=16,
    eval_every=BUDGET,
    width=16,
    env_backend="torch",
    anneal_lr=False,
)


def comparable(rows: list[dict]) -> list[dict]:
    """Rows without timing columns, NaN as None so that rows compare equal."""
    return [{k: None if v != v else v for k, v in row.items() if k not in TIMING} for row in rows]


def short_and_long(tmp_path: Path, method: str, **settings) -> tuple[Path, Path]:
    """Runs of ``method`` with budgets B and 2B, otherwise identical."""
    cfg = TrainConfig(**{**PREMISE, **settings}, method=method)
    short, long = tmp_path / "short", tmp_path / "long"
    train(dataclasses.replace(cfg, total_env_steps=BUDGET), short, progress=False)
    train(dataclasses.replace(cfg, total_env_steps=2 * BUDGET), long, progress=False)
    return short, long


def rows_until(rows: list[dict], env_steps: float) -> list[dict]:
    return comparable([row for row in rows if row["env_steps"] <= env_steps])


@pytest.mark.parametrize("method", ["routing", "oracle"])
def test_an_evaluation_after_b_steps_is_the_final_evaluation_of_budget_b(tmp_path, method):
    assert not ladder_problems(TrainConfig(**PREMISE), method, 0.1, [BUDGET, 2 * BUDGET])
    short, long = short_and_long(tmp_path, method)
    final = comparable(read_csv(short / EVAL_CSV))
    final_steps = final[-1]["env_steps"]
    assert final_steps == (BUDGET if method != "oracle" else BUDGET // 10)
    last = [row for row in final if row["env_steps"] == final_steps]
    later = rows_until(read_csv(long / EVAL_CSV), final_steps)
    assert [row for row in later if row["env_steps"] == final_steps] == last  # every variant, every metric, exactly
    assert later == final  # and every evaluation before it
    assert rows_until(read_csv(long / TRAIN_CSV), final_steps) == comparable(read_csv(short / TRAIN_CSV))
    assert len(read_csv(long / EVAL_CSV)) > len(final)  # the long run went on


def test_it_holds_inside_a_population_as_the_sweep_trains_it(tmp_path):
    """Two seeds trained as one population (the batched path a sweep takes), at budgets B and 2B."""
    cfgs = [TrainConfig(**PREMISE, method="naive", seed=seed) for seed in (0, 1)]
    for name, budget in (("short", BUDGET), ("long", 2 * BUDGET)):
        runs = [dataclasses.replace(cfg, total_env_steps=budget) for cfg in cfgs]
        train_population(runs, [tmp_path / f"{name}{cfg.seed}" for cfg in cfgs], progress=False)
    for seed in (0, 1):
        final = comparable(read_csv(tmp_path / f"short{seed}" / EVAL_CSV))
        assert rows_until(read_csv(tmp_path / f"long{seed}" / EVAL_CSV), BUDGET) == final
    assert final != comparable(read_csv(tmp_path / "short0" / EVAL_CSV))  # the seeds differ


def test_under_an_annealed_learning_rate_it_is_not(tmp_path):
    """The same comparison fails when the learning rate decays over the budget: the test can tell."""
    assert ladder_problems(TrainConfig(**{**PREMISE, "anneal_lr": True}), "routing", 0.1, [BUDGET, 2 * BUDGET])
    short, long = short_and_long(tmp_path, "routing", anneal_lr=True)
    final = comparable(read_csv(short / EVAL_CSV))
    later = rows_until(read_csv(long / EVAL_CSV), final[-1]["env_steps"])
    assert later[-3:] != final[-3:]  # the three variants' final evaluations
    assert rows_until(read_csv(long / TRAIN_CSV), BUDGET) != comparable(read_csv(short / TRAIN_CSV))


def test_each_method_s_ladder_ends_at_its_run_s_evaluations_and_the_nominal_one_does_not():
    budget = reproduce.default_parts(reproduce.ReproduceConfig())["budget"]
    base = budget.base()  # --total-env-steps 32000000 --eval-every 1000000
    ladders = fitting_ladders(base, ("routing", "filtering", "naive", "oracle"), 0.1)
    assert budget.ladders == ladders
    # a run evaluates every round(1M / 8192) = 122 windows; the oracle every round(100k / 8192) = 12 of its share
    assert ladders["routing"] == ladders["naive"] == Ladder(999_424, 6) and ladders["oracle"] == Ladder(983_040, 6)
    assert [ladders["oracle"].label(b) for b in ladders["oracle"].budgets] == ["1M", "2M", "4M", "8M", "16M", "32M"]
    for method, ladder in ladders.items():
        assert not ladder_problems(base, method, 0.1, ladder.budgets)
        problems = ladder_problems(base, method, 0.1, [1_000_000 * 2**j for j in range(6)])
        assert any("not a whole number of windows" in p for p in problems), method
    with pytest.raises(ValueError, match="annealed"):
        method_ladder(dataclasses.replace(base, anneal_lr=True), "routing", 0.1, 6)
    with pytest.raises(ValueError, match="stops before budget"):
        method_ladder(dataclasses.replace(base, total_env_steps=16_000_000), "routing", 0.1, 6)


def test_the_paper_part_reports_every_budget_its_runs_reach():
    """The paper's learning rate is constant, so its part is read like the budget part: one ladder per method, as
    long as the runs' budget reaches (the default 32,768,000 steps reach 32M; 16,384,000 reach 16M)."""
    paper = reproduce.default_parts(reproduce.ReproduceConfig())["paper"]
    # 512 x 32 windows: a run evaluates every round(1M / 16384) = 61 windows, the oracle every 6 of its share
    assert paper.ladders["routing"] == paper.ladders["naive"] == Ladder(999_424, 6)
    assert paper.ladders["oracle"] == Ladder(983_040, 6)
    half = reproduce.default_parts(reproduce.ReproduceConfig(paper_env_steps=16_384_000))["paper"]
    assert {ladder.doublings for ladder in half.ladders.values()} == {5}
    base = paper.base()
    for method, ladder in paper.ladders.items():
        assert not ladder_problems(base, method, 0.1, ladder.budgets), method
    with pytest.raises(ValueError, match="--paper-env-steps must be >= 1,000,000"):
        reproduce.ReproduceConfig(paper_env_steps=999_999).validate()


# ----- verdicts ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "interval, region, expected",
    [
        ((0.7, 0.6, 0.8), Region(low=0.5), SUPPORTED),
        ((0.45, 0.3, 0.6), Region(low=0.5), INCONCLUSIVE),
        ((0.2, 0.1, 0.4), Region(low=0.5), CONTRADICTED),
        ((0.5, 0.5, 0.7), Region(low=0.5), INCONCLUSIVE),  # touching the edge is not inside
        ((-0.1, -0.2, -0.01), Region(high=0.0), SUPPORTED),
        ((0.1, 0.01, 0.2), Region(high=0.0), CONTRADICTED),
        ((0.0, -0.03, 0.03), Region(-0.05, 0.05), SUPPORTED),  # equivalence
        ((0.2, 0.1, 0.3), Region(-0.05, 0.05), CONTRADICTED),
        ((-0.2, -0.3, -0.1), Region(-0.05, 0.05), CONTRADICTED),
        ((0.04, 0.0, 0.08), Region(-0.05, 0.05), INCONCLUSIVE),
    ],
)
def test_verdict_follows_where_the_interval_lies(interval, region, expected):
    assert verdict(Measurement(Interval(*interval), 10), region) == expected


def test_verdict_needs_data_and_enough_runs():
    assert verdict(Measurement(Interval(0.9, 0.9, 0.9), 1), Region(low=0.5)) == TOO_FEW
    assert verdict(Measurement(Interval(math.nan, math.nan, math.nan), 0), Region(low=0.5)) == NO_DATA


def hand_main(routing_low: list[float], naive_low: list[float]) -> SweepResults:
    """Finished runs of routing and naive at 1% oversight with the given final true returns."""
    rows = []
    for method, returns in (("routing", routing_low), ("naive", naive_low)):
        for seed, value in enumerate(returns):
            rows.append({"method": method, "oversight": 0.01, "seed": seed, "status": "done", "true_return": value})
    return SweepResults(tidy(rows))


def test_claims_on_hand_made_runs():
    main = hand_main([0.5, 0.55, 0.6, 0.45, 0.5], [0.1, 0.0, 0.2, 0.15, 0.05])
    rows = {row["claim"]: row for row in claim_rows(Evidence(main, SweepResults([]), [], nearest_terminal=0.16))}
    nontrivial = rows["Routing reaches nontrivial return at 1% oversight"]
    assert nontrivial["estimate"] == pytest.approx(0.52) and nontrivial["verdict"] == SUPPORTED
    beats = rows["Routing beats naive training at 1% oversight (Fig. 6a)"]
    assert beats["estimate"] == 1.0 and beats["runs"] == 5 and beats["verdict"] == SUPPORTED
    assert rows["Routing beats filtering at 10% oversight"]["verdict"] == NO_DATA
    reversed_main = hand_main([0.0, -0.05, 0.05, 0.02, -0.02], [0.5, 0.55, 0.6, 0.45, 0.5])
    rows = {row["claim"]: row for row in claim_rows(Evidence(reversed_main, SweepResults([]), [], 0.16))}
    assert rows["Routing beats naive training at 1% oversight (Fig. 6a)"]["verdict"] == CONTRADICTED
    assert rows["Routing reaches nontrivial return at 1% oversight"]["verdict"] == CONTRADICTED


def hand_grid(returns: dict[tuple[str, float], list[float]]) -> SweepResults:
    """Finished runs with the given final true returns per (method, oversight)."""
    rows = [
        {"method": method, "oversight": p, "seed": seed, "status": "done", "true_return": value}
        for (method, p), values in returns.items()
        for seed, value in enumerate(values)
    ]
    return SweepResults(tidy(rows))


def test_the_default_estimators_rows_measure_their_own_grid():
    """The (default estimator) rows read routing from the grid they name, never from main-default's, and say "no
    data" while that grid has no runs."""
    paper = hand_main([0.0, -0.05, 0.05, 0.02, -0.02], [0.5, 0.55, 0.6, 0.45, 0.5])
    unbiased = hand_main([0.5, 0.55, 0.6, 0.45, 0.5], [0.1, 0.0, 0.2, 0.15, 0.05])
    tuned = hand_grid({("routing", 0.01): [0.30, 0.32, 0.34], ("filtering", 0.01): [0.50, 0.52, 0.54]})
    evidence = Evidence(paper, SweepResults([]), [], 0.16, main_unbiased=unbiased, tuned_unbiased=tuned)
    rows = {row["claim"]: row for row in claim_rows(evidence)}
    assert rows["Routing beats naive training at 1% oversight (Fig. 6a)"]["verdict"] == CONTRADICTED
    default = rows["(default estimator) Routing beats naive training at 1% oversight (Fig. 6a)"]
    assert default["estimate"] == 1.0 and default["verdict"] == SUPPORTED
    matches = rows[
        "(default estimator, each method tuned) Routing's Diamond expert at or above filtering at 1% oversight"
    ]
    assert matches["estimate"] == pytest.approx(-0.20) and matches["verdict"] == CONTRADICTED
    assert "routing minus filtering at p = 0.01" in matches["test"]
    assert rows["(default estimator, each method tuned) Routing beats filtering at 10% oversight"]["verdict"] == NO_DATA
    alone = {r["claim"]: r for r in claim_rows(Evidence(paper, SweepResults([]), [], 0.16))}
    assert alone["(default estimator) Routing reaches nontrivial return at 1% oversight"]["verdict"] == NO_DATA


LADDER = ("1M", "2M", "4M", "8M", "16M", "32M")


def hand_budget(means: dict[str, list[float]], seeds: int = 3) -> list[dict]:
    """Budget rows of each method with the given mean true return at each budget of :data:`LADDER` (seeds 0.01
    apart)."""
    rows = []
    for method, values in means.items():
        for k, (label, mean) in enumerate(zip(LADDER, values, strict=True)):
            for seed in range(seeds):
                value = mean + 0.01 * (seed - 1)
                rows.append(dict(method=method, budget=999_424 * 2**k, budget_label=label, seed=seed, status="done"))
                rows[-1]["true_return"] = value
    return rows


def test_each_budget_claim_is_read_at_the_budgets_it_is_about():
    """Routing peaks at 2M and drifts; the oracle rises to 32M; naive peaks at 1M and hacks. A ceiling is read where
    each method is best, the oracle's steps to match routing from routing's best budget, "once naive has had time
    to hack" at the longest budget."""
    budget = hand_budget(
        {
            "routing": [0.45, 0.55, 0.45, 0.30, 0.20, 0.15],
            "oracle": [0.40, 0.80, 0.87, 0.90, 0.90, 0.91],
            "naive": [0.70, 0.60, 0.50, 0.40, 0.30, 0.20],
        }
    )
    unbiased = hand_budget({"routing": [0.40, 0.45, 0.50, 0.55, 0.60, 0.65]})
    evidence = Evidence(SweepResults([]), SweepResults([]), budget, 0.16, budget_routing=unbiased)
    assert evidence.labels == list(LADDER) and evidence.best_budget("routing") == "2M"
    assert evidence.best_budget("routing", room=5) == "1M" and evidence.later("2M", 2) == "8M"
    rows = {row["claim"]: row for row in claim_rows(evidence)}
    ceiling = rows["Routing's ceiling is about 0.2 below the oracle's"]
    assert ceiling["estimate"] == pytest.approx(0.91 - 0.55) and ceiling["verdict"] == CONTRADICTED  # not 0.91 - 0.15
    assert "oracle at its best budget (32M) minus routing at its best (2M)" in ceiling["test"]
    unbiased_ceiling = rows["(the same, routing with the unbiased estimator)"]
    assert unbiased_ceiling["estimate"] == pytest.approx(0.91 - 0.65) and unbiased_ceiling["verdict"] == SUPPORTED
    twice = rows["At 10%, oracle filtering needs about 3-4x more steps to match routing: more than 2x"]
    assert "(2M) > oracle at 2B (4M)" in twice["test"] and twice["estimate"] == 0.0
    four_times = rows["(the same: at most 4x)"]
    assert four_times["estimate"] == pytest.approx(0.90 - 0.55) and "oracle at 4B (8M)" in four_times["test"]
    degrades = rows["(reference) Naive training degrades as it learns to hack"]
    assert degrades["estimate"] == pytest.approx(0.20 - 0.70) and "at its best (1M)" in degrades["test"]
    hacked = rows["Routing beats naive training once naive has had time to hack"]
    assert "the longest budget (32M)" in hacked["test"] and hacked["estimate"] == 0.0
    nothing = {r["claim"]: r for r in claim_rows(Evidence(SweepResults([]), SweepResults([]), [], 0.16))}
    assert nothing["Routing's ceiling is about 0.2 below the oracle's"]["verdict"] == NO_DATA
    assert "(none yet)" in nothing["Routing's ceiling is about 0.2 below the oracle's"]["test"]


# ----- generated sections -----------------------------------------------------------------------------------------

HAND = "# Results\n\nHand-written analysis.\n\n<!-- generated: a -->\nold table\n<!-- end generated -->\n\nMore text.\n"


def test_a_generated_section_is_replaced_and_the_text_around_it_kept():
    text = replace_generated(HAND, "a", "| new | table |\n")
    assert text == HAND.replace("old table", "| new | table |")
    assert replace_generated(text, "a", "| new | table |\n") == text  # idempotent


def test_a_missing_section_is_appended_then_replaced():
    text = replace_generated(HAND, "b", "first")
    assert text.startswith(HAND.rstrip("\n")) and text.endswith(
        "<!-- generated: b -->\nfirst\n<!-- end generated -->\n"
    )
    again = replace_generated(text, "b", "second")
    assert again == text.replace("first", "second") and replace_generated(again, "b", "second") == again


@pytest.mark.parametrize(
    "text", ["<!-- generated: a -->\nno end\n", "<!-- generated: a -->\n<!-- end generated -->\n" * 2]
)
def test_a_damaged_section_is_an_error_naming_it(text):
    with pytest.raises(ValueError, match="'a'"):
        replace_generated(text, "a", "body")


# ----- the parts as sweeps ----------------------------------------------------------------------------------------


@pytest.fixture
def tuned_presets(tmp_path, monkeypatch) -> Path:
    """Tuned settings for the four main methods (some differing from the defaults) in a file of their own."""
    settings = {"routing": {"lr": 3e-4}, "filtering": {"width": 32}, "naive": {"anneal_lr": False}, "oracle": {}}
    path = tmp_path / "tuned_presets.json"
    path.write_text(json.dumps({"methods": {m: {"settings": s} for m, s in settings.items()}}))
    monkeypatch.setattr(config_module, "TUNED_PRESETS", path)
    return path


def test_each_parts_printed_command_is_the_sweep_it_trains(tuned_presets):
    config = reproduce.ReproduceConfig(root="elsewhere", workers=3, population_size=7)
    sweeps = [sweep for part in reproduce.default_parts(config).values() for sweep in part.sweeps()]
    assert len(sweeps) == 20  # the parts of one sweep, label-noise's 5, spurious-oversight's 2; monitors trains none
    for part in sweeps:
        assert sweep_cli.parse(reproduce.command(part, config)) == reproduce.sweep_config(part, config), part.name
        points = reproduce.sweep_config(part, config).grid()
        assert all((p.env_backend, p.eval_envs) == ("torch", 2048) for p in points)
    tuned = reproduce.sweep_config(reproduce.default_parts(config)["main-tuned"], config)
    assert tuned.method_settings["routing"] == {"lr": 3e-4} and tuned.method_settings["oracle"] == {}


def test_a_printed_flag_gives_a_tuned_float_all_its_digits_and_a_round_one_its_short_form():
    assert setting_flags("lr", 0.002769166251652359) == ["--lr", "0.002769166251652359"]  # not :g's 0.00276917
    assert setting_flags("label_noise", 0.0) == ["--label-noise", "0"]
    assert setting_flags("adam_eps", 1e-5) == ["--adam-eps", "1e-05"]


def test_expert_returns_tuned_part_runs_its_tunings_best_trial():
    rows = [r for r in read_csv(ROOT / "docs" / "tuning_routing_expert_returns.csv") if r["best"] in (True, "True")]
    assert len(rows) == 1
    settings = {k: v for k, v in reproduce.EXPERT_RETURNS_TUNED.items() if k != "routed_advantage"}
    best = {k: str(rows[0][k]) == "True" if isinstance(v, bool) else type(v)(rows[0][k]) for k, v in settings.items()}
    assert settings == best


def test_dry_run_prints_each_command_and_its_size(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(config_module, "TUNED_PRESETS", tmp_path / "none.json")
    assert reproduce_cli.main(["--dry-run", "--root", str(tmp_path / "sweeps")]) == 0
    out = capsys.readouterr().out
    # 2M steps in whole steps of 256 envs: 7,813 x 256 = 2,000,128. Oracle: p x 2M rounded up the same way:
    # 20,224 + 60,160 + 200,192 + 600,064 + 2,000,128 = 2,880,768. Main: 10 x (15 x 2,000,128 + 2,880,768).
    assert "size: 200 runs, 328,826,880 agent-env-steps" in out
    assert "size: 30 runs, 60,003,840 agent-env-steps" in out  # 3 ablations x 10 seeds x 2,000,128
    # Budget: 5 seeds x (3 x 32,000,000 + the oracle's 10%, 3,200,000).
    assert "size: 20 runs, 496,000,000 agent-env-steps" in out
    assert "size: 12 runs, 304,742,400 agent-env-steps" in out  # paper: 3 x (3 x 32,768,000 + 3,276,800)
    assert "main-tuned: every method" in out and "skipped: no tuned setting for routing, filtering" in out
    assert "size: 50 runs, 100,006,400 agent-env-steps" in out  # main-routing: 5 levels x 10 seeds x 2,000,128
    assert "size: 5 runs, 160,000,000 agent-env-steps" in out  # budget-routing: 5 x 32,000,000
    assert "size: 20 runs, 481,600,000 agent-env-steps" in out  # budget-1pct: 5 x (3 x 32,000,000 + 320,000)
    # budget-1pct-paper-routing's 5 x 32,000,000 as budget-routing's; main-routed-no-baseline's and
    # main-tuned-expert-returns' as main-routing's
    assert "total: 442 runs, 2,291,192,320 agent-env-steps" in out
    commands = re.findall(r"python scripts/sweep_oversight.py .*", out)
    assert len(commands) == 12 and all("--env-backend torch --eval-envs 2048" in c for c in commands)
    assert "--no-anneal-lr --total-env-steps 32000000 --eval-every 1000000" in commands[2]
    assert not (tmp_path / "sweeps").exists()


# ----- the whole command on a tiny sweep --------------------------------------------------------------------------

TINY = dict(num_envs=8, num_steps=8, total_env_steps=1280, eval_every=640, eval_envs=32, width=16)


def tiny_parts(seeds: int, oversight=(0.1, 1.0), methods=("routing", "naive", "oracle")):
    """The parts at tiny budgets: main-default at 2 levels x 3 methods (or ``oversight`` x ``methods``), budget (two
    budgets), one ablation."""

    def parts(config):
        real = reproduce.default_parts(config)
        budget = {**TINY, "anneal_lr": False, "total_env_steps": 1280, "eval_every": 640}
        grid = dict(oversight=oversight, methods=methods, seeds=seeds, settings=TINY)
        return {
            **real,
            "main-default": dataclasses.replace(real["main-default"], **grid),
            "main-tuned": dataclasses.replace(real["main-tuned"], **grid),
            "budget": dataclasses.replace(real["budget"], methods=("routing", "oracle"), seeds=1, settings=budget),
            "ablations": dataclasses.replace(real["ablations"], methods=("no_routing",), seeds=seeds, settings=TINY),
        }

    return parts


def test_the_command_trains_resumably_and_regenerates_the_docs_with_runs_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(config_module, "TUNED_PRESETS", tmp_path / "none.json")
    docs, root = tmp_path / "docs", tmp_path / "sweeps"
    docs.mkdir()
    (docs / "results.md").write_text(
        "# Results\n\nKept.\n\n<!-- generated: claims -->\n<!-- end generated -->\n\nEnd.\n"
    )
    flags = ["--root", str(root), "--docs", str(docs), "--workers", "1"]
    monkeypatch.setattr(reproduce_cli, "default_parts", tiny_parts(seeds=2))
    assert reproduce_cli.main([*flags, "--parts", "main-default", "main-tuned", "budget", "ablations"]) == 0
    out = capsys.readouterr().out
    assert "main-tuned: skipped: no tuned setting" in out and "main-default: 12 of 12 runs finished" in out

    monkeypatch.setattr(reproduce_cli, "default_parts", tiny_parts(seeds=3))  # seed 2 was never trained
    assert reproduce_cli.main([*flags, "--skip-training"]) == 0
    out = capsys.readouterr().out
    assert "main-default: 12 of 18 runs finished (6 missing)" in out
    assert "paper: 0 of 12 runs finished (12 missing)" in out
    text = (docs / "results.md").read_text()
    assert text.startswith("# Results\n\nKept.\n\n<!-- generated: claims -->\n") and "\n\nEnd.\n" in text
    for name in ("main-default", "main-tuned", "budget", "ablations", "paper", "paper-full"):
        assert f"<!-- generated: {name} -->" in text
    assert "| routing | 0.1 | 2/3 |" in text and "| no_routing | 0.1 | 2/3 |" in text

    main = read_csv(docs / "results_main_default.csv")
    assert list(main[0]) == list(RUN_COLUMNS) and len(main) == 18
    done = [row for row in main if row["status"] == "done"]
    assert len(done) == 12 and all(row["preset"] == "default" and row["true_return_se"] > 0 for row in done)
    budget = read_csv(docs / "results_budget.csv")
    assert list(budget[0]) == list(BUDGET_COLUMNS) and len(budget) == 4  # 2 methods x 1 seed x 2 budgets
    oracle = [row for row in budget if row["method"] == "oracle"]
    assert [row["env_steps"] for row in oracle] == [64, 128] and all(row["status"] == "done" for row in oracle)
    run_eval = read_csv(root / "budget" / "routing-p0.1-s0" / EVAL_CSV)
    at_first = next(r for r in run_eval if r["policy"] == "diamond" and r["env_steps"] == 640)
    assert next(r for r in budget if r["method"] == "routing")["true_return"] == at_first["true_return"]
    mixtures = read_csv(docs / "results_budget_mixtures.csv")  # routing's mixture and experts, oracle not
    assert list(mixtures[0]) == list(POLICY_BUDGET_COLUMNS) and len(mixtures) == 6  # 3 policies x 2 budgets
    for policy in ("trained", "diamond", "ghost"):
        evaluated = [r for r in run_eval if r["policy"] == policy and r["env_steps"] in (640, 1280)]
        mine = [r for r in mixtures if r["policy"] == policy]
        assert [r["true_return"] for r in mine] == [r["true_return"] for r in evaluated]
        assert all(r["method"] == "routing" and r["deployed"] == "diamond" for r in mine)
    assert "Ghost rate in unwatched episodes of the mixture and of each expert" in text
    assert "| routing: Ghost expert |" in text
    claims = read_csv(docs / "results_claims.csv")
    assert claims and {row["verdict"] for row in claims} <= {TOO_FEW, NO_DATA}  # 2 seeds: no verdict

    img = docs / "img"
    expected = ["main-default/return_vs_oversight.png", "main-default/hacking_vs_oversight.png"]
    expected += ["budget/return_vs_budget.png", "budget/experts_vs_budget.png"]
    expected += ["main-default/learning_curves.png", "ablations/learning_curves.png"]
    assert all((img / name).stat().st_size > 10_000 for name in expected)
    assert not (img / "paper").exists()  # nothing finished: no figure
    assert "![return vs oversight](img/main-default/return_vs_oversight.png)" in text

    assert reproduce_cli.main([*flags, "--skip-training"]) == 0
    assert (docs / "results.md").read_text() == text  # regenerating changes nothing


def docs_files(docs: Path) -> dict[str, bytes]:
    """Every file under ``docs`` but results.md, whose sections :func:`sections` gives."""
    files = [p for p in docs.rglob("*") if p.is_file() and p.name != "results.md"]
    return {p.relative_to(docs).as_posix(): p.read_bytes() for p in files}


def sections(docs: Path, names=("claims", "main-default", "budget", "ablations")) -> dict[str, str]:
    """The generated sections ``names`` of results.md."""
    text = (docs / "results.md").read_text()
    return {name: re.search(f"<!-- generated: {name} -->(.*?)<!-- end", text, re.S).group(1) for name in names}


def without_command(section: str) -> str:
    return re.sub(r"```bash\n.*?\n```", "", section, flags=re.S)


def test_a_part_with_fewer_finished_runs_here_than_its_committed_csv_is_kept(tmp_path, monkeypatch, capsys):
    """A fresh clone has the committed CSVs and sections but no sweeps: regenerating keeps them, and says so."""
    monkeypatch.setattr(config_module, "TUNED_PRESETS", tmp_path / "none.json")
    docs, root, empty = tmp_path / "docs", tmp_path / "sweeps", tmp_path / "clone"
    flags = ["--docs", str(docs), "--workers", "1"]
    monkeypatch.setattr(reproduce_cli, "default_parts", tiny_parts(1, oversight=(0.1,), methods=("routing",)))
    assert reproduce_cli.main([*flags, "--root", str(root), "--parts", "main-default", "budget"]) == 0
    committed, committed_sections = docs_files(docs), sections(docs)
    assert "| routing | 0.1 | 1/1 |" in committed_sections["main-default"]
    estimators = sections(docs, ("estimators",))["estimators"]  # routing's rows of each estimator's part, named by it
    assert "| routing (shared_baseline) | 0.1 | 1/1 |" in estimators
    assert "| routing (unwatched_baseline) | 0.01 | 0/10 |" in estimators
    capsys.readouterr()

    assert reproduce_cli.main([*flags, "--root", str(empty), "--skip-training"]) == 0
    out = capsys.readouterr().out
    kept = sections(docs)
    assert docs_files(docs) == committed  # the CSVs, claims and figures
    assert {k: without_command(v) for k, v in kept.items()} == {
        k: without_command(v) for k, v in committed_sections.items()
    }
    # the runs here ran on the CPU; a kept section states where the committed runs were trained (Part.trained_on)
    assert "--device cpu" in committed_sections["main-default"] and "--device cuda" in kept["main-default"]
    assert "resumed from their checkpoints with --device cpu" in kept["budget"]
    assert (
        f"main-default: kept {docs / 'results_main_default.csv'} (1 finished runs; 0 here): train or copy"
        f" {empty / 'main-default'} to regenerate it"
    ) in out.splitlines()
    assert f"budget: kept {docs / 'results_budget.csv'} (4 finished (run, budget) points; 0 here)" in out
    assert f"ablations: kept {docs / 'results_ablations.csv'} and its section" in out
    assert "main-default: 0 of" not in out and "paper: 0 of 12 runs finished" in out

    monkeypatch.setattr(reproduce_cli, "default_parts", tiny_parts(2, oversight=(0.1,), methods=("routing",)))
    assert reproduce_cli.main([*flags, "--root", str(root), "--parts", "main-default"]) == 0  # trains seed 1
    out = capsys.readouterr().out
    assert "main-default: 2 of 2 runs finished" in out and "kept" not in out
    text = (docs / "results.md").read_text()
    assert "| routing | 0.1 | 2/2 |" in text
    assert sum(row["status"] == "done" for row in read_csv(docs / "results_main_default.csv")) == 2

    assert reproduce_cli.main([*flags, "--root", str(empty), "--skip-training", "--force"]) == 0
    out = capsys.readouterr().out
    assert "kept" not in out and "main-default: 0 of 2 runs finished (2 missing)" in out
    assert "| routing | 0.1 | 0/2 |" in (docs / "results.md").read_text()


# ----- the hardware each command states ---------------------------------------------------------------------------


def fake_sweep(directory: Path, started: list[str], last: str) -> Path:
    """A sweep directory whose runs were started on ``started`` and whose last invocation ran on ``last``."""
    for seed, device in enumerate(started):
        (directory / f"routing-p0.1-s{seed}").mkdir(parents=True)
        write_json(directory / f"routing-p0.1-s{seed}" / "config.json", {"device": device})
    write_json(directory / "sweep.json", {"train": {"device": last}})
    return directory


def test_a_command_states_the_devices_its_runs_were_trained_on(tmp_path):
    config = reproduce.ReproduceConfig(root=str(tmp_path), device="cpu")
    parts = reproduce.default_parts(config)
    budget, main = parts["budget"], parts["main-default"]
    assert recorded_devices(tmp_path / "budget") == () and published_devices(budget, config) == ("cpu",)
    fake_sweep(tmp_path / "budget", ["cuda", "cuda"], "cpu")  # started on a GPU, resumed on the CPU
    assert recorded_devices(tmp_path / "budget") == ("cuda", "cpu")
    block = command_block(budget, config, published_devices(budget, config)).splitlines()
    assert "--out sweeps/budget " in block[1] and "--device cuda --workers" in block[1]  # not this invocation's cpu
    assert block[2] == "# its runs were started with --device cuda and resumed from their checkpoints with --device cpu"
    (tmp_path / "budget" / "sweep.json").write_text("{truncated")  # an unreadable record says nothing
    assert recorded_devices(tmp_path / "budget") == ("cuda",)
    # main-default's runs are not here (its section is kept): its record says where they ran, a GPU
    assert published_devices(main, config, kept=True) == ("cuda",)
    assert "--device cuda --workers" in command_block(main, config, published_devices(main, config, kept=True))


def test_each_parts_record_of_its_devices_agrees_with_its_committed_runs():
    config = reproduce.ReproduceConfig(root=str(ROOT / "sweeps"))
    parts = reproduce.default_parts(config)
    committed = [name for name, part in parts.items() if reproduce.sweep_dir(part, config).is_dir()]
    assert {"budget", "paper", "main-routing", "budget-routing"} <= set(committed)
    for name in committed:
        assert recorded_devices(reproduce.sweep_dir(parts[name], config)) == parts[name].trained_on, name
    assert parts["main-default"].trained_on == parts["ablations"].trained_on == ("cuda",)  # one H200, not committed
    assert parts["budget"].trained_on == ("cuda", "cpu")


# ----- the published docs -----------------------------------------------------------------------------------------

SUMMARY_SOURCES = {
    "routing (unwatched_baseline)": ("main_routing", "routing"),
    "routing (shared_baseline)": ("main_default", "routing"),
    "routing (routed_no_baseline)": ("main_routed_no_baseline", "routing"),
    "filtering": ("main_default", "filtering"),
    "naive": ("main_default", "naive"),
    "oracle": ("main_default", "oracle"),
}
TUNED_SUMMARY_SOURCES = {
    "routing (unwatched_baseline)": ("main_tuned_routing", "routing"),
    "routing (expert_returns)": ("main_tuned_expert_returns", "routing"),
    "routing (shared_baseline)": ("main_tuned", "routing"),
    "filtering": ("main_tuned", "filtering"),
    "naive": ("main_tuned", "naive"),
    "oracle": ("main_tuned", "oracle"),
}


def markdown_tables(text: str) -> list[list[str]]:
    """Each table of ``text``: its consecutive lines that start with ``|``."""
    tables, current = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def assert_cells_are_the_csvs_means(table: list[str], sources: dict[str, tuple[str, str]]) -> None:
    """Every row of a summary table is its source CSV's mean over finished runs per level, or ``-`` where the cell has
    none (a part still training)."""
    assert table[0] == "| method | p = 0.01 | p = 0.03 | p = 0.1 | p = 0.3 | p = 1 |" and len(table) == len(sources) + 2
    for label, (part, method) in sources.items():
        rows = read_csv(ROOT / "docs" / f"results_{part}.csv")
        cells = next(line for line in table if line.startswith(f"| {label} |")).strip("| ").split(" | ")[1:]
        for oversight, cell in zip((0.01, 0.03, 0.1, 0.3, 1.0), cells, strict=True):
            done = [r for r in rows if r["method"] == method and r["oversight"] == oversight and r["status"] == "done"]
            mean = f"{np.mean([r['true_return'] for r in done]):.2f} " if done else "-"
            assert cell.startswith(mean), (label, oversight)


def test_the_summary_at_the_top_gives_the_csvs_numbers_and_the_readme_the_same():
    text = (ROOT / "docs" / "results.md").read_text()
    summary = generated_section(text, "summary")
    assert text.index("<!-- generated: summary -->") < text.index("\n## 1. ")  # at the top
    main, tuned = markdown_tables(summary)
    assert_cells_are_the_csvs_means(main, SUMMARY_SOURCES)
    assert_cells_are_the_csvs_means(tuned, TUNED_SUMMARY_SOURCES)
    readme = (ROOT / "README.md").read_text()
    glance = readme[readme.index("## Results at a glance") : readme.index("## Quick start")]
    assert markdown_tables(glance) == [main, tuned]


BUDGET_SUMMARY_SOURCES = {
    0.1: {
        "routing (unwatched_baseline)": "budget_routing",
        "routing (shared_baseline)": "budget",
        "filtering": "budget",
    },
    0.01: {
        "routing (unwatched_baseline)": "budget_1pct",
        "routing (shared_baseline)": "budget_1pct_paper_routing",
        "filtering": "budget_1pct",
    },
}
"""Where each budget line of the summary takes each method's runs (naive and the oracle: from filtering's part)."""


def test_the_summarys_budget_lines_give_each_parts_mean_at_32m():
    summary = generated_section((ROOT / "docs" / "results.md").read_text(), "summary")
    for oversight, sources in BUDGET_SUMMARY_SOURCES.items():
        line = next(line for line in summary.splitlines() if line.startswith(f"At oversight {oversight:g} with"))
        assert "after 32M steps" in line, oversight
        for label in [*sources, "naive", "oracle"]:
            rows = read_csv(ROOT / "docs" / f"results_{sources.get(label, sources['filtering'])}.csv")
            method = label.split(" ")[0]
            done = [r for r in rows if (r["method"], r["budget_label"], r["status"]) == (method, "32M", "done")]
            cell = f"{np.mean([r['true_return'] for r in done]):.2f} [" if done else "no finished run"
            assert f"{label} {cell}" in line, (oversight, label)


def test_results_md_is_what_its_committed_csvs_and_records_regenerate(tmp_path, capsys):
    """A fresh clone's regeneration (no run of main-default here) changes nothing: the summary, the claims and every
    printed command, main-default's on the GPU it ran on, are in sync with the CSVs and the records."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for path in [*(ROOT / "docs").glob("results_*.csv"), ROOT / "docs" / "results.md"]:
        shutil.copy(path, docs)
    assert reproduce_cli.main(["--docs", str(docs), "--root", str(tmp_path / "clone"), "--skip-training"]) == 0
    text = (docs / "results.md").read_text()
    assert text == (ROOT / "docs" / "results.md").read_text()
    assert (docs / "results_claims.csv").read_bytes() == (ROOT / "docs" / "results_claims.csv").read_bytes()  # NaN-safe
    assert "--device cuda --workers" in generated_section(text, "main-default")


def test_results_md_has_one_claims_table_and_every_section_it_names():
    text, readme = (ROOT / "docs" / "results.md").read_text(), (ROOT / "README.md").read_text()
    assert text.count("| verdict |") == 1 and "| verdict |" in generated_section(text, "claims")
    sections = set(re.findall(r"^## (\d+)\. ", text, re.M))
    appendix = set(re.findall(r"^### A\.(\d+) ", text, re.M))
    assert sections == {"1", "2", "3", "4"} and appendix == {"1", "2", "3", "4", "5"}
    for doc in (text, readme):
        assert set(re.findall(r"\b[Ss]ections? (\d+)\b(?!\.\d)", doc)) <= sections
        assert set(re.findall(r"\bA\.(\d+)\b", doc)) <= appendix
