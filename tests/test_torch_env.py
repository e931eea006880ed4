"""Tests of the torch DiamondGhost (``envs.torch_grid``): the numpy rules step for step, autoreset, the distributions
of layouts and oversight, determinism and batch independence, checkpoints, presets and bad input.

Rules are compared with :class:`~envs.diamond_ghost.DiamondGhostGrid` from identical states; the random streams
differ from numpy's by design, so randomness is tested through its distributions and its structure.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from test_envs import BAD_SETTINGS, INFO_KEYS, SCENARIOS, set_layout

import envs
from envs import DiamondGhostVecEnv, Terminal, TorchDiamondGhost, make_torch
from envs.counter_rng import integers, stream_keys, uniform
from envs.diamond_ghost import AGENT, DIAMOND, GHOST, MOVES, OVERSIGHT, DiamondGhostGrid

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]
UP, RIGHT, DOWN, LEFT = range(4)
LEVELS = (0.0, 0.05, 0.1, 0.5, 0.9, 1.0)  # per-environment oversight levels, including both extremes


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensor ops run fastest on one thread; restore the setting for the other test modules."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------


def numpy_transition(grid: DiamondGhostGrid, actions: np.ndarray) -> dict[str, np.ndarray]:
    """One move of the numpy ``grid`` (no reset): what the batched numpy env reports for it."""
    terminal, truncated = grid.move(actions)
    return dict(
        obs=grid.obs.copy(),
        reward=grid.proxy_reward(terminal, grid.ghost_overseen),
        terminated=terminal != Terminal.NONE,
        truncated=truncated,
        **grid.episode_info(terminal),
    )


def as_numpy(step: tuple) -> dict[str, np.ndarray]:
    """The torch env's step as numpy arrays: ``obs`` (after autoreset), ``final_obs``, ``done`` and the rest."""
    obs, reward, terminated, truncated, info = step
    arrays = dict(obs=obs, final_obs=info["final_obs"], done=info["_final_info"], reward=reward)
    arrays.update(terminated=terminated, truncated=truncated, **info["final_info"])
    return {key: value.cpu().numpy() for key, value in arrays.items()}


def random_grid(n: int, rows: int, cols: int, max_steps: int, observe_oversight: bool, seed: int) -> DiamondGhostGrid:
    """``n`` random mid-episode states built to exercise every rule: a third of the agents against a wall,
    terminals within two cells of the agent, a tenth of Ghosts sharing the Diamond's cell, random flags and
    counters (some on the last step)."""
    rng = np.random.default_rng(seed)
    grid = DiamondGhostGrid(n, rows, cols, 0.5, 0.2, max_steps, observe_oversight)
    upper = np.array([rows - 1, cols - 1])
    agent = rng.integers(0, upper + 1, size=(n, 2))
    on_wall = rng.random(n) < 1 / 3
    axis = rng.integers(0, 2, size=n)
    agent[on_wall, axis[on_wall]] = np.where(rng.random(on_wall.sum()) < 0.5, 0, upper[axis[on_wall]])
    ghost, diamond = (np.clip(agent + rng.integers(-2, 3, size=(n, 2)), 0, upper) for _ in range(2))
    shared = rng.random(n) < 0.1
    diamond[shared] = ghost[shared]
    grid.agent[:], grid.ghost[:], grid.diamond[:] = agent, ghost, diamond
    grid.ghost_overseen[:], grid.diamond_overseen[:] = rng.random(n) < 0.5, rng.random(n) < 0.5
    grid.spurious[:] = rng.random(n) < 0.2
    grid.steps[:] = rng.integers(0, max_steps, size=n)
    grid._draw(np.arange(n))
    return grid


