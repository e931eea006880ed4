"""Pictures of a trained policy's behaviour, drawn from its run directory. With plots.py, the only matplotlib user
(the move map); the GIF's frames are composed and written with Pillow, which is much faster frame by frame.

- :func:`behaviour_gif`: the Diamond- and Ghost-steered experts (or the single trained policy) play the same seeded
  episodes side by side.
- :func:`move_map`: each expert's preferred move in every cell of one fixed Diamond/Ghost layout, as arrows whose
  length is the move's probability.

One visual vocabulary in every picture, MiniGrid's: the Diamond is a cyan rhombus, a Ghost a violet ghost with white
eyes, the agent a red triangle pointing along its last move, and overseen cells are amber. MiniGrid presets render
themselves; a native preset's frames are drawn here with the same MiniGrid tiles and objects, and the move map uses
the objects' own drawing. The Diamond expert is drawn in the Diamond's edge blue, the Ghost expert in the Ghost's
violet (``plots.VARIANT_COLORS``).
"""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap, to_rgb  # noqa: E402
from minigrid.core.grid import Grid  # noqa: E402
from minigrid.core.world_object import WorldObj  # noqa: E402

from envs import DiamondGhostMiniGridEnv, Terminal, layout_observation  # noqa: E402
from envs.diamond_ghost import GHOST, MOVES  # noqa: E402
from envs.minigrid_envs import ENTRY_POINT as MINIGRID_ENTRY_POINT  # noqa: E402
from envs.minigrid_envs import MINIGRID_DIRECTION, OVERSEEN_TINT, Diamond, Ghost, OverseenFloor  # noqa: E402
from oversight_rl.analysis.figures.plots import VARIANT_COLORS  # noqa: E402
from oversight_rl.core.methods import get_method  # noqa: E402
from oversight_rl.engine.deploy import LoadedPolicy, load_policy  # noqa: E402
from oversight_rl.rundir.files import CONFIG, read_json  # noqa: E402

Cell = tuple[int, int]
VARIANT_TITLES = {
    "diamond": "Diamond expert",
    "ghost": "Ghost expert",
    "trained": "trained policy",
    "best": "best checkpoint",
}
PANEL_COLORS = {name: tuple(round(255 * c) for c in to_rgb(color)) for name, color in VARIANT_COLORS.items()}
FLOOR, WALL = "#f2f2f2", "#646464"  # the move map's floor (light, under the arrows) and MiniGrid's wall grey
TILE_PIXELS = 32  # MiniGrid's default tile size: the GIF's native frames match its MiniGrid ones
MAX_FPS = 50.0  # GIF frames last whole hundredths of a second, and viewers slow down frames shorter than 0.02 s
OUTCOMES = {Terminal.DIAMOND: "reached the Diamond", Terminal.GHOST: "reached a Ghost", Terminal.NONE: "timed out"}
HOLD_FRAMES = 3  # extra frames that show how each episode ended
CAPTURED_EPISODES = 3  # per --capture-video recording: a glimpse at each evaluation, quick to draw


@dataclass(frozen=True)
class RunEnvironment:
    """What the pictures need to know of a run: its method and oversight fraction, the environment it trained on and
    the one it is pictured on."""

    method: str
    env_id: str
    oversight: float
    trained_env_id: str

    @classmethod
    def of(cls, run_dir: str | Path, env_id: str | None = None) -> RunEnvironment:
        """The run's settings; ``env_id`` pictures it on another registered environment with the same observation
        shape (a policy trained on a native preset plays its MiniGrid twin unchanged, for instance)."""
        path = Path(run_dir) / CONFIG
        if not path.exists():
            raise FileNotFoundError(f"{run_dir} holds no {CONFIG}; is it a run directory?")
        config = read_json(path)
        run = cls(config["method"], env_id or config["env"], float(config["oversight"]), config["env"])
        if env_id is not None:
            if env_id not in gym.registry:
                raise ValueError(f"--env {env_id} is not a registered environment")
            shape = run.make_env().observation_space.shape
            if list(shape) != list(config["obs_shape"]):
                raise ValueError(f"--env {env_id} observes {shape}, but the policy takes {tuple(config['obs_shape'])}")
        return run

    @property
    def variants(self) -> tuple[str, ...]:
        """The policies to picture: the two steered experts of a mixture, else the trained policy."""
        return ("diamond", "ghost") if get_method(self.method).policy == "moe" else ("trained",)

    def make_env(self, oversight: float | None = None, render: bool = False) -> gym.Env:
        """One single environment of the run (at its oversight unless told otherwise); ``render`` asks a MiniGrid
        preset to render itself (native presets are drawn by :func:`native_frame`)."""
        p = self.oversight if oversight is None else oversight
        minigrid = gym.spec(self.env_id).entry_point == MINIGRID_ENTRY_POINT
        return gym.make(self.env_id, oversight=p, render_mode="rgb_array" if render and minigrid else None)

    def header(self, oversight: float | None = None) -> list[str]:
        """Short lines that say what a GIF shows."""
        shown = self.oversight if oversight is None else oversight
        return [
            f"{self.method}, trained on {self.trained_env_id.split('/')[-1]} at oversight {self.oversight:g}",
            f"playing {self.env_id.split('/')[-1]} at oversight {shown:g}",
            "the same seeded episodes in each panel; amber = overseen",
        ]


