"""--label-noise: every method trains on the same wrong labels, drawn from each agent's own stream; the truth and every
evaluation metric stay untouched; a bad value is refused; a noisy run resumes exactly."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from cli import load_script
from test_routing import one_agent_rollout

import oversight_rl.engine.trainer as trainer_module
from envs import Terminal
from oversight_rl.core.labels import Route
from oversight_rl.core.methods import METHODS
from oversight_rl.engine.collect import (
    Rollout,
    label_noise_keys,
    labels_read,
    training_rewards,
    with_label_noise,
    wrong_labels,
)
from oversight_rl.engine.config import TrainConfig
from oversight_rl.engine.evaluate import reported, summarize, verified_return
from oversight_rl.engine.launch import resume, train
from oversight_rl.engine.trainer import Trainer, build_batch
from oversight_rl.rundir.files import EVAL_CSV, SUMMARY, TRAIN_CSV, read_csv

N_, D_, G_ = int(Terminal.NONE), int(Terminal.DIAMOND), int(Terminal.GHOST)
TIMING = ("wall_s", "time/env_steps_per_s")


def untimed(rows: list[dict]) -> list[dict]:
    """CSV rows without timing columns, NaN as None so that rows compare equal."""
    return [{k: None if v != v else v for k, v in row.items() if k not in TIMING} for row in rows]


# ----- the flip rule on a rollout written by hand --------------------------------------------------------------------


def hand_rollout() -> Rollout:
    """T=3, one agent, N=6. env0: labeled Diamond at t=0 (its Ghost unwatched), then unfinished. env1: labeled Ghost
    at t=1. env2: unlabeled Diamond at t=1. env3: unlabeled Ghost at t=2. env4: time-out at t=2. env5: unfinished."""
    dones = torch.tensor([[1, 0, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 0]], dtype=torch.bool)
    terminal = torch.tensor([[D_, 0, 0, 0, 0, 0], [0, G_, D_, 0, 0, 0], [0, 0, 0, G_, N_, 0]], dtype=torch.int8)
    labeled = torch.tensor([[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    return one_agent_rollout(dones, terminal, labeled)


ALL_WRONG = torch.ones(3, 1, 6, dtype=torch.bool)


def at(x: torch.Tensor, t: int, n: int, num_envs: int = 6):
    """Sample ``(t, n)`` of one agent's time-major ``(1, T*N)`` batch field."""
    return x[0, t * num_envs + n].item()


def test_a_wrong_label_swaps_the_terminal_of_labeled_episodes_only():
    rollout = hand_rollout()
    noisy, flipped = with_label_noise(rollout, ALL_WRONG)
    expected = rollout.terminal.clone()
    expected[0, 0, 0], expected[1, 0, 1] = G_, D_  # the two labeled ends; unlabeled, time-out, unfinished stay
    assert torch.equal(noisy.terminal, expected)
    assert noisy.ghost_overseen[0, 0, 0]  # the overseer says it saw the Ghost it reports
    assert noisy.ghost_overseen.sum() == 2  # and env1's Ghost stays overseen, nothing else changes
    assert flipped.sum() == 2 and flipped[0, 0, 0] and flipped[1, 0, 1]
    assert torch.equal(noisy.labeled, rollout.labeled) and torch.equal(noisy.dones, rollout.dones)

    none_wrong, flipped = with_label_noise(rollout, torch.zeros_like(ALL_WRONG))
    assert not flipped.any()
    assert all(torch.equal(a, b) for a, b in zip(none_wrong[4:8], rollout[4:8], strict=True))


def test_the_oracle_reads_every_episode_as_labeled():
    """The oracle's reward reads every episode's outcome (every episode labeled, on a scaled budget), so each of its
    labels can be wrong, not only those of overseen terminals; its labeled episodes flip as every method's do."""
    assert METHODS["oracle"].reads_every_label
    assert not any(m.reads_every_label for name, m in METHODS.items() if name != "oracle")
    rollout = hand_rollout()
    noisy, flipped = with_label_noise(rollout, ALL_WRONG, every_episode=True)
    assert [noisy.terminal[t, 0, n].item() for t, n in ((0, 0), (1, 1), (1, 2), (2, 3), (2, 4))] == [G_, D_, G_, D_, N_]
    assert flipped.sum() == 4
    labeled_only, _ = with_label_noise(rollout, ALL_WRONG)
    assert torch.equal((noisy.terminal != labeled_only.terminal), flipped & ~rollout.labeled)