def fresh_layouts(env: TorchDiamondGhost, seed: int, n_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pieces ``(k, 3, 2)`` and flags ``(k, 3)`` of the first ``n_steps + 1`` episodes of every environment of
    ``env``, which must have ``max_steps=1`` so that every step starts a new episode everywhere."""
    assert env.max_steps == 1
    env.reset(seed=seed)
    pieces, flags = [env.pieces.clone()], [env.flags.clone()]
    generator = torch.Generator().manual_seed(seed)
    for _ in range(n_steps):
        _, _, terminated, truncated, _ = env.step(torch.randint(0, 4, (env.num_envs,), generator=generator))
        assert (terminated | truncated).all()
        pieces.append(env.pieces.clone())
        flags.append(env.flags.clone())
    assert (env.episode == n_steps).all()
    return torch.cat(pieces), torch.cat(flags)


def flat_step(step: tuple) -> list[torch.Tensor]:
    """Every tensor of one ``step`` return, on CPU: obs, reward, terminated, truncated, final obs, mask, final info."""
    obs, reward, terminated, truncated, info = step
    tensors = [obs, reward, terminated, truncated, info["final_obs"], info["_final_info"]]
    return [t.cpu() for t in tensors + list(info["final_info"].values())]


def rollout(env: TorchDiamondGhost, keys: torch.Tensor, actions: torch.Tensor) -> list[list[torch.Tensor]]:
    """The tensors of the reset (``[obs]``) and of every step along a fixed action sequence, on CPU."""
    steps = [[env.reset(keys.to(env.device)).cpu()]]
    return steps + [flat_step(env.step(row.to(env.device))) for row in actions]


def assert_same(first: list[list[torch.Tensor]], second: list[list[torch.Tensor]]) -> None:
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        for x, y in zip(a, b, strict=True):
            assert x.dtype == y.dtype and torch.equal(x, y)


def within_5_sigma(hits: torch.Tensor | np.ndarray, p: float) -> bool:
    """Whether the fraction of true ``hits`` is within 5 binomial standard deviations of ``p``."""
    hits = np.asarray(hits)
    return abs(hits.mean() - p) < 5 * np.sqrt(p * (1 - p) / hits.size)


def levels_tensor(repeats: int) -> torch.Tensor:
    return torch.tensor(LEVELS, dtype=torch.float32).repeat(repeats)


# ----------------------------------------------------------------------------------------------------------------
# Rules: the numpy env's transitions, exactly
# ----------------------------------------------------------------------------------------------------------------

TORCH_SCENARIOS = {
    **SCENARIOS,
    # Hand-built only (a layout never puts them together): the Ghost counts, so the overseen Diamond labels nothing.
    "ghost-and-diamond-on-one-cell": (
        dict(agent=(2, 2), ghost=(2, 3), diamond=(2, 3), diamond_overseen=True),
        [RIGHT],
        dict(reward=1.0, true_reward=-1.0, labeled=False, terminated=True, terminal=Terminal.GHOST),
    ),
}


@pytest.mark.parametrize("name", TORCH_SCENARIOS)
def test_scenario_matches_numpy(name):
    layout, actions, expected = TORCH_SCENARIOS[name]
    vec = DiamondGhostVecEnv(num_envs=1, rows=5, cols=5, max_steps=3, oversight=0.5)
    vec.reset(seed=0)
    set_layout(vec, **layout)
    env = TorchDiamondGhost.from_grid(vec.grid)
    np.testing.assert_array_equal(env.observation().numpy(), vec.grid.obs)
    for t, action in enumerate(actions):
        obs_np, reward_np, term_np, trunc_np, info_np = vec.step(np.array([action]))
        step = as_numpy(env.step(torch.tensor([action])))
        assert (step["reward"], step["terminated"], step["truncated"]) == (reward_np, term_np, trunc_np)
        if t < len(actions) - 1:
            assert "final_info" not in info_np and not step["done"].any()
            np.testing.assert_array_equal(step["obs"], obs_np)
    assert step["done"].all() and info_np["_final_info"].all()
    np.testing.assert_array_equal(step["final_obs"], info_np["final_obs"])
    for key in INFO_KEYS:
        np.testing.assert_array_equal(step[key], info_np["final_info"][key], err_msg=key)
    assert step["reward"][0] == expected["reward"] and step["terminal"][0] == expected["terminal"]
    assert step["true_reward"][0] == expected["true_reward"] and step["labeled"][0] == expected["labeled"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("observe_oversight", [True, False], ids=["visible", "hidden"])
@pytest.mark.parametrize("shape", [(5, 5), (3, 7)], ids=["5x5", "3x7"])
def test_random_transitions_match_numpy(shape, observe_oversight, device):
    """4096 random states, four steps of random actions: every output equals the numpy grid's; after each step the
    numpy grid takes the torch env's state (fresh layouts included) and must draw the same observation."""
    n, max_steps = 4096, 6
    grid = random_grid(n, *shape, max_steps, observe_oversight, seed=sum(shape))
    env = TorchDiamondGhost.from_grid(grid, device, keys=stream_keys(1, n))
    rng = np.random.default_rng(2)
    counts = dict(clamped=0, diamond=0, ghost=0, truncated=0, shared_cell_ghost=0, running=0)
    for _ in range(4):
        actions = rng.integers(0, 4, size=n)
        target = grid.agent + MOVES[actions]
        counts["clamped"] += (target != np.clip(target, 0, np.array(shape) - 1)).any(axis=1).sum()
        shared = (grid.ghost == grid.diamond).all(axis=1)
        expected = numpy_transition(grid, actions)
        step = as_numpy(env.step(torch.from_numpy(actions).to(env.device)))
        done = expected["terminated"] | expected["truncated"]
        for key in ("reward", "terminated", "truncated"):
            np.testing.assert_array_equal(step[key], expected[key], err_msg=key)
        np.testing.assert_array_equal(step["done"], done)
        np.testing.assert_array_equal(step["final_obs"][done], expected["obs"][done])
        np.testing.assert_array_equal(step["obs"][~done], expected["obs"][~done])
        for key in INFO_KEYS:
            assert step[key].dtype == expected[key].dtype, key
            np.testing.assert_array_equal(step[key][done], expected[key][done], err_msg=key)
        counts["diamond"] += (expected["terminal"] == Terminal.DIAMOND).sum()
        counts["ghost"] += (expected["terminal"] == Terminal.GHOST).sum()
        counts["shared_cell_ghost"] += (shared & (expected["terminal"] == Terminal.GHOST)).sum()
        counts["truncated"] += expected["truncated"].sum()
        counts["running"] += (~done).sum()
        env.write_grid_state(grid)
        np.testing.assert_array_equal(step["obs"], grid.obs)
    assert min(counts.values()) >= 100, counts  # every rule was exercised


# ----------------------------------------------------------------------------------------------------------------
# Autoreset
# ----------------------------------------------------------------------------------------------------------------


def test_autoreset():
    """An ended episode returns a fresh layout with its counter reset; ``final_obs`` is what the numpy env would
    return; running episodes keep their Ghost, Diamond and oversight."""
    n, max_steps = 512, 8
    env = TorchDiamondGhost(n, oversight=0.5, spurious_oversight=0.1, max_steps=max_steps)
    grid = DiamondGhostGrid(n, 5, 5, 0.5, 0.1, max_steps, True)
    obs = env.reset(seed=4)
    generator = torch.Generator().manual_seed(4)
    lengths = torch.zeros(n, dtype=torch.int64)
    ended = dict(terminated=0, truncated=0)
    for _ in range(60):
        env.write_grid_state(grid)
        previous, episode = obs, env.episode.clone()
        actions = torch.randint(0, 4, (n,), generator=generator)
        expected = numpy_transition(grid, actions.numpy())
        obs, reward, terminated, truncated, info = env.step(actions)
        lengths += 1
        done = info["_final_info"]
        assert torch.equal(done, terminated | truncated) and torch.equal(info["_final_obs"], done)
        assert not (terminated & truncated).any()
        assert torch.equal(truncated, (lengths == max_steps) & ~terminated)
        np.testing.assert_array_equal(info["final_obs"][done].numpy(), expected["obs"][done.numpy()])
        assert torch.equal(obs[~done, GHOST:], previous[~done, GHOST:])
        assert torch.equal(env.steps, torch.where(done, 0, lengths))
        assert torch.equal(env.episode, episode + done)
        fresh = obs[done]
        assert (fresh[:, :OVERSIGHT].sum(dim=(2, 3)) == 1).all()  # one agent, one Ghost, one Diamond ...
        assert (fresh[:, :OVERSIGHT].sum(dim=1) <= 1).all()  # ... on three distinct cells
        channel = fresh[:, OVERSIGHT]
        spurious = env.spurious[done]
        assert (channel[spurious] == 1).all()
        watched = (fresh[:, GHOST] * env.ghost_overseen[done, None, None]) + (
            fresh[:, DIAMOND] * env.diamond_overseen[done, None, None]
        )
        assert torch.equal(channel[~spurious], watched[~spurious])
        ended["terminated"] += int(terminated.sum())
        ended["truncated"] += int(truncated.sum())
        lengths[done] = 0
    assert ended["terminated"] >= 1000 and ended["truncated"] >= 100, ended


# ----------------------------------------------------------------------------------------------------------------
# Distributions of layouts and oversight
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 3), (2, 4)], ids=["3x3", "2x4"])
def test_layouts_uniform_over_ordered_triples(shape):
    rows, cols = shape
    env = TorchDiamondGhost(4096, rows, cols, oversight=0.5, max_steps=1)
    pieces, _ = fresh_layouts(env, seed=5, n_steps=16)
    cells = rows * cols
    flat = pieces[..., 0] * cols + pieces[..., 1]
    counts = torch.bincount((flat[:, 0] * cells + flat[:, 1]) * cells + flat[:, 2], minlength=cells**3).double()
    a, g, d = torch.meshgrid(*[torch.arange(cells)] * 3, indexing="ij")
    distinct = ((a != g) & (a != d) & (g != d)).flatten()
    assert counts[~distinct].sum() == 0
    total, k = len(flat), int(distinct.sum())
    expected = total / k
    sigma = np.sqrt(total * (1 / k) * (1 - 1 / k))
    assert ((counts[distinct] - expected).abs() < 5 * sigma).all()
    chi_square = float(((counts[distinct] - expected) ** 2 / expected).sum())
    assert abs(chi_square - (k - 1)) < 5 * np.sqrt(2 * (k - 1)), chi_square


