"""The run directory: tidy files, each written atomically (to a temporary file, then renamed over the old one).

config.json    every resolved setting, the seed and the package version
train.csv      one row per update
eval.csv       one row per evaluation and policy variant
summary.json   final and best metrics per variant, and which variant the method deploys; written last, its
               ``updates`` is the update the checkpoint and the CSVs reached (a run is finished when they agree)
checkpoint.pt  policy, optimizer and environment state, to resume or evaluate (checkpoint.zip, SB3's own, for
               runs of --trainer sb3); a zip archive either way, checked whole by :func:`check_archive`

A killed write leaves at most a temporary file ``.<name>.<random>.tmp`` beside the file it was replacing.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import math
import os
import secrets
import zipfile
import zlib
from pathlib import Path
from typing import Any

import torch

from oversight_rl._version import __version__

CONFIG, TRAIN_CSV, EVAL_CSV, SUMMARY, CHECKPOINT = (
    "config.json",
    "train.csv",
    "eval.csv",
    "summary.json",
    "checkpoint.pt",
)
SB3_CHECKPOINT = "checkpoint.zip"
"""A run of ``--trainer sb3`` keeps Stable-Baselines3's own checkpoint, named so, instead of checkpoint.pt."""


def run_name(method: str, oversight: float, seed: int) -> str:
    """Name that encodes a run's grid point, e.g. ``routing-p0.1-s0`` (``module.NAME-...`` for ``module:NAME``)."""
    return f"{method.replace(':', '.')}-p{oversight + 0.0:g}-s{seed}"  # + 0.0: -0 and 0 are one grid point


def single_run_name(cfg) -> str:
    """A run's name outside a sweep: its grid point and environment, ``routing-p0.1-s0-DiamondGhost-5x5-v0`` (the
    runs of a sweep share one environment, so their names leave it out)."""
    return f"{run_name(cfg.method, cfg.oversight, cfg.seed)}-{cfg.env.split('/')[-1].replace(':', '.')}"


RUN_FILES = (CONFIG, TRAIN_CSV, EVAL_CSV, SUMMARY, CHECKPOINT)


def temporary_path(path: Path) -> Path:
    """A fresh name beside ``path`` for its next version, ``.<name>.<random>.tmp``."""
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a new temporary file beside ``path``, then rename it over ``path``. The file gets the
    mode of any new file (0666 less the umask); a process killed mid-write leaves at most a temporary file, which
    :func:`remove_temporaries` clears when the run is started again. A write that fails (a full or read-only disk)
    leaves ``path`` as it was and no temporary file, and raises ``OSError`` naming ``path``."""
    try:
        _write_then_rename(Path(path), data)
    except OSError as error:  # it named the temporary file, or no file at all (a write(2) that failed)
        raise OSError(error.errno, error.strerror, str(path)) from error


def _write_then_rename(path: Path, data: bytes) -> None:
    """:func:`atomic_write_bytes`' work: the temporary file is removed whatever stops it."""
    while True:
        tmp = temporary_path(path)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def error_message(error: Exception) -> str:
    """An error's message on one line, as the scripts print it after ``error:``. A failed system call (a full or
    read-only disk) is the file and the cause, ``runs/x/checkpoint.pt: No space left on device``, not Python's
    ``[Errno 28] No space left on device``."""
    if isinstance(error, OSError) and error.errno is not None:
        cause = error.strerror or os.strerror(error.errno)
        return cause if error.filename is None else f"{error.filename}: {cause}"
    return " ".join(str(error).split())


def remove_temporaries(run_dir: Path, names: tuple[str, ...] = RUN_FILES) -> list[Path]:
    """Delete the temporary files that writes of the run files ``names`` left behind when their process was
    killed (``.checkpoint.pt.*.tmp``, ...); only call it when no other process writes ``run_dir``."""
    removed = []
    for name in names:
        for tmp in Path(run_dir).glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def check_directory(path: Path, flag: str) -> None:
    """Raise ``ValueError`` naming ``flag`` if ``path`` cannot be a directory: it, or a parent of it, is a file."""
    path = Path(path)
    for candidate in (path, *path.absolute().parents):
        if candidate.exists():
            if not candidate.is_dir():
                where = "" if candidate == path else f" ({candidate} is a file)"
                raise ValueError(f"{flag} {path} must be a directory, not a file{where}")
            return


