"""The methods compared, registered by name: each is a policy, a training reward, the samples used and a budget."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """How one method trains and what it deploys.

    Attributes:
        policy: ``"moe"`` (Diamond and Ghost experts with a gate) or ``"single"``.
        reward: training reward, ``"any_terminal"`` (+1 either terminal), ``"proxy"`` (+1 terminal, -1 overseen Ghost)
            or ``"true"`` (+1 Diamond, -1 Ghost).
        loss: ``"routed"``, ``"filtered"`` or ``"pg"`` (see :mod:`oversight_rl.losses`).
        route: send labeled samples only to the matching expert; off, every sample reaches everything.
        gate_loss: train the gate on the labels by binary cross-entropy.
        constant_gate: fix the gate to this value instead of learning it.
        verified_only: train only on episodes the overseer can verify (labeled or timed out).
        budget_scales_with_oversight: train for ``oversight x`` the step budget (the oracle sees every label).
        deploy: the variant deployed: ``"trained"``, ``"diamond"`` or ``"best"`` (best checkpoint by validation).
    """

    policy: str
    reward: str
    loss: str
    route: bool = False
    gate_loss: bool = False
    constant_gate: float | None = None
    verified_only: bool = False
    budget_scales_with_oversight: bool = False
    deploy: str = "trained"

    @property
    def early_stopping(self) -> bool:
        return self.deploy == "best"


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
    if name not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {name!r}")
    return METHODS[name]