def test_layout_marginals_5x5():
    """Each piece is uniform over the 25 cells, and each pair of pieces over the 600 ordered pairs."""
    env = TorchDiamondGhost(4096, oversight=0.5, max_steps=1)
    pieces, _ = fresh_layouts(env, seed=6, n_steps=16)
    flat = pieces[..., 0] * 5 + pieces[..., 1]
    total = len(flat)
    for i in range(3):
        counts = torch.bincount(flat[:, i], minlength=25).double()
        assert ((counts - total / 25).abs() < 5 * np.sqrt(total / 25 * 24 / 25)).all(), i
    for i, j in ((0, 1), (0, 2), (1, 2)):
        counts = torch.bincount(flat[:, i] * 25 + flat[:, j], minlength=625).double().view(25, 25)
        assert counts.diagonal().sum() == 0
        off = counts[~torch.eye(25, dtype=torch.bool)]
        assert ((off - total / 600).abs() < 5 * np.sqrt(total / 600)).all(), (i, j)


@pytest.mark.parametrize("oversight", [0.3, "per-env"])
def test_overseen_fractions(oversight):
    """Ghost and Diamond are each overseen with the environment's probability, independently of each other."""
    levels = levels_tensor(683) if oversight == "per-env" else torch.full((4096,), oversight)
    env = TorchDiamondGhost(len(levels), oversight=levels if oversight == "per-env" else oversight, max_steps=1)
    _, flags = fresh_layouts(env, seed=7, n_steps=8)
    level_of = levels.repeat(9)
    assert not flags[:, 2].any()  # no spurious oversight by default
    for p in level_of.unique().tolist():
        ghost, diamond = flags[level_of == p, 0], flags[level_of == p, 1]
        if p in (0.0, 1.0):
            assert (ghost == bool(p)).all() and (diamond == bool(p)).all()
            continue
        assert within_5_sigma(ghost, p) and within_5_sigma(diamond, p), p
        assert within_5_sigma(ghost & diamond, p * p), p


