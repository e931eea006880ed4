"""Populations: agents trained as one computation stay independent, agree with the same run trained alone, keep
their own budgets and early stopping, resume from their own checkpoints, and train on the on-device environment."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from oversight_rl.core.methods import METHODS
from oversight_rl.engine import population as population_module
from oversight_rl.engine import trainer as train_module
from oversight_rl.engine.config import TrainConfig
from oversight_rl.engine.launch import train_population
from oversight_rl.engine.trainer import Trainer
from oversight_rl.rundir.files import CHECKPOINT, EVAL_CSV, SUMMARY, TRAIN_CSV, read_csv

UPDATES = 3


def trainer_for(cfgs, tmp_path: Path) -> Trainer:
    return Trainer(cfgs, [tmp_path / f"run{k}" for k in range(len(cfgs))], progress=False)


def params_after_updates(cfgs, tmp_path: Path, updates: int = UPDATES) -> list[dict[str, torch.Tensor]]:
    """Every agent's parameters after ``updates`` updates of the population ``cfgs``."""
    trainer = trainer_for(cfgs, tmp_path)
    for _ in range(updates):
        trainer.train_step()
        for agent in trainer.agents:
            agent.update += 1
    return [trainer.population.agent_state(k) for k in range(trainer.size)]


def untimed(rows: list[dict]) -> list[dict]:
    """CSV rows without timing columns, NaN as None so that rows compare equal."""
    timing = ("wall_s", "time/env_steps_per_s")
    return [{k: None if v != v else v for k, v in row.items() if k not in timing} for row in rows]


def identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[name], b[name]) for name in a)


def others_unchanged(tiny_cfg, tmp_path: Path, method: str, algo: str, change: dict) -> bool:
    """Whether agents 0 and 2 end bit-identical when agent 1 of the population gets ``change``."""
    base = [tiny_cfg(method=method, algo=algo, seed=s, oversight=p) for s, p in ((0, 0.5), (1, 0.3), (2, 0.8))]
    changed = [base[0], dataclasses.replace(base[1], **change), base[2]]
    before = params_after_updates(base, tmp_path / "a")
    after = params_after_updates(changed, tmp_path / "b")
    assert not identical(before[1], after[1]), "the change must reach the changed agent"
    return identical(before[0], after[0]) and identical(before[2], after[2])


# ----- isolation ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ["ppo", "reinforce"])
@pytest.mark.parametrize("method", list(METHODS))
def test_changing_one_agent_leaves_every_other_agent_bit_identical(tiny_cfg, tmp_path, method, algo):
    assert others_unchanged(tiny_cfg, tmp_path / "seed", method, algo, {"seed": 7})
    assert others_unchanged(tiny_cfg, tmp_path / "oversight", method, algo, {"oversight": 0.05})


def global_clip(grads, max_norm):
    """Broken: one gradient-norm clip over every agent's parameters together."""
    norm = sum(g.pow(2).sum() for g in grads.values()).sqrt()
    for g in grads.values():
        g.mul_((max_norm / (norm + 1e-6)).clamp(max=1.0))
    return norm


def shared_adam_statistics(original):
    """Broken: Adam's second moments averaged over the agents after each step."""

    def step(self, grads, lr, active):
        original(self, grads, lr, active)
        for name, v in self.exp_avg_sq.items():
            self.exp_avg_sq[name] = v.mean(0, keepdim=True).expand_as(v).clone()

    return step


def advantages_normalized_across_agents(original):
    """Broken: advantages standardized over the whole population instead of per agent."""

    def optimize(self, batch, lr, active):
        adv = batch.advantages
        self.coefs = dataclasses.replace(self.coefs, normalize_advantages=False)
        return original(self, batch._replace(advantages=(adv - adv.mean()) / (adv.std() + 1e-8)), lr, active)

    return optimize


@pytest.mark.parametrize("broken", ["global_clip", "shared_adam_statistics", "advantages_normalized_across_agents"])
def test_the_isolation_check_catches_coupled_agents(tiny_cfg, tmp_path, monkeypatch, broken):
    if broken == "global_clip":
        monkeypatch.setattr(train_module, "clip_grad_norms", global_clip)
        cfg = {"max_grad_norm": 0.05}  # small enough that the clip binds
    elif broken == "shared_adam_statistics":
        monkeypatch.setattr(
            population_module.AgentAdam, "step", shared_adam_statistics(population_module.AgentAdam.step)
        )
        cfg = {}
    else:
        monkeypatch.setattr(Trainer, "_optimize", advantages_normalized_across_agents(Trainer._optimize))
        cfg = {}
    assert not others_unchanged(lambda **kw: tiny_cfg(**kw, **cfg), tmp_path, "routing", "ppo", {"seed": 7})


