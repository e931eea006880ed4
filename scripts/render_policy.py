"""Pictures of a trained policy's behaviour: a GIF of its experts side by side and a map of their preferred moves.

python scripts/render_policy.py runs/routing-p0.1-s0-20261126-101500
python scripts/render_policy.py RUN_DIR --diamond 0 4 --ghost 2 1 --ghost-overseen   # the move map's layout
python scripts/render_policy.py RUN_DIR --episodes 10 --oversight 0.5 --out pictures/
python scripts/render_policy.py RUN_DIR --env OversightRL/MiniGrid-DiamondGhost-5x5-v0   # drawn by MiniGrid

Mixture methods are pictured by their Diamond- and Ghost-steered experts, other methods by their trained policy.
Cells are (row, col), counted from 0 at the top left of the room.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from oversight_rl.pictures import Layout, behaviour_gif, move_map


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("run_dir", type=Path, help="run directory written by train_policy.py")
    parser.add_argument("--out", type=Path, default=None, help="directory for the pictures (default: the run's)")
    parser.add_argument(
        "--env", default=None, help="play on this registered environment instead of the run's (same observation shape)"
    )
    gif = parser.add_argument_group("behaviour GIF")
    gif.add_argument("--episodes", type=int, default=6, help="seeded episodes to play")
    gif.add_argument("--seed", type=int, default=0, help="seed of the first episode (the next ones count up)")
    gif.add_argument("--oversight", type=float, default=None, help="oversight to play at (default: the run's)")
    gif.add_argument("--fps", type=float, default=4.0, help="frames per second")
    layout = parser.add_argument_group("move map layout (default: Diamond top right, Ghost bottom left, unwatched)")
    layout.add_argument("--diamond", type=int, nargs=2, metavar=("ROW", "COL"), help="the Diamond's cell")
    layout.add_argument(
        "--ghost", type=int, nargs=2, action="append", metavar=("ROW", "COL"), help="a Ghost's cell (once per Ghost)"
    )
    layout.add_argument("--ghost-overseen", action="store_true", help="mark the Ghosts' cells as overseen")
    layout.add_argument("--diamond-overseen", action="store_true", help="mark the Diamond's cell as overseen")
    return parser.parse_args(argv)


def chosen_layout(args: argparse.Namespace) -> Layout | None:
    """The layout given by the flags, or None for the default layout (only oversight flags given)."""
    if args.diamond is None and args.ghost is None and not (args.ghost_overseen or args.diamond_overseen):
        return None
    if args.diamond is None or args.ghost is None:
        raise ValueError("--diamond and --ghost go together (give both, or neither for the default layout)")
    ghosts = tuple(tuple(cell) for cell in args.ghost)
    return Layout(tuple(args.diamond), ghosts, args.ghost_overseen, args.diamond_overseen)


def main(argv: list[str]) -> int:
    args = parse(argv)
    out = args.out or args.run_dir
    try:
        layout = chosen_layout(args)
        print(f"move map: {move_map(args.run_dir, out / 'move_map.png', layout, args.env)}")
        gif_path = out / "behaviour.gif"
        gif = behaviour_gif(args.run_dir, gif_path, args.episodes, args.seed, args.oversight, args.fps, args.env)
        print(f"behaviour GIF: {gif}")
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
