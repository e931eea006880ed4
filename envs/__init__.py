"""DiamondGhost environments, registered with gymnasium on import.

>>> import gymnasium, envs
>>> env = gymnasium.make("OversightRL/DiamondGhost-5x5-v0", oversight=0.1)
>>> vec = gymnasium.make_vec("OversightRL/DiamondGhost-5x5-v0", num_envs=512, vectorization_mode="vector_entry_point")
"""

from gymnasium.envs.registration import register, registry

from envs.diamond_ghost import DiamondGhostEnv, DiamondGhostGrid, DiamondGhostVecEnv, Terminal

__all__ = ["DiamondGhostEnv", "DiamondGhostGrid", "DiamondGhostVecEnv", "Terminal", "PRESETS"]

PRESETS: dict[str, dict] = {
    # The paper's task.
    "OversightRL/DiamondGhost-5x5-v0": dict(rows=5, cols=5, max_steps=32),
    # A larger grid with longer episodes: more room for the Ghost to be the nearer terminal.
    "OversightRL/DiamondGhost-8x8-v0": dict(rows=8, cols=8, max_steps=64),
    # Control: oversight is applied but invisible to the agent, so hacking cannot be conditioned on it.
    "OversightRL/DiamondGhost-5x5-Hidden-v0": dict(rows=5, cols=5, max_steps=32, observe_oversight=False),
}

for _env_id, _kwargs in PRESETS.items():
    if _env_id not in registry:
        register(
            id=_env_id,
            entry_point="envs.diamond_ghost:DiamondGhostEnv",
            vector_entry_point="envs.diamond_ghost:DiamondGhostVecEnv",
            kwargs=_kwargs,
        )
