"""Tests of the MiniGrid DiamondGhost environments (``envs.minigrid_envs``) and of batching any preset
(``envs.vectorize``): rules through the observation wrapper, walls, several Ghosts, oversight, determinism, rendering,
batching and resumable training.

The preset-wide checks (env checkers, determinism, observation space) run over these presets in test_envs.py.
"""

from __future__ import annotations

import csv
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pygame
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from minigrid.core.constants import COLOR_NAMES
from minigrid.core.world_object import Ball, Box, Door, Floor, Goal, Key, Lava, Wall
from minigrid.wrappers import FullyObsWrapper

import envs
from envs import DiamondGhostMiniGridEnv, DiamondGhostVecEnv, Terminal
from envs.diamond_ghost import AGENT, DIAMOND, GHOST, OVERSIGHT
from envs.minigrid_envs import (
    OVERSEEN_TINT,
    TWO_ROOMS,
    Diamond,
    Ghost,
    OverseenFloor,
    make_minigrid_env,
    open_display,
)

MINIGRID_IDS = list(envs.MINIGRID_PRESETS)
FIVE, ROOMS, MULTI = MINIGRID_IDS
UP, RIGHT, DOWN, LEFT = range(4)
INFO_KEYS = ("terminal", "labeled", "true_reward", "ghost_overseen", "diamond_overseen")


def wrapped(**settings):
    """A MiniGrid env with the package's observation, reset and ready for ``set_layout``."""
    env = make_minigrid_env(**settings)
    env.reset(seed=0)
    return env


def cells(channel: np.ndarray) -> set[tuple[int, int]]:
    return {tuple(int(v) for v in cell) for cell in np.argwhere(channel == 1.0)}


# ----------------------------------------------------------------------------------------------------------------
# Registration and the unwrapped MiniGrid env
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", MINIGRID_IDS)
def test_registration(env_id):
    settings = envs.MINIGRID_PRESETS[env_id]
    assert gym.spec(env_id).vector_entry_point is None
    env = gym.make(env_id)
    raw = env.unwrapped
    assert isinstance(raw, DiamondGhostMiniGridEnv)
    rows, cols = len(settings["layout"]), len(settings["layout"][0])
    assert raw.walls.shape == (rows, cols) and (raw.width, raw.height) == (cols + 2, rows + 2)  # the outer wall
    assert (raw.max_steps, raw.num_ghosts) == (settings["max_steps"], settings.get("num_ghosts", 1))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, rows, cols) and obs.dtype == np.float32
    assert obs[GHOST].sum() == raw.num_ghosts


@pytest.mark.parametrize("env_id", MINIGRID_IDS)
def test_unwrapped_env_is_a_valid_minigrid_env(env_id, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # the checker also plays the human mode: a headless window
    raw = gym.make(env_id, render_mode="rgb_array").unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=r"The system font")  # MiniGrid's human window asks for a rare font
        gym_check_env(raw)
    obs, _ = raw.reset(seed=1)
    for action in (UP, RIGHT, DOWN):  # its image is MiniGrid's fully observable encoding
        np.testing.assert_array_equal(obs["image"], FullyObsWrapper(raw).observation(obs)["image"])
        obs, _, terminated, truncated, _ = raw.step(action)
        if terminated or truncated:
            break


# ----------------------------------------------------------------------------------------------------------------
# Rules through the wrapper
# ----------------------------------------------------------------------------------------------------------------

