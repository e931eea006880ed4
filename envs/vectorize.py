"""Batching any registered preset for training and evaluation: natively where the game has a batched form,
otherwise with gymnasium's ``SyncVectorEnv``; plus what a trainer needs of either (episode step limit, state).

Both forms autoreset in the same step, so ``info["final_info"]`` (masked by ``info["_final_info"]``) carries the
labels of the episodes that ended, as plain arrays; ``info["true_reward"]`` is every environment's true reward at
every step.

- ``native``: ``DiamondGhostVecEnv``, for a native preset or a MiniGrid preset whose room is open with one Ghost
  (the same game; MiniGrid only draws it). Millions of env steps per second.
- ``sync``: a ``SyncVectorEnv`` of the preset's single env (:class:`CheckedSyncVectorEnv`, which also checks the
  shape of the action batch), for layouts with no native form (walls, several Ghosts).
  It steps MiniGrid one environment at a time, thousands of env steps per second.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

from envs.diamond_ghost import DiamondGhostEnv, DiamondGhostVecEnv, check_integer
from envs.minigrid_envs import ENTRY_POINT as MINIGRID_ENTRY_POINT
from envs.minigrid_envs import DiamondGhostMiniGridEnv, native_counterpart

Vectorization = Literal["native", "sync"]


def native_settings(env_id: str, **kwargs) -> dict | None:
    """``DiamondGhostVecEnv`` settings that play ``env_id`` with ``kwargs``, or None if it has no native form."""
    spec = gym.spec(env_id)
    settings = {**spec.kwargs, **kwargs}
    if spec.vector_entry_point is not None:
        return None  # natively batched by its own registration
    if spec.entry_point == MINIGRID_ENTRY_POINT:
        return native_counterpart(**settings)
    return None


def vectorization_of(env_id: str, **kwargs) -> Vectorization:
    """How :func:`make_batched` batches ``env_id``: ``native`` when it has a natively batched form, else ``sync``."""
    native = gym.spec(env_id).vector_entry_point is not None or native_settings(env_id, **kwargs) is not None
    return "native" if native else "sync"


class CheckedSyncVectorEnv(SyncVectorEnv):
    """gymnasium's ``SyncVectorEnv``, except that an action batch of the wrong shape raises a one-line
    ``ValueError`` (each single environment checks its own action's type and range), and that
    ``info["true_reward"]`` holds every environment's true reward at every step, as ``DiamondGhostVecEnv`` gives it
    (gymnasium's own keeps an ended episode's only in ``final_info``)."""

    def step(self, actions: Any):
        if np.shape(actions) != (self.num_envs,):
            raise ValueError(
                f"actions must be an array of shape ({self.num_envs},) of integers in {{0, 1, 2, 3}}, "
                f"got shape {np.shape(actions)}"
            )
        obs, reward, terminated, truncated, info = super().step(actions)
        true_reward = np.zeros(self.num_envs, dtype=np.float32)
        for source, valid in ((info, None), (info.get("final_info", {}), info.get("_final_info"))):
            if "true_reward" in source:
                where = source["_true_reward"] if valid is None else source["_true_reward"] & valid
                true_reward[where] = source["true_reward"][where]
        info["true_reward"], info["_true_reward"] = true_reward, np.ones(self.num_envs, dtype=bool)
        return obs, reward, terminated, truncated, info


def make_batched(env_id: str, num_envs: int, vectorization: Vectorization | None = None, **kwargs: Any) -> VectorEnv:
    """``num_envs`` environments of the preset ``env_id`` (with ``kwargs`` overriding its settings), batched the
    fastest way available, or as ``vectorization`` demands (``native`` raises ``ValueError`` where there is none)."""
    check_integer("num_envs", num_envs, 1)
    available = vectorization_of(env_id, **kwargs)
    if vectorization not in (None, "native", "sync"):
        raise ValueError(f"vectorization must be 'native', 'sync' or None, got {vectorization!r}")
    if vectorization == "native" and available != "native":
        raise ValueError(f"vectorization='native': {env_id} has no natively batched form")
    if (vectorization or available) == "sync":
        return CheckedSyncVectorEnv(
            [functools.partial(gym.make, env_id, **kwargs)] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP
        )
    if gym.spec(env_id).vector_entry_point is not None:
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    return DiamondGhostVecEnv(num_envs=num_envs, **native_settings(env_id, **kwargs))


def describe_vectorization(env_id: str, num_envs: int, **kwargs) -> str:
    """One line that says how ``env_id`` is batched, for a run's log."""
    if gym.spec(env_id).vector_entry_point is not None:
        return f"vectorization: native ({num_envs} x {env_id}, natively batched)"
    settings = native_settings(env_id, **kwargs)
    if settings is not None:
        shown = ", ".join(f"{key}={value!r}" for key, value in settings.items())
        game = f"DiamondGhostVecEnv({shown})"
        return f"vectorization: native ({env_id} is an open room with one Ghost: the same game as {game})"
    return (
        f"vectorization: sync ({env_id} has no natively batched form: gymnasium's SyncVectorEnv steps "
        f"{num_envs} single environments one at a time)"
    )


def episode_step_limit(env: VectorEnv) -> int:
    """Steps after which an episode of the batched ``env`` is truncated."""
    if isinstance(env.unwrapped, DiamondGhostVecEnv):
        return env.unwrapped.grid.max_steps
    limits = set(env.get_attr("max_steps"))
    if len(limits) != 1:
        raise ValueError(f"the environments of {env} disagree on max_steps: {sorted(limits)}")
    return limits.pop()


def watched_terminals(env: VectorEnv) -> np.ndarray:
    """Whether each environment's current episode has an overseen terminal (the Diamond or any Ghost): the episodes
    whose label, and so whose route, can depend on where they end."""
    if isinstance(env.unwrapped, DiamondGhostVecEnv):
        grid = env.unwrapped.grid
        return grid.ghost_overseen | grid.diamond_overseen
    if isinstance(env, SyncVectorEnv):
        return np.array([episode_watched(single) for single in env.envs])
    raise TypeError(f"cannot read the oversight of {type(env).__name__}; expected DiamondGhostVecEnv or SyncVectorEnv")


def episode_watched(env: gym.Env) -> bool:
    """Whether the current episode of a single DiamondGhost or MiniGrid environment has an overseen terminal."""
    game = env.unwrapped
    if isinstance(game, DiamondGhostEnv):
        return bool(game.grid.ghost_overseen[0] or game.grid.diamond_overseen[0])
    if isinstance(game, DiamondGhostMiniGridEnv):
        return bool(np.any(game.ghost_overseen) or game.diamond_overseen)
    raise TypeError(f"cannot read the oversight of {type(game).__name__}; expected a DiamondGhost environment")


def ghost_counts(ends: Any) -> tuple[Any, Any]:
    """How many of each ended episode's Ghosts were overseen, and how many not, from its episode-end fields (numpy
    arrays or tensors): the MiniGrid environments count them (``ghosts_overseen``, ``ghosts_unoverseen``); the
    native ones have one Ghost, whose ``ghost_overseen`` says it."""
    if "ghosts_overseen" in ends:
        return ends["ghosts_overseen"], ends["ghosts_unoverseen"]
    watched = ends["ghost_overseen"] * 1
    return watched, 1 - watched


def vector_state(env: VectorEnv) -> tuple[str, Any]:
    """Everything needed to continue ``env`` exactly where it is (picklable; for checkpoints)."""
    if isinstance(env.unwrapped, DiamondGhostVecEnv):
        native = env.unwrapped
        return "native", (native.grid, native.np_random.bit_generator.state)
    if isinstance(env, SyncVectorEnv):
        # Each single environment pickles whole: its layout, counters and generator state.
        return "sync", list(env.envs)
    raise TypeError(f"cannot save the state of {type(env).__name__}; expected DiamondGhostVecEnv or SyncVectorEnv")


def restore_vector_state(env: VectorEnv, state: tuple[str, Any]) -> None:
    """Put ``env`` (built with the same settings) back into a state saved by :func:`vector_state`."""
    kind, saved = state
    if kind == "native" and isinstance(env.unwrapped, DiamondGhostVecEnv):
        env.unwrapped.grid, env.unwrapped.np_random.bit_generator.state = saved
    elif kind == "sync" and isinstance(env, SyncVectorEnv) and len(saved) == env.num_envs:
        env.envs = list(saved)
    else:
        raise ValueError(f"saved {kind!r} environment state does not fit {type(env).__name__} of {env.num_envs} envs")
