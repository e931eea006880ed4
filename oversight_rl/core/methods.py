"""The methods compared, registered by name: each is a policy, a training reward, the samples used and a budget.

A method defined outside the package is named by its import path, ``package.module:NAME``, where ``NAME`` is a
:class:`Method`; its ``loss`` may be a function of its own. Every process imports it by that path, so it works in
single runs, sweep workers and Ray tasks alike (the module must be importable there).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from oversight_rl.core.losses import LOSSES
from oversight_rl.core.policies import ActorCritic, make_policy


@dataclass(frozen=True)
class Method:
    """How one method trains and what it deploys.

    Attributes:
        policy: ``"moe"`` (Diamond and Ghost experts with a gate) or ``"single"``.
        reward: training reward, ``"any_terminal"`` (+1 either terminal), ``"proxy"`` (+1 terminal, -1 overseen Ghost)
            or ``"true"`` (+1 Diamond, -1 Ghost).
        loss: ``"routed"``, ``"filtered"`` or ``"pg"`` (see :mod:`oversight_rl.core.losses`), or a function with the
            same signature, ``(batch, policy, coefs) -> (loss, metrics)``.
        route: send labeled samples only to the matching expert; off, every sample reaches everything.
        gate_loss: train the gate on the labels by binary cross-entropy.
        constant_gate: fix the gate to this value instead of learning it.
        verified_only: train only on episodes the overseer can verify (labeled or timed out).
        budget_scales_with_oversight: train for ``oversight x`` the step budget (the oracle sees every label).
        deploy: the variant deployed: ``"trained"``, ``"diamond"`` or ``"best"`` (best checkpoint by validation).
    """

    policy: str
    reward: str
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
    def loss_fn(self) -> Callable:
        """The loss function: a registered one by name, or the method's own."""
        return LOSSES[self.loss] if isinstance(self.loss, str) else self.loss


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
    """The registered method ``name``, or the :class:`Method` at the import path ``package.module:NAME``."""
    if name in METHODS:
        return METHODS[name]
    if ":" not in name:
        raise ValueError(f"--method must be one of {', '.join(METHODS)} or package.module:NAME, got {name!r}")
    module_name, _, attribute = name.partition(":")
    try:
        method = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"--method {name}: cannot import it ({type(error).__name__}: {error})") from None
    if not isinstance(method, Method):
        raise ValueError(f"--method {name} must name an oversight_rl.core.methods.Method, got {type(method).__name__}")
    if isinstance(method.loss, str) and method.loss not in LOSSES:
        raise ValueError(f"--method {name}: its loss must be one of {', '.join(LOSSES)} or a function")
    return method


def build_policy(cfg, method: Method, obs_shape: tuple[int, ...]) -> ActorCritic:
    separate = cfg.expert_heads == "separate"
    return make_policy(method.policy, int(np.prod(obs_shape)), cfg.width, cfg.depth, method.constant_gate, separate)
