"""The adapters the engine and the layers above it reach by name, so that none of them imports an adapter: an
optional dependency (Stable-Baselines3's trainer, W&B, TensorBoard, Ray) is imported only when a setting asks for it.

A logger is anything with ``log(metrics, step)`` and ``close(failed)``, built as ``Logger(cfg, run_dir, config)``
for the run in ``run_dir`` with settings ``cfg`` and config.json content ``config``; its class may define a
``check()`` that raises a one-line ``ValueError`` when its extra is missing, before anything is written.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any, Protocol

PLUGINS: dict[str, dict[str, str]] = {
    "trainer": {"sb3": "oversight_rl.sb3.train:train_sb3"},
    "checkpoint": {"sb3": "oversight_rl.sb3.train:checkpoint_state"},
    "logger": {
        "tensorboard": "oversight_rl.adapters.tensorboard:TensorBoardLogger",
        "wandb": "oversight_rl.adapters.wandb:WandbLogger",
    },
    "backend": {"ray": "oversight_rl.adapters.ray"},
    "video": {"gif": "oversight_rl.analysis.figures.pictures:deployed_gif"},
}
"""``{kind: {name: "module:attribute"}}`` (a bare module path names the module itself)."""


class Logger(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def close(self, failed: bool = False) -> None: ...


def plugin(kind: str, name: str) -> Any:
    """The plug-in ``name`` of ``kind``, imported now."""
    module, _, attribute = PLUGINS[kind][name].partition(":")
    loaded = import_module(module)
    return getattr(loaded, attribute) if attribute else loaded


def logger_names(cfg) -> list[str]:
    """The loggers a run's settings ask for: ``--tensorboard`` and ``--track`` (W&B)."""
    return [name for name, wanted in (("tensorboard", cfg.tensorboard), ("wandb", cfg.track)) if wanted]


def check_loggers(cfg) -> None:
    """Raise the one-line error of any logger ``cfg`` asks for whose extra is missing."""
    for name in logger_names(cfg):
        check = getattr(plugin("logger", name), "check", None)
        if check is not None:
            check()


def open_loggers(cfg, run_dir: Path, config: dict, names: list[str] | None = None) -> list[Logger]:
    """The loggers ``names`` (by default those ``cfg`` asks for), open on the run in ``run_dir``; if one cannot
    open, those opened are closed as failed and its error is raised."""
    loggers = []
    try:
        for name in logger_names(cfg) if names is None else names:
            loggers.append(plugin("logger", name)(cfg, run_dir, config))
    except BaseException:
        close_loggers(loggers, failed=True)
        raise
    return loggers


def close_loggers(loggers: list[Logger], failed: bool = False) -> None:
    for logger in loggers:
        logger.close(failed)


VIDEOS = "videos"
"""The run directory's folder of ``--capture-video`` recordings."""


def capture_video(cfg, run_dir: Path, env_steps: int) -> None:
    """With ``--capture-video``, record the deployed policy of the checkpoint just written (the figures draw it; they
    import matplotlib, so only a run that asks loads them)."""
    if cfg.capture_video:
        plugin("video", "gif")(run_dir, Path(run_dir) / VIDEOS / f"step-{env_steps:010d}.gif", seed=cfg.seed)