def create_run_dir(parent: Path, name: str, flag: str = "--out") -> Path:
    """A new, empty run directory ``parent/name``, or ``name-2``, ``name-3``, ... if that exists: each is created
    atomically (``mkdir`` fails if it exists), so no two runs ever share a directory."""
    if name in ("", ".", "..") or Path(name).name != name or "\\" in name:
        raise ValueError(
            f"the run directory name {name!r} (from --exp-name and the run) must be a plain file name: no / or \\,"
            " not . or .."
        )
    parent = Path(parent)
    check_directory(parent, flag)
    parent.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        run_dir = parent / (name if n == 1 else f"{name}-{n}")
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        return run_dir
    raise AssertionError("unreachable")


def _finite(value: Any) -> Any:
    """JSON has no NaN: write it as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def write_json(path: Path, data: dict) -> None:
    atomic_write_bytes(path, (json.dumps(_finite(data), indent=2) + "\n").encode())


def read_json(path: Path) -> dict:
    """A JSON file's content; ``ValueError`` naming the file if it is not valid JSON (say, truncated)."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); the file is damaged") from error


def write_csv(path: Path, rows: list[dict]) -> None:
    """Rows of dicts as CSV; the columns are the union of keys in first-seen order."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode())


def read_csv(path: Path) -> list[dict]:
    """Rows of a CSV written by :func:`write_csv`, numbers parsed back to float (empty cells to NaN)."""
    with open(path, newline="") as f:
        return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _parse(text: str) -> Any:
    if text == "":
        return float("nan")
    try:
        return float(text)
    except ValueError:
        return text


def last_update(path: Path) -> int | None:
    """The ``update`` of the last row of a CSV written by :func:`write_csv` (0 if it has no rows; None if the file
    is missing or has no ``update`` column), read from the file's two ends only."""
    try:
        with open(path, "rb") as f:
            header = f.readline().decode().rstrip("\n")
            size = f.seek(0, os.SEEK_END)
            tail = b""
            while size > 0 and tail.count(b"\n") < 3:
                start = max(0, size - 65536)
                f.seek(start)
                tail = f.read(size - start) + tail
                size = start
    except FileNotFoundError:
        return None
    columns = next(csv.reader([header]), [])
    lines = [line for line in tail.decode(errors="replace").split("\n") if line]
    if "update" not in columns:
        return 0 if not columns and len(lines) <= 1 else None
    last = next(csv.reader([lines[-1]])) if lines else []
    if last == columns:  # the header: no rows
        return 0
    try:
        return int(float(last[columns.index("update")]))
    except (IndexError, ValueError):
        return None


def save_torch(path: Path, obj: Any) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_torch(path: Path) -> Any:
    """What :func:`save_torch` wrote, on the CPU, once :func:`check_archive` has found the file whole (torch.load
    alone would load a flipped byte silently)."""
    check_archive(path)
    return torch.load(path, weights_only=False, map_location="cpu")


def check_archive(path: Path) -> None:
    """Raise ``ValueError`` unless ``path`` is a whole zip archive whose members match their CRC-32 checksums: what
    torch.save and Stable-Baselines3 write, so a checkpoint cut short, emptied or overwritten is caught without
    unpickling it (a few milliseconds per megabyte). A missing file raises ``FileNotFoundError``."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, EOFError, zlib.error) as error:
        raise ValueError(f"not a whole zip archive: {error}") from None
    if bad is not None:
        raise ValueError(f"its member {bad} fails its checksum")


def run_config(cfg, num_updates: int, obs_shape: tuple[int, ...], **extra) -> dict:
    """config.json's content: every resolved setting of the dataclass ``cfg``, the package version and the budget."""

    return {
        **dataclasses.asdict(cfg),
        "version": __version__,
        "num_updates": num_updates,
        "obs_shape": list(obs_shape),
        **extra,
    }


def run_summary(cfg, deployed: str, eval_rows: list[dict], updates: int, env_steps: int, wall_s: float) -> dict:
    """summary.json's content: the final evaluation of each variant, the variant deployed, and ``updates``, the
    update of the checkpoint and CSVs it belongs to.

    No "best over evaluations" is kept: it would be selected on the test episodes themselves. The only selected
    checkpoint is early stopping's, chosen on separate validation episodes (the ``best`` variant).
    """
    variants = {}
    for variant in dict.fromkeys(row["policy"] for row in eval_rows):
        variants[variant] = {"final": [row for row in eval_rows if row["policy"] == variant][-1]}
    return {
        "method": cfg.method,
        "oversight": cfg.oversight,
        "seed": cfg.seed,
        "deployed": deployed,
        "updates": updates,
        "env_steps": env_steps,
        "wall_s": round(wall_s, 3),
        "variants": variants,
    }


SWEEP_JSON, RESULTS_CSV, ERROR = "sweep.json", "results.csv", "error.json"