# ----- the fixed layout of a move map -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Where the Diamond and the Ghosts are, in ``(row, col)`` cells, and which of them are overseen."""

    diamond: Cell
    ghosts: tuple[Cell, ...]
    ghost_overseen: bool = False
    diamond_overseen: bool = False

    def overseen_cells(self, shape: tuple[int, int]) -> np.ndarray:
        mask = np.zeros(shape, dtype=bool)
        mask[self.diamond] = self.diamond_overseen
        for ghost in self.ghosts:
            mask[ghost] = self.ghost_overseen
        return mask

    def check(self, walls: np.ndarray, num_ghosts: int) -> None:
        """Raise ``ValueError`` naming the flag unless every cell is a distinct floor cell of the grid."""
        rows, cols = walls.shape
        named = [("--diamond", self.diamond), *(("--ghost", ghost) for ghost in self.ghosts)]
        for flag, cell in named:
            if not (0 <= cell[0] < rows and 0 <= cell[1] < cols):
                raise ValueError(f"{flag} {cell[0]} {cell[1]} is outside the {rows}x{cols} grid (rows and cols from 0)")
            if walls[cell]:
                raise ValueError(f"{flag} {cell[0]} {cell[1]} is a wall")
        if len(self.ghosts) != num_ghosts:
            raise ValueError(
                f"--ghost must be given once per Ghost: the environment has {num_ghosts}, got {self.ghosts}"
            )
        if len({self.diamond, *self.ghosts}) != 1 + len(self.ghosts):
            raise ValueError(f"--diamond and --ghost must be different cells, got {[cell for _, cell in named]}")


@dataclass(frozen=True)
class LayoutChoice:
    """The move map's layout as asked for: cells left unset come from :func:`default_layout`."""

    diamond: Cell | None = None
    ghosts: tuple[Cell, ...] = ()
    ghost_overseen: bool = False
    diamond_overseen: bool = False

    def resolve(self, walls: np.ndarray, num_ghosts: int) -> Layout:
        """The full layout on this room (checked: ``ValueError`` naming the flag if a cell is not allowed)."""
        default = default_layout(walls, num_ghosts, diamond=self.diamond, ghosts=self.ghosts or None)
        layout = Layout(
            self.diamond or default.diamond, self.ghosts or default.ghosts, self.ghost_overseen, self.diamond_overseen
        )
        layout.check(walls, num_ghosts)
        return layout


def nearest_floor(walls: np.ndarray, target: Cell, taken: Sequence[Cell] = ()) -> Cell:
    """The free floor cell nearest to ``target`` (Manhattan distance; the first in row order on ties)."""
    floor = [tuple(int(v) for v in cell) for cell in np.argwhere(~walls) if tuple(cell) not in taken]
    return min(floor, key=lambda cell: abs(cell[0] - target[0]) + abs(cell[1] - target[1]))


def default_layout(
    walls: np.ndarray, num_ghosts: int, diamond: Cell | None = None, ghosts: Sequence[Cell] | None = None
) -> Layout:
    """The Diamond near the top-right corner, the Ghosts near the bottom-left, top-left and bottom-right; unwatched.
    A ``diamond`` or ``ghosts`` given is kept, and the default cells avoid it. (Given cells are not checked here.)"""
    rows, cols = walls.shape
    given = [cell for cell in (diamond, *(ghosts or ())) if cell is not None]
    if ghosts is None:
        corners = [(rows - 1, 0), (0, 0), (rows - 1, cols - 1)]
        ghosts = []
        for k in range(num_ghosts):
            ghosts.append(nearest_floor(walls, corners[k % len(corners)], taken=[*given, *ghosts]))
    if diamond is None:
        diamond = nearest_floor(walls, (0, cols - 1), taken=list(ghosts))
    return Layout(tuple(diamond), tuple(tuple(ghost) for ghost in ghosts))


