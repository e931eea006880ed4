"""Shared fixtures of the training tests: a tiny training configuration and real environment observations."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers the environments)
from oversight_rl.engine.config import TrainConfig

ENV_ID = "OversightRL/DiamondGhost-5x5-v0"

# 16 envs x 8 steps = 128 env steps per update; 2048 steps = 16 updates; evaluations at updates 0, 8 and 16.
TINY = dict(
    oversight=0.5,
    num_envs=16,
    num_steps=8,
    total_env_steps=2048,
    eval_envs=16,
    eval_every=1024,
    width=16,
)


def tiny_config(**overrides) -> TrainConfig:
    """A training configuration that runs end to end in about a second."""
    return TrainConfig(**{**TINY, **overrides})


@pytest.fixture(scope="session")
def tiny_cfg():
    """Factory for tiny training configurations: ``tiny_cfg(method="naive", seed=1)``."""
    return tiny_config


def env_observations(num: int, seed: int = 0, oversight: float = 0.5) -> np.ndarray:
    """``num`` observations ``(num, 4, 5, 5)`` of the 5x5 grid: fresh layouts, then a few random moves."""
    env = gym.make_vec(ENV_ID, num_envs=num, vectorization_mode="vector_entry_point", oversight=oversight)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        obs, *_ = env.step(rng.integers(0, 4, size=num))
    return obs


@pytest.fixture(scope="session")
def observations():
    """Factory for real observations as a numpy array: ``observations(20, seed=3)``."""
    return env_observations


@pytest.fixture
def obs_batch() -> torch.Tensor:
    """Twelve real observations as a float tensor."""
    return torch.from_numpy(env_observations(12))


@pytest.fixture
def interrupt_after_first_checkpoint(monkeypatch):
    """``interrupt(cfg, run_dir)`` trains ``cfg`` but stops it two updates after its first checkpoint."""
    from oversight_rl.engine.launch import train
    from oversight_rl.engine.trainer import Trainer

    def interrupt(cfg: TrainConfig, run_dir) -> None:
        original = Trainer.train_step

        def interrupted(self):
            agent = self.agents[0]
            if agent.update >= agent.eval_interval + 2:
                raise KeyboardInterrupt
            return original(self)

        monkeypatch.setattr(Trainer, "train_step", interrupted)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, run_dir, progress=False)
        monkeypatch.undo()

    return interrupt


@pytest.fixture
def float64():
    """Compute in float64 for the test, then restore the default dtype."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