def test_every_method_trains_on_the_flipped_label(tiny_cfg):
    """Routing routes and trains its gate by the reported label, filtering's reward takes its sign, naive's overseen
    penalty follows it, the oracle's reward too; a clean run of the same rollout sees the truth."""
    clean = hand_rollout()
    batches = {}
    for name in ("routing", "filtering", "naive", "oracle"):
        method = METHODS[name]
        noisy, _ = with_label_noise(clean, ALL_WRONG, method.reads_every_label)
        cfg = tiny_cfg(method=name, algo="reinforce")
        batches[name] = build_batch(clean, method, cfg), build_batch(noisy, method, cfg)
        rewards = training_rewards(noisy, method.reward_fn)[:, 0]
        assert torch.equal(rewards, training_rewards(clean, method.reward_fn)[:, 0]) == (name == "routing")

    truth, noisy = batches["routing"]
    assert (at(truth.labels, 0, 0), at(truth.labels, 0, 1), at(truth.labels, 1, 1)) == (
        Route.DIAMOND,
        Route.GHOST,
        Route.GHOST,
    )
    assert (at(noisy.labels, 0, 0), at(noisy.labels, 0, 1), at(noisy.labels, 1, 1)) == (
        Route.GHOST,
        Route.DIAMOND,
        Route.DIAMOND,
    )
    assert torch.equal(noisy.routes, noisy.labels)
    assert at(noisy.labels, 1, 2) == Route.BOTH  # the unlabeled Diamond stays unrouted

    for name in ("filtering", "naive", "oracle"):  # the return at the step of the labeled end is its reward
        truth, noisy = batches[name]
        assert (at(truth.returns, 0, 0), at(truth.returns, 1, 1)) == (1.0, -1.0), name
        assert (at(noisy.returns, 0, 0), at(noisy.returns, 1, 1)) == (-1.0, 1.0), name
    truth, noisy = batches["filtering"]
    assert torch.equal(noisy.weights, truth.weights)  # a wrong label is still a label: filtering keeps it
    truth, noisy = batches["naive"]
    assert at(noisy.returns, 2, 3) == at(truth.returns, 2, 3) == 1.0  # an unwatched Ghost pays naive, noise or not
    truth, noisy = batches["oracle"]
    assert (at(noisy.returns, 1, 2), at(noisy.returns, 2, 3)) == (-1.0, 1.0)


# ----- the draws -----------------------------------------------------------------------------------------------------


def test_draws_follow_each_agents_own_step_counter():
    """Agent k's draw at its step c depends on its seed and c alone: a window starting at step 8 draws what steps 8
    onwards of a longer window draw, and an agent's draws are the same beside any other agent."""
    keys = label_noise_keys([0, 5], 32, "cpu")
    long = wrong_labels(keys, torch.tensor([0, 0]), 24, 0.3)
    assert torch.equal(wrong_labels(keys, torch.tensor([8, 16]), 8, 0.3)[:, 0], long[8:16, 0])
    assert torch.equal(wrong_labels(keys, torch.tensor([8, 16]), 8, 0.3)[:, 1], long[16:24, 1])
    alone = wrong_labels(label_noise_keys([5], 32, "cpu"), torch.tensor([0]), 24, 0.3)
    assert torch.equal(alone[:, 0], long[:, 1])
    assert not torch.equal(long[:, 0], long[:, 1])
    assert not wrong_labels(keys, torch.tensor([0, 0]), 24, 0.0).any()


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5])
def test_the_flipped_fraction_is_the_noise_rate(rate):
    """Over about 20,000 labeled episode ends of each terminal the flipped fraction is within 4.5 binomial standard
    errors of the rate, for each terminal alike."""
    gen = torch.Generator().manual_seed(0)
    shape = (64, 2, 2048)
    dones = torch.rand(shape, generator=gen) < 0.3
    terminal = torch.randint(1, 3, shape, generator=gen, dtype=torch.int8)
    labeled = torch.rand(shape, generator=gen) < 0.5
    rollout = hand_rollout()._replace(dones=dones, terminal=terminal, labeled=labeled, ghost_overseen=labeled)
    wrong = wrong_labels(label_noise_keys([3, 4], shape[2], "cpu"), torch.tensor([0, 640]), shape[0], rate)
    _, flipped = with_label_noise(rollout, wrong)
    for which in (Terminal.DIAMOND, Terminal.GHOST):
        read = labels_read(rollout) & (terminal == which)
        n = read.sum().item()
        assert n > 15_000
        assert abs(flipped[read].float().mean().item() - rate) < 4.5 * math.sqrt(rate * (1 - rate) / n)


