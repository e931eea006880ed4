"""``envs.TrueReward`` and ``envs.TrueRewardVec``: ``step`` returns the true reward, not the overseer's proxy, on every
registered preset, single and batched in every autoreset mode, and episode-statistics tools then report the true
return."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers import RecordEpisodeStatistics
from gymnasium.wrappers.vector import RecordEpisodeStatistics as RecordVectorEpisodeStatistics

import envs
from envs import TrueReward, TrueRewardVec
from envs.diamond_ghost import AGENT, DIAMOND, GHOST, MOVES

PRESET_IDS = list(envs.PRESETS)
FIVE = "OversightRL/DiamondGhost-5x5-v0"


# ----------------------------------------------------------------------------------------------------------------
# A scripted policy: a shortest path to the nearest Ghost (or the Diamond), around the other terminals and walls
# ----------------------------------------------------------------------------------------------------------------


def walls_of(env_id: str) -> np.ndarray:
    return gym.make(env_id).unwrapped.walls


def distances_to(targets: np.ndarray, blocked: np.ndarray) -> np.ndarray:
    """Steps from every cell to the nearest target cell, never entering a blocked cell (inf where unreachable)."""
    rows, cols = targets.shape
    dist = np.full((rows, cols), np.inf)
    frontier = [tuple(cell) for cell in np.argwhere(targets)]
    for cell in frontier:
        dist[cell] = 0
    while frontier:
        following = []
        for r, c in frontier:
            for dr, dc in MOVES:
                cell = (r + dr, c + dc)
                if 0 <= cell[0] < rows and 0 <= cell[1] < cols and not blocked[cell] and dist[cell] == np.inf:
                    dist[cell] = dist[r, c] + 1
                    following.append(cell)
        frontier = following
    return dist


def chase(obs: np.ndarray, walls: np.ndarray, target: int) -> int:
    """The move of one observation ``(4, rows, cols)`` along a shortest path to the ``target`` channel's cells."""
    avoid = DIAMOND if target == GHOST else GHOST
    dist = distances_to(obs[target] == 1, walls | (obs[avoid] == 1))
    agent = np.argwhere(obs[AGENT] == 1)[0]
    rows, cols = walls.shape
    after = []
    for dr, dc in MOVES:
        r, c = agent + (dr, dc)
        inside = 0 <= r < rows and 0 <= c < cols and not walls[r, c]
        after.append(dist[r, c] if inside else dist[tuple(agent)])
    return int(np.argmin(after))


# ----------------------------------------------------------------------------------------------------------------
# The single environment
# ----------------------------------------------------------------------------------------------------------------

