"""The state of a run directory (done, failed, interrupted, missing, unreadable), read from its files alone."""

from __future__ import annotations

from pathlib import Path

from oversight_rl.rundir.files import (
    CHECKPOINT,
    ERROR,
    EVAL_CSV,
    SB3_CHECKPOINT,
    SUMMARY,
    TRAIN_CSV,
    check_archive,
    last_update,
    read_json,
)
from oversight_rl.rundir.readers import Unreadable, read_run_file

DONE, FAILED, INTERRUPTED, MISSING, UNREADABLE = "done", "failed", "interrupted", "missing", "unreadable"
"""Run states: finished (a summary.json that matches train.csv and eval.csv, and a whole checkpoint); failed
(error.json newer than any checkpoint); interrupted (started, not finished, not failed); missing (no run directory);
unreadable (its config.json or summary.json cannot be read, so nothing of it is drawn; ``reason`` names the file and
the error)."""


def run_status(run_dir: Path) -> str:
    """The state of one run directory as its files say: done, failed, interrupted or missing (whether the files
    can be read is :func:`gather`'s business)."""
    run_dir = Path(run_dir)
    if finished(run_dir):
        return DONE
    if not run_dir.exists():
        return MISSING
    error, checkpoint = run_dir / ERROR, run_dir / CHECKPOINT
    if error.exists() and (not checkpoint.exists() or error.stat().st_mtime_ns >= checkpoint.stat().st_mtime_ns):
        return FAILED  # a checkpoint newer than the error belongs to a later attempt
    return INTERRUPTED


def finished(run_dir: Path) -> bool:
    """Whether the run is complete and its files belong together. The trainer writes train.csv, eval.csv and the
    checkpoint at each checkpoint, and summary.json last, naming the update they reached (``updates``); a summary
    whose update differs from the last rows of the CSVs belongs to another attempt, and the run is unfinished. So is
    a run whose checkpoint is missing or damaged (:func:`check_archive`): nothing could load or resume it."""
    run_dir = Path(run_dir)
    try:
        summary = read_json(run_dir / SUMMARY)
        updates = summary.get("updates")
    except (OSError, ValueError, AttributeError):
        return False
    if updates is None or any(last_update(run_dir / name) != updates for name in (TRAIN_CSV, EVAL_CSV)):
        return False
    try:
        check_archive(run_dir / (SB3_CHECKPOINT if summary.get("trainer") == "sb3" else CHECKPOINT))
    except (OSError, ValueError):
        return False
    return True


def error_line(run_dir: Path) -> str:
    """``Type: message`` of a failed run's recorded error, on one line (or why error.json cannot be read)."""
    try:
        error = read_run_file(Path(run_dir) / ERROR, read_json, check=dict)
    except Unreadable as unreadable:
        return str(unreadable)
    message = str(error.get("message") or "").strip().splitlines()
    return f"{error.get('type', 'Error')}: {message[0] if message else ''}".rstrip(": ")
