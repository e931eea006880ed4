"""An SB3 ``VecEnv`` over a natively batched gymnasium environment, so SB3 trains at the batched env's speed.

SB3's ``DummyVecEnv`` steps one Python environment at a time (about 16k env-steps/s at 256 DiamondGhost envs here);
the batched ``DiamondGhostVecEnv`` steps all of them in numpy. Its same-step autoreset is what SB3 expects: the
observation after an episode ends is the next episode's first, the last one is ``info["terminal_observation"]``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor

import envs


class BatchedVecEnv(VecEnv):
    """SB3 view of a gymnasium ``VectorEnv`` with same-step autoreset and dict-of-arrays ``final_info``.

    Infos become one dict per environment. The info of an environment whose episode ended holds its
    ``final_info`` entries, ``terminal_observation`` and ``TimeLimit.truncated``, as ``DummyVecEnv`` gives them.
    """

    def __init__(self, env: gym.vector.VectorEnv):
        mode = env.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(f"BatchedVecEnv needs a vector env with same-step autoreset, got autoreset_mode={mode}")
        self.env, self.num_envs = env, env.num_envs  # the parent constructor reads render_mode through get_attr
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        seed = self._seeds[0]  # one generator drives every environment: seed it with the first environment's seed
        obs, _ = self.env.reset(seed=seed)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs)

    def step_wait(self):
        obs, rewards, terminated, truncated, info = self.env.step(self._actions)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if dones.any():
            final = info["final_info"]
            keys = [key for key in final if not key.startswith("_")]
            for i in np.flatnonzero(dones):
                infos[i] = {key: _scalar(final[key][i]) for key in keys}
                infos[i]["terminal_observation"] = info["final_obs"][i]
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, np.asarray(rewards, dtype=np.float32), dones, infos

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.env, attr_name)] * len(list(self._get_indices(indices)))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        result = getattr(self.env, method_name)(*method_args, **method_kwargs)
        return [result] * len(list(self._get_indices(indices)))

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices=None) -> list[bool]:
        return [False] * len(list(self._get_indices(indices)))


def _scalar(value: Any) -> Any:
    """A numpy scalar as the Python value a single env's info holds (SyncVectorEnv keeps some in object arrays)."""
    return value.item() if isinstance(value, np.generic) else value


def watched_terminals(venv: VecEnv) -> np.ndarray:
    """Whether each environment's current episode has an overseen terminal (``envs.watched_terminals``), for a
    ``BatchedVecEnv`` or a ``DummyVecEnv`` of DiamondGhost environments, under any VecEnv wrappers."""
    inner = venv.unwrapped
    if isinstance(inner, BatchedVecEnv):
        return envs.watched_terminals(inner.env)
    if isinstance(inner, DummyVecEnv):
        return np.array([envs.episode_watched(env) for env in inner.envs])
    raise TypeError(f"cannot read the oversight of {type(inner).__name__}; expected BatchedVecEnv or DummyVecEnv")


def make_batched_vec_env(env_id: str, num_envs: int, seed: int | None = None, **env_kwargs: Any) -> VecMonitor:
    """``num_envs`` environments of a registered preset, batched by :func:`envs.make_batched`, as an SB3 VecEnv with
    episode statistics (``VecMonitor``)."""
    venv = BatchedVecEnv(envs.make_batched(env_id, num_envs, **env_kwargs))
    venv.seed(seed)
    return VecMonitor(venv)
