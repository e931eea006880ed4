"""Rollout collection on a batched environment, and the returns computed from it.

Time-outs are treated as episode ends with no bootstrap, matching the evaluation metric, which counts a time-out as
true return 0. At the end of the window, PPO bootstraps unfinished episodes from the value of the next observation;
REINFORCE, as in the paper, does not (their return counts only rewards inside the window).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from envs import DiamondGhostGrid, Terminal
from oversight_rl.labels import UNFINISHED, backfill
from oversight_rl.policies import ActorCritic, Trunk


class Rollout(NamedTuple):
    """A ``(T, N)`` window of experience. Episode-end fields are valid only where ``dones`` is true."""

    obs: torch.Tensor  # (T, N, *obs_shape)
    actions: torch.Tensor  # (T, N)
    logp: torch.Tensor
    values: torch.Tensor
    dones: torch.Tensor  # bool: an episode ended at this step (terminal or time-out)
    terminal: torch.Tensor  # Terminal code of the episode ending here
    labeled: torch.Tensor  # bool
    ghost_overseen: torch.Tensor  # bool
    next_value: torch.Tensor  # (N,) value of the observation after the window
    trunk: Trunk | None  # the policy's forward pass with its graph, kept when the update can reuse it

    @property
    def outcome(self) -> torch.Tensor:
        """Each step's episode outcome: a ``Terminal`` code, or ``UNFINISHED`` if it ends after the window."""
        return backfill(self.terminal, self.dones, UNFINISHED)

    @property
    def episode_labeled(self) -> torch.Tensor:
        return backfill(self.labeled, self.dones, False)


def collect(
    env, policy: ActorCritic, obs: np.ndarray, num_steps: int, keep_graph: bool = False, device: str = "cpu"
) -> tuple[Rollout, np.ndarray]:
    """Run ``policy`` for ``num_steps`` on the batched ``env`` from ``obs``; return the rollout and the next obs."""
    n = env.num_envs
    shape = (num_steps, n)
    store = {
        key: torch.zeros(shape, dtype=dtype, device=device)
        for key, dtype in (
            ("actions", torch.long),
            ("dones", torch.bool),
            ("terminal", torch.int8),
            ("labeled", torch.bool),
            ("ghost_overseen", torch.bool),
        )
    }
    obs_buf = torch.zeros((num_steps, *obs.shape), device=device)
    trunks, logps, values = [], [], []
    with torch.set_grad_enabled(keep_graph):
        for t in range(num_steps):
            obs_t = torch.from_numpy(obs).to(device)  # its own tensor: the kept graph must not see later writes
            obs_buf[t] = obs_t
            trunk = policy.trunk(obs_t)
            dist = torch.distributions.Categorical(logits=policy.logits(trunk))
            action = dist.sample()
            trunks.append(trunk)
            logps.append(dist.log_prob(action))
            values.append(trunk.value)
            obs, _, terminated, truncated, info = env.step(action.cpu().numpy())
            store["actions"][t] = action
            store["dones"][t] = torch.from_numpy(terminated | truncated)
            if info:
                final = info["final_info"]
                store["terminal"][t] = torch.from_numpy(final["terminal"])
                store["labeled"][t] = torch.from_numpy(final["labeled"])
                store["ghost_overseen"][t] = torch.from_numpy(final["ghost_overseen"])
        with torch.no_grad():
            next_value = policy.value(torch.from_numpy(obs).to(device))
    trunk = _stack_trunks(trunks) if keep_graph else None
    logp, value = torch.stack(logps), torch.stack(values)
    rollout = Rollout(obs_buf, logp=logp.detach(), values=value.detach(), next_value=next_value, trunk=trunk, **store)
    return rollout, obs


def _stack_trunks(trunks: list[Trunk]) -> Trunk:
    """Concatenate per-step trunks into one over the flattened ``T * N`` samples."""
    experts = tuple(torch.cat(parts) for parts in zip(*(t.experts for t in trunks), strict=True))
    gate = None if trunks[0].gate_logit is None else torch.cat([t.gate_logit for t in trunks])
    return Trunk(experts, gate, torch.cat([t.value for t in trunks]))


def training_rewards(rollout: Rollout, kind: str) -> torch.Tensor:
    """Reward at each step under a method's training reward: ``any_terminal``, ``proxy`` or ``true``."""
    reward = terminal_rewards(rollout.terminal.cpu().numpy(), rollout.ghost_overseen.cpu().numpy(), kind)
    return torch.from_numpy(reward).to(rollout.terminal.device)


def terminal_rewards(terminal: np.ndarray, ghost_overseen: np.ndarray, kind: str) -> np.ndarray:
    """Training reward (see :func:`training_rewards`) from episode-end codes, ``Terminal.NONE`` where none ended."""
    if kind == "any_terminal":
        reward = (terminal != Terminal.NONE).astype(np.float32)
    elif kind == "proxy":
        reward = DiamondGhostGrid.proxy_reward(terminal, ghost_overseen)
    elif kind == "true":
        reward = (terminal == Terminal.DIAMOND).astype(np.float32) - (terminal == Terminal.GHOST)
    else:
        raise ValueError(f"reward must be 'any_terminal', 'proxy' or 'true', got {kind!r}")
    return np.asarray(reward, dtype=np.float32)


def discounted_returns(rewards: torch.Tensor, dones: torch.Tensor, gamma: float) -> torch.Tensor:
    """Monte-Carlo return-to-go inside the window: ``G_t = r_t + gamma * G_{t+1} * (1 - done_t)``, ``G_T = 0``."""
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        running = rewards[t] + gamma * running * (~dones[t])
        returns[t] = running
    return returns


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    next_value: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation; returns ``(advantages, returns)``. An episode end cuts the bootstrap."""
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[0])):
        following = next_value if t == rewards.shape[0] - 1 else values[t + 1]
        alive = (~dones[t]).float()
        delta = rewards[t] + gamma * following * alive - values[t]
        running = delta + gamma * lam * alive * running
        advantages[t] = running
    return advantages, advantages + values