def test_labeled_fraction_per_env_oversight():
    """Among episodes that reach a terminal, the labeled fraction estimates each environment's oversight level
    (timeouts are never labeled); per terminal and for both together."""
    levels = levels_tensor(683)
    env = TorchDiamondGhost(len(levels), oversight=levels)
    env.reset(seed=8)
    generator = torch.Generator().manual_seed(8)
    collected = {key: [] for key in ("level", "terminal", "labeled")}
    for _ in range(150):
        info = env.step(torch.randint(0, 4, (env.num_envs,), generator=generator))[-1]
        done = info["_final_info"]
        collected["level"].append(levels[done])
        collected["terminal"].append(info["final_info"]["terminal"][done])
        collected["labeled"].append(info["final_info"]["labeled"][done])
    level, terminal, labeled = (torch.cat(values) for values in collected.values())
    timeout = terminal == Terminal.NONE
    assert timeout.any() and not labeled[timeout].any()
    for p in LEVELS:
        for reached in (terminal == Terminal.DIAMOND, terminal == Terminal.GHOST, ~timeout):
            sample = labeled[reached & (level == p)]
            assert len(sample) >= 1500
            if p in (0.0, 1.0):
                assert (sample == bool(p)).all()
            else:
                assert within_5_sigma(sample, p), (p, sample.float().mean())