def room_of(env: gym.Env) -> tuple[np.ndarray, int]:
    """The wall map of a single environment and its number of Ghosts."""
    obs, _ = env.reset(seed=0)
    return env.get_wrapper_attr("walls"), int(obs[GHOST].sum())


# ----- move map ---------------------------------------------------------------------------------------------------


def move_probabilities(policy: LoadedPolicy, walls: np.ndarray, layout: Layout, observe_oversight: bool) -> np.ndarray:
    """``(rows, cols, 4)`` action probabilities with the agent in each floor cell of ``layout``; NaN elsewhere."""
    shape = walls.shape
    overseen = layout.overseen_cells(shape) if observe_oversight else None
    agents = [tuple(cell) for cell in np.argwhere(~walls) if tuple(cell) not in (layout.diamond, *layout.ghosts)]
    obs = np.stack([layout_observation(shape, agent, layout.ghosts, layout.diamond, overseen) for agent in agents])
    probs = np.full((*shape, 4), np.nan)
    probs[tuple(np.array(agents).T)] = policy.action_probs(obs)
    return probs


def object_sprite(obj: WorldObj, pixels: int = 144) -> np.ndarray:
    """An RGBA image ``(pixels, pixels, 4)`` of one of the environment's objects, as MiniGrid draws it in a cell,
    transparent around it (for the move map)."""
    unused = np.array([1, 2, 3], dtype=np.uint8)  # a background colour no object uses
    image = np.broadcast_to(unused, (pixels, pixels, 3)).copy()
    obj.draw(image)
    alpha = (image != unused).any(axis=2)
    return np.dstack([image / 255.0, alpha.astype(float)])


def draw_room(ax, walls: np.ndarray, layout: Layout) -> None:
    """Floor, walls and overseen cells as a background, with the Diamond and the Ghosts drawn as MiniGrid draws
    them."""
    kind = np.where(walls, 1, 0)
    kind[layout.overseen_cells(walls.shape)] = 2
    tint = "#{:02x}{:02x}{:02x}".format(*OVERSEEN_TINT)
    ax.imshow(kind, cmap=ListedColormap([FLOOR, WALL, tint]), vmin=0, vmax=2)
    rows, cols = walls.shape
    ax.set_xticks(np.arange(-0.5, cols), minor=True)
    ax.set_yticks(np.arange(-0.5, rows), minor=True)
    ax.grid(which="minor", color="#bbbbbb", lw=0.8)
    ax.tick_params(which="both", length=0)
    ax.set_xticks(range(cols))
    ax.set_yticks(range(rows))
    sprites = [(Diamond(), layout.diamond), *((Ghost(), ghost) for ghost in layout.ghosts)]
    for obj, (row, col) in sprites:
        ax.imshow(object_sprite(obj), extent=(col - 0.5, col + 0.5, row + 0.5, row - 0.5), interpolation="antialiased")
    ax.set(xlim=(-0.5, cols - 0.5), ylim=(rows - 0.5, -0.5))


def draw_moves(ax, probs: np.ndarray, color: str) -> None:
    """An arrow per cell toward its most probable move, as long as that move is probable (a full cell at 1)."""
    rows, cols = np.nonzero(~np.isnan(probs[..., 0]))
    best = probs[rows, cols].argmax(axis=1)
    length = 0.85 * probs[rows, cols, best]
    drow, dcol = MOVES[best].T
    start_col, start_row = cols - 0.5 * length * dcol, rows - 0.5 * length * drow
    ax.quiver(
        start_col,
        start_row,
        length * dcol,
        length * drow,
        angles="xy",
        scale_units="xy",
        scale=1,
        color=color,
        width=0.012,
        headwidth=3.5,
        headlength=3.5,
        headaxislength=3.2,
    )


def move_map(
    run_dir: str | Path, path: str | Path, layout: LayoutChoice | None = None, env_id: str | None = None
) -> Path:
    """Each pictured policy's preferred move in every free cell of ``layout`` (unset cells from
    :func:`default_layout`), on the run's environment or ``env_id``."""
    return save(figure_move_map(run_dir, layout, env_id), path)