# ----- agreement with the run alone -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "algo"), [("routing", "ppo"), ("filtering", "reinforce"), ("oracle", "ppo")])
def test_an_agent_in_a_population_matches_its_run_alone_in_float64(tiny_cfg, tmp_path, float64, method, algo):
    """Equal to 1e-12 after five updates: a batched matrix product may sum in another order than a single one, so
    the last bits can differ (about 1e-16 per operation); a coupled or misrouted agent would differ at order 1e-3."""
    cfgs = [tiny_cfg(method=method, algo=algo, seed=s, oversight=p) for s, p in ((0, 0.5), (1, 0.3), (2, 0.8))]
    together = params_after_updates(cfgs, tmp_path / "together", updates=5)
    for k in (0, 2):
        alone = params_after_updates([cfgs[k]], tmp_path / f"alone{k}", updates=5)[0]
        for name, value in alone.items():
            assert value.dtype == torch.float64
            torch.testing.assert_close(together[k][name], value, rtol=0, atol=1e-12, msg=name)


def test_a_population_run_writes_what_each_run_alone_writes(tiny_cfg, tmp_path):
    """End to end in float32: evaluation curves of agents trained together equal those of the runs alone."""
    cfgs = [tiny_cfg(seed=0, oversight=0.5), tiny_cfg(seed=1, oversight=0.2)]
    train_population(cfgs, [tmp_path / "pop0", tmp_path / "pop1"], progress=False)
    for k, cfg in enumerate(cfgs):
        train_population([cfg], [tmp_path / f"alone{k}"], progress=False)
        together, alone = (read_csv(tmp_path / name / EVAL_CSV) for name in (f"pop{k}", f"alone{k}"))
        drop = lambda rows: [{c: v for c, v in r.items() if c != "wall_s"} for r in rows]  # noqa: E731
        for a, b in zip(drop(together), drop(alone), strict=True):
            assert a.keys() == b.keys()
            for column in a:
                if isinstance(a[column], float):
                    assert a[column] == pytest.approx(b[column], abs=2e-3, nan_ok=True), column
                else:
                    assert a[column] == b[column]


# ----- budgets, early stopping and resumption ---------------------------------------------------------------------


def test_oracle_agents_train_their_own_budgets(tiny_cfg, tmp_path):
    cfgs = [tiny_cfg(method="oracle", seed=0, oversight=p) for p in (0.25, 1.0, 0.0)]
    summaries = train_population(cfgs, [tmp_path / str(k) for k in range(3)], progress=False)
    assert [s["env_steps"] for s in summaries] == [512, 2048, 0]  # 0.25 and 1 x 2048 steps; nothing at oversight 0
    assert [len(read_csv(tmp_path / str(k) / TRAIN_CSV)) if k < 2 else 0 for k in range(3)] == [4, 16, 0]
    assert all((tmp_path / str(k) / SUMMARY).exists() and (tmp_path / str(k) / CHECKPOINT).exists() for k in range(3))


def test_early_stopping_is_per_agent(tiny_cfg, tmp_path):
    cfgs = [
        tiny_cfg(method="naive_early_stop", early_stop_signal="oracle", early_stop_patience=1, eval_every=128, seed=s)
        for s in range(3)
    ]
    summaries = train_population(cfgs, [tmp_path / str(k) for k in range(3)], progress=False)
    for k, summary in enumerate(summaries):
        alone = train_population([cfgs[k]], [tmp_path / f"alone{k}"], progress=False)[0]
        assert summary["updates"] == alone["updates"]
        assert summary["early_stopping"]["best_update"] == alone["early_stopping"]["best_update"]
    assert any(s["early_stopping"]["stopped_early"] for s in summaries)


def test_an_interrupted_population_resumes_from_its_agents_checkpoints(tiny_cfg, tmp_path, monkeypatch):
    cfgs = [tiny_cfg(seed=0, oversight=0.5), tiny_cfg(seed=1, oversight=0.2)]
    train_population(cfgs, [tmp_path / "full0", tmp_path / "full1"], progress=False)

    original = Trainer.train_step

    def interrupted(self):
        if self.agents[0].update >= self.agents[0].eval_interval + 2:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", interrupted)
    dirs = [tmp_path / "cut0", tmp_path / "cut1"]
    with pytest.raises(KeyboardInterrupt):
        train_population(cfgs, dirs, progress=False)
    monkeypatch.undo()
    assert all(torch.load(d / CHECKPOINT, weights_only=False)["counters"][0] == 8 for d in dirs)

    train_population(cfgs, dirs, resume=[True, True], progress=False)
    for k in range(2):
        for name in (TRAIN_CSV, EVAL_CSV):
            full, cut = (read_csv(tmp_path / f"{kind}{k}" / name) for kind in ("full", "cut"))
            assert untimed(cut) == untimed(full), (k, name)


