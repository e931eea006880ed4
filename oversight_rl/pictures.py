"""Pictures of a trained policy's behaviour, drawn from its run directory. With plots.py, the only matplotlib user
(the move map); the GIF's frames are composed and written with Pillow, which is much faster frame by frame.

- :func:`behaviour_gif`: the Diamond- and Ghost-steered experts (or the single trained policy) play the same seeded
  episodes side by side, on the run's environment as it renders itself.
- :func:`move_map`: each expert's preferred move in every cell of one fixed Diamond/Ghost layout, as arrows whose
  length is the move's probability.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from envs import Terminal, layout_observation  # noqa: E402
from envs.diamond_ghost import GHOST, MOVES  # noqa: E402
from oversight_rl.deploy import LoadedPolicy, load_policy  # noqa: E402
from oversight_rl.methods import get_method  # noqa: E402
from oversight_rl.rundir import CONFIG, read_json  # noqa: E402

Cell = tuple[int, int]
VARIANT_TITLES = {"diamond": "Diamond expert", "ghost": "Ghost expert", "trained": "trained policy"}
VARIANT_COLORS = {"diamond": "tab:blue", "ghost": "tab:red", "trained": "dimgray"}
PANEL_COLORS = {"diamond": (31, 119, 180), "ghost": (214, 39, 40), "trained": (80, 80, 80)}  # the same, for Pillow
OUTCOMES = {Terminal.DIAMOND: "reached the Diamond", Terminal.GHOST: "reached a Ghost", Terminal.NONE: "timed out"}
HOLD_FRAMES = 3  # extra frames that show how each episode ended


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
        """One single environment of the run (at its oversight unless told otherwise)."""
        p = self.oversight if oversight is None else oversight
        return gym.make(self.env_id, oversight=p, render_mode="rgb_array" if render else None)

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


def nearest_floor(walls: np.ndarray, target: Cell, taken: Sequence[Cell] = ()) -> Cell:
    """The free floor cell nearest to ``target`` (Manhattan distance; the first in row order on ties)."""
    floor = [tuple(int(v) for v in cell) for cell in np.argwhere(~walls) if tuple(cell) not in taken]
    return min(floor, key=lambda cell: abs(cell[0] - target[0]) + abs(cell[1] - target[1]))


def default_layout(walls: np.ndarray, num_ghosts: int) -> Layout:
    """The Diamond near the top-right corner, the Ghosts near the bottom-left, top-left and bottom-right; unwatched."""
    rows, cols = walls.shape
    corners = [(rows - 1, 0), (0, 0), (rows - 1, cols - 1)]
    diamond = nearest_floor(walls, (0, cols - 1))
    ghosts: list[Cell] = []
    for k in range(num_ghosts):
        ghosts.append(nearest_floor(walls, corners[k % len(corners)], taken=[diamond, *ghosts]))
    return Layout(diamond, tuple(ghosts))


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


def draw_room(ax, walls: np.ndarray, layout: Layout) -> None:
    """Floor, walls and overseen cells as a background, with the Diamond and the Ghosts marked."""
    kind = np.where(walls, 1, 0)
    kind[layout.overseen_cells(walls.shape)] = 2
    ax.imshow(kind, cmap=ListedColormap(["#f2f2f2", "#555555", "#f5c35a"]), vmin=0, vmax=2)
    rows, cols = walls.shape
    ax.set_xticks(np.arange(-0.5, cols), minor=True)
    ax.set_yticks(np.arange(-0.5, rows), minor=True)
    ax.grid(which="minor", color="#bbbbbb", lw=0.8)
    ax.tick_params(which="both", length=0)
    ax.set_xticks(range(cols))
    ax.set_yticks(range(rows))
    ax.plot(layout.diamond[1], layout.diamond[0], marker="D", ms=16, color="#28d2f0", mec="#005a96", mew=2)
    for ghost in layout.ghosts:
        ax.plot(ghost[1], ghost[0], marker="o", ms=17, color="#aa50eb", mec="#3c1464", mew=2)
        ax.text(ghost[1], ghost[0], "G", ha="center", va="center", color="white", fontsize=9, weight="bold")


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


def move_map(run_dir: str | Path, path: str | Path, layout: Layout | None = None, env_id: str | None = None) -> Path:
    """Each pictured policy's preferred move in every free cell of ``layout`` (default: :func:`default_layout`), on
    the run's environment or ``env_id``."""
    run = RunEnvironment.of(run_dir, env_id)
    env = run.make_env()
    walls, num_ghosts = room_of(env)
    layout = layout or default_layout(walls, num_ghosts)
    layout.check(walls, num_ghosts)
    observe = env.get_wrapper_attr("observe_oversight")
    rows, cols = walls.shape
    size = 3.3 * cols / max(rows, cols) + 0.4, 3.3 * rows / max(rows, cols) + 0.9
    fig, axes = plt.subplots(1, len(run.variants), figsize=(size[0] * len(run.variants), size[1]), squeeze=False)
    for ax, variant in zip(axes[0], run.variants, strict=True):
        probs = move_probabilities(load_policy(run_dir, variant), walls, layout, observe)
        draw_room(ax, walls, layout)
        draw_moves(ax, probs, VARIANT_COLORS[variant])
        ax.set_title(VARIANT_TITLES[variant], color=VARIANT_COLORS[variant], fontsize=11)
    watched = [name for name, on in (("Diamond", layout.diamond_overseen), ("Ghost", layout.ghost_overseen)) if on]
    fig.suptitle(
        f"{run.method} at oversight {run.oversight:g}: most probable move from each cell\n"
        f"arrow length = its probability; overseen (amber): {', '.join(watched) or 'nothing'}",
        fontsize=9,
    )
    fig.tight_layout()
    return save(fig, path)


