"""Starting and resuming runs with the trainer their settings name: ``native`` (the package's population trainer)
or ``sb3`` (Stable-Baselines3's RoutedPPO, imported only here and only when asked for)."""

from __future__ import annotations

from pathlib import Path

from oversight_rl.config import TrainConfig
from oversight_rl.rundir import CHECKPOINT, CONFIG, read_json
from oversight_rl.train import Trainer


def train(cfg: TrainConfig, run_dir: Path, progress: bool = True) -> dict:
    """Train ``cfg`` into ``run_dir`` (created) and return its summary."""
    return train_population([cfg], [run_dir], progress=progress)[0]


def train_population(
    cfgs: list[TrainConfig], run_dirs: list[Path], resume: list[bool] | None = None, progress: bool = True
) -> list[dict]:
    """Train the runs ``cfgs`` (same settings but seed and oversight) as one population; ``resume[k]`` continues
    run ``k`` from its checkpoint instead of starting it. Returns the summaries in order."""
    resume = resume or [False] * len(cfgs)
    if cfgs and cfgs[0].trainer == "sb3":
        from oversight_rl.sb3.train import train_sb3  # the only place the native side reaches the adapter

        if any(resume):
            raise ValueError("--trainer sb3 runs cannot resume; start them again")
        return [train_sb3(cfg, Path(run_dir), progress) for cfg, run_dir in zip(cfgs, run_dirs, strict=True)]
    trainer = Trainer(cfgs, run_dirs, progress)
    for k, resumed in enumerate(resume):
        if resumed:
            trainer.load(k)
        else:
            trainer.start(k)
    return trainer.run()


def saved_config(run_dir: Path) -> TrainConfig:
    """The settings a run was started with, from its config.json."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).exists():
        raise FileNotFoundError(f"--resume: {run_dir} has no {CONFIG}; is it a run directory?")
    return TrainConfig.from_saved(read_json(run_dir / CONFIG))


def resume(run_dir: Path, progress: bool = True) -> dict:
    """Continue an interrupted run from its last checkpoint, with the settings it was started with."""
    run_dir = Path(run_dir)
    if (run_dir / CONFIG).exists() and saved_config(run_dir).trainer == "sb3":
        raise ValueError(f"--resume: {run_dir} was trained with --trainer sb3, which cannot resume; start a new run")
    if not (run_dir / CHECKPOINT).exists():
        raise FileNotFoundError(f"--resume: {run_dir} has no {CHECKPOINT} to resume from")
    cfg = saved_config(run_dir)
    return train_population([cfg], [run_dir], resume=[True], progress=progress)[0]
