"""Wrappers whose ``step`` returns the true reward instead of the overseer's proxy.

Every DiamondGhost environment's ``step`` returns the proxy reward (+1 for any terminal, -1 only for an overseen
Ghost), because that is what an overseer can pay. Tools that read the step reward, such as Stable-Baselines3's
``evaluate_policy`` and ``Monitor`` or gymnasium's ``RecordEpisodeStatistics``, therefore report the proxy. Under
these wrappers they report the true reward: +1 for the Diamond, -1 for any Ghost, 0 otherwise. The proxy reward
stays available as ``info["proxy_reward"]``.

>>> import gymnasium, envs
>>> env = envs.TrueReward(gymnasium.make("OversightRL/DiamondGhost-5x5-v0", oversight=0.1))
>>> vec = envs.TrueRewardVec(envs.make_batched("OversightRL/DiamondGhost-5x5-v0", num_envs=64, oversight=0.1))
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorWrapper


class TrueReward(gym.Wrapper):
    """A single DiamondGhost environment (native or MiniGrid) whose ``step`` returns the true reward.

    The true reward comes from ``info["true_reward"]``, which the environments report at the end of every episode;
    steps without it pay 0. A step that terminates an episode without reporting it raises ``RuntimeError``.
    """

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, proxy, terminated, truncated, info = self.env.step(action)
        if terminated and "true_reward" not in info:
            raise RuntimeError(f"{self.env} ended an episode without info['true_reward']; TrueReward needs one")
        return obs, float(info.get("true_reward", 0.0)), terminated, truncated, {**info, "proxy_reward": proxy}


class TrueRewardVec(VectorWrapper):
    """A batch of DiamondGhost environments whose ``step`` returns the true reward of each environment.

    Works on :class:`~envs.DiamondGhostVecEnv` and on gymnasium's ``SyncVectorEnv`` of any preset, in any autoreset
    mode: the true reward of an episode that ended is read from ``info["final_info"]`` (same-step autoreset) or from
    the top-level ``info["true_reward"]`` (next-step autoreset, and every step of the batched environment). A
    terminated episode without either raises ``RuntimeError``.
    """

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, proxy, terminated, truncated, info = self.env.step(actions)
        proxy = np.asarray(proxy)
        reward = np.zeros(self.num_envs, dtype=proxy.dtype)
        reported = np.zeros(self.num_envs, dtype=bool)
        for source, ended in ((info, None), (info.get("final_info"), info.get("_final_info"))):
            if not source or "true_reward" not in source:
                continue
            where = np.asarray(source.get("_true_reward", np.ones(self.num_envs, dtype=bool)), dtype=bool)
            if ended is not None:
                where = where & ended
            reward[where] = np.asarray(source["true_reward"])[where]
            reported |= where
        if (terminated & ~reported).any():
            raise RuntimeError(
                f"{self.env} ended episodes {np.flatnonzero(terminated & ~reported).tolist()} without "
                "info['true_reward'] or info['final_info']['true_reward']; TrueRewardVec needs one"
            )
        return obs, reward, terminated, truncated, {**info, "proxy_reward": proxy}
