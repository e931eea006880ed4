"""The run directory: tidy files, each written atomically (to a temporary file, then renamed over the old one).

config.json    every resolved setting, the seed and the package version
train.csv      one row per update
eval.csv       one row per evaluation and policy variant
summary.json   final and best metrics per variant, and which variant the method deploys
checkpoint.pt  policy, optimizer and environment state, to resume or evaluate
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

CONFIG, TRAIN_CSV, EVAL_CSV, SUMMARY, CHECKPOINT = (
    "config.json",
    "train.csv",
    "eval.csv",
    "summary.json",
    "checkpoint.pt",
)


def run_name(method: str, oversight: float, seed: int) -> str:
    """Name that encodes a run's grid point, e.g. ``routing-p0.1-s0`` (``module.NAME-...`` for ``module:NAME``)."""
    return f"{method.replace(':', '.')}-p{oversight:g}-s{seed}"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    return json.loads(Path(path).read_text())


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


def save_torch(path: Path, obj: Any) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def run_config(cfg, num_updates: int, obs_shape: tuple[int, ...], **extra) -> dict:
    """config.json's content: every resolved setting of the dataclass ``cfg``, the package version and the budget."""
    from oversight_rl import __version__

    return {
        **dataclasses.asdict(cfg),
        "version": __version__,
        "num_updates": num_updates,
        "obs_shape": list(obs_shape),
        **extra,
    }


def run_summary(cfg, deployed: str, eval_rows: list[dict], updates: int, env_steps: int, wall_s: float) -> dict:
    """summary.json's content: the final evaluation of each variant, and the variant deployed.

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
