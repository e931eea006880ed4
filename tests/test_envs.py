"""Tests of the DiamondGhost environments (``envs``): API checks, determinism, autoreset, rules, labels, errors.

The preset-wide tests run over every registered preset, native and MiniGrid; tests of the natively batched env run
over the native presets. MiniGrid-only behaviour is tested in test_minigrid.py.
"""

from __future__ import annotations

import re
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from envs import DiamondGhostEnv, DiamondGhostVecEnv, Terminal
from envs.diamond_ghost import AGENT, DIAMOND, GHOST, OVERSIGHT, layout_observation

PRESET_IDS = list(envs.PRESETS)
NATIVE_IDS = list(envs.NATIVE_PRESETS)
WRAPPED_WARNING = r".*is different from the unwrapped version.*"  # MiniGrid presets are checked with their wrapper
FONT_WARNING = r"The system font"  # MiniGrid's human window asks for a font few systems have
UP, RIGHT, DOWN, LEFT = range(4)
INFO_KEYS = ("terminal", "labeled", "true_reward", "ghost_overseen", "diamond_overseen")


# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------


def set_layout(env, agent, ghost, diamond, ghost_overseen=False, diamond_overseen=False, spurious=False, i=0):
    """Put environment ``i`` of ``env`` (either form) into a known layout at step 0 and redraw its observation."""
    grid = env.unwrapped.grid
    grid.agent[i], grid.ghost[i], grid.diamond[i] = agent, ghost, diamond
    grid.ghost_overseen[i], grid.diamond_overseen[i], grid.spurious[i] = ghost_overseen, diamond_overseen, spurious
    grid.steps[i] = 0
    grid._draw(np.array([i]))


def make_single(env_id: str, **kwargs) -> gym.Env:
    """A preset's single env with the package's observation: the raw native env, or the MiniGrid env inside its
    observation wrapper (as ``gym.make`` builds it)."""
    env = gym.make(env_id, **kwargs)
    return env.unwrapped if env_id in envs.NATIVE_PRESETS else env


def cell_of(obs: np.ndarray, channel: int) -> tuple[int, int]:
    """The only marked cell of one channel of a single ``(4, rows, cols)`` observation."""
    cells = np.argwhere(obs[channel] == 1.0)
    assert len(cells) == 1 and obs[channel].sum() == 1.0, f"channel {channel} is not one-hot"
    return tuple(cells[0])


def assert_fresh_layout(obs: np.ndarray) -> None:
    """Exactly one agent and one Diamond, at least one Ghost, all on distinct cells."""
    ghosts = [tuple(cell) for cell in np.argwhere(obs[GHOST] == 1.0)]
    assert ghosts and obs[GHOST].sum() == len(ghosts), "the Ghost channel is not a set of marked cells"
    assert len({cell_of(obs, AGENT), cell_of(obs, DIAMOND), *ghosts}) == 2 + len(ghosts)


def random_actions(n_steps: int, num_envs: int | None = None, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4, size=n_steps if num_envs is None else (n_steps, num_envs))


def rollout_single(env: gym.Env, seed: int, actions: np.ndarray) -> list:
    """Every return of reset/step along a fixed action sequence, resetting manually when an episode ends."""
    trajectory = [env.reset(seed=seed)]
    for action in actions:
        step = env.step(int(action))
        trajectory.append(step)
        if step[2] or step[3]:
            trajectory.append(env.reset())
    return trajectory


def rollout_batched(env: DiamondGhostVecEnv, seed: int, actions: np.ndarray) -> list:
    return [env.reset(seed=seed)] + [env.step(a) for a in actions]


class Single:
    """Uniform interface to the single env for scenario tests: ``step`` returns the terminal obs and episode info."""

    def __init__(self, **kwargs):
        self.env = DiamondGhostEnv(**kwargs)
        self.env.reset(seed=0)

    def step(self, action: int):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if not (terminated or truncated):
            assert info == {"true_reward": 0.0}
            return obs, reward, terminated, truncated, None
        return obs, reward, terminated, truncated, info


