"""Tests of the behaviour pictures (``oversight_rl.analysis.figures.pictures``, ``scripts/render_policy.py``) on tiny
trained runs."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import matplotlib.pyplot as plt
import numpy as np
import pytest
from cli import load_script
from PIL import Image

from envs.minigrid_envs import (
    DIAMOND_EDGE_RGB,
    DIAMOND_RGB,
    GHOST_RGB,
    OVERSEEN_TINT,
    TWO_ROOMS,
    Diamond,
    Ghost,
    parse_layout,
)
from oversight_rl.analysis.figures import pictures
from oversight_rl.analysis.figures.pictures import Layout, LayoutChoice, default_layout, move_probabilities
from oversight_rl.analysis.figures.plots import VARIANT_COLORS
from oversight_rl.engine.deploy import load_policy
from oversight_rl.engine.launch import train

ROOT = Path(__file__).resolve().parents[1]


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
    "two-ghosts": (["--diamond", "0", "0", "--ghost", "1", "1", "--ghost", "2", "2"], "once per Ghost"),
    "episodes": (["--episodes", "0"], "--episodes must be >= 1"),
    "fps-zero": (["--fps", "0"], "--fps must be in (0, 50] frames per second, got 0"),
    "fps-negative": (["--fps", "-2"], "--fps must be in (0, 50] frames per second, got -2"),
    "fps-nan": (["--fps", "nan"], "--fps must be in (0, 50]"),
    "fps-too-fast": (["--fps", "500"], "--fps must be in (0, 50]"),
    "env-shape": (
        ["--env", "OversightRL/MiniGrid-DiamondGhost-TwoRooms-v0"],
        "observes (4, 5, 9), but the policy takes",
    ),
    "env-unknown": (["--env", "OversightRL/Nothing-v0"], "--env OversightRL/Nothing-v0 is not a registered"),
}


@pytest.mark.parametrize("case", BAD_FLAGS)
def test_bad_flags_give_a_one_line_error_and_write_nothing(routing_run, tmp_path, capsys, case):
    flags, message = BAD_FLAGS[case]
    assert render_policy.main([str(routing_run), "--out", str(tmp_path / "pics"), *flags]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and message in error and "\n" not in error
    assert not (tmp_path / "pics").exists()


def test_out_that_is_a_file_is_refused(routing_run, tmp_path, capsys):
    out = tmp_path / "pictures.png"
    out.write_text("keep me")
    assert render_policy.main([str(routing_run), "--out", str(out), "--episodes", "1"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --out ") and "is an existing file" in error and "\n" not in error
    assert out.read_text() == "keep me"


def test_ghost_overseen_alone_marks_the_default_layout(routing_run, tmp_path, capsys):
    assert render_policy.main([str(routing_run), "--out", str(tmp_path), "--episodes", "1", "--ghost-overseen"]) == 0
    assert_pictures(tmp_path, panels=2)
    layout = LayoutChoice(ghost_overseen=True).resolve(np.zeros((5, 5), bool), num_ghosts=1)
    assert layout == Layout(diamond=(0, 4), ghosts=((4, 0),), ghost_overseen=True)
    fig = pictures.figure_move_map(routing_run, LayoutChoice(ghost_overseen=True))
    assert "overseen (amber): Ghost" in fig._suptitle.get_text()
    plt.close(fig)


def test_unset_cells_come_from_the_default_layout():
    walls = np.zeros((5, 5), bool)
    assert LayoutChoice(diamond=(4, 0)).resolve(walls, 1) == Layout((4, 0), ((3, 0),))  # the Ghost steps aside
    assert LayoutChoice(ghosts=((0, 4),)).resolve(walls, 1) == Layout((0, 3), ((0, 4),))
    assert LayoutChoice(diamond=(2, 2), ghosts=((1, 1),)).resolve(walls, 1) == Layout((2, 2), ((1, 1),))


def test_help_names_computed_defaults_and_never_repeats_them(capsys):
    with pytest.raises(SystemExit) as exit_status:
        render_policy.parse(["--help"])
    assert exit_status.value.code == 0
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    options = text[text.index("--help show this help message") :]
    assert "(default: None)" not in options
    assert "(default: the run directory)" in options and "(default: near the top right)" in options
    assert "(default: 4.0)" in options and "(0, 50]" in options
    for flag in ("--out", "--env", "--oversight", "--fps", "--diamond", "--ghost "):
        help_text = options[options.index(flag) + 2 :].split(" --")[0]
        assert help_text.count("(default:") == 1, help_text


def test_single_panel_move_map_title_is_not_cut_off(two_rooms_run):
    fig = pictures.figure_move_map(two_rooms_run)
    fig.canvas.draw()
    title, page = fig._suptitle.get_window_extent(), fig.bbox
    assert page.x0 <= title.x0 and title.x1 <= page.x1 and title.y1 <= page.y1, (title, page)
    assert "naive at oversight 0.5" in fig._suptitle.get_text()
    plt.close(fig)


# ----- one visual vocabulary --------------------------------------------------------------------------------------


def hex_of(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def test_native_frames_look_exactly_like_their_minigrid_twin():
    native = gym.make("OversightRL/DiamondGhost-5x5-v0", oversight=0.5)
    twin = gym.make("OversightRL/MiniGrid-DiamondGhost-5x5-v0", render_mode="rgb_array")
    for seed in range(4):
        native.reset(seed=seed)
        state = native.unwrapped.grid
        cells = [tuple(int(v) for v in state.agent[0]), tuple(state.diamond[0]), [tuple(state.ghost[0])]]
        twin.reset(seed=seed)
        twin.unwrapped.set_layout(*cells, bool(state.ghost_overseen[0]), bool(state.diamond_overseen[0]))
        np.testing.assert_array_equal(pictures.native_frame(native, None), twin.render())
        for action in (1, 2):  # the agent turns to face its move, in both
            _, _, done, _, _ = native.step(action)
            twin.step(action)
            np.testing.assert_array_equal(pictures.native_frame(native, action), twin.render())
            if done:
                break


def sprite_colours(obj) -> set[tuple[int, ...]]:
    sprite = pictures.object_sprite(obj)
    return {tuple(c) for c in np.round(sprite[sprite[..., 3] > 0, :3] * 255).astype(int)}


def test_move_map_objects_and_expert_colours_are_the_environments():
    assert GHOST_RGB in sprite_colours(Ghost()) and DIAMOND_RGB in sprite_colours(Diamond())
    assert DIAMOND_EDGE_RGB in sprite_colours(Diamond())
    sprite = pictures.object_sprite(Ghost())
    assert sprite[0, 0, 3] == 0 and sprite[72, 72, 3] == 1  # transparent round the object only
    assert VARIANT_COLORS["ghost"] == hex_of(GHOST_RGB) and VARIANT_COLORS["diamond"] == hex_of(DIAMOND_EDGE_RGB)


def test_gif_of_a_native_run_draws_the_minigrid_agent(routing_run, tmp_path):
    gif = pictures.behaviour_gif(routing_run, tmp_path / "b.gif", episodes=1, oversight=1.0)
    with Image.open(gif) as image:
        colours = {tuple(c) for c in np.asarray(image.convert("RGB")).reshape(-1, 3)}
    assert (255, 0, 0) in colours  # MiniGrid's red agent triangle
    assert OVERSEEN_TINT in colours  # every terminal is overseen at oversight 1
    assert (30, 60, 220) not in colours and (200, 30, 30) not in colours  # not the native render's square and arch


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
