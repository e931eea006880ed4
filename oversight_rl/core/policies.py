"""Policies: the gated mixture of a Diamond and a Ghost expert, and the single-expert policy of the baselines.

Every policy computes ``trunk(obs)`` (expert features, gate logit and value) and then ``logits(trunk, ...)``. Routing
only changes how the trunk's outputs are combined, so a rollout's trunk pass can be reused by the loss.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from oversight_rl.core.labels import RouteMasks

EXPERTS = ("diamond", "ghost")


def mlp(in_dim: int, width: int, depth: int) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` ReLU units."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(in_dim if i == 0 else width, width), nn.ReLU()]
    return nn.Sequential(*layers)


class Trunk(NamedTuple):
    """What a policy computes before routing: one feature tensor per expert, the gate logit and the value."""

    experts: tuple[torch.Tensor, ...]
    gate_logit: torch.Tensor | None  # (B,); None for single-expert policies
    value: torch.Tensor  # (B,)


class ActorCritic(nn.Module):
    """Shared interface: ``trunk`` then ``logits``; ``expert(name)`` returns a steered policy."""

    variants: tuple[str, ...] = ("trained",)

    def __init__(self, obs_dim: int, width: int, depth: int, num_actions: int = 4):
        super().__init__()
        self.obs_dim = obs_dim
        self.critic = nn.Sequential(mlp(obs_dim, width, depth), nn.Linear(width, 1))
        self.head = nn.Linear(width, num_actions)  # shared output layer

    def trunk(self, obs: torch.Tensor) -> Trunk:
        raise NotImplementedError

    def logits(self, trunk: Trunk, route: RouteMasks | None = None) -> torch.Tensor:
        raise NotImplementedError

    def gate(self, trunk: Trunk) -> torch.Tensor | None:
        """Weight of the Diamond expert in ``(0, 1)``, or None for a policy without a gate."""
        return None if trunk.gate_logit is None else torch.sigmoid(trunk.gate_logit)

    def expert(self, name: str) -> nn.Module:
        raise ValueError(f"{type(self).__name__} has no experts to steer to; variants are {self.variants}")

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.logits(self.trunk(obs))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs.flatten(1)).squeeze(-1)


class SingleExpertPolicy(ActorCritic):
    """One MLP and the output layer: the policy of every non-routing baseline."""

    def __init__(self, obs_dim: int, width: int = 64, depth: int = 2, num_actions: int = 4):
        super().__init__(obs_dim, width, depth, num_actions)
        self.body = mlp(obs_dim, width, depth)

    def trunk(self, obs: torch.Tensor) -> Trunk:
        flat = obs.flatten(1)
        return Trunk((self.body(flat),), None, self.critic(flat).squeeze(-1))

    def logits(self, trunk: Trunk, route: RouteMasks | None = None) -> torch.Tensor:
        return self.head(trunk.experts[0])


def _route(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``x`` in value everywhere, but gradient only flows through the rows where ``keep`` is true."""
    return torch.where(keep.view(-1, *([1] * (x.dim() - 1))), x, x.detach())


def _layer(layer: nn.Linear, x: torch.Tensor, kept: torch.Tensor | None) -> torch.Tensor:
    """``layer(x)``, whose own parameters get gradient only from the rows ``kept`` (None: every row); ``x`` gets it
    from every row."""
    if kept is None:
        return layer(x)
    frozen = F.linear(x, layer.weight.detach(), None if layer.bias is None else layer.bias.detach())
    return torch.where(kept.view(-1, *([1] * (x.dim() - 1))), layer(x), frozen)


