"""The authors' networks and optimizer as settings: the linear critic, the paper's gate, zero biases and Adam's
epsilon each build what they say, their defaults build today's policy and train the same run, ``--preset paper`` sets
them, both trainers honour them, and a population with them keeps its agents apart."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from cli import load_script
from conftest import TINY
from test_population import others_unchanged, untimed
from torch import nn

from oversight_rl.core.losses import Batch, LossCoefs, policy_gradient_loss
from oversight_rl.core.methods import METHODS, build_policy, get_method
from oversight_rl.core.policies import mlp
from oversight_rl.engine.config import ADDED_SETTINGS, PAPER, TrainConfig, preset_config
from oversight_rl.engine.launch import train
from oversight_rl.engine.trainer import Trainer
from oversight_rl.rundir.files import CONFIG, TRAIN_CSV, read_csv
from oversight_rl.study import reproduce

OBS_SHAPE = (4, 5, 5)
OBS_DIM = 4 * 5 * 5
PAPER_NETWORKS = {"critic": "linear", "gate_net": "paper", "zero_bias": True, "adam_eps": 1e-8}
DEFAULT_NETWORKS = {"critic": "mlp", "gate_net": "mlp", "zero_bias": False, "adam_eps": 1e-5}
ROOT = Path(__file__).resolve().parents[1]


def policy_of(method: str = "routing", seed: int = 0, **settings) -> nn.Module:
    torch.manual_seed(seed)
    return build_policy(TrainConfig(**{"width": 16, **settings}), METHODS[method], OBS_SHAPE)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def affine_gap(value, x: torch.Tensor, y: torch.Tensor, a: float) -> float:
    """``|V(a x + (1-a) y) - (a V(x) + (1-a) V(y))|``, largest over the batch: zero for an affine ``V``."""
    with torch.no_grad():
        return float((value(a * x + (1 - a) * y) - (a * value(x) + (1 - a) * value(y))).abs().max())


# ----- each setting builds what it says -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["routing", "naive"])
def test_the_linear_critic_has_the_authors_layers(method):
    critic = policy_of(method, critic="linear").critic
    convolution = 4 * 16 + 16  # 1x1, 4 channels to 16
    layers = (16 * 25 * 256 + 256) + (256 * 32 + 32) + (32 * 1 + 1)
    assert parameter_count(critic) == convolution + layers
    assert [type(m) for m in critic] == [nn.Unflatten, nn.Conv2d, nn.Flatten, nn.Linear, nn.Linear, nn.Linear]
    assert (critic[1].in_channels, critic[1].out_channels, critic[1].kernel_size) == (4, 16, (1, 1))
    assert [(m.in_features, m.out_features) for m in critic[3:]] == [(400, 256), (256, 32), (32, 1)]
    assert parameter_count(policy_of(method, critic="linear", width=64).critic) == convolution + layers  # not width's


@pytest.mark.parametrize("zero_bias", [False, True])
def test_the_linear_critic_is_exactly_affine_in_the_observation(observations, zero_bias):
    """``V(a x + (1-a) y) = a V(x) + (1-a) V(y)`` for any ``a``, in float64: no nonlinearity anywhere. The MLP critic
    fails the same check, so the check can tell."""
    x = torch.from_numpy(observations(16, seed=1)).double()
    y = torch.from_numpy(observations(16, seed=2)).double()
    linear = policy_of(critic="linear", zero_bias=zero_bias).double()
    for a in (0.3, 2.0, -1.5):
        assert affine_gap(linear.value, x, y, a) < 1e-12
    assert affine_gap(policy_of(critic="mlp").double().value, x, y, 2.0) > 1e-3


def test_the_paper_gate_is_a_convolution_then_two_hidden_layers():
    gate = policy_of(gate_net="paper", width=32).gate_net
    assert [type(m) for m in gate] == [nn.Unflatten, nn.Conv2d, nn.Flatten, nn.Sequential, nn.Linear]
    assert (gate[1].in_channels, gate[1].out_channels, gate[1].kernel_size) == (4, 4, (1, 1))
    hidden = gate[3]
    assert [type(m) for m in hidden] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU]
    assert [(m.in_features, m.out_features) for m in (hidden[0], hidden[2], gate[4])] == [(100, 32), (32, 32), (32, 1)]
    assert parameter_count(gate) == (4 * 4 + 4) + (100 * 32 + 32) + (32 * 32 + 32) + (32 + 1)
    assert policy_of("constant_gate", gate_net="paper").gate_net is None  # a constant gate has no network
    assert not hasattr(policy_of("naive", gate_net="paper"), "gate_net")  # a single expert has no gate


@pytest.mark.parametrize("method", ["routing", "naive"])
@pytest.mark.parametrize("critic", ["mlp", "linear"])
def test_zero_bias_zeroes_every_bias_and_keeps_every_weight(method, critic):
    policy = policy_of(method, critic=critic, gate_net="paper", zero_bias=True)
    zeroed, drawn = policy.state_dict(), policy_of(method, critic=critic, gate_net="paper").state_dict()
    biases = [name for name in zeroed if name.endswith("bias")]
    layers = [name for name, m in policy.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert biases == [f"{name}.bias" for name in layers]  # every layer has one
    for name, value in zeroed.items():
        if name in biases:
            assert not value.any(), name
            assert drawn[name].any(), name  # PyTorch's default is not zero
        else:
            assert torch.equal(value, drawn[name]), name  # zeroing draws no random numbers


def adam_update(eps: float, grad: torch.Tensor) -> torch.Tensor:
    """Torch's Adam's first step on a parameter of zeros with gradient ``grad``, at lr 1."""
    parameter = torch.zeros_like(grad, requires_grad=True)
    parameter.grad = grad.clone()
    torch.optim.Adam([parameter], lr=1.0, eps=eps).step()
    return parameter.detach()


@pytest.mark.parametrize("eps", [1e-8, 1e-5, 1e-3])
def test_adam_eps_reaches_the_native_trainers_update(tiny_cfg, tmp_path, eps):
    trainer = Trainer([tiny_cfg(adam_eps=eps)], [tmp_path / "run"], progress=False)
    params = trainer.population.params
    grad = {name: torch.full_like(p, 1e-5) for name, p in params.items()}  # |g| ~ eps: eps shapes the step
    before = {name: p.detach().clone() for name, p in params.items()}
    trainer.optimizer.step(grad, torch.ones(1), torch.tensor([True]))
    for name, p in params.items():
        step = p.detach() - before[name]
        torch.testing.assert_close(step, adam_update(eps, grad[name]), rtol=1e-5, atol=0)
    assert float(step.flatten()[0]) == pytest.approx(-1e-5 / (1e-5 + eps), rel=1e-5)


@pytest.mark.parametrize("eps", [1e-8, 1e-5])
def test_adam_eps_reaches_routed_ppo(tiny_cfg, tmp_path, eps):
    from oversight_rl.sb3.train import make_model, make_train_env

    cfg = tiny_cfg(trainer="sb3", adam_eps=eps)
    model = make_model(cfg, get_method(cfg.method), make_train_env(cfg), tmp_path)
    assert [group["eps"] for group in model.policy.optimizer.param_groups] == [eps]


def test_routed_ppo_builds_the_native_trainers_networks(tiny_cfg, tmp_path):
    from oversight_rl.sb3.train import make_model, make_train_env

    for method in ("routing", "filtering"):
        cfg = tiny_cfg(trainer="sb3", method=method, **PAPER_NETWORKS)
        model = make_model(cfg, get_method(cfg.method), make_train_env(cfg), tmp_path / method)
        native = build_policy(cfg, get_method(method), OBS_SHAPE).state_dict()
        sb3 = model.policy.module.state_dict()
        assert {k: v.shape for k, v in sb3.items()} == {k: v.shape for k, v in native.items()}, method
        assert not any(v.any() for k, v in sb3.items() if k.endswith("bias")), method
        assert model.policy._get_constructor_parameters()["critic"] == "linear"  # saved with the model


# ----- the defaults build and train what the code did before ----------------------------------------------------------


def policy_as_before(method: str, seed: int, width: int = 16, depth: int = 2) -> dict[str, torch.Tensor]:
    """The policy the code built before these settings, layer by layer in its order of construction."""
    torch.manual_seed(seed)
    layers = {"critic": nn.Sequential(mlp(OBS_DIM, width, depth), nn.Linear(width, 1)), "head": nn.Linear(width, 4)}
    if METHODS[method].policy == "single":
        layers["body"] = mlp(OBS_DIM, width, depth)
    else:
        layers |= {"diamond": mlp(OBS_DIM, width, depth), "ghost": mlp(OBS_DIM, width, depth)}
        if METHODS[method].constant_gate is None:
            layers["gate_net"] = nn.Sequential(mlp(OBS_DIM, width, 1), nn.Linear(width, 1))
    return nn.ModuleDict(layers).state_dict()


@pytest.mark.parametrize("method", ["routing", "constant_gate", "naive"])
def test_the_defaults_build_todays_policy_exactly(method):
    before = policy_as_before(method, seed=3)
    for settings in ({}, {k: v for k, v in DEFAULT_NETWORKS.items() if k != "adam_eps"}):
        now = policy_of(method, seed=3, **settings).state_dict()
        assert list(now) == list(before)
        for name, value in before.items():
            assert torch.equal(now[name], value), name


def test_the_added_settings_record_their_defaults():
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for name, value in DEFAULT_NETWORKS.items():
        assert fields[name] == value == ADDED_SETTINGS[name], name


def test_a_run_recorded_before_the_settings_trains_as_the_defaults_do(tiny_cfg, tmp_path):
    """A run with the settings at their defaults, one with them given explicitly and one read from a config.json
    written before they existed write the same train.csv."""
    default = tiny_cfg(total_env_steps=1024, eval_every=1024)
    train(default, tmp_path / "default", progress=False)
    saved = json.loads((tmp_path / "default" / CONFIG).read_text())
    older = TrainConfig.from_saved({k: v for k, v in saved.items() if k not in DEFAULT_NETWORKS})
    explicit = dataclasses.replace(default, **DEFAULT_NETWORKS)
    rows = untimed(read_csv(tmp_path / "default" / TRAIN_CSV))
    for name, cfg in (("explicit", explicit), ("older", older)):
        assert cfg == dataclasses.replace(default, env_backend=cfg.env_backend), name
        train(cfg, tmp_path / name, progress=False)
        assert untimed(read_csv(tmp_path / name / TRAIN_CSV)) == rows, name


# ----- the preset -----------------------------------------------------------------------------------------------------


def test_the_paper_preset_sets_the_authors_networks_and_optimizer():
    for method in ("routing", "filtering"):
        cfg = preset_config("paper", method)
        assert {name: getattr(cfg, name) for name in PAPER_NETWORKS} == PAPER_NETWORKS
    assert {name: PAPER[name] for name in PAPER_NETWORKS} == PAPER_NETWORKS
    assert {name: getattr(preset_config("default"), name) for name in DEFAULT_NETWORKS} == DEFAULT_NETWORKS
    parse = load_script("train_policy").parse
    assert {name: getattr(parse(["--preset", "paper"]), name) for name in PAPER_NETWORKS} == PAPER_NETWORKS
    mixed = parse(["--preset", "paper", "--critic", "mlp", "--no-zero-bias", "--adam-eps", "1e-5"])
    assert (mixed.critic, mixed.gate_net, mixed.zero_bias, mixed.adam_eps) == ("mlp", "paper", False, 1e-5)


def test_the_paper_presets_value_loss_is_the_authors():
    """Theirs is ``0.5 * mean((V - R)^2)``; ours is ``vf_coef * 0.5 * mean((V - R)^2)``, so the preset's vf_coef is 1.
    With no advantage and no entropy bonus, the loss is the value term alone."""
    policy = policy_of("naive")
    obs, returns, zero = torch.zeros(3, *OBS_SHAPE), torch.tensor([1.0, 0.0, 0.5]), torch.zeros(3)
    trunk = policy.trunk(obs)
    batch = Batch(obs, zero.long(), zero, zero, returns, zero + 1, zero.long(), zero.long(), trunk=trunk)
    coefs = LossCoefs(clip=None, ent=0.0, vf=preset_config("paper").vf_coef, gate=0.0, normalize_advantages=False)
    loss, _ = policy_gradient_loss(batch, policy, coefs)
    torch.testing.assert_close(loss.detach(), 0.5 * (trunk.value.detach() - returns).pow(2).mean())


def test_the_committed_paper_part_resumes_with_the_settings_it_was_run_with():
    """The paper part (sweeps/paper-32.77M) ran before the preset followed the authors' code: it pins what it ran
    with, so that its sweep resumes; paper-full, not yet run, follows the preset."""
    parts = reproduce.default_parts(reproduce.ReproduceConfig())
    paper = parts["paper"].base()
    assert {name: getattr(paper, name) for name in reproduce.PAPER_BEFORE_AUTHORS} == reproduce.PAPER_BEFORE_AUTHORS
    full = parts["paper-full"].base()
    assert {name: getattr(full, name) for name in PAPER_NETWORKS} == PAPER_NETWORKS and full.vf_coef == 1.0
    record = ROOT / "sweeps" / "paper-32.77M" / "sweep.json"
    if record.exists():
        recorded = {**ADDED_SETTINGS, **json.loads(record.read_text())["train"]}
        assert {name: recorded[name] for name in reproduce.PAPER_BEFORE_AUTHORS} == reproduce.PAPER_BEFORE_AUTHORS


def test_the_paper_preset_trains_with_the_authors_networks(tmp_path):
    cfg = dataclasses.replace(preset_config("paper"), **TINY)  # the tiny budget over the paper's
    trainer = Trainer([cfg], [tmp_path / "run"], progress=False)
    assert trainer.optimizer.eps == 1e-8
    state = trainer.population.agent_state(0)
    assert state["critic.1.weight"].shape == (16, 4, 1, 1)  # the critic's 1x1 convolution
    assert state["critic.5.weight"].shape == (1, 32)
    assert state["gate_net.1.weight"].shape == (4, 4, 1, 1)  # the gate's
    assert not any(v.any() for k, v in state.items() if k.endswith("bias"))
    trainer.train_step()  # and it trains


@pytest.mark.parametrize(("setting", "value"), [("adam_eps", 0.0), ("critic", "affine"), ("gate_net", "conv")])
def test_bad_values_name_their_flag(setting, value):
    with pytest.raises(ValueError, match=f"^--{setting.replace('_', '-')} must be"):
        dataclasses.replace(TrainConfig(), **{setting: value}).validate()


# ----- populations ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "algo"), [("routing", "reinforce"), ("routing", "ppo"), ("filtering", "reinforce")])
def test_a_population_with_the_authors_networks_keeps_its_agents_apart(tiny_cfg, tmp_path, method, algo):
    with_networks = lambda **kw: tiny_cfg(**kw, **PAPER_NETWORKS)  # noqa: E731
    assert others_unchanged(with_networks, tmp_path / "seed", method, algo, {"seed": 7})
    assert others_unchanged(with_networks, tmp_path / "oversight", method, algo, {"oversight": 0.05})
