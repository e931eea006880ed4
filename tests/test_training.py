"""Training end to end: every method writes a well-formed run directory, runs are deterministic and resumable,
policies load back, settings are validated, the script works, and routing learns to separate its experts."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import oversight_rl
from oversight_rl.core.methods import METHODS, build_policy
from oversight_rl.core.policies import EXPERTS, variant_policy
from oversight_rl.engine.config import TrainConfig
from oversight_rl.engine.evaluate import VALIDATION_SEED_OFFSET, evaluate, make_eval_env
from oversight_rl.engine.launch import resume, train, train_population
from oversight_rl.engine.trainer import Trainer
from oversight_rl.rundir.files import CHECKPOINT, CONFIG, EVAL_CSV, SUMMARY, TRAIN_CSV
from oversight_rl.rundir.metrics import METRICS

ROOT = Path(__file__).resolve().parents[1]
TIMING_COLUMNS = {"wall_s", "time/env_steps_per_s"}  # the only columns allowed to differ between identical runs


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def without_timing(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in rows]


def expected_variants(method: str) -> set[str]:
    m = METHODS[method]
    variants = {"trained", *EXPERTS} if m.policy == "moe" else {"trained"}
    return variants | {"best"} if m.early_stopping else variants


# ----------------------------------------------------------------------------------------------------------------
# Every method, both algorithms: a well-formed run directory
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ["ppo", "reinforce"])
@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_writes_a_well_formed_run_directory(tiny_cfg, tmp_path, method, algo):
    cfg = tiny_cfg(method=method, algo=algo)
    run_dir = tmp_path / "run"
    summary = train(cfg, run_dir, progress=False)

    config = json.loads((run_dir / CONFIG).read_text())
    resolved = dataclasses.replace(cfg, env_backend="numpy")  # auto resolves to numpy on the CPU
    for field in dataclasses.fields(TrainConfig):
        assert config[field.name] == getattr(resolved, field.name), field.name
    assert config["version"] == oversight_rl.__version__
    num_updates = config["num_updates"]
    steps_per_update = cfg.num_envs * cfg.num_steps
    assert num_updates == math.ceil(cfg.budget(METHODS[method].budget_scales_with_oversight) / steps_per_update)

    train_rows = read_rows(run_dir / TRAIN_CSV)
    assert [int(r["update"]) for r in train_rows] == list(range(1, num_updates + 1))
    assert [int(r["env_steps"]) for r in train_rows] == [u * steps_per_update for u in range(1, num_updates + 1)]
    for column in ("losses/policy", "losses/value", "losses/entropy", "losses/approx_kl"):
        assert all(math.isfinite(float(r[column])) for r in train_rows), column

    eval_rows = read_rows(run_dir / EVAL_CSV)
    assert {"update", "env_steps", "wall_s", "policy", *METRICS} <= set(eval_rows[0])
    variants = {r["policy"] for r in eval_rows}
    assert variants == expected_variants(method)
    evaluated_at = sorted({int(r["update"]) for r in eval_rows})
    assert evaluated_at[0] == 0 and evaluated_at[-1] == num_updates and len(evaluated_at) >= 2
    for update in evaluated_at:  # every variant at every evaluation
        assert {r["policy"] for r in eval_rows if int(r["update"]) == update} == variants
    for row in eval_rows:
        assert 0.0 <= float(row["diamond_rate"]) + float(row["ghost_rate"]) + float(row["timeout_rate"]) <= 1.0 + 1e-6

    on_disk = json.loads((run_dir / SUMMARY).read_text())
    assert on_disk["deployed"] == METHODS[method].deploy
    assert on_disk["deployed"] in variants
    assert set(on_disk["variants"]) == variants
    assert on_disk["updates"] == summary["updates"] == num_updates
    assert on_disk["env_steps"] == num_updates * steps_per_update

    state = torch.load(run_dir / CHECKPOINT, weights_only=False)
    assert state["counters"][0] == num_updates


def test_oracle_trains_for_oversight_times_the_budget(tiny_cfg, tmp_path):
    cfg = tiny_cfg(method="oracle", oversight=0.25, total_env_steps=4096)
    summary = train(cfg, tmp_path / "oracle", progress=False)
    config = json.loads((tmp_path / "oracle" / CONFIG).read_text())
    assert config["num_updates"] == 8  # 0.25 x 4096 / 128
    assert summary["env_steps"] == 1024
    # Evaluations are spaced on the scaled budget too, so the oracle is evaluated as often as the others.
    assert sorted({int(r["update"]) for r in read_rows(tmp_path / "oracle" / EVAL_CSV)}) == [0, 2, 4, 6, 8]

    naive = train(tiny_cfg(method="naive", oversight=0.25, total_env_steps=4096), tmp_path / "naive", progress=False)
    assert naive["env_steps"] == 4096


@pytest.mark.parametrize("signal", ["oracle", "overseen"])
def test_naive_early_stop_records_its_signal(tiny_cfg, tmp_path, signal):
    summary = train(tiny_cfg(method="naive_early_stop", early_stop_signal=signal), tmp_path, progress=False)
    early = summary["early_stopping"]
    assert early["signal"] == signal
    assert early["best_update"] in {0, 8, 16}
    assert math.isfinite(early["best_signal"])
    assert early["stopped_early"] is False
    assert summary["deployed"] == "best"
    on_disk = json.loads((tmp_path / SUMMARY).read_text())
    assert on_disk["early_stopping"]["signal"] == signal

    # The recorded signal is the best checkpoint's score on the validation episodes, by the metric the signal names.
    cfg = tiny_cfg(method="naive_early_stop", early_stop_signal=signal)
    best = oversight_rl.load_policy(tmp_path, "best").module
    env = make_eval_env(cfg.env, cfg.eval_envs, cfg.oversight)
    validation = evaluate(best, env, cfg.seed + VALIDATION_SEED_OFFSET, cfg.gamma)
    key = "true_return" if signal == "oracle" else "verified_return"
    assert early["best_signal"] == pytest.approx(validation[key], abs=1e-9)


def test_naive_early_stop_patience_stops_training(tiny_cfg, tmp_path):
    cfg = tiny_cfg(method="naive_early_stop", early_stop_signal="oracle", early_stop_patience=1, eval_every=128)
    summary = train(cfg, tmp_path, progress=False)
    assert summary["early_stopping"]["stopped_early"] is True
    assert summary["updates"] < 16


def test_methods_without_early_stopping_record_none(tiny_cfg, tmp_path):
    assert "early_stopping" not in train(tiny_cfg(method="naive"), tmp_path, progress=False)


def test_tensorboard_logs_training_and_evaluation_scalars(tiny_cfg, tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    train(tiny_cfg(tensorboard=True), tmp_path, progress=False)
    events = event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"losses/policy", "losses/gate", "eval/diamond/true_return", "eval/trained/gate_auroc"} <= tags
    assert [event.step for event in events.Scalars("eval/diamond/true_return")] == [0, 1024, 2048]


# ----------------------------------------------------------------------------------------------------------------
# Determinism and resumption
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "algo"), [("routing", "ppo"), ("filtering", "reinforce")])
def test_same_seed_same_run_different_seed_different_run(tiny_cfg, tmp_path, method, algo):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        train(tiny_cfg(method=method, algo=algo, seed=seed), tmp_path / name, progress=False)
    a, b, c = (without_timing(read_rows(tmp_path / name / EVAL_CSV)) for name in "abc")
    assert a == b
    assert a != c
    a_train, b_train = (without_timing(read_rows(tmp_path / name / TRAIN_CSV)) for name in "ab")
    assert a_train == b_train


@pytest.mark.parametrize(
    ("method", "algo"), [("routing", "ppo"), ("naive_early_stop", "reinforce"), ("filtering", "ppo")]
)
def test_resume_after_interruption_reproduces_the_uninterrupted_run(
    tiny_cfg, tmp_path, interrupt_after_first_checkpoint, method, algo
):
    cfg = tiny_cfg(method=method, algo=algo)
    full = train(cfg, tmp_path / "a", progress=False)

    # Interrupt two updates after the first checkpoint (update 8): the progress since the checkpoint is lost.
    interrupt_after_first_checkpoint(cfg, tmp_path / "b")
    assert not (tmp_path / "b" / SUMMARY).exists()
    assert torch.load(tmp_path / "b" / CHECKPOINT, weights_only=False)["counters"][0] == 8

    resumed = resume(tmp_path / "b", progress=False)
    a_eval, b_eval = (read_rows(tmp_path / name / EVAL_CSV) for name in "ab")
    assert without_timing(b_eval) == without_timing(a_eval)
    a_train, b_train = (read_rows(tmp_path / name / TRAIN_CSV) for name in "ab")
    assert without_timing(b_train) == without_timing(a_train)
    for key in ("updates", "env_steps", "deployed", "early_stopping"):
        assert resumed.get(key) == full.get(key), key


def test_resume_without_checkpoint_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        resume(tmp_path)


# ----------------------------------------------------------------------------------------------------------------
# load_policy
# ----------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainedRun:
    """A finished run: its directory, final policy and early-stopping record, as the trainer held them."""

    cfg: TrainConfig
    run_dir: Path
    policy: torch.nn.Module
    best: dict


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_cfg):
    """Routing, naive and naive_early_stop runs as they were in memory at the end of training."""
    out = {}
    for method in ("routing", "naive", "naive_early_stop"):
        cfg = tiny_cfg(method=method)
        trainer = Trainer([cfg], [tmp_path_factory.mktemp(method)], progress=False)
        trainer.start(0)
        trainer.run()
        agent = trainer.agents[0]
        policy = trainer.population.agent_module(0, build_policy(cfg, METHODS[method], trainer.envs.obs_shape))
        out[method] = TrainedRun(cfg, agent.run_dir, policy, agent.best)
    return out


def in_memory_probs(module, obs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(module(torch.from_numpy(obs)), -1).numpy()


@pytest.mark.parametrize(
    ("variant", "in_memory"),
    [("deployed", "diamond"), ("trained", "trained"), ("diamond", "diamond"), ("ghost", "ghost")],
)
def test_load_policy_round_trips_mixture_variants(trained, observations, variant, in_memory):
    trainer = trained["routing"]
    obs = observations(20, seed=3)
    loaded = oversight_rl.load_policy(trainer.run_dir, variant)
    assert loaded.variant == in_memory
    probs = loaded.action_probs(obs)
    assert probs.shape == (20, 4)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    expected = in_memory_probs(variant_policy(trainer.policy, in_memory), obs)
    assert torch.allclose(torch.from_numpy(probs), torch.from_numpy(expected), atol=1e-6)

    actions = loaded.act(obs, rng=np.random.default_rng(0))
    assert actions.shape == (20,) and actions.min() >= 0 and actions.max() <= 3
    np.testing.assert_array_equal(loaded.act(obs, greedy=True), expected.argmax(1))
    np.testing.assert_array_equal(actions, loaded.act(obs, rng=np.random.default_rng(0)))


def test_load_policy_variants_differ(trained, observations):
    obs = observations(20, seed=3)
    run_dir = trained["routing"].run_dir
    probs = {v: oversight_rl.load_policy(run_dir, v).action_probs(obs) for v in ("trained", "diamond", "ghost")}
    assert not np.allclose(probs["diamond"], probs["ghost"])
    assert not np.allclose(probs["trained"], probs["diamond"])


def test_load_policy_best_checkpoint(trained, observations):
    trainer = trained["naive_early_stop"]
    obs = observations(20, seed=3)
    reference = build_policy(trainer.cfg, METHODS[trainer.cfg.method], (4, 5, 5))
    reference.load_state_dict(trainer.best["state"])
    for variant in ("deployed", "best"):
        loaded = oversight_rl.load_policy(trainer.run_dir, variant)
        np.testing.assert_allclose(loaded.action_probs(obs), in_memory_probs(reference, obs), atol=1e-6)
    trained_now = oversight_rl.load_policy(trainer.run_dir, "trained").action_probs(obs)
    np.testing.assert_allclose(trained_now, in_memory_probs(trainer.policy, obs), atol=1e-6)


def test_load_policy_single_expert_run(trained, observations):
    run_dir = trained["naive"].run_dir
    obs = observations(20, seed=3)
    np.testing.assert_allclose(
        oversight_rl.load_policy(run_dir).action_probs(obs), in_memory_probs(trained["naive"].policy, obs), atol=1e-6
    )
    for variant in ("diamond", "ghost"):
        with pytest.raises(ValueError, match="variants"):
            oversight_rl.load_policy(run_dir, variant)
    with pytest.raises(ValueError, match="best"):
        oversight_rl.load_policy(run_dir, "best")


def test_load_policy_rejects_bad_variant_and_missing_run(trained, tmp_path):
    with pytest.raises(ValueError, match="variant must be one of"):
        oversight_rl.load_policy(trained["routing"].run_dir, "bogus")
    with pytest.raises(FileNotFoundError):
        oversight_rl.load_policy(tmp_path)


# ----------------------------------------------------------------------------------------------------------------
# Settings validation and the command line
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("oversight", 1.5, "--oversight"),
        ("oversight", -0.1, "--oversight"),
        ("num_envs", 0, "--num-envs"),
        ("lr", 0.0, "--lr"),
        ("method", "bogus", "--method"),
        ("gamma", 2.0, "--gamma"),
        ("num_minibatches", 10**6, "--num-minibatches"),
        ("device", "tpu", "--device"),
        ("expert_heads", "both", "--expert-heads"),
        ("filtering", "all", "--filtering"),
    ],
)
def test_config_validation_names_the_flag(field, value, flag):
    cfg = dataclasses.replace(TrainConfig(), **{field: value})
    with pytest.raises(ValueError, match=f"^{flag} must be"):
        cfg.validate()


def test_default_and_paper_configs_are_valid():
    from oversight_rl.engine.config import PRESETS

    for preset in PRESETS.values():
        preset.validate()


def test_trainer_validates_before_doing_anything(tmp_path):
    with pytest.raises(ValueError, match="--oversight"):
        train(TrainConfig(oversight=1.5), tmp_path / "never", progress=False)
    assert not (tmp_path / "never").exists()


def run_script(*args: str) -> subprocess.CompletedProcess:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)  # this checkout's package
    env = {**os.environ, "PYTHONPATH": path, "COLUMNS": "200", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_policy.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )


def test_script_rejects_bad_flag_with_one_line():
    result = run_script("--oversight", "1.5")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "--oversight" in lines[0] and "[0, 1]" in lines[0] and "1.5" in lines[0]


def test_script_trains_prints_a_table_and_plots(tmp_path):
    result = run_script(
        "--total-env-steps", "4096", "--num-envs", "16", "--eval-envs", "16", "--eval-every", "2048",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (run_dir,) = tmp_path.iterdir()
    assert run_dir.name.startswith("routing-p0.1-s0-")
    assert (run_dir / "learning_curve.png").stat().st_size > 0
    for name in (CONFIG, TRAIN_CSV, EVAL_CSV, SUMMARY, CHECKPOINT):
        assert (run_dir / name).exists(), name
    assert "true_return" in result.stdout and "hacking_gap" in result.stdout
    for variant in ("trained", "diamond", "ghost"):
        assert any(line.startswith(variant) for line in result.stdout.splitlines()), variant
    assert "learning_curve.png" in result.stdout


def test_script_paper_preset_help_shows_paper_defaults():
    result = run_script("--preset", "paper", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # undo the help's line wrapping
    assert "(default: 5e-05)" in text
    assert "(default: reinforce)" in text
    assert "(default: 256)" in text
    default = " ".join(run_script("--help").stdout.split())
    assert "(default: 0.001)" in default and "(default: ppo)" in default


# ----------------------------------------------------------------------------------------------------------------
# Learning
# ----------------------------------------------------------------------------------------------------------------


def final_metrics(run_dir: Path) -> dict[str, dict[str, float]]:
    rows = read_rows(run_dir / EVAL_CSV)
    last = max(int(r["update"]) for r in rows)
    return {r["policy"]: {k: float(v) for k, v in r.items() if k != "policy"} for r in rows if int(r["update"]) == last}


@pytest.mark.slow
def test_routing_separates_the_experts(tmp_path):
    """Routing at 50% oversight with the default PPO settings, 600k env steps per run, seeds 0-2 as one population
    (about a minute on one core). Measured per seed (0-9 for routing, 0-4 for no_routing):

      routing     Diamond-expert minus Ghost-expert diamond_rate  0.57 0.72 0.70 0.54 0.59 0.74 0.77 0.61 0.68 0.78
                  Ghost expert diamond_rate                       0.11 0.17 0.12 0.11 0.11 0.15 0.10 0.27 0.21 0.10
                  Diamond expert true_return                      0.18 0.76 0.38 0.15 0.19 0.77 0.57 0.75 0.76 0.66
      no_routing  margin                                          0.33 0.45 0.41 0.33 0.38
      (the gate still learns from labels, but the experts get every sample)
                  Ghost expert diamond_rate                       0.15 0.18 0.35 0.45 0.29
                  Diamond expert true_return                      0.04 0.20 0.36 0.50 0.26

    The Diamond expert's return varies widely between seeds (early symmetry breaking), so the test asserts means over
    three seeds: the margin threshold sits below every routing seed and above every no_routing seed.
    """
    cfgs = [
        TrainConfig(method="routing", oversight=0.5, total_env_steps=600_000, eval_every=600_000, seed=seed)
        for seed in range(3)
    ]
    train_population(cfgs, [tmp_path / str(seed) for seed in range(3)], progress=False)
    finals = [final_metrics(tmp_path / str(seed)) for seed in range(3)]
    mean = lambda variant, metric: float(np.mean([f[variant][metric] for f in finals]))  # noqa: E731
    assert mean("diamond", "diamond_rate") - mean("ghost", "diamond_rate") > 0.5
    assert mean("ghost", "diamond_rate") < 0.25  # the Ghost expert is Ghost-bound, not a weaker copy of the Diamond one
    assert mean("diamond", "true_return") > 0.2


def test_env_kwargs_reach_the_training_and_evaluation_environments(tiny_cfg, tmp_path):
    short = train(tiny_cfg(env_kwargs='{"max_steps": 3}'), tmp_path / "short", progress=False)
    normal = train(tiny_cfg(), tmp_path / "normal", progress=False)
    # Three moves rarely reach a terminal on a 5x5 grid: most evaluation episodes time out (measured: 1.0 and 0.26).
    assert short["variants"]["trained"]["final"]["timeout_rate"] > 0.6
    assert normal["variants"]["trained"]["final"]["timeout_rate"] < 0.45
    episodes = [row["rollout/episodes"] for row in read_rows(tmp_path / "short" / TRAIN_CSV)]
    assert all(float(n) >= 16 * 8 / 3 - 16 for n in episodes)  # every env ends an episode at least each 3 steps


@pytest.mark.parametrize(
    ("env_kwargs", "message"),
    [("{", "must be a JSON object"), ("[1]", "must be a JSON object"), ('{"oversight": 0.5}', "may not set oversight")],
)
def test_bad_env_kwargs_name_the_flag(env_kwargs, message):
    with pytest.raises(ValueError, match=f"^--env-kwargs {message}"):
        TrainConfig(env_kwargs=env_kwargs).validate()


def test_exp_name_prefixes_the_run_directory(tmp_path):
    from cli import load_script

    flags = ["--total-env-steps", "256", "--num-envs", "16", "--num-steps", "8", "--eval-envs", "16", "--width", "16"]
    assert load_script("train_policy").main([*flags, "--exp-name", "lr-sweep", "--out", str(tmp_path)]) == 0
    (run_dir,) = tmp_path.iterdir()
    assert run_dir.name.startswith("lr-sweep-routing-p0.1-s0-")
    assert "exp_name" not in json.loads((run_dir / CONFIG).read_text())  # a name, not a setting of the run