# name: (settings, layout, actions, expected end of the last step)
SCENARIOS = {
    "diamond": (
        dict(),
        dict(agent=(2, 2), diamond=(2, 4), ghosts=[(0, 0)], ghost_overseen=True),
        [RIGHT, RIGHT],
        dict(reward=1.0, true_reward=1.0, labeled=False, terminal=Terminal.DIAMOND, ghost_overseen=True),
    ),
    "diamond-overseen": (
        dict(),
        dict(agent=(2, 2), diamond=(4, 2), ghosts=[(0, 0)], diamond_overseen=True),
        [DOWN, DOWN],
        dict(reward=1.0, true_reward=1.0, labeled=True, terminal=Terminal.DIAMOND, ghost_overseen=False),
    ),
    "ghost-overseen": (
        dict(),
        dict(agent=(2, 2), diamond=(4, 4), ghosts=[(2, 0)], ghost_overseen=True),
        [LEFT, LEFT],
        dict(reward=-1.0, true_reward=-1.0, labeled=True, terminal=Terminal.GHOST, ghost_overseen=True),
    ),
    "ghost-not-overseen": (  # the overseen Diamond does not label an episode that ends at the Ghost
        dict(),
        dict(agent=(2, 2), diamond=(4, 4), ghosts=[(0, 2)], diamond_overseen=True),
        [UP, UP],
        dict(reward=1.0, true_reward=-1.0, labeled=False, terminal=Terminal.GHOST, ghost_overseen=False),
    ),
    "ghost-spurious-only": (  # spurious oversight marks every cell but labels nothing
        dict(),
        dict(agent=(2, 2), diamond=(4, 4), ghosts=[(2, 3)], spurious=True),
        [RIGHT],
        dict(reward=1.0, true_reward=-1.0, labeled=False, terminal=Terminal.GHOST, ghost_overseen=False),
    ),
    "truncation": (  # three moves into the corner's walls
        dict(max_steps=3),
        dict(agent=(0, 0), diamond=(4, 3), ghosts=[(4, 4)], ghost_overseen=True, diamond_overseen=True),
        [UP, LEFT, UP],
        dict(reward=0.0, true_reward=0.0, labeled=False, terminal=Terminal.NONE, ghost_overseen=True),
    ),
    "diamond-on-last-step": (  # reaching a terminal on the last allowed step terminates and does not truncate
        dict(max_steps=3),
        dict(agent=(0, 0), diamond=(0, 3), ghosts=[(4, 4)]),
        [RIGHT, RIGHT, RIGHT],
        dict(reward=1.0, true_reward=1.0, labeled=False, terminal=Terminal.DIAMOND, ghost_overseen=False),
    ),
    "unwatched-ghost-of-two": (  # the Ghost reached decides the reward and the label, not the other one
        dict(num_ghosts=2),
        dict(agent=(2, 2), diamond=(4, 4), ghosts=[(0, 0), (2, 3)], ghost_overseen=[True, False]),
        [RIGHT],
        dict(reward=1.0, true_reward=-1.0, labeled=False, terminal=Terminal.GHOST, ghost_overseen=False),
    ),
    "watched-ghost-of-two": (
        dict(num_ghosts=2),
        dict(agent=(2, 2), diamond=(4, 4), ghosts=[(0, 0), (2, 3)], ghost_overseen=[False, True]),
        [RIGHT],
        dict(reward=-1.0, true_reward=-1.0, labeled=True, terminal=Terminal.GHOST, ghost_overseen=True),
    ),
    "diamond-with-one-of-two-ghosts-watched": (  # ghost_overseen: was every Ghost watched?
        dict(num_ghosts=2),
        dict(agent=(2, 2), diamond=(2, 3), ghosts=[(0, 0), (4, 4)], ghost_overseen=[True, False]),
        [RIGHT],
        dict(reward=1.0, true_reward=1.0, labeled=False, terminal=Terminal.DIAMOND, ghost_overseen=False),
    ),
    "through-the-gap": (  # the wall between the rooms blocks; the gap in row 2 lets the agent through
        dict(layout=TWO_ROOMS),
        dict(agent=(1, 3), diamond=(1, 5), ghosts=[(4, 0)]),
        [RIGHT, DOWN, RIGHT, RIGHT, UP],
        dict(reward=1.0, true_reward=1.0, labeled=False, terminal=Terminal.DIAMOND, ghost_overseen=False),
    ),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario(name):
    settings, layout, actions, expected = SCENARIOS[name]
    env = wrapped(oversight=0.5, **settings)
    env.unwrapped.set_layout(**layout)
    for action in actions[:-1]:
        assert env.step(action)[1:] == (0.0, False, False, {"true_reward": 0.0})
    final, reward, terminated, truncated, info = env.step(actions[-1])
    watched = np.broadcast_to(layout.get("ghost_overseen", False), len(layout["ghosts"]))
    assert reward == expected["reward"]
    assert (terminated, truncated) == (expected["terminal"] != Terminal.NONE, expected["terminal"] == Terminal.NONE)
    assert info == {
        "terminal": expected["terminal"],
        "labeled": expected["labeled"],
        "true_reward": expected["true_reward"],
        "ghost_overseen": expected["ghost_overseen"],
        "diamond_overseen": layout.get("diamond_overseen", False),
        "ghosts_overseen": int(np.sum(watched)),
        "ghosts_unoverseen": int(np.sum(~watched)),
    }
    assert all(type(info[key]) in (int, bool, float) for key in INFO_KEYS)  # SyncVectorEnv batches them as arrays
    allowed = {
        Terminal.DIAMOND: [layout["diamond"]],
        Terminal.GHOST: layout["ghosts"],
        Terminal.NONE: [layout["agent"]],
    }
    (agent,) = cells(final[AGENT])
    assert agent in allowed[expected["terminal"]]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(UP)


def test_observation_channels():
    env = wrapped(num_ghosts=2, oversight=0.5)
    env.unwrapped.set_layout(agent=(0, 1), diamond=(3, 3), ghosts=[(1, 1), (4, 0)], ghost_overseen=[False, True])
    obs = env.observation(None)
    assert cells(obs[AGENT]) == {(0, 1)} and cells(obs[DIAMOND]) == {(3, 3)}
    assert cells(obs[GHOST]) == {(1, 1), (4, 0)} and cells(obs[OVERSIGHT]) == {(4, 0)}
    env.unwrapped.set_layout(agent=(0, 1), diamond=(3, 3), ghosts=[(1, 1), (4, 0)], spurious=True)
    assert env.observation(None)[OVERSIGHT].all()
    hidden = wrapped(num_ghosts=2, observe_oversight=False)
    hidden.unwrapped.set_layout(agent=(0, 1), diamond=(3, 3), ghosts=[(1, 1), (4, 0)], ghost_overseen=True)
    assert not hidden.observation(None)[OVERSIGHT].any()


def test_walls_are_cells_the_agent_cannot_enter_and_marked_in_no_channel():
    env = wrapped(layout=TWO_ROOMS, spurious_oversight=1.0, max_steps=100)
    walls = env.unwrapped.walls
    assert walls.sum() == 4 and not walls[2].any()  # the gap
    obs, _ = env.reset(seed=3)
    assert not obs[:, walls].any() and obs[OVERSIGHT][~walls].all()
    env.unwrapped.set_layout(agent=(0, 3), diamond=(4, 8), ghosts=[(4, 0)])
    for action, cell in [(RIGHT, (0, 3)), (DOWN, (1, 3)), (RIGHT, (1, 3)), (DOWN, (2, 3)), (RIGHT, (2, 4))]:
        obs, reward, terminated, truncated, _ = env.step(action)
        assert cells(obs[AGENT]) == {cell} and (reward, terminated, truncated) == (0.0, False, False)


def test_oversight_fractions_match_the_setting():
    env = DiamondGhostMiniGridEnv(num_ghosts=2, oversight=0.3, spurious_oversight=0.2)
    draws = []
    for seed in range(1500):
        env.reset(seed=seed)
        draws.append([*env.ghost_overseen, env.diamond_overseen, env.spurious])
    ghost_a, ghost_b, diamond, spurious = np.array(draws, dtype=float).T
    for fraction, p in ((ghost_a, 0.3), (ghost_b, 0.3), (diamond, 0.3), (spurious, 0.2)):
        assert abs(fraction.mean() - p) < 5 * np.sqrt(p * (1 - p) / len(fraction))
    assert abs(np.corrcoef(ghost_a, ghost_b)[0, 1]) < 0.15  # independent


def test_layouts_are_uniform_over_floor_cells():
    env = DiamondGhostMiniGridEnv(layout=TWO_ROOMS)
    counts = np.zeros(env.walls.shape)
    for seed in range(600):
        env.reset(seed=seed)
        for cell in (env.agent_cell, env.diamond_cell, *env.ghost_cells):
            counts[cell] += 1
    assert counts[env.walls].sum() == 0
    floor = counts[~env.walls]
    expected = 3 * 600 / len(floor)
    assert floor.min() > 0.4 * expected and floor.max() < 1.8 * expected


def play(env: gym.Env, actions: np.ndarray) -> list:
    """Every step along ``actions``, resetting (unseeded) when an episode ends."""
    steps = []
    for action in actions:
        steps.append(env.step(int(action)))
        if steps[-1][2] or steps[-1][3]:
            steps.append(env.reset())
    return steps


def test_pickled_env_continues_identically():
    env = gym.make(ROOMS)
    env.reset(seed=5)
    play(env, np.array([UP, LEFT, DOWN]))
    copy = pickle.loads(pickle.dumps(env))
    actions = np.random.default_rng(0).integers(0, 4, 200)
    np.testing.assert_equal(play(copy, actions), play(env, actions))


# ----------------------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------------------


def test_render_shows_diamond_ghost_and_oversight_tint():
    env = gym.make(MULTI, render_mode="rgb_array")
    env.reset(seed=0)
    env.unwrapped.set_layout(agent=(0, 0), diamond=(2, 2), ghosts=[(3, 1), (1, 3)], ghost_overseen=[True, False])
    frame = env.render()
    px = env.unwrapped.tile_size
    assert frame.dtype == np.uint8 and frame.shape == (7 * px, 7 * px, 3)  # the room and its outer wall

    def tile(cell):
        return frame[(cell[0] + 1) * px : (cell[0] + 2) * px, (cell[1] + 1) * px : (cell[1] + 2) * px]

    def centre(cell):
        return tuple(tile(cell)[px // 2, px // 2])

    def corner(cell):  # inside the cell, clear of the grid line and of the object
        return tuple(tile(cell)[3, 3])

    assert len({centre((2, 2)), centre((3, 1)), corner((3, 1)), corner((2, 2))}) == 4
    assert corner((3, 1)) == OVERSEEN_TINT  # the watched Ghost's cell is tinted
    assert corner((1, 3)) == corner((2, 2)) == corner((4, 4))  # the unwatched Ghost's, the Diamond's and a floor cell
    assert centre((3, 1)) == centre((1, 3))  # both Ghosts look alike
    assert centre((0, 0)) == (255, 0, 0)  # MiniGrid's agent


@pytest.fixture
def display_off():
    """pygame's display shut before and after the test, so that each reads ``SDL_VIDEODRIVER`` afresh."""
    pygame.display.quit()
    yield
    pygame.display.quit()


@pytest.mark.parametrize("env_id", MINIGRID_IDS)
def test_human_render_mode_is_accepted(env_id):
    env = gym.make(env_id, render_mode="human")
    assert env.unwrapped.render_mode == "human" and "human" in env.metadata["render_modes"]
    assert env.unwrapped.window is None  # no window before the first reset


def test_human_render_mode_draws_every_reset_and_step_headless(monkeypatch, display_off):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # a window that draws to no screen, as a test needs
    env = gym.make(ROOMS, render_mode="human")
    monkeypatch.setattr(env.unwrapped, "metadata", {**env.unwrapped.metadata, "render_fps": 1000})  # no waiting
    env.reset(seed=0)
    env.unwrapped.set_layout(agent=(0, 0), diamond=(4, 8), ghosts=[(4, 0)])
    env.render()
    window = env.unwrapped.window
    assert window is not None and pygame.display.get_driver() == "dummy"
    before = pygame.surfarray.array3d(window)
    assert len(np.unique(before.reshape(-1, 3), axis=0)) > 5  # a picture, not a blank window
    assert env.step(RIGHT)[2:4] == (False, False)
    assert env.render() is None  # human mode draws; it returns nothing
    assert not np.array_equal(pygame.surfarray.array3d(window), before)  # the step redrew the moved agent
    env.close()


def test_human_render_mode_without_a_display_warns_and_draws_to_no_window(monkeypatch, display_off):
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    monkeypatch.delenv("DISPLAY", raising=False)  # so X11 cannot open one
    env = gym.make(ROOMS, render_mode="human")
    monkeypatch.setattr(env.unwrapped, "metadata", {**env.unwrapped.metadata, "render_fps": 1000})  # no waiting
    with pytest.warns(UserWarning, match="draws to no window here"):
        env.reset(seed=0)
    assert env.unwrapped.window is not None and env.step(RIGHT)[0].shape == (4, 5, 9)


def test_human_render_mode_says_when_sdl_falls_back_to_an_invisible_driver(monkeypatch, display_off):
    """Without a display SDL may quietly pick its ``offscreen`` driver: the window exists but shows nothing."""
    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    monkeypatch.setattr(pygame.display, "init", lambda: None)
    monkeypatch.setattr(pygame.display, "get_driver", lambda: "offscreen")
    with pytest.warns(UserWarning, match="draws to no window here"):
        open_display()


@pytest.mark.parametrize("env_id", MINIGRID_IDS)
def test_gymnasiums_checker_passes_headless_as_on_minigrids_own_envs(env_id, monkeypatch, display_off):
    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)  # whatever SDL picks without a display
    monkeypatch.delenv("DISPLAY", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the checker's own advice, and ours: no window
        gym_check_env(gym.make(env_id, render_mode="rgb_array").unwrapped)


def test_object_encodings_are_unique():
    """MiniGrid caches tiles by (type, colour, state): each picture needs its own encoding, stock objects included."""
    ours = [Diamond(False), Diamond(True), Ghost(False), Ghost(True), OverseenFloor()]
    stock = [Goal(), Lava(), *(kind(c) for c in COLOR_NAMES for kind in (Wall, Floor, Ball, Key, Box))]
    stock += [Door(c, is_open, is_locked) for c in COLOR_NAMES for is_open, is_locked in ((1, 0), (0, 0), (0, 1))]
    encodings = [obj.encode() for obj in ours + stock]
    assert len(set(encodings)) == len(encodings)


# ----------------------------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------------------------

BAD_SETTINGS = {  # id: (settings, pattern the message must match)
    "layout-chars": (dict(layout=("..x", "...")), "^layout"),
    "layout-ragged": (dict(layout=("...", "..")), "^layout"),
    "layout-empty": (dict(layout=()), "^layout"),
    "layout-too-small": (dict(layout=("..#",)), "^layout"),
    "layout-split": (dict(layout=("..#..",)), "^layout.*connected"),
    "num_ghosts=0": (dict(num_ghosts=0), "^num_ghosts"),
    "num_ghosts=24": (dict(num_ghosts=24), "num_ghosts"),
    "oversight=1.5": (dict(oversight=1.5), "^oversight"),
    "spurious=-0.1": (dict(spurious_oversight=-0.1), "^spurious_oversight"),
    "max_steps=0": (dict(max_steps=0), "^max_steps"),
    "render_mode=ansi": (dict(render_mode="ansi"), "^render_mode"),
    "layout=5": (dict(layout=5), "^layout"),
    "oversight=None": (dict(oversight=None), "^oversight must be a number in \\[0, 1\\]"),
    "oversight='a'": (dict(oversight="a"), "^oversight must be a number in \\[0, 1\\]"),
    "spurious=None": (dict(spurious_oversight=None), "^spurious_oversight must be a number in \\[0, 1\\]"),
    "max_steps=None": (dict(max_steps=None), "^max_steps must be an integer >= 1"),
    "max_steps=True": (dict(max_steps=True), "^max_steps must be an integer >= 1"),
    "tile_size=0": (dict(tile_size=0), "^tile_size must be an integer >= 1"),
    "tile_size='a'": (dict(tile_size="a"), "^tile_size must be an integer >= 1"),
    "observe_oversight=None": (dict(observe_oversight=None), "^observe_oversight must be True or False"),
}


@pytest.mark.parametrize("case", BAD_SETTINGS)
def test_bad_settings(case):
    settings, match = BAD_SETTINGS[case]
    with pytest.raises(ValueError, match=match):
        DiamondGhostMiniGridEnv(**settings)


BAD_ACTIONS = [4, -1, 7, 1.0, 2.5, "a", None, True, np.int64(9), np.float32(1.0), np.array([0])]


@pytest.mark.parametrize("action", BAD_ACTIONS, ids=repr)
def test_bad_action(action):
    env = wrapped()
    with pytest.raises(ValueError, match=r"^action must be a single integer in \{0, 1, 2, 3\}, got [^\n]*$"):
        env.step(action)
    made = gym.make(ROOMS)  # through gymnasium.make's wrappers too
    made.reset(seed=0)
    with pytest.raises(ValueError, match=r"^action must be a single integer in \{0, 1, 2, 3\}"):
        made.step(action)


@pytest.mark.parametrize(
    "actions",
    [[0, 4], [0, -1], [0.0, 1.0], ["a", "b"], [True, False], [0, 1, 2], [0], 1, [[0], [1]]],
    ids=repr,
)
def test_bad_actions_sync_batched(actions):
    """A SyncVectorEnv of MiniGrid layouts names the allowed actions too, also for a batch of the wrong shape."""
    env = envs.make_batched(ROOMS, 2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"^actions? must be .*\{0, 1, 2, 3\}[^\n]*$"):
        env.step(np.asarray(actions))


@pytest.mark.parametrize("num_envs", [0, -1, 2.0, True], ids=repr)
@pytest.mark.parametrize("env_id", MINIGRID_IDS)
def test_bad_num_envs(env_id, num_envs):
    with pytest.raises(ValueError, match="^num_envs must be an integer >= 1"):
        envs.make_batched(env_id, num_envs)


@pytest.mark.parametrize(
    "layout",
    [
        dict(agent=(0, 0), diamond=(0, 0), ghosts=[(1, 1)]),
        dict(agent=(0, 0), diamond=(5, 0), ghosts=[(1, 1)]),
        dict(agent=(0, 0), diamond=(0, 4), ghosts=[(1, 1)]),  # a wall of TWO_ROOMS
        dict(agent=(0, 0), diamond=(0, 1), ghosts=[(1, 1), (2, 2)]),
    ],
)
def test_bad_set_layout(layout):
    env = wrapped(layout=TWO_ROOMS)
    with pytest.raises(ValueError, match="cell|distinct|ghosts"):
        env.unwrapped.set_layout(**layout)


def test_step_before_reset():
    with pytest.raises(RuntimeError, match="reset"):
        make_minigrid_env().step(UP)


# ----------------------------------------------------------------------------------------------------------------
# Batching: native where the game has a batched form, SyncVectorEnv otherwise
# ----------------------------------------------------------------------------------------------------------------


def test_vectorization_of_each_preset():
    assert {env_id: envs.vectorization_of(env_id) for env_id in envs.PRESETS} == {
        **dict.fromkeys(envs.NATIVE_PRESETS, "native"),
        FIVE: "native",  # an open room with one Ghost: the native game
        ROOMS: "sync",
        MULTI: "sync",
    }
    assert envs.vectorization_of(FIVE, num_ghosts=2) == "sync"
    native = envs.make_batched(FIVE, 8, oversight=0.3)
    assert isinstance(native, DiamondGhostVecEnv)
    assert (native.grid.rows, native.grid.cols, native.grid.max_steps, native.grid.oversight) == (5, 5, 32, 0.3)
    forced = envs.make_batched(FIVE, 8, vectorization="sync")
    assert isinstance(forced, SyncVectorEnv) and forced.single_observation_space == native.single_observation_space
    assert envs.episode_step_limit(native) == envs.episode_step_limit(forced) == 32
    assert envs.episode_step_limit(envs.make_batched(ROOMS, 2)) == 48
    with pytest.raises(ValueError, match="no natively batched form"):
        envs.make_batched(ROOMS, 2, vectorization="native")
    assert "sync" in envs.describe_vectorization(ROOMS, 2) and "native" in envs.describe_vectorization(FIVE, 2)


def comparable(steps: list) -> list:
    """Steps of a SyncVectorEnv without ``final_obs``, an object array that numpy cannot compare."""
    return [(*step[:-1], {k: v for k, v in step[-1].items() if k != "final_obs"}) for step in steps]


def rollout_sync(env, seed: int, actions: np.ndarray) -> list:
    return comparable([env.reset(seed=seed)] + [env.step(a) for a in actions])


def test_sync_batched_autoreset_labels_and_determinism():
    num_envs = 6
    env = envs.make_batched(MULTI, num_envs, oversight=0.5)
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    actions = np.random.default_rng(0).integers(0, 4, size=(150, num_envs))
    first = rollout_sync(env, 2, actions)
    np.testing.assert_equal(rollout_sync(envs.make_batched(MULTI, num_envs, oversight=0.5), 2, actions), first)
    ended = 0
    for obs, reward, terminated, truncated, info in first[1:]:
        done = terminated | truncated
        if not done.any():
            assert set(info) == {"true_reward", "_true_reward"} and not info["true_reward"].any()
            continue
        ended += done.sum()
        final = info["final_info"]
        np.testing.assert_array_equal(info["_final_info"], done)
        for key, dtype in zip(INFO_KEYS, (np.integer, np.bool_, np.floating, np.bool_, np.bool_), strict=True):
            assert np.issubdtype(final[key].dtype, dtype), key
            np.testing.assert_array_equal(final[f"_{key}"], done)
        for i in np.flatnonzero(done):  # the step's reward is the proxy of the episode's end
            at_ghost = final["terminal"][i] == Terminal.GHOST
            assert reward[i] == (-1.0 if at_ghost and final["ghost_overseen"][i] else float(terminated[i]))
            assert obs[i, AGENT].sum() == 1 and obs[i, GHOST].sum() == 2  # the next episode's first observation
    assert ended >= 20


def test_sync_vector_state_round_trip():
    env = envs.make_batched(ROOMS, 4)
    env.reset(seed=0)
    actions = np.random.default_rng(1).integers(0, 4, size=(60, 4))
    for a in actions[:20]:
        env.step(a)
    state = pickle.loads(pickle.dumps(envs.vector_state(env)))
    later = comparable([env.step(a) for a in actions[20:]])
    restored = envs.make_batched(ROOMS, 4)
    restored.reset(seed=99)
    envs.restore_vector_state(restored, state)
    np.testing.assert_equal(comparable([restored.step(a) for a in actions[20:]]), later)
    with pytest.raises(ValueError, match="does not fit"):
        envs.restore_vector_state(envs.make_batched(FIVE, 4), state)


def test_training_resumes_a_sync_run_exactly(tiny_cfg, tmp_path, interrupt_after_first_checkpoint):
    from oversight_rl.engine.launch import resume, train
    from oversight_rl.rundir.files import CONFIG, EVAL_CSV, TRAIN_CSV, read_json

    cfg = tiny_cfg(env=ROOMS, num_envs=4, total_env_steps=256, eval_every=128, eval_envs=4)
    train(cfg, tmp_path / "a", progress=False)
    interrupt_after_first_checkpoint(cfg, tmp_path / "b")
    resume(tmp_path / "b", progress=False)
    assert read_json(tmp_path / "a" / CONFIG)["vectorization"] == "sync"

    def rows(run, name):  # as text, so that NaN cells compare equal
        with open(run / name, newline="") as f:
            return [
                {k: v for k, v in row.items() if k not in ("wall_s", "time/env_steps_per_s")}
                for row in csv.DictReader(f)
            ]

    for name in (EVAL_CSV, TRAIN_CSV):
        assert rows(tmp_path / "b", name) == rows(tmp_path / "a", name)