@pytest.mark.parametrize("spurious_oversight", [0.0, 0.3, 1.0])
def test_spurious_oversight(spurious_oversight):
    """With ``oversight=0`` the oversight channel is all ones (spurious) or all zeros, and nothing is labeled."""
    env = TorchDiamondGhost(2048, oversight=0.0, spurious_oversight=spurious_oversight)
    channel = env.reset(seed=9)[:, OVERSIGHT].flatten(1)
    full = channel.all(dim=1)
    assert (full | ~channel.any(dim=1)).all()
    if spurious_oversight in (0.0, 1.0):
        assert (full == bool(spurious_oversight)).all()
    else:
        assert within_5_sigma(full, spurious_oversight)
    generator = torch.Generator().manual_seed(9)
    for _ in range(40):
        info = env.step(torch.randint(0, 4, (env.num_envs,), generator=generator))[-1]
        assert not info["final_info"]["labeled"].any()


def test_hidden_oversight_zeroes_the_channel_but_labels():
    env = make_torch("OversightRL/DiamondGhost-5x5-Hidden-v0", 256, oversight=0.5, spurious_oversight=0.5)
    obs = env.reset(seed=10)
    generator = torch.Generator().manual_seed(10)
    labels = 0
    for _ in range(60):
        assert not obs[:, OVERSIGHT].any()
        obs, _, _, _, info = env.step(torch.randint(0, 4, (256,), generator=generator))
        assert not info["final_obs"][:, OVERSIGHT].any()
        labels += int(info["final_info"]["labeled"].sum())
    assert labels > 0


# ----------------------------------------------------------------------------------------------------------------
# Determinism and independence of environments
# ----------------------------------------------------------------------------------------------------------------


def test_same_keys_same_trajectory():
    keys = stream_keys(3, 64)
    actions = torch.randint(0, 4, (120, 64), generator=torch.Generator().manual_seed(3))
    env_a, env_b = TorchDiamondGhost(64, oversight=0.5), TorchDiamondGhost(64, oversight=0.5)
    first = rollout(env_a, keys, actions)
    assert_same(rollout(env_b, keys, actions), first)
    assert_same(rollout(env_a, keys, actions), first)  # resetting the same env replays it
    assert sum(int(step[5].sum()) for step in first[1:]) >= 300, "too few episodes ended to test anything"
    other = env_a.reset(seed=4)
    assert sum(not torch.equal(other[i], first[0][0][i]) for i in range(64)) >= 60


def test_env_alone_equals_env_in_batch():
    """An environment's trajectory depends only on its key, level and actions, not on the batch around it."""
    keys, levels = stream_keys(11, 64), torch.linspace(0.0, 1.0, 64)
    actions = torch.randint(0, 4, (100, 64), generator=torch.Generator().manual_seed(11))
    batch = rollout(TorchDiamondGhost(64, oversight=levels, max_steps=10), keys, actions)
    for i in (0, 17, 63):
        one = slice(i, i + 1)
        alone = rollout(TorchDiamondGhost(1, oversight=levels[one], max_steps=10), keys[one], actions[:, one])
        assert_same(alone, [[t[one] for t in step] for step in batch])


