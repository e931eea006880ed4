"""The monitor baseline: the AUROC and the episodes it is read on, the probe (learning, chance, label noise), a
trained run's monitors, and scripts/monitor_runs.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from cli import load_script
from conftest import tiny_config

from envs import Terminal
from oversight_rl.engine import monitor
from oversight_rl.engine.evaluate import auroc, make_eval_env, summarize
from oversight_rl.engine.launch import train
from oversight_rl.engine.monitor import (
    episode_index,
    episode_scores,
    label_budget,
    monitor_auroc,
    monitor_aurocs,
    play_recorded,
    probe_scores,
    probe_set,
    reported_ghost,
    train_probe,
    window_probe_set,
    window_wrong_labels,
)
from oversight_rl.rundir.files import TRAIN_CSV, read_csv

script = load_script("monitor_runs")
STEPS = 300  # probe training steps: enough for these tasks, and quick


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as the script and training use (on a busy machine two are several times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


D, G, NONE = int(Terminal.DIAMOND), int(Terminal.GHOST), int(Terminal.NONE)


def null_sd(positives: int, negatives: int) -> float:
    """Standard deviation of the AUROC of scores independent of the labels (Mann-Whitney's null, no ties)."""
    return math.sqrt((positives + negatives + 1) / (12 * positives * negatives))


# ----- the AUROC and its episodes -----------------------------------------------------------------------------------


def test_auroc_counts_ties_half():
    """Positives 0.4 and 0.8, negatives 0.1 and 0.4: pairs 1, 0.5, 1, 1 of 4."""
    scores = np.array([0.1, 0.4, 0.4, 0.8])
    assert auroc(scores, np.array([False, True, False, True])) == 0.875
    assert auroc(scores, np.array([True, False, False, False])) == 0.0
    assert math.isnan(auroc(scores, np.zeros(4, bool)))


def test_the_monitor_auroc_reads_unlabeled_episodes_at_a_terminal_only():
    """A labeled Ghost and a time-out, scored to spoil it, are left out: the other four rank perfectly."""
    scores = np.array([0.9, 0.8, 0.1, 0.2, 0.0, 0.99])
    terminal = np.array([G, G, D, D, G, NONE])
    labeled = np.array([False, False, False, False, True, False])
    assert monitor_auroc(scores, terminal, labeled) == 1.0
    assert math.isnan(monitor_auroc(scores[2:4], terminal[2:4], labeled[2:4]))  # no Ghost-bound episode
    assert math.isnan(monitor_auroc(np.full(6, np.nan), terminal, labeled))  # no monitor


def test_episode_index_numbers_finished_episodes_environment_by_environment():
    dones = np.array([[False, True], [True, False], [False, True], [True, False]])
    assert episode_index(dones).tolist() == [[0, 2], [0, 3], [1, 3], [1, -1]]
    assert len(dones.T.nonzero()[0]) == 4


def test_labels_read_are_the_labeled_ends_at_a_terminal_and_every_end_for_the_oracle():
    rec = {
        "dones": np.array([[True, True, True, True]]),
        "terminal": np.array([[D, G, G, NONE]], dtype=np.int8),
        "labeled": np.array([[True, True, False, False]]),
        "ghost_overseen": np.array([[False, True, False, False]]),
    }
    wrong = np.array([[True, False, False, True]])
    read, ghost, flipped = reported_ghost(rec, wrong, every_label=False)
    assert read.tolist() == [True, True, False, False]
    assert ghost[read].tolist() == [True, True]  # the Diamond reported as a Ghost
    assert flipped.tolist() == [True, False, False, False]
    read, ghost, _ = reported_ghost(rec, wrong, every_label=True)
    assert read.tolist() == [True, True, True, False]  # a time-out has no label
    assert ghost[read].tolist() == [True, True, True]


# ----- the probe --------------------------------------------------------------------------------------------------


def separable(n: int, seed: int, dim: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """States ``(n, dim)`` and whether each is Ghost-bound: a linear rule of two of the features."""
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x, x[:, 0] + x[:, 1] > 0


def test_the_probe_learns_a_separable_task():
    probe = train_probe(probe_set(*separable(2000, seed=0)), steps=STEPS)
    x, ghost = separable(2000, seed=1)
    assert auroc(probe_scores(probe, x), ghost) > 0.97


def test_the_probe_is_at_chance_where_labels_are_independent_of_the_states():
    """Test labels independent of everything: whatever the probe learnt, its AUROC follows Mann-Whitney's null,
    whose standard deviation with 1,000 of each class is 0.013; four of them bound it."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4000, 8)).astype(np.float32)
    probe = train_probe(probe_set(x[:2000], rng.random(2000) < 0.5), steps=STEPS)
    ghost = np.arange(2000) < 1000
    assert abs(auroc(probe_scores(probe, x[2000:]), ghost) - 0.5) < 4 * null_sd(1000, 1000)


def test_the_probe_is_none_without_labels_of_both_kinds():
    x, _ = separable(10, seed=0)
    assert train_probe(probe_set(x, np.ones(10, bool))) is None
    assert train_probe(probe_set(x[:0], np.zeros(0, bool))) is None


def test_repeated_states_merge_into_counts_and_the_probe_is_deterministic():
    x, ghost = separable(200, seed=3)
    doubled = probe_set(np.concatenate([x, x]), np.concatenate([ghost, ~ghost]))
    assert len(doubled.states) == 200 and (doubled.ghosts == 1).all() and (doubled.diamonds == 1).all()
    a, b = (train_probe(probe_set(x, ghost), seed=5, steps=STEPS) for _ in range(2))
    assert np.array_equal(probe_scores(a, x), probe_scores(b, x))


def synthetic_window(n: int, seed: int, labeled: bool) -> dict[str, np.ndarray]:
    """Step records of ``n`` environments whose one episode each ends at the second step, at the Ghost where the
    separable rule says, its states the same at both steps."""
    x, ghost = separable(n, seed)
    terminal = np.where(ghost, G, D).astype(np.int8)
    return {
        "obs": np.stack([x, x]),
        "dones": np.array([np.zeros(n, bool), np.ones(n, bool)]),
        "terminal": np.stack([np.zeros(n, np.int8), terminal]),
        "labeled": np.full((2, n), labeled),
        "ghost_overseen": np.stack([np.zeros(n, bool), ghost & labeled]),
        "gate": np.full((2, n), np.nan, np.float32),
    }


@pytest.mark.parametrize("rate", [0.0, 0.5])
def test_the_probes_labels_carry_the_runs_label_noise(rate):
    """4,000 labeled episodes with wrong labels drawn as training draws them: about ``rate`` of them are flipped
    (binomial, four standard deviations), and the probe learns the rule at E = 0 but nothing at E = 0.5, where every
    reported label is a coin flip. A probe fit to coin flips is a random function of the states, which agrees with
    the rule by chance: over 60 seeds of this task (300 steps) its AUROC had mean 0.50 and standard deviation 0.028
    (the test episodes' own null gives 0.009 of it), so 0.12 is four of them."""
    n = 4000
    rec = synthetic_window(n, seed=4, labeled=True)
    labels = window_probe_set(rec, window_wrong_labels(7, n, 2, rate), every_label=False, room=n)
    assert labels.episodes == n and labels.size == 2 * n
    assert abs(labels.flipped / n - rate) <= 4 * math.sqrt(max(rate * (1 - rate), 1e-12) / n)
    test = episode_scores(synthetic_window(n, seed=5, labeled=False), train_probe(labels, steps=STEPS))
    value = monitor_auroc(test["probe"], test["terminal"], test["labeled"])
    assert value > 0.97 if rate == 0.0 else abs(value - 0.5) < 0.12


def test_the_probe_set_keeps_the_first_episodes_up_to_the_budget():
    rec = synthetic_window(50, seed=6, labeled=True)
    labels = window_probe_set(rec, np.zeros((2, 50), bool), every_label=False, room=20)
    assert (labels.episodes, labels.size, labels.flipped) == (20, 40, 0)
    assert set(map(tuple, labels.states)) == set(map(tuple, rec["obs"][1, :20]))


# ----- a trained run ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny routing run and a tiny naive run, trained with wrong labels."""
    sweep = tmp_path_factory.mktemp("sweep")
    for method in ("routing", "naive"):
        train(tiny_config(method=method, label_noise=0.2), sweep / f"{method}-p0.5-s0", progress=False)
    return sweep


def test_a_runs_monitors_are_sensible_and_deterministic(runs):
    routing = monitor_aurocs(runs / "routing-p0.5-s0", episodes=300, seed=1, probe_steps=STEPS)
    assert routing == monitor_aurocs(runs / "routing-p0.5-s0", episodes=300, seed=1, probe_steps=STEPS)
    rows = read_csv(runs / "routing-p0.5-s0" / TRAIN_CSV)
    budget = round(sum(r["rollout/labeled_fraction"] * r["rollout/episodes"] for r in rows))
    assert routing["label_budget"] == budget == label_budget(runs / "routing-p0.5-s0", False) > 20
    assert routing["probe_labels"] == budget and 0 < routing["probe_flipped"] < budget / 2
    assert routing["probe_states"] >= budget and routing["test_ghost"] > 10 and routing["test_diamond"] > 10
    assert 0.0 <= routing["probe_auroc"] <= 1.0 and 0.0 <= routing["gate_auroc"] <= 1.0
    assert (routing["method"], routing["oversight"], routing["label_noise"]) == ("routing", 0.5, 0.2)
    naive = monitor_aurocs(runs / "naive-p0.5-s0", episodes=300, max_labels=10, probe_steps=STEPS)
    assert naive["probe_labels"] == 10 and 0.0 <= naive["probe_auroc"] <= 1.0 and math.isnan(naive["gate_auroc"])


def test_the_gates_auroc_is_the_one_evaluation_reports(runs):
    """On one window, the monitor's gate AUROC is eval.csv's gate_auroc of the same episodes."""
    from oversight_rl.engine.deploy import load_policy
    from oversight_rl.engine.evaluate import policy_step

    policy = load_policy(runs / "routing-p0.5-s0", "trained").module
    env = make_eval_env("OversightRL/DiamondGhost-5x5-v0", 64, 0.5)
    rec = play_recorded(lambda obs: policy_step(policy, obs), env, 11)
    env.close()
    test = episode_scores(rec, None)
    expected = summarize({k: v for k, v in rec.items() if k != "obs"}, 0.97)["gate_auroc"]
    assert monitor_auroc(test["gate"], test["terminal"], test["labeled"]) == expected


def test_monitor_aurocs_names_a_bad_argument_or_directory(runs, tmp_path):
    with pytest.raises(ValueError, match="episodes must be an integer >= 1"):
        monitor_aurocs(runs / "naive-p0.5-s0", episodes=0)
    with pytest.raises(FileNotFoundError, match="is it a run directory"):
        monitor_aurocs(tmp_path)


# ----- scripts/monitor_runs.py ----------------------------------------------------------------------------------------

FAST = ["--episodes", "200", "--max-labels", "30", "--probe-steps", str(STEPS)]


def test_the_script_writes_monitors_csv_and_skips_measured_runs(runs, monkeypatch, capsys):
    out = runs / "monitors.csv"
    assert script.main([str(runs), *FAST]) == 0
    rows, text = read_csv(out), out.read_text()
    assert text.splitlines()[1].endswith(",")  # naive's gate_auroc, the last column, is empty
    assert [(r["run"], r["method"], r["status"]) for r in rows] == [
        ("naive-p0.5-s0", "naive", "done"),
        ("routing-p0.5-s0", "routing", "done"),
    ]
    assert math.isnan(rows[0]["gate_auroc"]) and 0 <= rows[1]["gate_auroc"] <= 1
    assert all(r["probe_labels"] == 30 and r["label_noise"] == 0.2 and r["seed"] == 0 for r in rows)

    calls = []
    monkeypatch.setattr(script, "monitor_aurocs", lambda *a, **k: calls.append(a) or monitor.monitor_aurocs(*a, **k))
    capsys.readouterr()
    assert script.main([str(runs), *FAST]) == 0
    assert calls == [] and "2 of 2 runs already measured" in capsys.readouterr().out
    assert out.read_text() == text
    other = ["--episodes", "100", "--max-labels", "30", "--probe-steps", str(STEPS)]
    assert script.main([str(runs / "naive-p0.5-s0"), "--out", str(out), *other]) == 0
    assert len(calls) == 1  # other settings: measured again, its row replaced, the other kept
    assert [(r["run"], r["episodes"]) for r in read_csv(out)] == [("naive-p0.5-s0", 100), ("routing-p0.5-s0", 200)]


def test_the_script_lists_an_unfinished_run_without_numbers(tmp_path, capsys):
    (tmp_path / "routing-p0.5-s1").mkdir()
    (tmp_path / "routing-p0.5-s1" / "config.json").write_text(
        '{"method": "routing", "oversight": 0.5, "seed": 1, "label_noise": 0.0}'
    )
    assert script.main([str(tmp_path), *FAST]) == 0
    (row,) = read_csv(tmp_path / "monitors.csv")
    assert row["status"] == "interrupted" and math.isnan(row.get("probe_auroc", float("nan")))
    assert "not measured: routing-p0.5-s1: interrupted" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give at least one RUN_OR_SWEEP_DIR"),
        (["{tmp}/nowhere"], "does not exist"),
        (["{tmp}/empty"], "is neither a run directory"),
        (["{tmp}/file.txt"], "is a file, not a directory"),
        (["{runs}/naive-p0.5-s0"], "--out is needed"),
        (["{runs}", "--episodes", "0"], "--episodes must be an integer >= 1"),
        (["{runs}", "--out", "{tmp}/bad.csv"], "bad.csv is not a monitors.csv"),
        (["{runs}", "--out", "{tmp}"], "is a directory"),
        (["{runs}", "--out", "{tmp}/no/monitors.csv"], "does not exist"),
        (["{runs}", "--out", "{tmp}/bad.csv", "--max-labels", "-1"], "--max-labels must be an integer >= 0"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(runs, tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    argv = [a.format(tmp=tmp_path, runs=runs) for a in args]
    assert script.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
