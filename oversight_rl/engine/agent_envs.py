"""Each agent's own environments, stepped together and seen as torch tensors with a leading agent axis.

A population of ``S`` agents with ``N`` environments each steps with actions ``(S, N)`` and returns observations
``(S, N, *obs_shape)`` and the episode ends of the step. Agent ``k``'s environments are seeded by its own seed and run
at its own oversight level, so they are exactly the environments it would have alone.

- :class:`NumpyAgentEnvs`: one batched numpy environment per agent (``envs.make_batched``: native or
  ``SyncVectorEnv``); the CPU default.
- :class:`TorchAgentEnvs`: one on-device ``envs.TorchDiamondGhost`` holding all ``S x N`` environments, each agent's
  drawn from its own counter-based streams; a rollout never leaves the device.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import numpy as np
import torch

import envs
from envs.counter_rng import stream_keys
from envs.torch_grid import STATE_TENSORS

EnvBackend = Literal["numpy", "torch"]


class StepEnds(NamedTuple):
    """What a step tells about episodes that ended in it; all but ``dones`` are valid only where ``dones``."""

    dones: torch.Tensor  # bool (S, N): terminal or time-out
    terminal: torch.Tensor  # int8 Terminal code
    labeled: torch.Tensor  # bool
    ghost_overseen: torch.Tensor  # bool
    true_reward: torch.Tensor  # float32
    ghosts_overseen: torch.Tensor  # int: how many of the episode's Ghosts were overseen (envs.ghost_counts)
    ghosts_unoverseen: torch.Tensor  # int: and how many were not


class NumpyAgentEnvs:
    """One batched numpy environment per agent; results converted to tensors on ``device``."""

    def __init__(self, batched_envs: list, seeds: list[int], device):
        self.envs = list(batched_envs)
        self.seeds, self.device = list(seeds), torch.device(device)
        self.obs_shape = tuple(self.envs[0].single_observation_space.shape)
        self._obs: list[np.ndarray] = []

    def reset(self) -> torch.Tensor:
        self._obs = [env.reset(seed=seed)[0] for env, seed in zip(self.envs, self.seeds, strict=True)]
        return self.observations()

    def observations(self) -> torch.Tensor:
        return torch.from_numpy(np.stack(self._obs)).to(self.device)

    def watched(self) -> torch.Tensor:
        """``(S, N)``: whether each current episode has an overseen terminal (``envs.watched_terminals``)."""
        return torch.from_numpy(np.stack([envs.watched_terminals(env) for env in self.envs])).to(self.device)

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, StepEnds]:
        actions = actions.cpu().numpy()
        ends = []
        for k, env in enumerate(self.envs):
            obs, _, terminated, truncated, info = env.step(actions[k])
            self._obs[k] = obs
            done = terminated | truncated
            if "final_info" in info:
                final = info["final_info"]
                reward = np.where(done, final["true_reward"], 0.0).astype(np.float32)
                labels = (final["terminal"], final["labeled"], final["ghost_overseen"])
                ends.append((done, *labels, reward, *envs.ghost_counts(final)))
            else:
                none = np.zeros_like(done)
                ends.append((done, none.astype(np.int8), none, none, none.astype(np.float32), none * 1, none * 1))
        fields = (torch.from_numpy(np.stack(column)).to(self.device) for column in zip(*ends, strict=True))
        return self.observations(), StepEnds(*fields)

    def agent_state(self, k: int) -> Any:
        return envs.vector_state(self.envs[k]), self._obs[k]

    def load_agent_state(self, k: int, state: Any) -> None:
        env_state, self._obs[k] = state
        envs.restore_vector_state(self.envs[k], env_state)


class TorchAgentEnvs:
    """All agents' environments in one ``envs.TorchDiamondGhost`` on ``device``: agent ``k`` owns rows
    ``k*N:(k+1)*N``, at its own oversight level, with stream keys derived from its own seed."""

    def __init__(self, env_id: str, num_envs: int, oversights: list[float], seeds: list[int], device, **env_kwargs):
        self.num_agents, self.num_envs = len(seeds), num_envs
        levels = torch.tensor(oversights, dtype=torch.float32).repeat_interleave(num_envs)
        self.env = envs.make_torch(
            env_id, self.num_agents * num_envs, device, oversight=levels.to(device), **env_kwargs
        )
        self.keys = torch.cat([stream_keys(seed, num_envs, device=device) for seed in seeds])
        self.obs_shape = (4, self.env.rows, self.env.cols)
        self._obs: torch.Tensor | None = None

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(self.num_agents, self.num_envs, *x.shape[1:])

    def reset(self) -> torch.Tensor:
        self._obs = self._split(self.env.reset(self.keys))
        return self._obs

    def observations(self) -> torch.Tensor:
        return self._obs

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, StepEnds]:
        obs, _, terminated, truncated, info = self.env.step(actions.reshape(-1))
        final = info["final_info"]
        done = terminated | truncated
        reward = torch.where(done, final["true_reward"], 0.0)
        ends = (done, final["terminal"], final["labeled"], final["ghost_overseen"], reward, *envs.ghost_counts(final))
        self._obs = self._split(obs)
        return self._obs, StepEnds(*(self._split(x) for x in ends))

    def watched(self) -> torch.Tensor:
        """``(S, N)``: whether each current episode has an overseen terminal."""
        return self._split(self.env.ghost_overseen | self.env.diamond_overseen)

    def _rows(self, k: int) -> slice:
        return slice(k * self.num_envs, (k + 1) * self.num_envs)

    def agent_state(self, k: int) -> Any:
        full = self.env.state_dict()
        return {name: full[name][self._rows(k)] for name in STATE_TENSORS}, self._obs[k].cpu().clone()

    def load_agent_state(self, k: int, state: Any) -> None:
        env_state, obs = state
        full = self.env.state_dict()
        for name in STATE_TENSORS:
            full[name][self._rows(k)] = env_state[name]
        self.env.load_state_dict(full)
        self._obs[k] = obs.to(self._obs.device)


def make_agent_envs(
    backend: EnvBackend, env_id: str, num_envs: int, oversights: list[float], seeds: list[int], device, **env_kwargs
):
    """The population's environments on ``backend``: ``numpy`` (any preset) or ``torch`` (native presets)."""
    if backend == "torch":
        return TorchAgentEnvs(env_id, num_envs, oversights, seeds, device, **env_kwargs)
    batched = [envs.make_batched(env_id, num_envs, oversight=p, **env_kwargs) for p in oversights]
    return NumpyAgentEnvs(batched, seeds, device)
