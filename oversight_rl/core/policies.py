"""Policies: the gated mixture of a Diamond and a Ghost expert, and the single-expert policy of the baselines.

Every policy computes ``trunk(obs)`` (expert features, gate logit and value) and then ``logits(trunk, ...)``. Routing
only changes how the trunk's outputs are combined, so a rollout's trunk pass can be reused by the loss.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from oversight_rl.core.labels import RouteMasks

EXPERTS = ("diamond", "ghost")
CRITICS = ("mlp", "linear")
"""Value networks: ``mlp`` (:func:`mlp_critic`) or ``linear`` (:func:`linear_critic`, the authors')."""
GATE_NETS = ("mlp", "paper")
"""Gate networks: ``mlp`` (:func:`mlp_gate`) or ``paper`` (:func:`paper_gate`, the authors')."""
LINEAR_CRITIC_CHANNELS, LINEAR_CRITIC_WIDTHS = 16, (256, 32)
"""The linear critic's convolution channels and layer widths: the authors', whatever ``width`` is."""


def mlp(in_dim: int, width: int, depth: int) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` ReLU units."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(in_dim if i == 0 else width, width), nn.ReLU()]
    return nn.Sequential(*layers)


def mlp_critic(obs_dim: int, width: int, depth: int) -> nn.Sequential:
    """The value network of ``--critic mlp``: ``depth`` hidden layers of ``width`` ReLU units, then one output."""
    return nn.Sequential(mlp(obs_dim, width, depth), nn.Linear(width, 1))


def channels_and_cells(obs_shape: tuple[int, ...] | None, obs_dim: int, what: str) -> tuple[int, int]:
    """The channels and cells of a ``(C, H, W)`` observation of ``obs_dim`` numbers; ``ValueError`` naming ``what``
    needs it when ``obs_shape`` is not such a shape."""
    if obs_shape is None or len(obs_shape) != 3 or math.prod(obs_shape) != obs_dim:
        raise ValueError(
            f"{what} convolves the observation's channels: it needs obs_shape (C, H, W) of {obs_dim} numbers, got"
            f" {obs_shape!r}"
        )
    return obs_shape[0], obs_shape[1] * obs_shape[2]


def linear_critic(obs_shape: tuple[int, int, int]) -> nn.Sequential:
    """The authors' value network, linear in the observation: a 1x1 convolution of its ``C`` channels to 16, then
    linear layers of 256, 32 and 1 with no nonlinearity between them (so ``V(obs) = w . obs + b``, trained through
    that factorisation). Takes the flat observation, as every network here does."""
    channels, cells = channels_and_cells(obs_shape, math.prod(obs_shape), "critic 'linear'")
    sizes = (LINEAR_CRITIC_CHANNELS * cells, *LINEAR_CRITIC_WIDTHS, 1)
    return nn.Sequential(
        nn.Unflatten(1, tuple(obs_shape)),
        nn.Conv2d(channels, LINEAR_CRITIC_CHANNELS, kernel_size=1),
        nn.Flatten(),
        *(nn.Linear(n_in, n_out) for n_in, n_out in pairwise(sizes)),
    )


def make_critic(kind: str, obs_dim: int, width: int, depth: int, obs_shape: tuple[int, ...] | None) -> nn.Sequential:
    """The value network ``kind`` names (:data:`CRITICS`), from the flat observation to one value."""
    if kind == "mlp":
        return mlp_critic(obs_dim, width, depth)
    if kind == "linear":
        channels_and_cells(obs_shape, obs_dim, "critic 'linear'")
        return linear_critic(obs_shape)
    raise ValueError(f"critic must be one of {', '.join(CRITICS)}, got {kind!r}")


def mlp_gate(obs_dim: int, width: int) -> nn.Sequential:
    """The gate network of ``--gate-net mlp``: one hidden layer of ``width`` ReLU units, then the gate logit."""
    return nn.Sequential(mlp(obs_dim, width, 1), nn.Linear(width, 1))


def paper_gate(obs_shape: tuple[int, int, int], width: int) -> nn.Sequential:
    """The authors' gate network: a 1x1 convolution of the observation's ``C`` channels to ``C`` (no nonlinearity
    after it), then two hidden layers of ``width`` ReLU units (the paper: 256), then the gate logit. Takes the flat
    observation."""
    obs_dim = math.prod(obs_shape)
    channels, _ = channels_and_cells(obs_shape, obs_dim, "gate_net 'paper'")
    return nn.Sequential(
        nn.Unflatten(1, tuple(obs_shape)),
        nn.Conv2d(channels, channels, kernel_size=1),
        nn.Flatten(),
        mlp(obs_dim, width, 2),
        nn.Linear(width, 1),
    )


def make_gate(kind: str, obs_dim: int, width: int, obs_shape: tuple[int, ...] | None) -> nn.Sequential:
    """The gate network ``kind`` names (:data:`GATE_NETS`), from the flat observation to the gate logit."""
    if kind == "mlp":
        return mlp_gate(obs_dim, width)
    if kind == "paper":
        channels_and_cells(obs_shape, obs_dim, "gate_net 'paper'")
        return paper_gate(obs_shape, width)
    raise ValueError(f"gate_net must be one of {', '.join(GATE_NETS)}, got {kind!r}")


def zero_biases(module: nn.Module) -> nn.Module:
    """Set every bias of ``module`` to zero, in place (the authors' initialisation; the weights keep PyTorch's);
    returns ``module``."""
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if name.rpartition(".")[2] == "bias":
                parameter.zero_()
    return module


class Trunk(NamedTuple):
    """What a policy computes before routing: one feature tensor per expert, the gate logit and the value."""

    experts: tuple[torch.Tensor, ...]
    gate_logit: torch.Tensor | None  # (B,); None for single-expert policies
    value: torch.Tensor  # (B,)


class ActorCritic(nn.Module):
    """Shared interface: ``trunk`` then ``logits``; ``expert(name)`` returns a steered policy.

    ``critic`` names the value network (:data:`CRITICS`); ``linear`` needs ``obs_shape``, the ``(C, H, W)`` of the
    flat observations of ``obs_dim`` numbers that every network here takes.
    """

    variants: tuple[str, ...] = ("trained",)

    def __init__(
        self,
        obs_dim: int,
        width: int,
        depth: int,
        num_actions: int = 4,
        critic: str = "mlp",
        obs_shape: tuple[int, ...] | None = None,
    ):
        super().__init__()
        self.obs_dim = obs_dim
        self.critic = make_critic(critic, obs_dim, width, depth, obs_shape)
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

    def __init__(
        self,
        obs_dim: int,
        width: int = 64,
        depth: int = 2,
        num_actions: int = 4,
        critic: str = "mlp",
        obs_shape: tuple[int, ...] | None = None,
    ):
        super().__init__(obs_dim, width, depth, num_actions, critic, obs_shape)
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

    With ``constant_gate`` set, ``g`` is that constant and the gate has no parameters; otherwise ``gate_net`` names
    the gate's network (:data:`GATE_NETS`; ``paper`` needs ``obs_shape``, as a ``linear`` critic does). With
    ``separate_heads``, each expert has its own output layer (``head`` is the Diamond's, ``ghost_head`` the Ghost's)
    and the gate mixes their logits, ``g*head(diamond) + (1-g)*ghost_head(ghost)``; routing then keeps an episode's
    gradient out of the other expert's output layer too, which a shared layer receives from every episode.
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
        critic: str = "mlp",
        gate_net: str = "mlp",
        obs_shape: tuple[int, ...] | None = None,
    ):
        super().__init__(obs_dim, width, depth, num_actions, critic, obs_shape)
        self.diamond = mlp(obs_dim, width, depth)
        self.ghost = mlp(obs_dim, width, depth)
        self.constant_gate = constant_gate
        self.gate_net = None if constant_gate is not None else make_gate(gate_net, obs_dim, width, obs_shape)
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
    *,
    num_actions: int = 4,
    critic: str = "mlp",
    gate_net: str = "mlp",
    zero_bias: bool = False,
    obs_shape: tuple[int, ...] | None = None,
) -> ActorCritic:
    """Build the policy a method names: ``"moe"`` or ``"single"`` (which ignores the mixture's options), with the
    value network ``critic`` and the gate network ``gate_net`` (both need ``obs_shape`` when not ``mlp``), and every
    bias zero when ``zero_bias`` (the authors' initialisation; it draws no random numbers, so the weights are those
    of the same seed without it)."""
    if kind == "moe":
        policy: ActorCritic = MoEPolicy(
            obs_dim,
            width,
            depth,
            num_actions,
            constant_gate=constant_gate,
            separate_heads=separate_heads,
            critic=critic,
            gate_net=gate_net,
            obs_shape=obs_shape,
        )
    elif kind == "single":
        policy = SingleExpertPolicy(obs_dim, width, depth, num_actions, critic=critic, obs_shape=obs_shape)
    else:
        raise ValueError(f"policy kind must be 'moe' or 'single', got {kind!r}")
    return zero_biases(policy) if zero_bias else policy
