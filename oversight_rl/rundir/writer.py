"""The one writer of a run directory, shared by the native trainer and the SB3 adapter, so that both write its files
in the order the readers rely on (:func:`oversight_rl.rundir.status.finished`): config.json when the run starts;
train.csv, eval.csv and then the checkpoint at each checkpoint; summary.json last, naming the update the CSVs reached.
Every file is written atomically."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from oversight_rl.rundir.files import CHECKPOINT, CONFIG, EVAL_CSV, SUMMARY, TRAIN_CSV, write_csv, write_json


class RunWriter:
    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)

    def start(self, config: dict) -> None:
        """Create the directory (if needed) and write config.json: the run trains from scratch."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.run_dir / CONFIG, config)

    def checkpoint(
        self, train_rows: list[dict], eval_rows: list[dict], save: Callable[[Path], None], name: str = CHECKPOINT
    ) -> None:
        """Write the rows so far, then the checkpoint: ``save(path)`` writes the trainer's own state to ``path``."""
        write_csv(self.run_dir / TRAIN_CSV, train_rows)
        write_csv(self.run_dir / EVAL_CSV, eval_rows)
        save(self.run_dir / name)

    def finish(self, summary: dict) -> None:
        """Write summary.json, last: a run with a summary that matches its CSVs is complete."""
        write_json(self.run_dir / SUMMARY, summary)