def test_episode_layout_depends_on_key_and_episode_only():
    """Two environments with one key but different actions start each episode ``e`` with the same layout and
    oversight, whenever it starts. Drawing several lanes in one call (as the env does) equals drawing each alone."""
    env = TorchDiamondGhost(2, oversight=0.5, spurious_oversight=0.5, max_steps=6)
    env.reset(stream_keys(12, 1).repeat(2))
    generator = torch.Generator().manual_seed(12)
    starts: list[list] = [[], []]
    for _ in range(300):
        before = env.episode.clone()
        env.step(torch.randint(0, 4, (2,), generator=generator))
        for i in torch.nonzero(env.episode != before).flatten().tolist():
            starts[i].append((env.pieces[i].clone(), env.flags[i].clone()))
    common = min(map(len, starts))
    assert common >= 30 and len(starts[0]) != len(starts[1])
    for (pieces_0, flags_0), (pieces_1, flags_1) in zip(starts[0][:common], starts[1][:common], strict=True):
        assert torch.equal(pieces_0, pieces_1) and torch.equal(flags_0, flags_1)
    # Drawing several lanes at once equals drawing each lane alone.
    keys, counter = stream_keys(13, 100), torch.arange(100)
    highs = torch.tensor([25, 24, 23])
    together = integers(keys[:, None], counter[:, None], torch.tensor([0, 1, 2]), highs)
    for lane in range(3):
        assert torch.equal(together[:, lane], integers(keys, counter, lane, int(highs[lane])))
    assert torch.equal(uniform(keys[:, None], counter[:, None], torch.tensor([3, 4]))[:, 1], uniform(keys, counter, 4))


@CUDA
def test_cpu_and_cuda_trajectories_agree():
    keys, levels = stream_keys(14, 256), torch.linspace(0.0, 1.0, 256)
    actions = torch.randint(0, 4, (80, 256), generator=torch.Generator().manual_seed(14))
    on_cpu = rollout(TorchDiamondGhost(256, oversight=levels, spurious_oversight=0.3), keys, actions)
    on_cuda = rollout(TorchDiamondGhost(256, oversight=levels, spurious_oversight=0.3, device="cuda"), keys, actions)
    assert_same(on_cuda, on_cpu)


