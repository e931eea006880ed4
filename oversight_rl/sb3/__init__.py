"""Stable-Baselines3 adapter: the routed mixture policy and RoutedPPO. The only module that imports SB3.

>>> import gymnasium, envs
>>> from oversight_rl.sb3 import RoutedPPO
>>> env = gymnasium.make("OversightRL/DiamondGhost-5x5-v0", oversight=0.5)
>>> model = RoutedPPO("MoePolicy", env, gamma=0.97).learn(10_000)
>>> model.policy.steer("diamond")  # deploy the Diamond expert alone

- :mod:`oversight_rl.sb3.policies`: ``MoePolicy`` and ``SingleExpertPolicy``, SB3 policies around the package's
  networks, with ``expert(name)``/``steer(name)`` steering.
- :mod:`oversight_rl.sb3.routed_ppo`: ``RoutedPPO``, its label-recording callback and rollout buffer.
- :mod:`oversight_rl.sb3.vec_env`: an SB3 VecEnv over the natively batched environment (fast training).
- :mod:`oversight_rl.sb3.train`: ``train_sb3``, one run into a run directory (``train_policy.py --trainer sb3``).
"""

from oversight_rl.sb3.policies import MoePolicy, SingleExpertPolicy
from oversight_rl.sb3.routed_ppo import EpisodeLabels, RoutedPPO, RoutedRolloutBuffer
from oversight_rl.sb3.vec_env import BatchedVecEnv, make_batched_vec_env

__all__ = [
    "BatchedVecEnv",
    "EpisodeLabels",
    "MoePolicy",
    "RoutedPPO",
    "RoutedRolloutBuffer",
    "SingleExpertPolicy",
    "make_batched_vec_env",
]