class MoEPolicy(ActorCritic):
    """Diamond and Ghost experts mixed by a gate, ``h = g*diamond + (1-g)*ghost``, then a shared output layer.

    With ``constant_gate`` set, ``g`` is that constant and the gate has no parameters. With ``separate_heads``, each
    expert has its own output layer (``head`` is the Diamond's, ``ghost_head`` the Ghost's) and the gate mixes their
    logits, ``g*head(diamond) + (1-g)*ghost_head(ghost)``; routing then keeps an episode's gradient out of the other
    expert's output layer too, which a shared layer receives from every episode.
    """

    variants = ("trained", *EXPERTS)

    def __init__(
        self,
        obs_dim: int,
        width: int = 64,
        depth: int = 2,
        num_actions: int = 4,
        constant_gate: float | None = None,
        separate_heads: bool = False,
    ):
        super().__init__(obs_dim, width, depth, num_actions)
        self.diamond = mlp(obs_dim, width, depth)
        self.ghost = mlp(obs_dim, width, depth)
        self.constant_gate = constant_gate
        self.gate_net = (
            None if constant_gate is not None else nn.Sequential(mlp(obs_dim, width, 1), nn.Linear(width, 1))
        )
        # made last, so that every other layer starts as it does with a shared head
        self.ghost_head = nn.Linear(width, num_actions) if separate_heads else None

    def trunk(self, obs: torch.Tensor) -> Trunk:
        flat = obs.flatten(1)
        if self.gate_net is None:
            g = torch.full((flat.shape[0],), self.constant_gate, device=flat.device)
            gate_logit = torch.logit(g)
        else:
            gate_logit = self.gate_net(flat).squeeze(-1)
        return Trunk((self.diamond(flat), self.ghost(flat)), gate_logit, self.critic(flat).squeeze(-1))

    def logits(self, trunk: Trunk, route: RouteMasks | None = None, steer: str | None = None) -> torch.Tensor:
        head_kept = None if route is None else route.head
        diamond, ghost = trunk.experts
        if self.ghost_head is not None:  # each expert's own output layer, routed with it below
            diamond, ghost = _layer(self.head, diamond, head_kept), _layer(self.ghost_head, ghost, head_kept)
        if steer is not None:
            return self.readout(diamond if steer == "diamond" else ghost)
        g = torch.sigmoid(trunk.gate_logit)
        if route is not None:
            diamond, ghost, g = _route(diamond, route.diamond), _route(ghost, route.ghost), _route(g, route.gate)
        g = g.unsqueeze(-1)
        return self.readout(g * diamond + (1 - g) * ghost, head_kept)

    def readout(self, x: torch.Tensor, kept: torch.Tensor | None = None) -> torch.Tensor:
        """The shared output layer (its parameters learning only from the rows ``kept``, when given); nothing when
        each expert has its own, already applied."""
        return _layer(self.head, x, kept) if self.ghost_head is None else x

    def expert(self, name: str) -> SteeredPolicy:
        if name not in EXPERTS:
            raise ValueError(f"expert must be one of {EXPERTS}, got {name!r}")
        return SteeredPolicy(self, name)


class SteeredPolicy(nn.Module):
    """A mixture policy deployed with one expert alone (gate fixed to that expert)."""

    def __init__(self, moe: MoEPolicy, expert: str):
        super().__init__()
        self.moe, self.expert_name = moe, expert

    def trunk(self, obs: torch.Tensor) -> Trunk:
        return self.moe.trunk(obs)

    def logits(self, trunk: Trunk, route: RouteMasks | None = None) -> torch.Tensor:
        return self.moe.logits(trunk, steer=self.expert_name)

    def gate(self, trunk: Trunk) -> None:
        return None  # steering removes the gate

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.logits(self.trunk(obs))


def variant_policy(policy: ActorCritic, variant: str) -> nn.Module:
    """The module that plays ``variant``: ``trained`` is the policy itself, an expert's name steers to it."""
    return policy if variant == "trained" else policy.expert(variant)


def make_policy(
    kind: str,
    obs_dim: int,
    width: int,
    depth: int,
    constant_gate: float | None = None,
    separate_heads: bool = False,
) -> ActorCritic:
    """Build the policy a method names: ``"moe"`` or ``"single"`` (which ignores the mixture's options)."""
    if kind == "moe":
        return MoEPolicy(obs_dim, width, depth, constant_gate=constant_gate, separate_heads=separate_heads)
    if kind == "single":
        return SingleExpertPolicy(obs_dim, width, depth)
    raise ValueError(f"policy kind must be 'moe' or 'single', got {kind!r}")
