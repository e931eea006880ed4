"""Tests of the behaviour pictures (``oversight_rl.pictures``, ``scripts/render_policy.py``) on tiny trained runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from envs.minigrid_envs import TWO_ROOMS, parse_layout
from oversight_rl.deploy import load_policy
from oversight_rl.launch import train
from oversight_rl.pictures import Layout, default_layout, move_probabilities

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    """Import ``scripts/<name>.py`` (the scripts are not a package) to call its ``main(argv)`` in this process."""
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render_policy = load_script("render_policy")


@pytest.fixture(scope="module")
def routing_run(tiny_cfg, tmp_path_factory) -> Path:
    """A tiny routing run on the paper's 5x5 grid (16 updates of 16 envs x 8 steps)."""
    run_dir = tmp_path_factory.mktemp("runs") / "routing"
    train(tiny_cfg(method="routing"), run_dir, progress=False)
    return run_dir


@pytest.fixture(scope="module")
def two_rooms_run(tiny_cfg, tmp_path_factory) -> Path:
    """A tiny single-expert run on the MiniGrid two-room layout (batched by SyncVectorEnv)."""
    run_dir = tmp_path_factory.mktemp("runs") / "naive"
    env = "OversightRL/MiniGrid-DiamondGhost-TwoRooms-v0"
    train(tiny_cfg(method="naive", env=env, num_envs=4, total_env_steps=256, eval_envs=4), run_dir, progress=False)
    return run_dir


def assert_pictures(out: Path, panels: int) -> None:
    """A readable move map, and a GIF of several frames with one panel per pictured policy."""
    move_map, gif = out / "move_map.png", out / "behaviour.gif"
    assert move_map.stat().st_size > 0 and gif.stat().st_size > 0
    with Image.open(move_map) as image:
        assert image.format == "PNG" and min(image.size) > 100
    with Image.open(gif) as image:
        assert image.format == "GIF" and image.n_frames > 1
        frame = np.asarray(image.convert("RGB"))
    rendered = (frame.std(axis=2) > 0).any(axis=0)  # columns holding coloured pixels
    assert rendered[: frame.shape[1] // 2].any() and (panels == 1 or rendered[frame.shape[1] // 2 :].any())


def test_command_writes_the_gif_and_the_move_map(routing_run, tmp_path, capsys):
    argv = [str(routing_run), "--out", str(tmp_path), "--episodes", "2", "--diamond", "0", "4", "--ghost", "2", "1"]
    twin = ["--env", "OversightRL/MiniGrid-DiamondGhost-5x5-v0"]  # a native run, drawn by MiniGrid
    assert render_policy.main([*argv, *twin, "--ghost-overseen"]) == 0
    assert_pictures(tmp_path, panels=2)
    printed = capsys.readouterr().out
    assert str(tmp_path / "behaviour.gif") in printed and str(tmp_path / "move_map.png") in printed


def test_default_output_is_the_run_directory(routing_run):
    assert render_policy.main([str(routing_run), "--episodes", "1", "--oversight", "1.0"]) == 0
    assert_pictures(routing_run, panels=2)


def test_single_expert_run_on_a_walled_minigrid_layout(two_rooms_run, tmp_path):
    assert render_policy.main([str(two_rooms_run), "--out", str(tmp_path), "--episodes", "1"]) == 0
    assert_pictures(tmp_path, panels=1)


BAD_FLAGS = {  # id: (layout flags, pattern of the error)
    "outside": (["--diamond", "5", "0", "--ghost", "0", "0"], "--diamond 5 0 is outside the 5x5 grid"),
    "negative": (["--diamond", "1", "1", "--ghost", "-1", "0"], "--ghost -1 0 is outside"),
    "same-cell": (["--diamond", "2", "2", "--ghost", "2", "2"], "--diamond and --ghost must be different cells"),
    "diamond-only": (["--diamond", "2", "2"], "--diamond and --ghost go together"),
    "two-ghosts": (["--diamond", "0", "0", "--ghost", "1", "1", "--ghost", "2", "2"], "once per Ghost"),
    "episodes": (["--episodes", "0"], "--episodes must be >= 1"),
    "env-shape": (
        ["--env", "OversightRL/MiniGrid-DiamondGhost-TwoRooms-v0"],
        "observes (4, 5, 9), but the policy takes",
    ),
    "env-unknown": (["--env", "OversightRL/Nothing-v0"], "--env OversightRL/Nothing-v0 is not a registered"),
}


@pytest.mark.parametrize("case", BAD_FLAGS)
def test_bad_flags_give_a_clear_error(routing_run, tmp_path, capsys, case):
    flags, message = BAD_FLAGS[case]
    assert render_policy.main([str(routing_run), "--out", str(tmp_path / "pics"), *flags]) == 2
    assert message in capsys.readouterr().err


def test_layout_on_a_wall_is_an_error(two_rooms_run, tmp_path, capsys):
    flags = ["--diamond", "0", "4", "--ghost", "4", "0"]  # column 4 is the wall between the rooms
    assert render_policy.main([str(two_rooms_run), "--out", str(tmp_path), *flags]) == 2
    assert "--diamond 0 4 is a wall" in capsys.readouterr().err


def test_not_a_run_directory(tmp_path, capsys):
    assert render_policy.main([str(tmp_path)]) == 2
    assert "is it a run directory" in capsys.readouterr().err


def test_move_probabilities_cover_every_free_cell(two_rooms_run):
    walls = parse_layout(TWO_ROOMS)
    layout = Layout(diamond=(0, 8), ghosts=((4, 0),), ghost_overseen=True)
    probs = move_probabilities(load_policy(two_rooms_run, "trained"), walls, layout, observe_oversight=True)
    free = ~walls
    free[layout.diamond] = free[layout.ghosts[0]] = False
    assert np.isnan(probs[~free]).all()
    np.testing.assert_allclose(probs[free].sum(axis=1), 1.0, rtol=1e-5)


def test_default_layout_avoids_walls_and_spreads_the_ghosts():
    walls = parse_layout(("#...", "....", "...#"))
    layout = default_layout(walls, num_ghosts=2)
    cells = [layout.diamond, *layout.ghosts]
    assert len(set(cells)) == 3 and not any(walls[cell] for cell in cells)
    assert layout.diamond == (0, 3) and layout.ghosts == ((2, 0), (0, 1))  # (0, 0) is a wall: its nearest free cell
    layout.check(walls, num_ghosts=2)