def figure_move_map(run_dir: str | Path, layout: LayoutChoice | None = None, env_id: str | None = None):
    """The figure of :func:`move_map`, not yet saved."""
    run = RunEnvironment.of(run_dir, env_id)
    env = run.make_env()
    walls, num_ghosts = room_of(env)
    chosen = (layout or LayoutChoice()).resolve(walls, num_ghosts)
    observe = env.get_wrapper_attr("observe_oversight")
    rows, cols = walls.shape
    panel = 3.3 * cols / max(rows, cols) + 0.4, 3.3 * rows / max(rows, cols) + 0.3
    panels = len(run.variants)
    width = max(panel[0] * panels, 4.6)  # room for the title above a single panel
    fig, axes = plt.subplots(1, panels, figsize=(width, panel[1] + 0.8), squeeze=False, constrained_layout=True)
    for ax, variant in zip(axes[0], run.variants, strict=True):
        probs = move_probabilities(load_policy(run_dir, variant), walls, chosen, observe)
        draw_room(ax, walls, chosen)
        draw_moves(ax, probs, VARIANT_COLORS[variant])
        ax.set_title(VARIANT_TITLES[variant], color=VARIANT_COLORS[variant], fontsize=11)
    watched = [name for name, on in (("Diamond", chosen.diamond_overseen), ("Ghost", chosen.ghost_overseen)) if on]
    title = [
        f"{run.method} at oversight {run.oversight:g}: most probable move from each cell",
        f"arrow length = its probability; overseen (amber): {', '.join(watched) or 'nothing'}",
    ]
    characters = int(width * 72 / (9 * 0.52))  # of a 9-point title that fit the figure's width
    fig.suptitle("\n".join(textwrap.fill(line, characters) for line in title), fontsize=9)
    return fig


# ----- behaviour GIF ----------------------------------------------------------------------------------------------


@dataclass
class Frame:
    image: np.ndarray
    status: str


def native_frame(env: gym.Env, action: int | None) -> np.ndarray:
    """A native environment's current state drawn with MiniGrid's tiles and the MiniGrid presets' objects, so that
    it looks exactly as its MiniGrid twin renders itself (outer wall included); the agent faces its last move."""
    state = env.unwrapped.grid  # the DiamondGhostGrid of a single native environment
    rows, cols = state.rows, state.cols
    grid = Grid(cols + 2, rows + 2)
    grid.wall_rect(0, 0, cols + 2, rows + 2)
    if state.spurious[0]:
        for row, col in np.ndindex(rows, cols):
            grid.set(col + 1, row + 1, OverseenFloor())
    objects = [(Diamond(state.diamond_overseen[0]), state.diamond[0]), (Ghost(state.ghost_overseen[0]), state.ghost[0])]
    for obj, (row, col) in objects:
        grid.set(int(col) + 1, int(row) + 1, obj)
    row, col = (int(v) for v in state.agent[0])
    direction = MINIGRID_DIRECTION[0 if action is None else action]  # facing up until the first move, as MiniGrid
    return grid.render(TILE_PIXELS, agent_pos=(col + 1, row + 1), agent_dir=direction)


def frame_of(env: gym.Env, action: int | None) -> np.ndarray:
    """The current picture of a single environment: MiniGrid presets render themselves, native ones are drawn alike."""
    if isinstance(env.unwrapped, DiamondGhostMiniGridEnv):
        return env.render()
    return native_frame(env, action)


def play_episode(env: gym.Env, policy: LoadedPolicy, seed: int, rng: np.random.Generator, name: str) -> list[Frame]:
    """Frames of one episode from ``reset(seed=seed)``, the last one held for a moment with its outcome."""
    obs, _ = env.reset(seed=seed)
    frames = [Frame(frame_of(env, None), f"{name}: start")]
    while True:
        action = int(policy.act(obs[None], rng)[0])
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            watched = "overseen" if info["labeled"] else "not overseen"
            outcome = OUTCOMES[Terminal(info["terminal"])]
            status = f"{outcome} ({watched})" if terminated else outcome
            return frames + [Frame(frame_of(env, action), f"{name}: {status}")] * (1 + HOLD_FRAMES)
        frames.append(Frame(frame_of(env, action), f"{name}: step {len(frames)}"))


def play_side_by_side(
    run: RunEnvironment,
    run_dir: str | Path,
    episodes: int,
    seed: int,
    oversight: float | None,
    variants: Sequence[str],
) -> list[dict[str, Frame]]:
    """Each of the policies ``variants`` plays the same seeded episodes; returns one ``{variant: frame}`` per time
    step, a finished episode holding its last frame until the longest one ends."""
    timeline: list[dict[str, Frame]] = []
    env = run.make_env(oversight, render=True)
    policies = {variant: load_policy(run_dir, variant) for variant in variants}
    for episode in range(episodes):
        played = {}
        for variant, policy in policies.items():
            rng = np.random.default_rng([seed, episode])
            played[variant] = play_episode(env, policy, seed + episode, rng, f"episode {episode + 1}")
        length = max(len(frames) for frames in played.values())
        for t in range(length):
            timeline.append({variant: frames[min(t, len(frames) - 1)] for variant, frames in played.items()})
    return timeline


