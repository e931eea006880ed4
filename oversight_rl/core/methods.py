"""The methods compared, registered by name: each is a policy, a training reward, the samples used and a budget.

A method defined outside the package is named by its import path, ``package.module:NAME``, where ``NAME`` is a
:class:`Method`; its ``reward`` and ``loss`` may be functions of its own, or their import paths. Every process imports
it by that path, so it works in single runs, sweep workers and Ray tasks alike (the module must be importable there).
:func:`get_method` checks every part of it, so that a broken method fails before a run writes anything.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from envs import Terminal
from oversight_rl.core.losses import LOSSES
from oversight_rl.core.policies import EXPERTS, ActorCritic, make_policy
from oversight_rl.core.returns import REWARDS

POLICIES = ("moe", "single")


@dataclass(frozen=True)
class Method:
    """How one method trains and what it deploys.

    Attributes:
        policy: ``"moe"`` (Diamond and Ghost experts with a gate) or ``"single"``.
        reward: training reward, ``"any_terminal"`` (+1 either terminal), ``"proxy"`` (+1 terminal, -1 overseen Ghost)
            or ``"true"`` (+1 Diamond, -1 Ghost) (see :data:`oversight_rl.core.returns.REWARDS`), a function with the
            same signature, ``(terminal, ghost_overseen) -> reward`` at every step, or its import path
            ``"package.module:NAME"``.
        loss: ``"routed"``, ``"filtered"`` or ``"pg"`` (see :mod:`oversight_rl.core.losses`), a function with the
            same signature, ``(batch, policy, coefs) -> (loss, metrics)``, or its import path.
        route: send labeled samples only to the matching expert; off, every sample reaches everything.
        gate_loss: train the gate on the labels by binary cross-entropy.
        constant_gate: fix the gate to this value instead of learning it.
        verified_only: train only on episodes the overseer can verify (labeled or timed out).
        budget_scales_with_oversight: train for ``oversight x`` the step budget (the oracle sees every label).
        deploy: the variant deployed: ``"trained"``, ``"diamond"`` or ``"best"`` (best checkpoint by validation).
    """

    policy: str
    reward: str | Callable
    loss: str | Callable
    route: bool = False
    gate_loss: bool = False
    constant_gate: float | None = None
    verified_only: bool = False
    budget_scales_with_oversight: bool = False
    deploy: str = "trained"

    @property
    def early_stopping(self) -> bool:
        return self.deploy == "best"

    @property
    def reads_every_label(self) -> bool:
        """Every episode counts as labeled, not only those ending at an overseen terminal: the oracle's, which sees
        every label on a budget scaled by oversight; so every label it reads carries ``--label-noise``."""
        return self.budget_scales_with_oversight

    @property
    def reward_fn(self) -> Callable:
        """The training reward function: a registered one by name, or the method's own."""
        return method_part(self.reward, REWARDS, "reward")

    @property
    def loss_fn(self) -> Callable:
        """The loss function: a registered one by name, or the method's own."""
        return method_part(self.loss, LOSSES, "loss")


METHODS: dict[str, Method] = {
    "routing": Method("moe", "any_terminal", "routed", route=True, gate_loss=True, deploy="diamond"),
    "no_routing": Method("moe", "any_terminal", "routed", route=False, gate_loss=True, deploy="diamond"),
    "constant_gate": Method("moe", "any_terminal", "routed", route=True, constant_gate=0.5, deploy="diamond"),
    "naive": Method("single", "proxy", "pg"),
    "naive_early_stop": Method("single", "proxy", "pg", deploy="best"),
    "filtering": Method("single", "true", "filtered", verified_only=True),
    "oracle": Method("single", "true", "pg", budget_scales_with_oversight=True),
}


