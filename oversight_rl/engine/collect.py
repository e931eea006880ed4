"""Rollout collection for a population of agents on their batched environments: one window of steps per update,
each agent's actions drawn from its own counter-based stream (returns are computed from it by
:mod:`oversight_rl.core.returns`)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from envs import Terminal
from envs.counter_rng import stream_keys, uniform
from oversight_rl.core.labels import UNFINISHED, backfill, mislabel
from oversight_rl.core.policies import ActorCritic, Trunk
from oversight_rl.core.returns import terminal_rewards
from oversight_rl.engine.population import Population

LABEL_NOISE_STREAM = 4  # purpose of the counter-based streams that draw which labels --label-noise gets wrong


class Rollout(NamedTuple):
    """A ``(T, S, N)`` window of experience of ``S`` agents with ``N`` environments each. Episode-end fields are
    valid only where ``dones`` is true. Every function below works on any trailing shape after time."""

    obs: torch.Tensor  # (T, S, N, *obs_shape)
    actions: torch.Tensor  # (T, S, N)
    logp: torch.Tensor
    values: torch.Tensor
    dones: torch.Tensor  # bool: an episode ended at this step (terminal or time-out)
    terminal: torch.Tensor  # Terminal code of the episode ending here
    labeled: torch.Tensor  # bool
    ghost_overseen: torch.Tensor  # bool
    next_value: torch.Tensor  # (S, N) value of the observation after the window
    trunk: Trunk | None  # per agent (S, T*N, ...): the forward pass with its graph, kept when the update reuses it
    watched: torch.Tensor | None = None  # bool (T, S, N): the episode acting at this step has an overseen terminal

    @property
    def outcome(self) -> torch.Tensor:
        """Each step's episode outcome: a ``Terminal`` code, or ``UNFINISHED`` if it ends after the window."""
        return backfill(self.terminal, self.dones, UNFINISHED)

    @property
    def episode_labeled(self) -> torch.Tensor:
        return backfill(self.labeled, self.dones, False)


def act(policy: ActorCritic, obs: torch.Tensor) -> tuple[Trunk, torch.Tensor]:
    """One agent's forward pass on a batch of observations: its trunk and action logits."""
    trunk = policy.trunk(obs)
    return trunk, policy.logits(trunk)


def value(policy: ActorCritic, obs: torch.Tensor) -> torch.Tensor:
    return policy.value(obs)


