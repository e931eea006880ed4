"""The loss settings are declared once, with LossCoefs: both trainers build the same coefficients from the same
TrainConfig, every setting reaches RoutedPPO, and a bad value's error names the setting and its allowed range."""

from __future__ import annotations

import dataclasses
import re

import pytest
from conftest import TINY

from oversight_rl.core.losses import LOSS_SETTINGS, ROUTED_ADVANTAGES, LossCoefs
from oversight_rl.core.methods import get_method
from oversight_rl.engine.config import PAPER, TrainConfig
from oversight_rl.engine.trainer import Trainer
from oversight_rl.sb3.routed_ppo import PPO_KEYWORDS, own_loss_defaults
from oversight_rl.sb3.train import make_model, make_train_env

SETTINGS = {
    "default": {},
    "naive": {"method": "naive"},  # no gate loss
    "constant_gate": {"method": "constant_gate"},
    "oracle-other-coefs": {
        "method": "oracle", "ent_coef": 0.05, "vf_coef": 0.25, "clip_coef": 0.1, "normalize_advantages": False
    },
    "routing-gate-0.3": {"method": "routing", "gate_coef": 0.3},
    **{f"filtering-{mode}": {"method": "filtering", "filtering": mode} for mode in ("tuned", "paper", "finished_only")},
    "paper-routing": {**PAPER, "algo": "ppo"},  # the paper's coefficients (SB3 trains PPO only)
    "paper-filtering": {**PAPER, "algo": "ppo", "method": "filtering"},
}  # fmt: skip


def native_coefs(cfg: TrainConfig, run_dir) -> LossCoefs:
    return Trainer([cfg], [run_dir], progress=False).coefs


def sb3_coefs(cfg: TrainConfig, run_dir) -> LossCoefs:
    model = make_model(cfg, get_method(cfg.method), make_train_env(cfg), run_dir)
    return model.loss_coefs(model.clip_range(1.0))  # PPO's clip at the start of training


@pytest.mark.parametrize("settings", SETTINGS.values(), ids=SETTINGS.keys())
def test_both_trainers_build_the_same_loss_coefs(tiny_cfg, tmp_path, settings):
    cfg = tiny_cfg(**{**settings, **TINY})  # the tiny budget over the paper's
    native = native_coefs(cfg, tmp_path / "native")
    assert sb3_coefs(dataclasses.replace(cfg, trainer="sb3"), tmp_path / "sb3") == native
    assert native.gate == (cfg.gate_coef if get_method(cfg.method).gate_loss else 0.0)
    assert native.mean_over_used == (cfg.filtering != "paper")
    assert (native.clip, native.ent, native.normalize_advantages) == (
        cfg.clip_coef,
        cfg.ent_coef,
        cfg.normalize_advantages,
    )


def test_reinforce_drops_only_the_clip(tiny_cfg, tmp_path):
    ppo = native_coefs(tiny_cfg(), tmp_path / "ppo")
    reinforce = native_coefs(tiny_cfg(algo="reinforce"), tmp_path / "reinforce")
    assert reinforce == dataclasses.replace(ppo, clip=None)


def test_every_loss_setting_is_a_flag_and_a_routed_ppo_keyword(tiny_cfg, tmp_path):
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    assert set(LOSS_SETTINGS) <= set(fields)  # a new coefficient needs its TrainConfig field (its --flag)
    assert set(own_loss_defaults()) == set(LOSS_SETTINGS) - set(PPO_KEYWORDS)
    assert own_loss_defaults() == {name: fields[name].default for name in own_loss_defaults()}
    cfg = tiny_cfg(ent_coef=0.03, vf_coef=0.4, gate_coef=0.2, normalize_advantages=False, filtering="paper")
    model = make_model(cfg, get_method(cfg.method), make_train_env(cfg), tmp_path)
    carried = model.loss_settings()
    carried["clip_coef"] = model.clip_range(1.0)  # PPO keeps its clip as a schedule
    assert carried == cfg.loss_settings()


def test_routed_ppo_keeps_its_loss_keywords_and_their_defaults(tiny_cfg):
    from oversight_rl.sb3 import RoutedPPO, make_batched_vec_env

    env = make_batched_vec_env("OversightRL/DiamondGhost-5x5-v0", 8, oversight=0.5)
    default = RoutedPPO("MoePolicy", env, n_steps=8, batch_size=32, policy_kwargs={"width": 8})
    assert (default.gate_coef, default.filtering) == (0.1, "tuned")
    assert (default.ent_coef, default.vf_coef, default.normalize_advantage) == (0.0, 0.5, True)  # PPO's own defaults
    model = RoutedPPO(
        "SingleExpertPolicy", env, method="filtering", filtering="paper", gate_coef=0.5, ent_coef=0.02, vf_coef=0.3,
        clip_range=0.1, normalize_advantage=False, routed_advantage="routed_no_baseline", n_steps=8, batch_size=32,
        policy_kwargs={"width": 8},
    )  # fmt: skip
    assert model.loss_coefs(0.1) == LossCoefs(
        clip=0.1,
        ent=0.02,
        vf=0.3,
        gate=0.0,
        normalize_advantages=False,
        mean_over_used=False,
        routed_advantage="routed_no_baseline",
    )  # filtering trains no gate
    assert default.routed_advantage == TrainConfig().routed_advantage


BAD = [
    ("clip_coef", 0.0, "> 0"),
    ("ent_coef", -0.01, ">= 0"),
    ("vf_coef", -1.0, ">= 0"),
    ("gate_coef", -0.1, ">= 0"),
    ("filtering", "everything", "one of tuned, paper, finished_only"),
    ("routed_advantage", "critic", f"one of {', '.join(ROUTED_ADVANTAGES)}"),
]


@pytest.mark.parametrize(("name", "value", "allowed"), BAD)
def test_a_bad_loss_setting_names_its_flag_and_range(name, value, allowed):
    flag = "--" + name.replace("_", "-")
    with pytest.raises(ValueError, match=f"^{flag} must be {re.escape(allowed)}, got {re.escape(repr(value))}$"):
        TrainConfig(**{name: value}).validate()


@pytest.mark.parametrize(("name", "value", "allowed"), [bad for bad in BAD if bad[0] not in PPO_KEYWORDS])
def test_routed_ppo_names_its_own_bad_loss_keyword_and_range(name, value, allowed):
    from oversight_rl.sb3 import RoutedPPO

    with pytest.raises(ValueError, match=f"^{name} must be {re.escape(allowed)}, got {re.escape(repr(value))}$"):
        RoutedPPO("MoePolicy", None, **{name: value})  # checked before the environment is looked at


def test_script_names_a_bad_loss_flag_in_one_line(capsys):
    from cli import load_script

    assert load_script("train_policy").main(["--gate-coef", "-0.5"]) == 2
    assert capsys.readouterr().err.strip() == "error: --gate-coef must be >= 0, got -0.5"
