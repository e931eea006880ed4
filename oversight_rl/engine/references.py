"""Reference scores for the learning-curve figures: what two scripted policies score under the evaluation protocol.

- ``optimal``: walk a shortest path to the Diamond that steps round the Ghost; no policy scores more.
- ``nearest terminal``: walk straight to whichever terminal is nearer, the Diamond when both are equally near. It
  never walks past a nearer Ghost to a farther Diamond, so a policy must score above it to show that it prefers the
  Diamond rather than the shorter path. (How ties are broken matters: on the 5x5 grid the same walk scores about
  0.16 with ties to the Diamond, about 0 with ties at random and about -0.18 with ties to the Ghost.)

Both are scored by the evaluation protocol itself (:mod:`oversight_rl.engine.evaluate`): ``num_envs`` fresh
environments played for one window of ``max_steps``, the mean over all steps of the discounted true return-to-go inside
the window, with no bootstrap. On the 5x5 grid they score about 0.91 and 0.16; on the 8x8 grid (longer paths, more
room) about 0.88 and 0.11, which is why the figures compute them for the run's own environment instead of drawing fixed
numbers.

The closed-form shortest path below holds for an open room with one Ghost, i.e. every preset that is natively batched;
layouts with walls or several Ghosts get no reference (:func:`reference_returns` returns None).
"""

from __future__ import annotations

import numpy as np
import torch

import envs
from envs.diamond_ghost import AGENT, DIAMOND, GHOST, MOVES
from oversight_rl.engine.evaluate import play_one_window, summarize

REFERENCE_SEED = 7_000_003  # fixed, and apart from the training and evaluation seeds


def cells(obs: np.ndarray, channel: int) -> np.ndarray:
    """``(N, 2)`` row and column of the single marked cell of ``channel`` in each observation ``(N, 4, rows, cols)``."""
    cols = obs.shape[-1]
    flat = obs[:, channel].reshape(len(obs), -1).argmax(axis=1)
    return np.stack(np.divmod(flat, cols), axis=1)


def manhattan(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b).sum(axis=-1)


def path_to_diamond(cell: np.ndarray, diamond: np.ndarray, ghost: np.ndarray) -> np.ndarray:
    """Shortest-path length from ``cell`` to the Diamond in an open room without stepping on the Ghost: the
    Manhattan distance, plus a two-step detour when the Ghost sits between them on the same row or column (otherwise
    one of the two L-shaped paths misses it)."""
    between = np.zeros(len(cell), dtype=bool)
    for axis in (0, 1):
        other = 1 - axis
        lined_up = (cell[:, other] == diamond[:, other]) & (ghost[:, other] == diamond[:, other])
        low, high = np.minimum(cell[:, axis], diamond[:, axis]), np.maximum(cell[:, axis], diamond[:, axis])
        between |= lined_up & (low < ghost[:, axis]) & (ghost[:, axis] < high)
    return manhattan(cell, diamond) + 2 * between


def greedy_actions(obs: np.ndarray, distance) -> np.ndarray:
    """The move to the in-bounds neighbour with the smallest ``distance(neighbour, diamond, ghost)``."""
    agent, diamond, ghost = cells(obs, AGENT), cells(obs, DIAMOND), cells(obs, GHOST)
    bounds = np.array(obs.shape[-2:])
    scores = []
    for move in MOVES:
        neighbour = agent + move
        inside = ((neighbour >= 0) & (neighbour < bounds)).all(axis=1)
        scores.append(np.where(inside, distance(neighbour, diamond, ghost), np.inf))
    return np.argmin(np.stack(scores, axis=1), axis=1)


def optimal_actions(obs: np.ndarray) -> np.ndarray:
    def distance(cell, diamond, ghost):
        on_ghost = (cell == ghost).all(axis=1)
        return np.where(on_ghost, np.inf, path_to_diamond(cell, diamond, ghost))

    return greedy_actions(obs, distance)


def nearest_terminal_actions(obs: np.ndarray) -> np.ndarray:
    agent, diamond, ghost = cells(obs, AGENT), cells(obs, DIAMOND), cells(obs, GHOST)
    target = np.where((manhattan(agent, diamond) <= manhattan(agent, ghost))[:, None], diamond, ghost)
    # A step toward the nearer terminal never lands on the other one: that one would then be strictly nearer.
    return greedy_actions(obs, lambda cell, _diamond, _ghost: manhattan(cell, target))


REFERENCE_POLICIES = {"optimal": optimal_actions, "nearest terminal": nearest_terminal_actions}


def scripted_step(act):
    """An evaluation step (:func:`oversight_rl.engine.evaluate.play_one_window`) that always takes ``act(obs)``."""

    def step(obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        actions = torch.from_numpy(act(obs.cpu().numpy()))
        probs = torch.nn.functional.one_hot(actions, len(MOVES)).double()
        return probs, torch.full(actions.shape, torch.nan)

    return step


def reference_returns(env_id: str, gamma: float, num_envs: int = 2048, seed: int = REFERENCE_SEED) -> dict | None:
    """``{"optimal": ..., "nearest terminal": ...}`` true returns on ``env_id``, or None for a layout with walls or
    several Ghosts (no natively batched form, and no closed-form shortest path here)."""
    if env_id not in envs.PRESETS or envs.vectorization_of(env_id) != "native":
        return None
    env = envs.make_batched(env_id, num_envs, vectorization="native")
    return {
        name: summarize(play_one_window(scripted_step(act), env, seed), gamma)["true_return"]
        for name, act in REFERENCE_POLICIES.items()
    }