def sample_actions(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draws from categorical ``probs`` (..., A) with one uniform in [0, 1) per row."""
    below = (uniforms.unsqueeze(-1) >= probs.cumsum(-1)).sum(-1)
    return below.clamp(max=probs.shape[-1] - 1)


def collect(
    agent_envs,
    population: Population,
    obs: torch.Tensor,
    num_steps: int,
    action_keys: torch.Tensor,
    step_counters: torch.Tensor,
    keep_graph: bool = False,
) -> tuple[Rollout, torch.Tensor]:
    """Run every agent's policy for ``num_steps`` on its environments from ``obs`` ``(S, N, ...)``.

    Agent ``k``'s action at its step ``c`` in environment ``n`` is drawn from the counter-based stream
    ``action_keys[k, n]`` at counter ``c``, with ``step_counters[k]`` the agent's steps before this window, so its
    draws are its own whatever the population. Returns the rollout and the observations after it.
    """
    dtype = next(iter(population.params.values())).dtype
    forward, trunks, records, watched = population.map(act), [], [], []
    with torch.set_grad_enabled(keep_graph):
        for t in range(num_steps):
            obs_t = obs.to(dtype)
            watched.append(agent_envs.watched())  # of the episodes about to act: the next step may end them
            trunk, logits = forward(obs_t)
            probs = torch.softmax(logits.detach(), dim=-1)
            actions = sample_actions(probs, uniform(action_keys, step_counters.unsqueeze(1) + t).to(dtype))
            logp = torch.log_softmax(logits, dim=-1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
            next_obs, ends = agent_envs.step(actions)  # ends: dones, terminal, labeled, ghost_overseen, true_reward
            trunks.append(trunk)
            records.append((obs_t, actions, logp.detach(), trunk.value.detach(), *ends[:4]))
            obs = next_obs
        with torch.no_grad():
            next_value = population.map(value)(obs.to(dtype))
    fields = [torch.stack(column) for column in zip(*records, strict=True)]
    trunk = _stack_trunks(trunks) if keep_graph else None
    return Rollout(*fields, next_value=next_value, trunk=trunk, watched=torch.stack(watched)), obs


def _stack_trunks(trunks: list[Trunk]) -> Trunk:
    """Per-step ``(S, N, ...)`` trunks as one per agent over its ``T * N`` samples, time-major."""
    join = lambda parts: torch.cat(parts, dim=1)  # noqa: E731
    experts = tuple(join(parts) for parts in zip(*(t.experts for t in trunks), strict=True))
    gate = None if trunks[0].gate_logit is None else join([t.gate_logit for t in trunks])
    return Trunk(experts, gate, join([t.value for t in trunks]))


def truncated(rollout: Rollout, steps: torch.Tensor) -> tuple[Rollout, torch.Tensor, torch.Tensor]:
    """``rollout`` as if agent ``k`` had stopped after ``steps[k]`` of its steps (the last window of a budget that
    is not a whole number of windows): no episode ends later. Returns it, the ``(T, S, 1)`` mask of the steps kept,
    and the mask of each kept window's last step."""
    time = torch.arange(rollout.dones.shape[0], device=steps.device).view(-1, 1, 1)
    kept = time < steps.view(1, -1, 1)
    last = time == steps.view(1, -1, 1) - 1
    shorter = rollout._replace(
        dones=rollout.dones & kept,
        terminal=torch.where(kept, rollout.terminal, torch.zeros_like(rollout.terminal)),
        labeled=rollout.labeled & kept,
    )
    return shorter, kept, last


def label_noise_keys(seeds: list[int], num_envs: int, device) -> torch.Tensor:
    """Each agent's streams ``(S, N)`` for drawing which of its labels are wrong, one per environment."""
    return torch.stack([stream_keys(seed, num_envs, LABEL_NOISE_STREAM, device) for seed in seeds])


def wrong_labels(keys: torch.Tensor, step_counters: torch.Tensor, num_steps: int, rate: float) -> torch.Tensor:
    """``(T, S, N)``: whether the label of an episode ending at each step of a window would be wrong, each with
    probability ``rate``, from agent ``k``'s stream ``keys[k, n]`` at counter ``step_counters[k] + t`` (its own
    steps, as its action draws), so an agent draws the same alone or in any population, and again on resuming."""
    time = torch.arange(num_steps, device=keys.device).view(-1, 1, 1)
    return uniform(keys, step_counters.view(1, -1, 1) + time) < rate


def labels_read(rollout: Rollout, every_episode: bool = False) -> torch.Tensor:
    """The episode ends whose label a method reads: the labeled ones (an overseen terminal), or, for a method that
    reads every episode's outcome (the oracle: every episode labeled, on a budget scaled by oversight), every end at
    a terminal. A time-out has no label."""
    return rollout.dones & (rollout.terminal != Terminal.NONE) & (rollout.labeled | every_episode)


def with_label_noise(
    rollout: Rollout, wrong: torch.Tensor, every_episode: bool = False
) -> tuple[Rollout, torch.Tensor]:
    """``rollout`` as the overseer reports it when its labels are ``wrong`` ``(T, S, N)``: each label read
    (:func:`labels_read`) where ``wrong`` says the other terminal (:func:`~oversight_rl.core.labels.mislabel`);
    every other step is left as it is. Returns it and the mask of the labels flipped."""
    flipped = wrong & labels_read(rollout, every_episode)
    terminal, ghost_overseen = mislabel(rollout.terminal, rollout.ghost_overseen, flipped)
    return rollout._replace(terminal=terminal, ghost_overseen=ghost_overseen), flipped


def training_rewards(rollout: Rollout, kind) -> torch.Tensor:
    """Reward at each step under a method's training reward: ``any_terminal``, ``proxy``, ``true`` or a function of
    the same signature (:data:`oversight_rl.core.returns.REWARDS`)."""
    return terminal_rewards(rollout.terminal, rollout.ghost_overseen, kind).float()
