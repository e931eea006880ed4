"""Reading run files, and the one way a damaged one is reported: :class:`Unreadable`, naming the file and what is
wrong with it. eval.csv is parsed here only (:func:`read_evaluations`)."""

from __future__ import annotations

import csv
from pathlib import Path

from oversight_rl.rundir.files import EVAL_CSV, read_csv

READ_ERRORS = (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError, csv.Error)
"""What reading a damaged run file raises: missing or unreadable file, bad JSON or CSV, missing or mistyped fields."""


class Unreadable(Exception):
    """A run file that cannot be read or lacks what it must hold; the message is ``file: what is wrong``."""


class Malformed(ValueError):
    """A run file that parses but lacks what it must hold (described by its message alone)."""


def describe(error: BaseException) -> str:
    """``Type: message`` of an exception, on one line."""
    if isinstance(error, Malformed):
        return str(error)
    if isinstance(error, KeyError):
        return f"KeyError: missing {error.args[0]!r}" if error.args else "KeyError"
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def read_run_file(path: Path, reader, check=lambda content: content):
    """``check(reader(path))``, or :class:`Unreadable` naming the file and the error."""
    try:
        if path.exists() and path.stat().st_size == 0:
            raise Malformed("empty file")
        return check(reader(path))
    except READ_ERRORS as error:
        raise Unreadable(f"{path.name}: {describe(error)}") from error


def read_complete_csv(path: Path) -> list[dict]:
    """:func:`read_csv`, after checking that every line has as many fields as the header (a file cut short has
    not)."""
    with open(path, newline="") as f:
        lines = list(csv.reader(f))
    for number, fields in enumerate(lines[1:], start=2):
        if len(fields) != len(lines[0]):
            raise Malformed(f"line {number} has {len(fields)} of {len(lines[0])} fields (file cut short?)")
    return read_csv(path)


EVALUATION_COLUMNS = ("update", "env_steps", "policy", "true_return")
"""What every eval.csv row holds, whatever metrics follow."""


def read_evaluations(run_dir: Path) -> list[dict]:
    """Every row of a run's eval.csv, one per evaluated policy variant and evaluation, in the order written;
    :class:`Unreadable` naming eval.csv if it is missing, empty, cut short, has no rows or lacks a column of
    :data:`EVALUATION_COLUMNS`."""

    def check(rows: list[dict]) -> list[dict]:
        if not rows:
            raise Malformed("no evaluations (header only)")
        missing = [column for column in EVALUATION_COLUMNS if column not in rows[0]]
        if missing:
            raise Malformed(f"no {', '.join(missing)} column")
        return rows

    return read_run_file(Path(run_dir) / EVAL_CSV, read_complete_csv, check)
