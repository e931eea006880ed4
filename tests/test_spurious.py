"""Spurious oversight (``spurious_oversight``: every other floor cell marked as watched, carrying no label) reaches
every MiniGrid preset: made alone by gymnasium, batched (natively or by SyncVectorEnv), on torch, in a training run's
environments and in its evaluation's, and through ``evaluate_policy``."""

from __future__ import annotations

import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import tiny_config

import envs
from envs.diamond_ghost import OVERSIGHT
from envs.minigrid_envs import parse_layout
from oversight_rl.engine import policy_eval
from oversight_rl.engine.launch import train

MINIGRID = list(envs.MINIGRID_PRESETS)
OPEN_ROOMS = [env_id for env_id in MINIGRID if envs.vectorization_of(env_id) == "native"]


def floor(env_id: str) -> np.ndarray:
    """The preset's floor cells ``(rows, cols)``: where the oversight channel may be marked (walls never are)."""
    return ~parse_layout(envs.MINIGRID_PRESETS[env_id]["layout"])


def fully_marked(obs, floor_cells: np.ndarray) -> np.ndarray:
    """Of a batch of observations ``(N, 4, rows, cols)``: whether each marks every floor cell (and no wall) watched;
    asserts that each is either that or unmarked, as it must be at oversight 0."""
    channel = np.asarray(obs)[:, OVERSIGHT].astype(bool)
    full = (channel == floor_cells).all(axis=(1, 2))
    assert (full | ~channel.any(axis=(1, 2))).all()
    return full


def within_5_sigma(hits: np.ndarray, p: float) -> bool:
    return abs(hits.mean() - p) < 5 * np.sqrt(p * (1 - p) / hits.size)


@pytest.mark.parametrize("env_id", MINIGRID)
@pytest.mark.parametrize("spurious_oversight", [0.0, 1.0])
def test_a_minigrid_preset_made_alone_marks_every_floor_cell_and_labels_nothing(env_id, spurious_oversight):
    env = gym.make(env_id, oversight=0.0, spurious_oversight=spurious_oversight)
    assert env.unwrapped.spurious_oversight == spurious_oversight
    rng, ends = np.random.default_rng(0), 0
    obs, _ = env.reset(seed=0)
    for _ in range(300):
        assert fully_marked(obs[None], floor(env_id))[0] == bool(spurious_oversight)
        obs, _, terminated, truncated, info = env.step(int(rng.integers(4)))
        if terminated or truncated:
            assert not info["labeled"]
            ends += 1
            obs, _ = env.reset()
    assert ends >= 10


@pytest.mark.parametrize("env_id", MINIGRID)
def test_a_batched_minigrid_preset_marks_the_fraction_asked_and_labels_nothing(env_id):
    """Natively batched (the open room) or by SyncVectorEnv (walls, two Ghosts): the same fraction, at reset and at
    every autoreset."""
    num_envs = 256
    env = envs.make_batched(env_id, num_envs, oversight=0.0, spurious_oversight=0.3)
    obs, _ = env.reset(seed=1)
    starts = [fully_marked(obs, floor(env_id))]
    rng = np.random.default_rng(1)
    for _ in range(60):
        obs, _, terminated, truncated, info = env.step(rng.integers(0, 4, size=num_envs))
        ended = terminated | truncated
        if ended.any():
            assert not (info["final_info"]["labeled"] & ended).any()
        starts.append(fully_marked(obs[ended], floor(env_id)))  # the next episode's first observation
    hits = np.concatenate(starts)
    assert hits.size > 1.5 * num_envs and within_5_sigma(hits, 0.3), hits.mean()
    env.close()


@pytest.mark.parametrize("env_id", OPEN_ROOMS)
def test_a_minigrid_preset_on_torch_marks_the_fraction_asked(env_id):
    env = envs.make_torch(env_id, 2048, oversight=0.0, spurious_oversight=0.3)
    obs = env.reset(seed=2)
    assert within_5_sigma(fully_marked(obs.numpy(), floor(env_id)), 0.3)
    generator = torch.Generator().manual_seed(2)
    for _ in range(20):
        info = env.step(torch.randint(0, 4, (env.num_envs,), generator=generator))[-1]
        assert not info["final_info"]["labeled"].any()


def made_spurious(env) -> set[float]:
    """The spurious_oversight of every game inside a batched or torch environment."""
    if isinstance(env, envs.TorchDiamondGhost):
        return {env.spurious_oversight}
    if isinstance(env.unwrapped, envs.DiamondGhostVecEnv):
        return {env.unwrapped.grid.spurious_oversight}
    return {single.unwrapped.spurious_oversight for single in env.envs}


@pytest.mark.parametrize(
    "env_id, backend", [(env_id, "numpy") for env_id in MINIGRID] + [(env_id, "torch") for env_id in OPEN_ROOMS]
)
def test_a_run_on_a_minigrid_preset_trains_and_evaluates_with_the_setting(tmp_path, monkeypatch, env_id, backend):
    """``--env-kwargs '{"spurious_oversight": 0.3}'`` reaches every environment a run makes, for training and for
    evaluation, on either backend."""
    made: list[set[float]] = []
    for name in ("make_batched", "make_torch"):
        original = getattr(envs, name)

        def spy(*args, _original=original, **kwargs):
            env = _original(*args, **kwargs)
            made.append(made_spurious(env))
            return env

        monkeypatch.setattr(envs, name, spy)
    cfg = tiny_config(env=env_id, env_backend=backend, env_kwargs=json.dumps({"spurious_oversight": 0.3}))
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary["env_steps"] >= cfg.total_env_steps
    assert len(made) >= 2 and all(spurious == {0.3} for spurious in made), made


@pytest.mark.parametrize("env_id", MINIGRID)
def test_evaluate_policy_plays_a_made_minigrid_environment_with_its_setting(env_id):
    """An environment made by ``gymnasium.make`` with the setting is evaluated with it: every observation the policy
    sees at oversight 0 marks every floor cell, and no Ghost it met was overseen."""
    seen = []

    def uniform(obs: np.ndarray) -> np.ndarray:
        seen.append(fully_marked(obs, floor(env_id)))
        return np.full((len(obs), 4), 0.25)

    made = gym.make(env_id, oversight=0.0, spurious_oversight=1.0)
    metrics = policy_eval.evaluate_policy(uniform, made, episodes=64, num_envs=32)
    assert np.concatenate(seen).all()
    assert math.isnan(metrics["ghost_rate_overseen"].mean)  # the marks oversaw no Ghost