# ----- in training: the same wrong labels for every method -----------------------------------------------------------

NOISY = dict(label_noise=0.5, num_steps=16)


def first_update(trainer: Trainer) -> tuple[Rollout, Rollout, dict]:
    """The rollout collect returned in ``trainer``'s first update, the one build_batch received, and its metrics."""
    record, collect, build = {}, trainer_module.collect, trainer_module.build_batch

    def spy_collect(*args, **kwargs):
        record["raw"] = collect(*args, **kwargs)
        return record["raw"]

    def spy_build(rollout, *args, **kwargs):
        record["received"] = rollout
        return build(rollout, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer_module, "collect", spy_collect)
        patch.setattr(trainer_module, "build_batch", spy_build)
        metrics = trainer.train_step()
    return record["raw"][0], record["received"], metrics


@pytest.fixture(scope="module")
def first_updates(tmp_path_factory, tiny_cfg):
    """Per method: :func:`first_update` of its run with noise."""
    return {
        name: first_update(Trainer([tiny_cfg(method=name, **NOISY)], [tmp_path_factory.mktemp(name)], progress=False))
        for name in METHODS
    }


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_trains_on_its_streams_wrong_labels(first_updates, tiny_cfg, method):
    """What each method's update reads is the collected rollout with the labels its own stream (drawn here apart from
    the trainer) makes wrong: a method that skipped the noise, or drew it elsewhere, fails."""
    raw, received, metrics = first_updates[method]
    cfg = tiny_cfg(**NOISY)
    wrong = wrong_labels(label_noise_keys([cfg.seed], cfg.num_envs, "cpu"), torch.tensor([0]), cfg.num_steps, 0.5)
    expected, flipped = with_label_noise(raw, wrong, METHODS[method].reads_every_label)
    assert flipped.sum() >= 3
    assert torch.equal(received.terminal, expected.terminal)
    assert torch.equal(received.ghost_overseen, expected.ghost_overseen)
    assert not torch.equal(received.terminal, raw.terminal)
    read = labels_read(raw, METHODS[method].reads_every_label)
    assert metrics["rollout/flipped_labels"].item() == pytest.approx(flipped.sum().item() / read.sum().item())


@pytest.mark.parametrize("group", [("naive", "naive_early_stop", "filtering"), ("routing", "no_routing")])
def test_methods_with_one_first_rollout_get_the_same_wrong_labels(first_updates, group):
    """Methods that start from the same policy collect the same first rollout: their reported labels, and the
    fraction flipped in train.csv, are the same, and not zero."""
    first = first_updates[group[0]]
    assert first[2]["rollout/flipped_labels"].item() > 0
    for name in group[1:]:
        raw, received, metrics = first_updates[name]
        assert torch.equal(raw.terminal, first[0].terminal)
        assert torch.equal(received.terminal, first[1].terminal)
        assert torch.equal(received.ghost_overseen, first[1].ghost_overseen)
        assert metrics["rollout/flipped_labels"].item() == first[2]["rollout/flipped_labels"].item()