def test_runs_of_different_settings_cannot_share_a_population(tiny_cfg, tmp_path):
    with pytest.raises(ValueError, match="differ only in seed and oversight"):
        trainer_for([tiny_cfg(), tiny_cfg(lr=0.01)], tmp_path)


# ----- the on-device environment ----------------------------------------------------------------------------------


def test_training_on_the_torch_environment_resumes_exactly(tiny_cfg, tmp_path, monkeypatch):
    cfg = tiny_cfg(env_backend="torch")
    train_population([cfg], [tmp_path / "full"], progress=False)
    assert json.loads((tmp_path / "full" / "config.json").read_text())["env_backend"] == "torch"

    original = Trainer.train_step

    def interrupted(self):
        if self.agents[0].update >= 10:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_population([cfg], [tmp_path / "cut"], progress=False)
    monkeypatch.undo()
    train_population([cfg], [tmp_path / "cut"], resume=[True], progress=False)
    for name in (TRAIN_CSV, EVAL_CSV):
        assert untimed(read_csv(tmp_path / "cut" / name)) == untimed(read_csv(tmp_path / "full" / name)), name


def test_auto_environment_is_numpy_on_the_cpu(tiny_cfg):
    assert train_module.env_backend(tiny_cfg()) == "numpy"
    assert train_module.env_backend(tiny_cfg(device="cuda")) == "torch"
    assert train_module.env_backend(tiny_cfg(env_backend="torch")) == "torch"


# ----- the per-agent optimizer pieces equal torch's single-agent ones ----------------------------------------------


def test_agent_adam_and_clip_match_torch_for_each_agent():
    torch.manual_seed(0)
    modules = [torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)) for _ in range(3)]
    population = population_module.Population(modules)
    adam = population_module.AgentAdam(population.params, eps=1e-5)
    references = [torch.optim.Adam(m.parameters(), lr=1.0, eps=1e-5) for m in modules]
    lrs = torch.tensor([1e-2, 3e-3, 1e-3])
    active = torch.tensor([True, True, False])
    for step in range(4):
        grads = {name: torch.randn_like(p) * (step + 1) for name, p in population.params.items()}
        per_agent = [{name: g[k].clone() for name, g in grads.items()} for k in range(3)]
        norms = population_module.clip_grad_norms(grads, max_norm=0.5)
        adam.step(grads, lrs, active)
        for k, (module, reference) in enumerate(zip(modules, references, strict=True)):
            for name, p in module.named_parameters():
                p.grad = per_agent[k][name]
            norm = torch.nn.utils.clip_grad_norm_(module.parameters(), 0.5)
            torch.testing.assert_close(norms[k], norm)
            reference.param_groups[0]["lr"] = float(lrs[k])
            if active[k]:
                reference.step()
            for name, p in module.named_parameters():
                torch.testing.assert_close(
                    population.params[name][k], p.detach(), rtol=1e-5, atol=1e-6
                )  # float32 rounding only


# ----- exact budgets ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("oversight", "total", "trained"),
    [(0.01, 2_000_000, 20_224), (0.1, 300_000, 30_208), (0.03, 2_000_000, 60_160), (0.0, 2_000_000, 0)],
)
def test_the_oracle_trains_its_budget_within_two_percent(oversight, total, trained):
    """256 environments: the last window takes what the budget has left, rounded up to whole steps of all of them."""
    cfg = dataclasses.replace(TrainConfig(), method="oracle", oversight=oversight, total_env_steps=total)
    budget = cfg.budget(True)
    assert cfg.trained_steps(True) == trained
    assert budget <= trained <= 1.02 * budget
    windows = [cfg.window_steps(u, True) for u in range(cfg.num_updates(True))]
    assert sum(windows) * cfg.num_envs == trained and all(w == cfg.num_steps for w in windows[:-1])


def test_a_shorter_last_window_is_trained_and_counted(tiny_cfg, tmp_path):
    """0.3 x 2048 = 614 steps: four windows of 16 x 8 and a last one of 7 steps (16 x 7 = 112), 624 in all."""
    cfgs = [tiny_cfg(method="oracle", oversight=0.3, seed=0), tiny_cfg(method="oracle", oversight=0.3, seed=1)]
    summaries = train_population(cfgs, [tmp_path / "a", tmp_path / "b"], progress=False)
    assert [s["env_steps"] for s in summaries] == [624, 624]
    rows = read_csv(tmp_path / "a" / TRAIN_CSV)
    assert [row["env_steps"] for row in rows] == [128, 256, 384, 512, 624]
    assert all(math.isfinite(row["losses/policy"]) for row in rows)