def behaviour_gif(
    run_dir: str | Path,
    path: str | Path,
    episodes: int = 6,
    seed: int = 0,
    oversight: float | None = None,
    fps: float = 4.0,
    env_id: str | None = None,
    variants: Sequence[str] | None = None,
) -> Path:
    """A GIF of the pictured policies (or ``variants``) playing ``episodes`` seeded episodes side by side (same
    layouts in every panel), on the run's environment (or ``env_id``) at its oversight (or ``oversight``)."""
    check_gif_settings(episodes, oversight, fps)
    run = RunEnvironment.of(run_dir, env_id)
    variants = tuple(variants or run.variants)
    timeline = play_side_by_side(run, run_dir, episodes, seed, oversight, variants)
    frames = [compose_frame(step, variants, run.header(oversight)) for step in timeline]
    return write_gif(frames, path, fps)


def deployed_gif(run_dir: str | Path, path: str | Path, seed: int = 0, episodes: int = CAPTURED_EPISODES) -> Path:
    """A GIF of the deployed policy alone, from the run's latest checkpoint, playing ``episodes`` seeded episodes:
    what ``--capture-video`` records at each evaluation. The run is unfinished then, which loading would warn of."""
    deployed = get_method(RunEnvironment.of(run_dir).method).deploy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return behaviour_gif(run_dir, path, episodes, seed, variants=(deployed,))


def check_gif_settings(episodes: int, oversight: float | None, fps: float) -> None:
    """``ValueError`` naming the flag unless the GIF's settings are usable (checked before anything is written)."""
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    if oversight is not None and not 0.0 <= oversight <= 1.0:
        raise ValueError(f"--oversight must be in [0, 1], got {oversight}")
    if not 0.0 < fps <= MAX_FPS:
        raise ValueError(f"--fps must be in (0, {MAX_FPS:g}] frames per second, got {fps:g}")


def compose_frame(step: dict[str, Frame], variants: Sequence[str], header: list[str], height: int = 240) -> np.ndarray:
    """One GIF frame: a header, then each variant's rendered environment (scaled to about ``height`` pixels by
    whole pixels) under its name and status. The frame's size depends only on the header and the panels, never on
    the status, so every frame of a GIF has the same size; no text is cut off."""
    from PIL import Image, ImageDraw, ImageFont

    scale = max(1, round(height / step[variants[0]].image.shape[0]))
    panels = [np.repeat(np.repeat(step[v].image, scale, axis=0), scale, axis=1) for v in variants]
    small, large, gap = ImageFont.load_default(size=11), ImageFont.load_default(size=15), 12
    top = 14 * len(header) + 56
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    longest_status = f"episode 99: {max(OUTCOMES.values(), key=len)} (not overseen)"
    slot = max(max(panel.shape[1] for panel in panels), round(draw.textlength(longest_status, font=small)))
    slots = slot * len(panels) + gap * (len(panels) + 1)
    width = max(slots, round(max(draw.textlength(line, font=small) for line in header)) + 2 * gap)
    canvas = Image.new("RGB", (width, top + max(panel.shape[0] for panel in panels) + gap), "white")
    draw = ImageDraw.Draw(canvas)
    for line, text in enumerate(header):
        draw.text((width / 2, 6 + 14 * line), text, fill="black", font=small, anchor="mt")
    x = (width - slots) // 2 + gap
    for variant, panel in zip(variants, panels, strict=True):
        centre = x + slot / 2
        draw.text((centre, top - 44), VARIANT_TITLES[variant], fill=PANEL_COLORS[variant], font=large, anchor="mt")
        draw.text((centre, top - 22), step[variant].status, fill="black", font=small, anchor="mt")
        canvas.paste(Image.fromarray(panel), (round(centre - panel.shape[1] / 2), top))
        x += slot + gap
    return np.asarray(canvas)


def write_gif(frames: list[np.ndarray], path: str | Path, fps: float) -> Path:
    """Frames as a looping GIF with one palette, chosen from a sample of the frames (fast, and small files)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sample = np.concatenate(frames[:: max(1, len(frames) // 8)], axis=0)
    palette = Image.fromarray(sample).quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    images = [Image.fromarray(frame).quantize(palette=palette, dither=Image.Dither.NONE) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return path


def save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")  # nothing is cut off, whatever the title's length
    plt.close(fig)
    return path