def get_method(name: str) -> Method:
    """The registered method ``name``, or the :class:`Method` at the import path ``package.module:NAME``, checked
    (:func:`check_method`); ``ValueError`` naming ``--method`` and what is wrong."""
    if name in METHODS:
        return METHODS[name]
    if ":" not in name:
        raise ValueError(f"--method must be one of {', '.join(METHODS)} or package.module:NAME, got {name!r}")
    try:
        method = import_path(name)
        if not isinstance(method, Method):
            raise ValueError(f"it must name an oversight_rl.core.methods.Method, got {type(method).__name__}")
        check_method(method)
    except ValueError as error:
        raise ValueError(f"--method {name}: {error}") from None
    return method


def import_path(path: str):
    """The object at the import path ``package.module:NAME``; ``ValueError`` if it cannot be imported."""
    module_name, _, attribute = path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(f"cannot import it ({type(error).__name__}: {error})") from None


def method_part(part: str | Callable, built_in: dict[str, Callable], what: str) -> Callable:
    """A method's reward or loss function: ``part`` itself, the built-in it names, or the function at its import
    path; ``ValueError`` saying what it may be."""
    if callable(part):
        return part
    if isinstance(part, str) and part in built_in:
        return built_in[part]
    if isinstance(part, str) and ":" in part:
        try:
            found = import_path(part)
        except ValueError as error:
            raise ValueError(f"its {what} {part}: {error}") from None
        if callable(found):
            return found
        raise ValueError(f"its {what} {part} is a {type(found).__name__}, not a function")
    choices = ", ".join(built_in)
    raise ValueError(f"its {what} must be one of {choices}, a function or its import path, got {part!r}")


def check_method(method: Method) -> None:
    """Raise ``ValueError`` naming the first part of ``method`` that could not train or deploy."""
    if method.policy not in POLICIES:
        raise ValueError(f"its policy must be one of {', '.join(POLICIES)}, got {method.policy!r}")
    deployable = ("trained", "best", *(EXPERTS if method.policy == "moe" else ()))
    if method.deploy not in deployable:
        raise ValueError(f"a {method.policy} policy deploys one of {', '.join(deployable)}, not {method.deploy!r}")
    gate = method.constant_gate
    if gate is not None and not (isinstance(gate, (int, float)) and 0.0 <= gate <= 1.0):
        raise ValueError(f"its constant_gate must be None or a number in [0, 1], got {gate!r}")
    method.loss_fn  # noqa: B018  (resolves the loss: a bad name or import path raises here)
    check_reward(method.reward_fn)


def check_reward(reward: Callable) -> None:
    """Call ``reward`` on a step that ends no episode and on each episode end, so that a wrong signature or result
    fails now rather than in the first update, after the run has started writing."""
    terminal = torch.tensor([Terminal.NONE, Terminal.DIAMOND, Terminal.GHOST, Terminal.GHOST], dtype=torch.int8)
    overseen = torch.tensor([False, False, False, True])
    try:
        result = reward(terminal, overseen)
    except Exception as error:
        raise ValueError(
            f"its reward fails on (terminal, ghost_overseen) tensors ({type(error).__name__}: {error})"
        ) from None
    if not (isinstance(result, torch.Tensor) and result.shape == terminal.shape and result.double().isfinite().all()):
        raise ValueError(f"its reward must return finite numbers shaped like terminal, got {result!r}")


def build_policy(cfg, method: Method, obs_shape: tuple[int, ...]) -> ActorCritic:
    separate = cfg.expert_heads == "separate"
    return make_policy(
        method.policy,
        int(np.prod(obs_shape)),
        cfg.width,
        cfg.depth,
        method.constant_gate,
        separate,
        **architecture(cfg),
        obs_shape=tuple(obs_shape),
    )


def architecture(cfg) -> dict:
    """The settings of ``cfg`` that shape the networks beyond their sizes: :func:`make_policy`'s keywords, which
    ``RoutedPPO``'s policies take too."""
    return {"critic": cfg.critic, "gate_net": cfg.gate_net, "zero_bias": cfg.zero_bias}
