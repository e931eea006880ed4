"""SB3 policy classes around the package's own networks, so SB3 and the native trainer train the same modules.

``MoePolicy`` holds an :class:`oversight_rl.core.policies.MoEPolicy` (two experts and the gate) as ``policy.module``;
``SingleExpertPolicy`` holds the single-expert network of the baselines. They replace SB3's feature extractor, MLP
extractor and heads: acting, ``evaluate_actions`` and ``predict_values`` all go through ``module.trunk`` and
``module.logits``, so plain ``PPO`` can train them too (without routing).

Observations are the ``(4, rows, cols)`` float32 Box, flattened by the module. SB3 divides only *uint8* image spaces
by 255 (``is_image_space`` requires dtype uint8 and bounds [0, 255]), so these observations reach the network as they
are, and ``VecTransposeImage`` is never applied.

Steering: ``policy.steer("diamond")`` makes the Diamond expert act alone (gate fixed to it); ``policy.expert(name)``
returns a steered copy. The steered expert is a buffer in the state dict, so ``save``/``load`` of the policy or of
the algorithm keeps it.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import CategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import get_flattened_obs_dim, preprocess_obs
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule

from oversight_rl.core import policies as core

STEER_CHOICES = (None, *core.EXPERTS)  # index stored in the ``steer_code`` buffer


class ModulePolicy(ActorCriticPolicy):
    """An SB3 actor-critic whose networks are one of the package's policies, held as ``self.module``.

    :param width: hidden units per layer of each expert, the gate and the value network
    :param depth: hidden layers per expert and in the value network
    :param critic: the value network, ``"mlp"`` or ``"linear"`` (:data:`oversight_rl.core.policies.CRITICS`)
    :param gate_net: the gate's network, ``"mlp"`` or ``"paper"`` (:data:`oversight_rl.core.policies.GATE_NETS`)
    :param zero_bias: start every bias at zero (the authors' initialisation)
    :param kwargs: the other ``ActorCriticPolicy`` arguments; the network ones (``net_arch``, ``activation_fn``,
        ``ortho_init``, ``features_extractor_class``) do not apply, the module defines the networks
    """

    kind = ""  # "moe" or "single", as in oversight_rl.core.methods.Method.policy

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        width: int = 64,
        depth: int = 2,
        critic: str = "mlp",
        gate_net: str = "mlp",
        zero_bias: bool = False,
        **kwargs: Any,
    ):
        if not isinstance(action_space, spaces.Discrete):
            raise ValueError(f"{type(self).__name__} needs a Discrete action space, got {action_space}")
        if not isinstance(observation_space, spaces.Box):
            raise ValueError(f"{type(self).__name__} needs a Box observation space, got {observation_space}")
        self.width, self.depth = width, depth  # read by _build, which the parent constructor calls
        self.architecture = {"critic": critic, "gate_net": gate_net, "zero_bias": zero_bias}
        kwargs.setdefault("ortho_init", False)  # the module keeps torch's default initialisation, as natively
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _make_module(self, obs_dim: int, num_actions: int) -> core.ActorCritic:
        raise NotImplementedError

    def _build(self, lr_schedule: Schedule) -> None:
        """Build the module (in place of SB3's extractor and heads), the steering buffer and the optimizer."""
        obs_dim = get_flattened_obs_dim(self.observation_space)
        self.module = self._make_module(obs_dim, int(self.action_space.n))
        self.register_buffer("steer_code", torch.tensor(0))
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "width": self.width, "depth": self.depth, **self.architecture}

    def _make_policy(self, obs_dim: int, num_actions: int, constant_gate: float | None = None) -> core.ActorCritic:
        """The module of this policy's kind, built as the native trainer builds it (:func:`core.make_policy`)."""
        return core.make_policy(
            self.kind,
            obs_dim,
            self.width,
            self.depth,
            constant_gate,
            num_actions=num_actions,
            obs_shape=tuple(self.observation_space.shape),
            **self.architecture,
        )

    # ----- steering ----------------------------------------------------------------------------------------------

    @property
    def steered(self) -> str | None:
        """The expert acting alone, or None when the trained policy (the whole mixture) acts."""
        return STEER_CHOICES[int(self.steer_code)]

    def steer(self, name: str | None) -> ModulePolicy:
        """Act with expert ``name`` alone from now on (None: the trained policy); returns ``self``."""
        if name is not None:
            self.module.expert(name)  # raises ValueError naming the experts there are
        self.steer_code.fill_(STEER_CHOICES.index(name))
        return self

    def expert(self, name: str) -> ModulePolicy:
        """A copy of this policy steered to expert ``name`` (its own parameters: training this one leaves it be)."""
        return copy.deepcopy(self).steer(name)

    def acting_module(self) -> torch.nn.Module:
        """The module that picks actions: the trained policy, or its steered expert."""
        name = self.steered
        return self.module if name is None else self.module.expert(name)

    # ----- the ActorCriticPolicy interface -----------------------------------------------------------------------

    def preprocess(self, obs: PyTorchObs) -> torch.Tensor:
        """SB3's observation preprocessing (a float cast for this float32 Box)."""
        return preprocess_obs(obs, self.observation_space, normalize_images=self.normalize_images)

    def _trunk_and_distribution(self, obs: PyTorchObs) -> tuple[core.Trunk, CategoricalDistribution]:
        module = self.acting_module()
        trunk = module.trunk(self.preprocess(obs))
        return trunk, self.action_dist.proba_distribution(action_logits=module.logits(trunk))

    def forward(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, ...]:
        trunk, distribution = self._trunk_and_distribution(obs)
        actions = distribution.get_actions(deterministic=deterministic)
        return actions, trunk.value.unsqueeze(-1), distribution.log_prob(actions)

    def evaluate_actions(self, obs: PyTorchObs, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        trunk, distribution = self._trunk_and_distribution(obs)
        return trunk.value.unsqueeze(-1), distribution.log_prob(actions), distribution.entropy()

    def get_distribution(self, obs: PyTorchObs) -> CategoricalDistribution:
        return self._trunk_and_distribution(obs)[1]

    def predict_values(self, obs: PyTorchObs) -> torch.Tensor:
        return self.module.value(self.preprocess(obs)).unsqueeze(-1)


class MoePolicy(ModulePolicy):
    """Diamond and Ghost experts mixed by a gate (:class:`oversight_rl.core.policies.MoEPolicy`), for SB3.

    :param constant_gate: fix the gate to this value instead of learning it (the ``constant_gate`` ablation)
    """

    kind = "moe"

    def __init__(self, *args: Any, constant_gate: float | None = None, **kwargs: Any):
        self.constant_gate = constant_gate  # read by _make_module
        super().__init__(*args, **kwargs)

    def _make_module(self, obs_dim: int, num_actions: int) -> core.MoEPolicy:
        return self._make_policy(obs_dim, num_actions, self.constant_gate)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "constant_gate": self.constant_gate}


class SingleExpertPolicy(ModulePolicy):
    """The baselines' single network (:class:`oversight_rl.core.policies.SingleExpertPolicy`), for SB3. No steering."""

    kind = "single"

    def _make_module(self, obs_dim: int, num_actions: int) -> core.SingleExpertPolicy:
        return self._make_policy(obs_dim, num_actions)