def wrong_and_flipped(cfgs, tmp_path, monkeypatch, updates: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(wrong, flipped)`` ``(T, S, N)`` of each of ``updates`` updates of the population ``cfgs``."""
    trainer = Trainer(cfgs, [tmp_path / f"run{k}" for k in range(len(cfgs))], progress=False)
    seen, original = [], trainer_module.with_label_noise

    def spy(rollout, wrong, every_episode=False):
        noisy, flipped = original(rollout, wrong, every_episode)
        seen.append((wrong, flipped))
        return noisy, flipped

    monkeypatch.setattr(trainer_module, "with_label_noise", spy)
    for _ in range(updates):
        trainer.train_step()
        for agent in trainer.agents:
            agent.update += 1
    monkeypatch.undo()
    return seen


def test_agents_of_a_population_draw_their_own_wrong_labels(tiny_cfg, tmp_path, monkeypatch, float64):
    """Agent k's wrong labels in a population are those of its run alone, update by update, and two agents' differ."""
    cfgs = [tiny_cfg(seed=s, oversight=p, **NOISY) for s, p in ((0, 0.5), (1, 0.3))]
    together = wrong_and_flipped(cfgs, tmp_path / "together", monkeypatch)
    for k, cfg in enumerate(cfgs):
        alone = wrong_and_flipped([cfg], tmp_path / f"alone{k}", monkeypatch)
        for (wrong, flipped), (wrong_alone, flipped_alone) in zip(together, alone, strict=True):
            assert torch.equal(wrong[:, k], wrong_alone[:, 0])
            assert torch.equal(flipped[:, k], flipped_alone[:, 0])
    assert all(not torch.equal(wrong[:, 0], wrong[:, 1]) for wrong, _ in together)
    assert sum(flipped[:, k].sum().item() for _, flipped in together for k in (0, 1)) > 0


# ----- the truth untouched -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["routing", "naive_early_stop", "oracle"])
def test_evaluation_reads_the_truth_whatever_the_noise(tiny_cfg, tmp_path, method):
    """Update 0's evaluation (the same initial policy) is the same with and without noise; training is not."""
    for name, noise in (("clean", 0.0), ("noisy", 0.3)):
        train(tiny_cfg(method=method, label_noise=noise), tmp_path / name, progress=False)
    clean, noisy = (read_csv(tmp_path / name / EVAL_CSV) for name in ("clean", "noisy"))
    first = lambda rows: untimed([r for r in rows if r["update"] == 0])  # noqa: E731
    assert first(clean) and first(clean) == first(noisy)
    clean_train, noisy_train = (read_csv(tmp_path / name / TRAIN_CSV) for name in ("clean", "noisy"))
    assert untimed(clean_train) != untimed(noisy_train)
    assert all(r["rollout/flipped_labels"] in (0.0, None) for r in untimed(clean_train))
    assert any(r["rollout/flipped_labels"] for r in untimed(noisy_train))


def test_reported_records_change_the_overseen_signal_only(tiny_cfg, tmp_path):
    """The overseer's report of a validation window flips labeled ends where its labels are wrong: verified_return
    reads it, every true metric of the records themselves is unchanged."""
    trainer = Trainer([tiny_cfg(method="naive_early_stop", label_noise=0.5)], [tmp_path], progress=False)
    records = {n: r[:, 0] for n, r in trainer._play([0], "trained", trainer_module.VALIDATION_SEED_OFFSET).items()}
    wrong = trainer._wrong_validation_labels([0], records["dones"].shape[0])[:, 0]
    overseen = reported(records, wrong)
    flipped = wrong & records["dones"] & records["labeled"]
    assert flipped.sum() >= 3
    assert np.array_equal(overseen["true_reward"][flipped], -records["true_reward"][flipped])
    assert np.array_equal(overseen["true_reward"][~flipped], records["true_reward"][~flipped])
    assert verified_return(overseen) != verified_return(records)
    assert verified_return(reported(records, np.zeros_like(wrong))) == summarize(records, 0.97)["verified_return"]


@pytest.mark.parametrize(("signal", "changes"), [("overseen", True), ("oracle", False)])
def test_early_stopping_reads_the_noisy_overseen_signal(tiny_cfg, tmp_path, signal, changes):
    """Early stopping's overseen signal carries the label noise; its oracle signal, the truth, does not."""
    best = {}
    for noise in (0.0, 0.5):
        cfg = tiny_cfg(method="naive_early_stop", early_stop_signal=signal, label_noise=noise)
        trainer = Trainer([cfg], [tmp_path / str(noise)], progress=False)
        trainer.evaluate([0])
        best[noise] = trainer.agents[0].best["signal"]
    assert (best[0.0] != best[0.5]) == changes


# ----- no noise: the run of the code without the setting -------------------------------------------------------------


@pytest.mark.parametrize("method", list(METHODS))
def test_no_noise_computes_what_the_code_without_the_setting_did(tiny_cfg, tmp_path, monkeypatch, method):
    """--label-noise 0 writes, bit for bit, what a run without the label-noise step writes."""
    cfg = tiny_cfg(method=method, label_noise=0.0)
    train(cfg, tmp_path / "zero", progress=False)
    monkeypatch.setattr(trainer_module, "with_label_noise", lambda rollout, *_: (rollout, rollout.dones & False))
    monkeypatch.setattr(trainer_module, "reported", lambda records, wrong: records)
    train(dataclasses.replace(cfg, label_noise=TrainConfig().label_noise), tmp_path / "without", progress=False)
    for name in (TRAIN_CSV, EVAL_CSV):
        zero, without = (read_csv(tmp_path / run / name) for run in ("zero", "without"))
        assert untimed(zero) == untimed(without), name
    zero, without = (json.loads((tmp_path / run / SUMMARY).read_text()) for run in ("zero", "without"))
    assert zero.get("early_stopping") == without.get("early_stopping")


def test_runs_recorded_before_the_setting_read_as_noiseless():
    saved = {k: v for k, v in dataclasses.asdict(TrainConfig()).items() if k != "label_noise"}
    assert TrainConfig.from_saved(saved).label_noise == 0.0
    assert "label_noise" not in TrainConfig.missing_settings(saved)


# ----- bad values ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0.6", "-0.1", "nan"])
def test_a_bad_noise_rate_is_one_line_and_writes_nothing(tmp_path, capsys, value):
    out = tmp_path / "out"
    assert load_script("train_policy").main(["--label-noise", value, "--out", str(out)]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "--label-noise" in lines[0], lines
    assert "[0, 0.5]" in lines[0] or "finite" in lines[0], lines
    assert not out.exists() or not any(out.iterdir())


def test_sb3_refuses_label_noise_with_one_line(tmp_path, capsys):
    out = tmp_path / "out"
    assert load_script("train_policy").main(["--trainer", "sb3", "--label-noise", "0.1", "--out", str(out)]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "--trainer sb3" in lines[0] and "--label-noise" in lines[0], lines
    assert not out.exists() or not any(out.iterdir())
    TrainConfig(trainer="sb3", label_noise=0.0).validate()  # no noise: sb3 trains as before


# ----- resumption ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "algo"), [("routing", "ppo"), ("naive_early_stop", "reinforce")])
def test_a_noisy_run_resumes_exactly(tiny_cfg, tmp_path, interrupt_after_first_checkpoint, method, algo):
    cfg = tiny_cfg(method=method, algo=algo, label_noise=0.3)
    full = train(cfg, tmp_path / "a", progress=False)
    interrupt_after_first_checkpoint(cfg, tmp_path / "b")
    assert not (tmp_path / "b" / SUMMARY).exists()
    resumed = resume(tmp_path / "b", progress=False)
    for name in (TRAIN_CSV, EVAL_CSV):
        a, b = (read_csv(tmp_path / run / name) for run in "ab")
        assert untimed(b) == untimed(a), name
    assert any(row["rollout/flipped_labels"] for row in untimed(read_csv(tmp_path / "a" / TRAIN_CSV)))
    for key in ("updates", "env_steps", "deployed", "early_stopping"):
        assert resumed.get(key) == full.get(key), key