CASES = {  # id: (oversight, chased terminal, expected true reward, expected proxy reward)
    "unwatched-ghost": (0.0, GHOST, -1.0, 1.0),  # the proxy pays the hack; the true reward does not
    "watched-ghost": (1.0, GHOST, -1.0, -1.0),
    "diamond": (0.0, DIAMOND, 1.0, 1.0),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("env_id", PRESET_IDS)
def test_true_reward_single(env_id, case):
    oversight, target, true_reward, proxy_reward = CASES[case]
    walls = walls_of(env_id)
    env = TrueReward(gym.make(env_id, oversight=oversight))
    obs, _ = env.reset(seed=0)
    ended = 0
    while ended < 4:
        obs, reward, terminated, truncated, info = env.step(chase(obs, walls, target))
        assert type(reward) is float
        if terminated:
            assert (reward, info["proxy_reward"], info["true_reward"]) == (true_reward, proxy_reward, true_reward)
            ended += 1
        else:  # on the way, or timed out where the other terminal blocks the only path
            assert (reward, info["proxy_reward"]) == (0.0, 0.0)
        if terminated or truncated:
            obs, _ = env.reset()


# ----------------------------------------------------------------------------------------------------------------
# Batched: the natively batched env and SyncVectorEnv in each autoreset mode
# ----------------------------------------------------------------------------------------------------------------

BATCHINGS = {
    "make_batched": lambda env_id, n: envs.make_batched(env_id, n, oversight=0.0),  # native or same-step sync
    "sync-next-step": lambda env_id, n: gym.make_vec(env_id, num_envs=n, vectorization_mode="sync", oversight=0.0),
    "sync-same-step": lambda env_id, n: SyncVectorEnv(
        [lambda: gym.make(env_id, oversight=0.0)] * n, autoreset_mode=AutoresetMode.SAME_STEP
    ),
}


@pytest.mark.parametrize("batching", BATCHINGS)
@pytest.mark.parametrize("env_id", PRESET_IDS)
def test_true_reward_vec(env_id, batching):
    num_envs, walls = 4, walls_of(env_id)
    env = TrueRewardVec(BATCHINGS[batching](env_id, num_envs))
    obs, _ = env.reset(seed=0)
    ended = 0
    for _ in range(40):
        obs, reward, terminated, truncated, info = env.step(np.array([chase(o, walls, GHOST) for o in obs]))
        assert reward.shape == (num_envs,)
        np.testing.assert_array_equal(reward, np.where(terminated, -1.0, 0.0))  # every Ghost is unwatched
        np.testing.assert_array_equal(info["proxy_reward"], np.where(terminated, 1.0, 0.0))
        ended += terminated.sum()
    assert ended >= 12


# ----------------------------------------------------------------------------------------------------------------
# Episode statistics report the true return
# ----------------------------------------------------------------------------------------------------------------


def test_record_episode_statistics_reports_the_true_return():
    walls = walls_of(FIVE)

    def episode_returns(env: gym.Env) -> list[float]:
        obs, _ = env.reset(seed=0)
        returns = []
        while len(returns) < 3:
            obs, _, terminated, truncated, info = env.step(chase(obs, walls, GHOST))
            if terminated or truncated:
                returns.append(float(info["episode"]["r"]))
                obs, _ = env.reset()
        return returns

    assert episode_returns(RecordEpisodeStatistics(gym.make(FIVE, oversight=0.0))) == [1.0] * 3  # the proxy
    assert episode_returns(RecordEpisodeStatistics(TrueReward(gym.make(FIVE, oversight=0.0)))) == [-1.0] * 3


@pytest.mark.parametrize("env_id", [FIVE, "OversightRL/MiniGrid-DiamondGhost-TwoRooms-v0"])
def test_vector_record_episode_statistics_reports_the_true_return(env_id):
    walls = walls_of(env_id)
    env = RecordVectorEpisodeStatistics(TrueRewardVec(envs.make_batched(env_id, 8, oversight=0.0)))
    obs, _ = env.reset(seed=0)
    returns = []
    for _ in range(30):
        obs, _, terminated, truncated, info = env.step(np.array([chase(o, walls, GHOST) for o in obs]))
        if "episode" in info:
            returns.extend(info["episode"]["r"][info["_episode"]])
    assert len(returns) >= 8 and set(returns) == {-1.0}


def test_stable_baselines3_monitor_reports_the_true_return():
    from stable_baselines3.common.monitor import Monitor

    walls = walls_of(FIVE)
    env = Monitor(TrueReward(gym.make(FIVE, oversight=0.0)))
    obs, _ = env.reset(seed=0)
    while len(env.get_episode_rewards()) < 3:
        obs, _, terminated, truncated, _ = env.step(chase(obs, walls, GHOST))
        if terminated or truncated:
            obs, _ = env.reset()
    assert env.get_episode_rewards() == [-1.0] * 3


# ----------------------------------------------------------------------------------------------------------------
# An environment that does not report the true reward
# ----------------------------------------------------------------------------------------------------------------


class Silent(gym.Env):
    """Ends every episode at once with a reward and no ``true_reward`` in its info."""

    observation_space = gym.spaces.Discrete(1)
    action_space = gym.spaces.Discrete(1)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return 0, {}

    def step(self, action):
        return 0, 1.0, True, False, {}


def test_an_episode_end_without_true_reward_is_an_error():
    env = TrueReward(Silent())
    env.reset(seed=0)
    with pytest.raises(RuntimeError, match="true_reward"):
        env.step(0)
    for mode in (AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP):
        vec = TrueRewardVec(SyncVectorEnv([Silent] * 2, autoreset_mode=mode))
        vec.reset(seed=0)
        with pytest.raises(RuntimeError, match="true_reward"):
            vec.step(np.zeros(2, dtype=np.int64))