class Batched(Single):
    def __init__(self, **kwargs):
        self.env = DiamondGhostVecEnv(num_envs=1, **kwargs)
        self.env.reset(seed=0)

    def step(self, action: int):
        obs, reward, terminated, truncated, info = self.env.step(np.array([action]))
        if "final_info" not in info:
            assert info["true_reward"][0] == 0.0
            return obs[0], reward[0], terminated[0], truncated[0], None
        assert info["_final_info"][0] and info["_final_obs"][0]
        episode = {key: info["final_info"][key][0] for key in INFO_KEYS}
        assert info["true_reward"][0] == episode["true_reward"]  # the step's true reward, also at the top level
        return info["final_obs"][0], reward[0], terminated[0], truncated[0], episode


FORMS = [pytest.param(Single, id="single"), pytest.param(Batched, id="batched")]


# ----------------------------------------------------------------------------------------------------------------
# API: env checkers, registration
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", PRESET_IDS)
def test_gymnasium_env_checker(env_id, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # the checker also plays MiniGrid's human mode: a headless window
    env = make_single(env_id, render_mode="rgb_array")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checker warning is a failure
        warnings.filterwarnings("ignore", message=WRAPPED_WARNING)
        warnings.filterwarnings("ignore", message=FONT_WARNING)
        gym_check_env(env)


@pytest.mark.parametrize("env_id", PRESET_IDS)
def test_sb3_env_checker(env_id):
    env = make_single(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # The observation is a small float one-hot grid, which SB3 mistakes for an image.
        warnings.filterwarnings("ignore", message=r".*is an image but.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=r".*minimal resolution for an image.*", category=UserWarning)
        sb3_check_env(env, warn=True)


@pytest.mark.parametrize("env_id", NATIVE_IDS)
def test_registration(env_id):
    settings = envs.PRESETS[env_id]
    vec = gym.make_vec(env_id, num_envs=8, vectorization_mode="vector_entry_point")
    assert isinstance(vec, DiamondGhostVecEnv)
    assert vec.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert vec.num_envs == 8
    obs, _ = vec.reset(seed=0)
    assert obs.shape == (8, 4, settings["rows"], settings["cols"])
    single = gym.make(env_id).unwrapped
    assert isinstance(single, DiamondGhostEnv)
    for env in (vec, single):
        for key, value in settings.items():
            assert getattr(env.grid, key) == value, key


# ----------------------------------------------------------------------------------------------------------------
# Determinism, observation space, single vs batched
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", PRESET_IDS)
def test_single_determinism(env_id):
    actions = random_actions(300)
    env_a, env_b = make_single(env_id), make_single(env_id)
    first = rollout_single(env_a, 3, actions)
    np.testing.assert_equal(rollout_single(env_b, 3, actions), first)
    np.testing.assert_equal(rollout_single(env_a, 3, actions), first)  # re-seeding the same env replays it
    assert sum(bool(step[-1]) for step in first[1:]) >= 5, "too few episodes ended to test anything"
    assert not np.array_equal(env_a.reset(seed=4)[0], env_a.reset(seed=3)[0])


@pytest.mark.parametrize("env_id", NATIVE_IDS)
def test_batched_determinism(env_id):
    actions = random_actions(100, 32)
    env_a, env_b = (gym.make_vec(env_id, num_envs=32, vectorization_mode="vector_entry_point") for _ in range(2))
    first = rollout_batched(env_a, 3, actions)
    np.testing.assert_equal(rollout_batched(env_b, 3, actions), first)
    np.testing.assert_equal(rollout_batched(env_a, 3, actions), first)
    assert sum(bool(step[-1]) for step in first[1:]) >= 5, "too few episodes ended to test anything"
    other, _ = env_a.reset(seed=4)
    first_obs = first[0][0]
    different = [not np.array_equal(other[i], first_obs[i]) for i in range(32)]
    assert sum(different) >= 30  # a repeated layout in a row is possible but rare


@pytest.mark.parametrize("env_id", PRESET_IDS)
def test_observations_in_space(env_id):
    single = make_single(env_id)
    obs, _ = single.reset(seed=1)
    for action in random_actions(500):
        assert single.observation_space.contains(obs)
        obs, _, terminated, truncated, _ = single.step(int(action))
        if terminated or truncated:
            assert single.observation_space.contains(obs)
            obs, _ = single.reset()
            assert_fresh_layout(obs)


@pytest.mark.parametrize("env_id", NATIVE_IDS)
def test_batched_observations_in_space(env_id):
    vec = gym.make_vec(env_id, num_envs=64, vectorization_mode="vector_entry_point")
    obs, _ = vec.reset(seed=1)
    for actions in random_actions(200, 64):
        assert vec.observation_space.contains(obs)
        obs, _, _, _, info = vec.step(actions)
        if "final_obs" in info:
            for final in info["final_obs"][info["_final_obs"]]:
                assert vec.single_observation_space.contains(final)


@pytest.mark.parametrize("env_id", NATIVE_IDS)
def test_batched_of_one_matches_single(env_id):
    single = gym.make(env_id).unwrapped
    batched = gym.make_vec(env_id, num_envs=1, vectorization_mode="vector_entry_point")
    obs_s, _ = single.reset(seed=11)
    obs_b, _ = batched.reset(seed=11)
    np.testing.assert_array_equal(obs_b[0], obs_s)
    episodes = 0
    for action in random_actions(400, seed=5):
        obs_s, reward_s, term_s, trunc_s, info_s = single.step(int(action))
        obs_b, reward_b, term_b, trunc_b, info_b = batched.step(np.array([action]))
        assert (reward_b[0], term_b[0], trunc_b[0]) == (reward_s, term_s, trunc_s)
        if term_s or trunc_s:
            episodes += 1
            assert info_b["_final_info"][0] and info_b["_final_obs"][0]
            np.testing.assert_array_equal(info_b["final_obs"][0], obs_s)
            assert {key: info_b["final_info"][key][0] for key in INFO_KEYS} == info_s
            obs_s, _ = single.reset()
        else:
            assert info_s == {"true_reward": 0.0} and set(info_b) == {"true_reward", "_true_reward"}
        assert info_b["true_reward"][0] == info_s["true_reward"]
        np.testing.assert_array_equal(obs_b[0], obs_s)
    assert episodes >= 5


@pytest.mark.parametrize("env_id", PRESET_IDS)
def test_every_step_reports_the_true_reward(env_id):
    """``info["true_reward"]``: 0.0 on the way, +1 or -1 at the terminal; the step reward stays the proxy."""
    env = make_single(env_id, oversight=0.5)
    env.reset(seed=0)
    seen = set()
    for action in random_actions(3000):
        _, proxy, terminated, truncated, info = env.step(int(action))
        assert type(info["true_reward"]) is float
        expected = {Terminal.DIAMOND: 1.0, Terminal.GHOST: -1.0}.get(info.get("terminal"), 0.0)
        assert info["true_reward"] == expected
        seen.add((info["true_reward"], proxy))
        if terminated or truncated:
            env.reset()
    assert {(-1.0, 1.0), (-1.0, -1.0), (1.0, 1.0), (0.0, 0.0)} <= seen  # an unwatched Ghost pays the proxy +1


@pytest.mark.parametrize("env_id", PRESET_IDS)
def test_every_batched_step_reports_the_true_reward(env_id):
    """``make_batched`` (native, or SyncVectorEnv for MiniGrid layouts): an array at every step, the ended
    episodes' true reward where they ended and 0 elsewhere; ``final_info`` as before."""
    num_envs = 8
    env = envs.make_batched(env_id, num_envs, oversight=0.5)
    env.reset(seed=0)
    ended = 0
    native = isinstance(env, DiamondGhostVecEnv)
    counts = set() if native else {"ghosts_overseen", "ghosts_unoverseen"}  # MiniGrid layouts count their Ghosts
    for actions in random_actions(150, num_envs):
        _, _, terminated, truncated, info = env.step(actions)
        assert info["true_reward"].shape == (num_envs,) and info["true_reward"].dtype == np.float32
        assert info["_true_reward"].all()
        expected = np.zeros(num_envs)
        if "final_info" in info:
            assert {key for key in info["final_info"] if not key.startswith("_")} == set(INFO_KEYS) | counts
            expected = np.where(info["_final_info"], info["final_info"]["true_reward"], 0.0)
            ended += terminated.sum()
        np.testing.assert_array_equal(info["true_reward"], expected)
    assert ended >= 10


def test_layout_observation_matches_the_native_env():
    """The one-layout observation builder (used by the MiniGrid wrapper and the pictures) draws what the env does."""
    env = DiamondGhostVecEnv(num_envs=200, rows=4, cols=6, oversight=0.5, spurious_oversight=0.2)
    obs, _ = env.reset(seed=0)
    grid = env.grid
    assert obs[:, OVERSIGHT].any(axis=(1, 2)).sum() > 50
    for i in range(env.num_envs):
        layout = (tuple(grid.agent[i]), [tuple(grid.ghost[i])], tuple(grid.diamond[i]))
        np.testing.assert_array_equal(layout_observation((4, 6), *layout, grid.overseen_cells(i)), obs[i])
        hidden = layout_observation((4, 6), *layout)
        np.testing.assert_array_equal(hidden[:OVERSIGHT], obs[i, :OVERSIGHT])
        assert not hidden[OVERSIGHT].any()


# ----------------------------------------------------------------------------------------------------------------
# Autoreset of the batched env
# ----------------------------------------------------------------------------------------------------------------


def test_batched_autoreset():
    num_envs, max_steps = 16, 12
    env = DiamondGhostVecEnv(num_envs=num_envs, oversight=0.5, max_steps=max_steps)
    obs, _ = env.reset(seed=2)
    lengths = np.zeros(num_envs, dtype=int)
    ended = {"terminated": 0, "truncated": 0}
    for actions in random_actions(300, num_envs, seed=2):
        previous = obs
        obs, reward, terminated, truncated, info = env.step(actions)
        lengths += 1
        done = terminated | truncated
        assert not (terminated & truncated).any()
        assert (lengths <= max_steps).all()
        np.testing.assert_array_equal(truncated, (lengths == max_steps) & ~terminated)
        # Unfinished episodes carry on: same Ghost and Diamond, counter still running.
        np.testing.assert_array_equal(obs[~done, GHOST:], previous[~done, GHOST:])
        np.testing.assert_array_equal(env.grid.steps[~done], lengths[~done])
        # The true reward of every step: the episode's where one ended, else 0.
        assert info["true_reward"].dtype == np.float32 and info["_true_reward"].all()
        if not done.any():
            assert set(info) == {"true_reward", "_true_reward"} and not info["true_reward"].any()
            continue
        np.testing.assert_array_equal(info["true_reward"], np.where(done, info["final_info"]["true_reward"], 0.0))
        np.testing.assert_array_equal(info["_final_obs"], done)
        np.testing.assert_array_equal(info["_final_info"], done)
        final_info = info["final_info"]
        for key in INFO_KEYS:
            np.testing.assert_array_equal(final_info[f"_{key}"], done)
        for i in np.flatnonzero(done):
            final = info["final_obs"][i]
            # The returned observation is a fresh episode with its counter reset.
            assert_fresh_layout(obs[i])
            assert env.grid.steps[i] == 0
            # The final observation shows the finished episode: its Ghost and Diamond, the agent on the terminal.
            np.testing.assert_array_equal(final[GHOST:], previous[i, GHOST:])
            agent = cell_of(final, AGENT)
            terminal = Terminal(final_info["terminal"][i])
            reached = {Terminal.DIAMOND: cell_of(final, DIAMOND), Terminal.GHOST: cell_of(final, GHOST)}
            if terminated[i]:
                assert agent == reached[terminal]
                ended["terminated"] += 1
            else:
                assert terminal == Terminal.NONE and agent not in reached.values()
                ended["truncated"] += 1
            # Labels are those of the finished episode, as shown in its oversight channel.
            assert final_info["ghost_overseen"][i] == final[OVERSIGHT][reached[Terminal.GHOST]]
            assert final_info["diamond_overseen"][i] == final[OVERSIGHT][reached[Terminal.DIAMOND]]
            expected_label = {Terminal.NONE: False, Terminal.DIAMOND: final_info["diamond_overseen"][i]}
            expected_label[Terminal.GHOST] = final_info["ghost_overseen"][i]
            assert final_info["labeled"][i] == expected_label[terminal]
        lengths[done] = 0
    assert ended["terminated"] >= 50 and ended["truncated"] >= 10


# ----------------------------------------------------------------------------------------------------------------
# Rules: hand-built scenarios
# ----------------------------------------------------------------------------------------------------------------

# name: (layout, actions, expected end of the last step)
SCENARIOS = {
    "diamond": (  # the overseen Ghost does not label an episode that ends at the Diamond
        dict(agent=(2, 2), ghost=(0, 0), diamond=(2, 4), ghost_overseen=True),
        [RIGHT, RIGHT],
        dict(reward=1.0, true_reward=1.0, labeled=False, terminated=True, terminal=Terminal.DIAMOND),
    ),
    "diamond-overseen": (
        dict(agent=(2, 2), ghost=(0, 0), diamond=(4, 2), diamond_overseen=True),
        [DOWN, DOWN],
        dict(reward=1.0, true_reward=1.0, labeled=True, terminated=True, terminal=Terminal.DIAMOND),
    ),
    "ghost-overseen": (
        dict(agent=(2, 2), ghost=(2, 0), diamond=(4, 4), ghost_overseen=True),
        [LEFT, LEFT],
        dict(reward=-1.0, true_reward=-1.0, labeled=True, terminated=True, terminal=Terminal.GHOST),
    ),
    "ghost-not-overseen": (  # the overseen Diamond does not label an episode that ends at the Ghost
        dict(agent=(2, 2), ghost=(0, 2), diamond=(4, 4), diamond_overseen=True),
        [UP, UP],
        dict(reward=1.0, true_reward=-1.0, labeled=False, terminated=True, terminal=Terminal.GHOST),
    ),
    "ghost-spurious-only": (  # spurious oversight marks the cell but labels nothing
        dict(agent=(2, 2), ghost=(2, 3), diamond=(4, 4), spurious=True),
        [RIGHT],
        dict(reward=1.0, true_reward=-1.0, labeled=False, terminated=True, terminal=Terminal.GHOST),
    ),
    "truncation": (  # three moves into the corner's walls; both terminals overseen, none reached
        dict(agent=(0, 0), ghost=(4, 4), diamond=(4, 3), ghost_overseen=True, diamond_overseen=True),
        [UP, LEFT, UP],
        dict(reward=0.0, true_reward=0.0, labeled=False, truncated=True, terminal=Terminal.NONE),
    ),
    "diamond-on-last-step": (  # reaching a terminal on the last allowed step terminates and does not truncate
        dict(agent=(0, 0), ghost=(4, 4), diamond=(0, 3)),
        [RIGHT, RIGHT, RIGHT],
        dict(reward=1.0, true_reward=1.0, labeled=False, terminated=True, terminal=Terminal.DIAMOND),
    ),
}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario(form, name):
    layout, actions, expected = SCENARIOS[name]
    env = form(rows=5, cols=5, max_steps=3, oversight=0.5)
    set_layout(env.env, **layout)
    for action in actions[:-1]:
        _, reward, terminated, truncated, episode = env.step(action)
        assert (reward, terminated, truncated, episode) == (0.0, False, False, None)
    final, reward, terminated, truncated, episode = env.step(actions[-1])
    assert reward == expected["reward"]
    assert (terminated, truncated) == (expected.get("terminated", False), expected.get("truncated", False))
    assert episode["terminal"] == expected["terminal"]
    assert episode["true_reward"] == expected["true_reward"]
    assert episode["labeled"] == expected["labeled"]
    assert (episode["ghost_overseen"], episode["diamond_overseen"]) == (
        layout.get("ghost_overseen", False),
        layout.get("diamond_overseen", False),
    )
    target = {Terminal.DIAMOND: layout["diamond"], Terminal.GHOST: layout["ghost"]}.get(expected["terminal"])
    assert cell_of(final, AGENT) == (target or layout["agent"])


@pytest.mark.parametrize("form", FORMS)
def test_walls(form):
    env = form(rows=4, cols=6, max_steps=50)
    grid = env.env.unwrapped.grid
    set_layout(env.env, agent=(0, 0), ghost=(3, 0), diamond=(0, 5))
    route = [  # (action, expected agent cell)
        (UP, (0, 0)),
        (LEFT, (0, 0)),
        (DOWN, (1, 0)),
        (RIGHT, (1, 1)),
        (UP, (0, 1)),
        (UP, (0, 1)),
        (DOWN, (1, 1)),
        (DOWN, (2, 1)),
        (DOWN, (3, 1)),
        (DOWN, (3, 1)),
        *[(RIGHT, (3, c)) for c in range(2, 6)],
        (RIGHT, (3, 5)),
        (DOWN, (3, 5)),
    ]
    for action, cell in route:
        obs, reward, terminated, truncated, _ = env.step(action)
        assert cell_of(obs, AGENT) == cell == tuple(grid.agent[0])
        assert (reward, terminated, truncated) == (0.0, False, False)
    assert grid.steps[0] == len(route)


# ----------------------------------------------------------------------------------------------------------------
# Oversight: label statistics, hidden and spurious oversight
# ----------------------------------------------------------------------------------------------------------------


def finished_episodes(env: DiamondGhostVecEnv, n_steps: int, seed: int) -> dict[str, np.ndarray]:
    """Episode-end info of every episode that ended in ``n_steps`` random batched steps."""
    env.reset(seed=seed)
    collected = {key: [] for key in INFO_KEYS}
    for actions in random_actions(n_steps, env.num_envs, seed=seed):
        info = env.step(actions)[-1]
        if "final_info" in info:
            for key in INFO_KEYS:
                collected[key].append(info["final_info"][key][info["_final_info"]])
    return {key: np.concatenate(values) for key, values in collected.items()}


@pytest.mark.parametrize("oversight", [0.0, 0.05, 0.1, 0.5, 0.9, 1.0])
def test_labeled_fraction_matches_oversight(oversight):
    """An episode is labeled iff the terminal it reaches is overseen, and each terminal is overseen with probability
    ``oversight`` independently of random actions, so among episodes that reach a terminal (timeouts are never
    labeled) the labeled fraction is a binomial estimate of ``oversight``."""
    episodes = finished_episodes(DiamondGhostVecEnv(num_envs=4096, oversight=oversight), n_steps=200, seed=17)
    timeout = episodes["terminal"] == Terminal.NONE
    assert timeout.any() and not episodes["labeled"][timeout].any()
    for terminal in (Terminal.DIAMOND, Terminal.GHOST, None):  # each terminal, then both together
        reached = ~timeout if terminal is None else episodes["terminal"] == terminal
        labeled, n = episodes["labeled"][reached], reached.sum()
        assert n >= 1000
        if oversight in (0.0, 1.0):
            assert labeled.all() if oversight else not labeled.any()
        else:
            sigma = np.sqrt(oversight * (1 - oversight) / n)
            assert abs(labeled.mean() - oversight) < 5 * sigma, (terminal, labeled.mean(), n)


def test_hidden_preset_hides_oversight_but_labels():
    hidden = "OversightRL/DiamondGhost-5x5-Hidden-v0"
    vec = gym.make_vec(hidden, num_envs=256, vectorization_mode="vector_entry_point")
    obs, _ = vec.reset(seed=0)
    labels = 0
    for actions in random_actions(100, 256):
        assert not obs[:, OVERSIGHT].any()
        obs, _, _, _, info = vec.step(actions)
        if "final_obs" in info:
            assert not info["final_obs"][:, OVERSIGHT].any()
            labels += info["final_info"]["labeled"][info["_final_info"]].sum()
    assert labels > 0
    single = gym.make(hidden).unwrapped
    assert not single.reset(seed=0)[0][OVERSIGHT].any()
    # The same layout with the oversight channel visible does show it.
    visible = DiamondGhostEnv(observe_oversight=True)
    set_layout(visible, agent=(0, 0), ghost=(1, 1), diamond=(2, 2), ghost_overseen=True)
    set_layout(single, agent=(0, 0), ghost=(1, 1), diamond=(2, 2), ghost_overseen=True)
    assert visible.grid.obs[0, OVERSIGHT].sum() == 1 and not single.grid.obs[0, OVERSIGHT].any()


@pytest.mark.parametrize("spurious_oversight", [0.0, 0.3, 1.0])
def test_spurious_oversight(spurious_oversight):
    """With ``oversight=0`` the oversight channel is all ones (spurious) or all zeros, and nothing is ever labeled."""
    env = DiamondGhostVecEnv(num_envs=2048, oversight=0.0, spurious_oversight=spurious_oversight)
    obs, _ = env.reset(seed=0)
    channel = obs[:, OVERSIGHT].reshape(env.num_envs, -1)
    full = channel.all(axis=1)
    assert (full | ~channel.any(axis=1)).all()
    if spurious_oversight in (0.0, 1.0):
        assert full.all() if spurious_oversight else not full.any()
    else:
        sigma = np.sqrt(spurious_oversight * (1 - spurious_oversight) / env.num_envs)
        assert abs(full.mean() - spurious_oversight) < 5 * sigma
    assert not finished_episodes(env, n_steps=50, seed=0)["labeled"].any()


# ----------------------------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------------------------

BAD_SETTINGS = {  # id: (settings, pattern the message must match)
    "oversight=-0.1": (dict(oversight=-0.1), "^oversight"),
    "oversight=1.5": (dict(oversight=1.5), "^oversight"),
    "oversight=nan": (dict(oversight=float("nan")), "^oversight"),
    "spurious=-0.1": (dict(spurious_oversight=-0.1), "^spurious_oversight"),
    "spurious=1.5": (dict(spurious_oversight=1.5), "^spurious_oversight"),
    "grid=1x2": (dict(rows=1, cols=2), "rows"),
    "rows=0": (dict(rows=0), "rows"),
    "max_steps=0": (dict(max_steps=0), "max_steps"),
    "max_steps=2.5": (dict(max_steps=2.5), "max_steps"),
    "render_mode=human": (dict(render_mode="human"), "render_mode"),
    "rows=True": (dict(rows=True), "^rows"),
    "cols=5.0": (dict(cols=5.0), "^cols"),
    "max_steps=True": (dict(max_steps=True), "^max_steps"),
    "observe_oversight='no'": (dict(observe_oversight="no"), "^observe_oversight"),
}

# Every numeric setting of every preset, given a value of the wrong type through gymnasium.make: a one-line
# ValueError that names the setting and its allowed range (not a TypeError from deep inside).
NUMERIC_SETTINGS = {"oversight": "[0, 1]", "spurious_oversight": "[0, 1]", "max_steps": ">= 1"}
GRID_SETTINGS = {"rows": ">= 1", "cols": ">= 1"}  # native presets only: a MiniGrid room's size is its layout


@pytest.mark.parametrize("form", [DiamondGhostEnv, DiamondGhostVecEnv], ids=["single", "batched"])
@pytest.mark.parametrize("case", BAD_SETTINGS)
def test_bad_settings(form, case):
    settings, match = BAD_SETTINGS[case]
    with pytest.raises(ValueError, match=match):
        form(**settings)


@pytest.mark.parametrize("value", ["a", None, "0.5", True], ids=repr)
@pytest.mark.parametrize("env_id", PRESET_IDS)
def test_bad_setting_types_through_gymnasium_make(env_id, value):
    settings = {**NUMERIC_SETTINGS, **(GRID_SETTINGS if env_id in envs.NATIVE_PRESETS else {})}
    for name, allowed in settings.items():
        with pytest.raises(ValueError, match=f"^{name} must be .*{re.escape(allowed)}, got {re.escape(repr(value))}$"):
            gym.make(env_id, **{name: value})


@pytest.mark.parametrize("num_envs", [0, -1, 2.0, True], ids=repr)
def test_bad_num_envs(num_envs):
    with pytest.raises(ValueError, match="^num_envs must be an integer >= 1"):
        DiamondGhostVecEnv(num_envs=num_envs)
    for env_id in NATIVE_IDS:
        with pytest.raises(ValueError, match="^num_envs must be an integer >= 1"):
            envs.make_batched(env_id, num_envs)


@pytest.mark.parametrize("action", [4, -1, 1.0, np.array([0]), np.array([0, 1])], ids=repr)
def test_bad_action_single(action):
    env = DiamondGhostEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(action)


@pytest.mark.parametrize(
    "actions",
    [[0, 4, 0], [0, -1, 0], [0, 1], [0, 1, 2, 3], [[0], [1], [2]], 1, [0.0, 1.0, 2.0]],
    ids=repr,
)
def test_bad_actions_batched(actions):
    env = DiamondGhostVecEnv(num_envs=3)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(np.asarray(actions))


def test_step_before_reset():
    with pytest.raises(RuntimeError, match="reset"):
        DiamondGhostEnv().step(0)
    with pytest.raises(RuntimeError, match="reset"):
        DiamondGhostVecEnv(num_envs=2).step(np.zeros(2, dtype=np.int64))
    env = DiamondGhostEnv()  # the single env also needs a reset after an episode ends
    env.reset(seed=0)
    set_layout(env, agent=(0, 0), ghost=(0, 1), diamond=(4, 4))
    assert env.step(RIGHT)[2]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(RIGHT)


# ----------------------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------------------

RENDER_LAYOUT = dict(agent=(0, 0), ghost=(1, 2), diamond=(3, 1), ghost_overseen=True)


def test_render_ansi():
    env = DiamondGhostEnv(rows=4, cols=5, render_mode="ansi")
    env.reset(seed=0)
    set_layout(env, **RENDER_LAYOUT)
    lines = env.render().splitlines()
    assert lines == [
        " A  .  .  .  . ",
        " .  . [G] .  . ",
        " .  .  .  .  . ",
        " .  D  .  .  . ",
    ]
    set_layout(env, **RENDER_LAYOUT, spurious=True)
    assert env.render().count("[") == 4 * 5
    vec = DiamondGhostVecEnv(num_envs=2, rows=4, cols=5, render_mode="ansi")
    vec.reset(seed=0)
    set_layout(vec, **RENDER_LAYOUT, i=1)
    frames = vec.render()
    assert isinstance(frames, tuple) and len(frames) == 2 and frames[1] == "\n".join(lines) + "\n"


def test_render_rgb_array():
    env = DiamondGhostEnv(rows=4, cols=5, render_mode="rgb_array")
    env.reset(seed=0)
    set_layout(env, **RENDER_LAYOUT)
    image = env.render()
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    px = image.shape[0] // 4
    assert image.shape == (4 * px, 5 * px, 3)

    def background(r, c):  # a pixel inside the cell, clear of the grid lines and of any piece
        return tuple(image[r * px + 2, c * px + 2])

    assert background(1, 2) != background(3, 1)  # overseen Ghost vs unoverseen Diamond
    assert background(1, 2) != background(2, 2)  # overseen Ghost vs unoverseen empty cell
    assert background(3, 1) == background(2, 2)
    set_layout(env, **RENDER_LAYOUT, spurious=True)
    image_spurious = env.render()
    assert tuple(image_spurious[2 * px + 2, 2 * px + 2]) == background(1, 2)  # an empty cell, now overseen
    vec = DiamondGhostVecEnv(num_envs=2, rows=4, cols=5, render_mode="rgb_array")
    vec.reset(seed=0)
    set_layout(vec, **RENDER_LAYOUT, i=0)
    np.testing.assert_array_equal(vec.render()[0], image)
    assert DiamondGhostEnv().render() is None
