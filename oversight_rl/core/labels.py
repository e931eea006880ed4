"""Episode labels, back-filled onto every step, and the per-sample route masks that gradient routing uses.

Rule for episodes still running when a rollout window ends: their outcome is unknown, so they are *unlabeled*
(routed to both experts, as in the reference implementation) and count as unfinished for filtering.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

import torch

from envs import Terminal

UNFINISHED = -1  # terminal code of a step whose episode has not ended inside the window


class Route(enum.IntEnum):
    """Where a sample's policy-gradient loss may flow."""

    BOTH = 0  # unlabeled or unfinished: both experts and the gate learn
    DIAMOND = 1  # overseen Diamond: Diamond expert and shared layers only
    GHOST = 2  # overseen Ghost: Ghost expert and shared layers only


class RouteMasks(NamedTuple):
    """Per-sample booleans: which parts of the mixture receive the policy-gradient loss."""

    diamond: torch.Tensor
    ghost: torch.Tensor
    gate: torch.Tensor
    head: torch.Tensor | None = None  # the output layer(s); None: every sample reaches them


def backfill(end_values: torch.Tensor, dones: torch.Tensor, unfinished_value) -> torch.Tensor:
    """Give each step of a ``(T, N)`` window the value recorded at its own episode's end.

    ``end_values[t]`` is read only where ``dones[t]``; steps after the last episode end get ``unfinished_value``.
    """
    out = torch.empty_like(end_values)
    carry = torch.full_like(end_values[0], unfinished_value)
    for t in reversed(range(end_values.shape[0])):
        carry = torch.where(dones[t], end_values[t], carry)
        out[t] = carry
    return out


def episode_routes(outcome: torch.Tensor, labeled: torch.Tensor) -> torch.Tensor:
    """Route of each step from its back-filled episode outcome (a ``Terminal`` or ``UNFINISHED``) and label."""
    routes = torch.where(labeled & (outcome == Terminal.DIAMOND), Route.DIAMOND, Route.BOTH)
    return torch.where(labeled & (outcome == Terminal.GHOST), Route.GHOST, routes).to(outcome.dtype)


def route_masks(routes: torch.Tensor) -> RouteMasks:
    """Diamond-routed samples skip the Ghost expert and the gate, and the mirror for Ghost; BOTH reaches all."""
    return RouteMasks(diamond=routes != Route.GHOST, ghost=routes != Route.DIAMOND, gate=routes == Route.BOTH)


def mislabel(
    terminal: torch.Tensor, ghost_overseen: torch.Tensor, wrong: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """What an overseer reports of episode ends whose label is ``wrong`` (bool): the other terminal, Ghost for
    Diamond and Diamond for Ghost, and, where it now says Ghost, that it saw the Ghost (``ghost_overseen``). An end at
    no terminal has no label to get wrong; every other end is reported as it is. The one rule of ``--label-noise``
    for training and validation alike; tensors of any one shape."""
    wrong = wrong & ((terminal == Terminal.DIAMOND) | (terminal == Terminal.GHOST))
    other = torch.where(terminal == Terminal.DIAMOND, int(Terminal.GHOST), int(Terminal.DIAMOND)).to(terminal.dtype)
    reported = torch.where(wrong, other, terminal)
    return reported, ghost_overseen | (wrong & (reported == Terminal.GHOST))


def verified_mask(outcome: torch.Tensor, labeled: torch.Tensor) -> torch.Tensor:
    """Steps whose episode outcome an overseer can confirm: labeled, or timed out with no terminal reached."""
    return labeled | (outcome == Terminal.NONE)


def filtering_mask(verified: torch.Tensor, unfinished: torch.Tensor, filtering: str) -> torch.Tensor:
    """Samples the filtering baseline trains on: verified episodes, plus unfinished ones unless ``finished_only``."""
    return verified if filtering == "finished_only" else verified | unfinished
