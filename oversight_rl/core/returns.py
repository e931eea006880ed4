"""Training rewards and returns: each method's reward from episode-end codes, discounted returns and GAE.

Time-outs are treated as episode ends with no bootstrap, matching the evaluation metric, which counts a time-out as
true return 0. At the end of the window, PPO bootstraps unfinished episodes from the value of the next observation;
REINFORCE, as in the paper, does not (their return counts only rewards inside the window).
"""

from __future__ import annotations

import torch

from envs import Terminal


def terminal_rewards(terminal, ghost_overseen, kind: str):
    """Training reward from episode-end codes (``Terminal.NONE`` where none ended), as numpy arrays or tensors:

    ``any_terminal`` +1 for either terminal; ``proxy`` the same but -1 for a Ghost reached under oversight (the
    environment's own reward); ``true`` +1 Diamond, -1 Ghost.
    """
    reached = (terminal != Terminal.NONE) * 1.0
    at_ghost = (terminal == Terminal.GHOST) * 1.0
    if kind == "any_terminal":
        return reached
    if kind == "proxy":
        return reached - 2.0 * at_ghost * ghost_overseen
    if kind == "true":
        return (terminal == Terminal.DIAMOND) * 1.0 - at_ghost
    raise ValueError(f"reward must be 'any_terminal', 'proxy' or 'true', got {kind!r}")


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