@CUDA
def test_cuda_step_never_waits_for_the_host():
    env = TorchDiamondGhost(1024, oversight=0.5, device="cuda")
    env.reset(seed=15)
    actions = torch.randint(0, 4, (20, 1024), device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for row in actions:
            env.step(row)
    finally:
        torch.cuda.set_sync_debug_mode("default")


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_state_dict_round_trip(device):
    keys, levels = stream_keys(16, 128), torch.linspace(0.0, 1.0, 128)
    actions = torch.randint(0, 4, (70, 128), generator=torch.Generator().manual_seed(16))
    env = TorchDiamondGhost(128, oversight=levels, spurious_oversight=0.2, max_steps=9, device=device)
    full = rollout(env, keys, actions)
    env.reset(keys.to(env.device))
    for row in actions[:30]:
        env.step(row.to(env.device))
    buffer = io.BytesIO()
    torch.save(env.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert all(value.device.type == "cpu" for value in state.values() if isinstance(value, torch.Tensor))
    restored = TorchDiamondGhost(128, oversight=levels, spurious_oversight=0.2, max_steps=9, device=device)
    restored.load_state_dict(state)
    assert torch.equal(restored.observation().cpu(), full[30][0])
    assert_same([flat_step(restored.step(row.to(restored.device))) for row in actions[30:]], full[31:])


def test_state_dict_refuses_other_settings():
    state = TorchDiamondGhost(8, oversight=0.5).state_dict()
    with pytest.raises(ValueError, match="settings"):
        TorchDiamondGhost(8, oversight=0.5, max_steps=10).load_state_dict(state)
    with pytest.raises(ValueError, match="oversight"):
        TorchDiamondGhost(8, oversight=0.4).load_state_dict(state)


# ----------------------------------------------------------------------------------------------------------------
# Presets
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", [*envs.NATIVE_PRESETS, "OversightRL/MiniGrid-DiamondGhost-5x5-v0"])
def test_make_torch(env_id):
    env = make_torch(env_id, 16, "cpu", oversight=0.3)
    settings = envs.NATIVE_PRESETS.get(env_id, envs.NATIVE_PRESETS["OversightRL/DiamondGhost-5x5-v0"])
    assert env.num_envs == 16 and torch.equal(env.oversight, torch.full((16,), 0.3))
    for key, value in {"observe_oversight": True, **settings}.items():
        assert getattr(env, key) == value, key
    assert env.reset(seed=0).shape == (16, 4, settings["rows"], settings["cols"])


@pytest.mark.parametrize(
    "env_id", ["OversightRL/MiniGrid-DiamondGhost-TwoRooms-v0", "OversightRL/MiniGrid-DiamondGhost-MultiGhost-v0"]
)
def test_make_torch_refuses_presets_without_native_form(env_id):
    with pytest.raises(ValueError, match="no torch form") as error:
        make_torch(env_id, 4, "cpu")
    assert "\n" not in str(error.value)


# ----------------------------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------------------------

TORCH_BAD_SETTINGS = {  # id: (settings, pattern the message must match)
    **{case: value for case, value in BAD_SETTINGS.items() if "render_mode" not in case},
    "num_envs=0": (dict(num_envs=0), "^num_envs"),
    "num_envs=2.5": (dict(num_envs=2.5), "^num_envs"),
    "per-env oversight 1.5": (dict(oversight=torch.tensor([0.1, 1.5, 0.2, 0.3])), "^oversight"),
    "per-env oversight nan": (dict(oversight=torch.tensor([0.1, float("nan"), 0.2, 0.3])), "^oversight"),
    "per-env oversight shape": (dict(oversight=torch.full((3,), 0.1)), "^oversight"),
    "per-env oversight ints": (dict(oversight=torch.zeros(4, dtype=torch.int64)), "^oversight"),
    "oversight='high'": (dict(oversight="high"), "^oversight"),
    "observe_oversight='yes'": (dict(observe_oversight="yes"), "^observe_oversight"),
    "grid=256x256": (dict(rows=256, cols=256), "rows"),
    "device=abacus": (dict(device="abacus"), "^device"),
}


@pytest.mark.parametrize("case", TORCH_BAD_SETTINGS)
def test_bad_settings(case):
    settings, match = TORCH_BAD_SETTINGS[case]
    with pytest.raises(ValueError, match=match) as error:
        TorchDiamondGhost(**{"num_envs": 4, **settings})
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "keys, seed",
    [(None, None), (stream_keys(0, 4), 0), (stream_keys(0, 3), None), (stream_keys(0, 4).int(), None), ([1] * 4, None)],
    ids=["neither", "both", "shape", "int32", "list"],
)
def test_bad_reset(keys, seed):
    with pytest.raises(ValueError, match="keys") as error:
        TorchDiamondGhost(4).reset(keys, seed=seed)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "actions",
    [torch.zeros(3, dtype=torch.int64), torch.zeros(4, dtype=torch.int32), torch.zeros((4, 1), dtype=torch.int64)]
    + [np.zeros(4, dtype=np.int64), [0, 1, 2, 3]],
    ids=["shape", "int32", "2d", "numpy", "list"],
)
def test_bad_actions(actions):
    env = TorchDiamondGhost(4)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="actions") as error:
        env.step(actions)
    assert "\n" not in str(error.value)


def test_step_before_reset():
    with pytest.raises(RuntimeError, match="reset"):
        TorchDiamondGhost(2).step(torch.zeros(2, dtype=torch.int64))


def test_layout_and_oversight_channel_agree_with_numpy_drawing():
    """The torch observation of fresh layouts is what the numpy grid draws for the same state (spurious included)."""
    env = TorchDiamondGhost(300, 4, 6, oversight=levels_tensor(50), spurious_oversight=0.3)
    obs = env.reset(seed=17)
    grid = DiamondGhostGrid(300, 4, 6, 0.5, 0.3, 32, True)
    env.write_grid_state(grid)
    np.testing.assert_array_equal(obs.numpy(), grid.obs)
    assert obs[:, AGENT].sum() == 300 and obs[:, OVERSIGHT].any(dim=(1, 2)).sum() > 50
