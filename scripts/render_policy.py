"""Pictures of a trained policy's behaviour: a GIF of its experts side by side and a map of their preferred moves.

    python scripts/render_policy.py runs/routing-p0.1-s0-20261126-101500
    python scripts/render_policy.py RUN_DIR --ghost-overseen                            # default layout, Ghost watched
    python scripts/render_policy.py RUN_DIR --diamond 0 4 --ghost 2 1 --ghost-overseen   # the move map's layout
    python scripts/render_policy.py RUN_DIR --episodes 10 --oversight 0.5 --out pictures/
    python scripts/render_policy.py RUN_DIR --env OversightRL/MiniGrid-DiamondGhost-5x5-v0   # drawn by MiniGrid

Writes behaviour.gif and move_map.png. Mixture methods are pictured by their Diamond- and Ghost-steered experts,
other methods by their trained policy. Cells are (row, col), counted from 0 at the top left of the room. Exit status
2, with one line naming the flag and nothing written, for a bad flag.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from oversight_rl.analysis.figures.pictures import LayoutChoice, behaviour_gif, check_gif_settings, move_map
from oversight_rl.engine.command_line import cli


def default_is(text: str, metavar: str | None = None):
    """Shows a default that the script computes (instead of tyro's ``(default: None)``)."""
    return tyro.conf.arg(metavar=metavar, help_behavior_hint=f"(default: {text})")


@dataclass
class CommandLine:
    run_dir: Annotated[tyro.conf.Positional[str], tyro.conf.arg(metavar="RUN_DIR")]
    """Run directory written by train_policy.py."""
    out: Annotated[str | None, default_is("the run directory")] = None
    """Directory for behaviour.gif and move_map.png."""
    env: Annotated[str | None, default_is("the run's")] = None
    """Registered environment to play on instead, with the run's observation shape (e.g. the MiniGrid twin)."""
    episodes: int = 6
    """GIF: seeded episodes to play, at least 1."""
    seed: int = 0
    """GIF: seed of the first episode (the next ones count up)."""
    oversight: Annotated[float | None, default_is("the run's")] = None
    """GIF: oversight fraction to play at, in [0, 1]."""
    fps: float = 4.0
    """GIF: frames per second, in (0, 50]."""
    diamond: Annotated[tuple[int, int] | None, default_is("near the top right", metavar="ROW COL")] = None
    """Move map: the Diamond's cell."""
    ghost: Annotated[
        tuple[tuple[int, int], ...],
        tyro.conf.UseAppendAction,
        default_is("near the bottom left, then the other corners", metavar="ROW COL"),
    ] = ()
    """Move map: a Ghost's cell; give it once per Ghost of the environment."""
    ghost_overseen: bool = False
    """Move map: mark the Ghosts' cells as overseen (alone, on the default layout)."""
    diamond_overseen: bool = False
    """Move map: mark the Diamond's cell as overseen (alone, on the default layout)."""

    def layout(self) -> LayoutChoice:
        return LayoutChoice(self.diamond, self.ghost, self.ghost_overseen, self.diamond_overseen)


def parse(argv: list[str]) -> CommandLine:
    return cli(CommandLine, argv, description=__doc__, config=(tyro.conf.FlagCreatePairsOff,))


def main(argv: list[str]) -> int:
    args = parse(argv)
    out = Path(args.out or args.run_dir)
    try:
        if out.exists() and not out.is_dir():
            flag = "--out" if args.out else "RUN_DIR"
            raise ValueError(f"{flag} {out} is an existing file; it must be a directory for the pictures")
        check_gif_settings(args.episodes, args.oversight, args.fps)  # before anything is written
        print(f"move map: {move_map(args.run_dir, out / 'move_map.png', args.layout(), args.env)}")
        gif = out / "behaviour.gif"
        gif = behaviour_gif(args.run_dir, gif, args.episodes, args.seed, args.oversight, args.fps, args.env)
        print(f"behaviour GIF: {gif}")
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
