"""DiamondGhost environments, registered with gymnasium on import.

Two kinds of preset share one game, one observation and one set of episode-end labels:

- native presets (``NATIVE_PRESETS``): ``DiamondGhostEnv``, with a natively batched ``DiamondGhostVecEnv`` for
  fast training (``vector_entry_point``);
- MiniGrid presets (``MINIGRID_PRESETS``): ``DiamondGhostMiniGridEnv`` inside the observation wrapper, for rendering,
  internal walls and several Ghosts. They have no vector entry point: :func:`make_batched` trains an open room with
  one Ghost on its native counterpart and any other layout on gymnasium's ``SyncVectorEnv``.

Every preset with a native form also runs as :class:`TorchDiamondGhost` (:func:`make_torch`): the same rules on
torch tensors, on the device where the policy lives.

>>> import gymnasium, envs
>>> env = gymnasium.make("OversightRL/DiamondGhost-5x5-v0", oversight=0.1)
>>> vec = envs.make_batched("OversightRL/DiamondGhost-5x5-v0", num_envs=512, oversight=0.1)
>>> on_device = envs.make_torch("OversightRL/DiamondGhost-5x5-v0", num_envs=512, device="cpu", oversight=0.1)
>>> rooms = gymnasium.make("OversightRL/MiniGrid-DiamondGhost-TwoRooms-v0", render_mode="rgb_array")

``step`` returns the overseer's proxy reward; :class:`TrueReward` and :class:`TrueRewardVec` make it return the true
reward (for ``RecordEpisodeStatistics``, SB3's ``Monitor`` and ``evaluate_policy``).
"""

import inspect

from gymnasium.envs.registration import register, registry

from envs.diamond_ghost import DiamondGhostEnv, DiamondGhostGrid, DiamondGhostVecEnv, Terminal, layout_observation
from envs.minigrid_envs import ENTRY_POINT as MINIGRID_ENTRY_POINT
from envs.minigrid_envs import ROOM_5X5, TWO_ROOMS, DiamondGhostMiniGridEnv, OversightGridObservation
from envs.torch_grid import TorchDiamondGhost, make_torch
from envs.true_reward import TrueReward, TrueRewardVec
from envs.vectorize import (
    describe_vectorization,
    episode_step_limit,
    episode_watched,
    ghost_counts,
    make_batched,
    restore_vector_state,
    vector_state,
    vectorization_of,
    watched_terminals,
)

__all__ = [
    "DiamondGhostEnv",
    "DiamondGhostGrid",
    "DiamondGhostMiniGridEnv",
    "DiamondGhostVecEnv",
    "MINIGRID_PRESETS",
    "NATIVE_PRESETS",
    "OversightGridObservation",
    "PRESETS",
    "Terminal",
    "TorchDiamondGhost",
    "TrueReward",
    "TrueRewardVec",
    "describe_vectorization",
    "episode_step_limit",
    "episode_watched",
    "ghost_counts",
    "layout_observation",
    "make_batched",
    "make_torch",
    "restore_vector_state",
    "setting_defaults",
    "setting_names",
    "vector_state",
    "vectorization_of",
    "watched_terminals",
]

NATIVE_PRESETS: dict[str, dict] = {
    # The paper's task.
    "OversightRL/DiamondGhost-5x5-v0": dict(rows=5, cols=5, max_steps=32),
    # A larger grid with longer episodes: more room for the Ghost to be the nearer terminal.
    "OversightRL/DiamondGhost-8x8-v0": dict(rows=8, cols=8, max_steps=64),
    # Control: oversight is applied but invisible to the agent, so hacking cannot be conditioned on it.
    "OversightRL/DiamondGhost-5x5-Hidden-v0": dict(rows=5, cols=5, max_steps=32, observe_oversight=False),
}

MINIGRID_PRESETS: dict[str, dict] = {
    # The paper's task, rendered by MiniGrid; trains on the native 5x5 preset's batched env (same game).
    "OversightRL/MiniGrid-DiamondGhost-5x5-v0": dict(layout=ROOM_5X5, max_steps=32),
    # Two rooms joined by a gap: shortest paths bend round the wall.
    "OversightRL/MiniGrid-DiamondGhost-TwoRooms-v0": dict(layout=TWO_ROOMS, max_steps=48),
    # Two Ghosts, each overseen on its own, in the paper's room: the observation has the 5x5 shape, so policies
    # trained on the 5x5 presets run on it unchanged.
    "OversightRL/MiniGrid-DiamondGhost-MultiGhost-v0": dict(layout=ROOM_5X5, num_ghosts=2, max_steps=32),
}

PRESETS: dict[str, dict] = {**NATIVE_PRESETS, **MINIGRID_PRESETS}
"""Every registered preset: id -> settings."""

for _env_id, _kwargs in NATIVE_PRESETS.items():
    if _env_id not in registry:
        register(
            id=_env_id,
            entry_point="envs.diamond_ghost:DiamondGhostEnv",
            vector_entry_point="envs.diamond_ghost:DiamondGhostVecEnv",
            kwargs=_kwargs,
        )

for _env_id, _kwargs in MINIGRID_PRESETS.items():
    if _env_id not in registry:
        register(id=_env_id, entry_point=MINIGRID_ENTRY_POINT, kwargs=_kwargs)


def setting_defaults(env_id: str) -> dict[str, object]:
    """The keyword settings a preset's environment takes (its size, oversight, episode length, ...), each with the
    environment's default (before the preset's own settings)."""
    env_class = DiamondGhostMiniGridEnv if env_id in MINIGRID_PRESETS else DiamondGhostEnv
    return {name: param.default for name, param in inspect.signature(env_class).parameters.items()}


def setting_names(env_id: str) -> frozenset[str]:
    """The keyword settings a preset's environment takes."""
    return frozenset(setting_defaults(env_id))
