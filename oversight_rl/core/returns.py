"""Training rewards and returns: each method's reward from episode-end codes, discounted returns and GAE.

Time-outs are treated as episode ends with no bootstrap, matching the evaluation metric, which counts a time-out as
true return 0. At the end of the window, PPO bootstraps unfinished episodes from the value of the next observation;
REINFORCE, as in the paper, does not (their return counts only rewards inside the window).
"""

from __future__ import annotations

import torch

from envs import Terminal


def any_terminal_reward(terminal, ghost_overseen):
    """+1 for either terminal."""
    return (terminal != Terminal.NONE) * 1.0


def proxy_reward(terminal, ghost_overseen):
    """+1 for either terminal, but -1 for a Ghost reached under oversight: the environment's own reward."""
    return any_terminal_reward(terminal, ghost_overseen) - 2.0 * ((terminal == Terminal.GHOST) * 1.0) * ghost_overseen


def true_reward(terminal, ghost_overseen):
    """+1 for the Diamond, -1 for a Ghost."""
    return (terminal == Terminal.DIAMOND) * 1.0 - (terminal == Terminal.GHOST) * 1.0


REWARDS = {"any_terminal": any_terminal_reward, "proxy": proxy_reward, "true": true_reward}
"""The built-in training rewards by name. A reward is ``(terminal, ghost_overseen) -> reward`` on every step's
episode-end code (``Terminal.NONE`` where no episode ended, or at a time-out) and whether the Ghost was overseen,
as numpy arrays or tensors of any shape; it returns the step's reward in that shape."""


def terminal_rewards(terminal, ghost_overseen, kind):
    """Training reward from episode-end codes, as numpy arrays or tensors: ``kind`` names one of :data:`REWARDS`
    or is a function of the same signature."""
    if callable(kind):
        return kind(terminal, ghost_overseen)
    if kind not in REWARDS:
        raise ValueError(f"reward must be one of {', '.join(map(repr, REWARDS))} or a function, got {kind!r}")
    return REWARDS[kind](terminal, ghost_overseen)


def discounted_returns(
    rewards: torch.Tensor, dones: torch.Tensor, gamma: float, window_ends: torch.Tensor | None = None
) -> torch.Tensor:
    """Monte-Carlo return-to-go inside the window: ``G_t = r_t + gamma * G_{t+1} * (1 - done_t)``, ``G_T = 0``.

    ``window_ends[t]`` (bool) ends a shorter window after step ``t`` where it holds: nothing later counts.
    """
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        carried = ~dones[t] if window_ends is None else ~dones[t] & ~window_ends[t]
        running = rewards[t] + gamma * running * carried
        returns[t] = running
    return returns


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    next_value: torch.Tensor,
    gamma: float,
    lam: float,
    window_ends: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation; returns ``(advantages, returns)``. An episode end cuts the bootstrap.

    ``window_ends[t]`` (bool) ends a shorter window after step ``t`` where it holds: step ``t`` bootstraps from the
    value of the next observation, as at the end of a full window, and nothing later counts.
    """
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[0])):
        following = next_value if t == rewards.shape[0] - 1 else values[t + 1]
        alive = (~dones[t]).float()
        delta = rewards[t] + gamma * following * alive - values[t]
        carried = alive if window_ends is None else alive * (~window_ends[t])
        running = delta + gamma * lam * carried * running
        advantages[t] = running
    return advantages, advantages + values