# ----- behaviour GIF ----------------------------------------------------------------------------------------------


@dataclass
class Frame:
    image: np.ndarray
    status: str


def play_episode(env: gym.Env, policy: LoadedPolicy, seed: int, rng: np.random.Generator, name: str) -> list[Frame]:
    """Frames of one episode from ``reset(seed=seed)``, the last one held for a moment with its outcome."""
    obs, _ = env.reset(seed=seed)
    frames = [Frame(env.render(), f"{name}: start")]
    while True:
        obs, _, terminated, truncated, info = env.step(int(policy.act(obs[None], rng)[0]))
        if terminated or truncated:
            watched = "overseen" if info["labeled"] else "not overseen"
            outcome = OUTCOMES[Terminal(info["terminal"])]
            status = f"{outcome} ({watched})" if terminated else outcome
            return frames + [Frame(env.render(), f"{name}: {status}")] * (1 + HOLD_FRAMES)
        frames.append(Frame(env.render(), f"{name}: step {len(frames)}"))


def play_side_by_side(
    run: RunEnvironment, run_dir: str | Path, episodes: int, seed: int, oversight: float | None
) -> list[dict[str, Frame]]:
    """Each pictured policy plays the same seeded episodes; returns one ``{variant: frame}`` per time step, a
    finished episode holding its last frame until the longest one ends."""
    timeline: list[dict[str, Frame]] = []
    env = run.make_env(oversight, render=True)
    policies = {variant: load_policy(run_dir, variant) for variant in run.variants}
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
) -> Path:
    """A GIF of the pictured policies playing ``episodes`` seeded episodes side by side (same layouts in every
    panel), on the run's environment (or ``env_id``) at its oversight (or ``oversight``)."""
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    if oversight is not None and not 0.0 <= oversight <= 1.0:
        raise ValueError(f"--oversight must be in [0, 1], got {oversight}")
    run = RunEnvironment.of(run_dir, env_id)
    timeline = play_side_by_side(run, run_dir, episodes, seed, oversight)
    frames = [compose_frame(step, run.variants, run.header(oversight)) for step in timeline]
    return write_gif(frames, path, fps)


def compose_frame(step: dict[str, Frame], variants: Sequence[str], header: list[str], height: int = 240) -> np.ndarray:
    """One GIF frame: a header, then each variant's rendered environment (scaled to about ``height`` pixels by
    whole pixels) under its name and status."""
    from PIL import Image, ImageDraw, ImageFont

    scale = max(1, round(height / step[variants[0]].image.shape[0]))
    panels = [np.repeat(np.repeat(step[v].image, scale, axis=0), scale, axis=1) for v in variants]
    small, large, gap = ImageFont.load_default(size=11), ImageFont.load_default(size=15), 12
    top = 14 * len(header) + 56
    width = sum(panel.shape[1] for panel in panels) + gap * (len(panels) + 1)
    canvas = Image.new("RGB", (width, top + max(panel.shape[0] for panel in panels) + gap), "white")
    draw = ImageDraw.Draw(canvas)
    for line, text in enumerate(header):
        draw.text((width / 2, 6 + 14 * line), text, fill="black", font=small, anchor="mt")
    x = gap
    for variant, panel in zip(variants, panels, strict=True):
        centre = x + panel.shape[1] / 2
        draw.text((centre, top - 44), VARIANT_TITLES[variant], fill=PANEL_COLORS[variant], font=large, anchor="mt")
        draw.text((centre, top - 22), step[variant].status, fill="black", font=small, anchor="mt")
        canvas.paste(Image.fromarray(panel), (x, top))
        x += panel.shape[1] + gap
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
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
