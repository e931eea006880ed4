"""Starting and resuming runs with the trainer their settings name: ``native`` (the package's population trainer)
or ``sb3`` (Stable-Baselines3's RoutedPPO, imported only here and only when asked for)."""

from __future__ import annotations

import dataclasses
from contextlib import ExitStack
from pathlib import Path

from oversight_rl.engine.config import RUNTIME_SETTINGS, TrainConfig, flag_name
from oversight_rl.engine.plugins import plugin
from oversight_rl.engine.trainer import Trainer
from oversight_rl.rundir.files import CHECKPOINT, CONFIG, read_json, remove_temporaries
from oversight_rl.rundir.lock import directory_lock
from oversight_rl.rundir.readers import describe


def train(cfg: TrainConfig, run_dir: Path, progress: bool = True) -> dict:
    """Train ``cfg`` into ``run_dir`` (created) and return its summary."""
    return train_population([cfg], [run_dir], progress=progress)[0]


def train_population(
    cfgs: list[TrainConfig], run_dirs: list[Path], resume: list[bool] | None = None, progress: bool = True
) -> list[dict]:
    """Train the runs ``cfgs`` (same settings but seed and oversight) as one population; ``resume[k]`` continues
    run ``k`` from its checkpoint instead of starting it. Returns the summaries in order.

    A resumed run continues on the environment backend its checkpoint holds (``auto`` means the one recorded in its
    config.json, whatever the device is now), and so does the rest of its population. Temporary files that killed
    writes left in the run directories are removed once every checkpoint has loaded."""
    resume = resume or [False] * len(cfgs)
    run_dirs = [Path(run_dir) for run_dir in run_dirs]
    shared = next((d for d in run_dirs if [r.resolve() for r in run_dirs].count(d.resolve()) > 1), None)
    if shared is not None:
        raise ValueError(f"two runs of one population would write the same run directory {shared}")
    if cfgs and cfgs[0].trainer == "sb3":
        if any(resume):
            raise ValueError("--trainer sb3 runs cannot resume; start them again")
        train_sb3 = plugin("trainer", "sb3")
        return [train_sb3(cfg, run_dir, progress) for cfg, run_dir in zip(cfgs, run_dirs, strict=True)]
    cfgs = with_saved_env_backend(cfgs, run_dirs, resume)
    with ExitStack() as locks:
        existing = [d for d in run_dirs if (d / CONFIG).exists()]  # a run not started yet has no other writer
        for run_dir in existing:
            locks.enter_context(run_lock(run_dir))
        trainer = Trainer(cfgs, run_dirs, progress)
        for k, resumed in enumerate(resume):  # every checkpoint loads before any fresh run writes its config.json
            if resumed:
                load_checkpoint(trainer, k)
        trainer.open_logs()  # before a fresh run writes: a W&B run that cannot start leaves no files behind
        for k, resumed in enumerate(resume):
            if not resumed:
                trainer.start(k)
        for run_dir in set(run_dirs) - set(existing):
            locks.enter_context(run_lock(run_dir))
        for run_dir in run_dirs:
            remove_temporaries(run_dir)
        return trainer.run()


def run_lock(run_dir: Path):
    """Held while a run trains, so that a second process (a sweep and a ``--resume`` of one of its runs) is refused
    with :class:`~oversight_rl.rundir.lock.DirectoryBusy` instead of writing the same files."""
    return directory_lock(run_dir, "run", setting="")


def load_checkpoint(trainer: Trainer, k: int) -> None:
    """Restore run ``k`` of ``trainer``; ``ValueError`` naming the checkpoint if it cannot be read or does not fit
    the run (truncated, empty, not a checkpoint)."""
    path = trainer.agents[k].run_dir / CHECKPOINT
    try:
        trainer.load(k)
    except Exception as error:
        reason = describe(error)
        raise ValueError(f"{path} cannot be resumed ({reason}); it is damaged or belongs to another run") from error


def with_saved_env_backend(cfgs: list[TrainConfig], run_dirs: list[Path], resume: list[bool]) -> list[TrainConfig]:
    """``cfgs`` on the environment backend that the resumed runs among them were trained on (unchanged if none)."""
    saved = {saved_config(d).env_backend: d for d, resumed in zip(run_dirs, resume, strict=True) if resumed}
    if not saved:
        return cfgs
    if len(saved) > 1:
        runs = ", ".join(f"{d} ({backend})" for backend, d in saved.items())
        raise ValueError(f"runs trained on different environment backends cannot resume as one population: {runs}")
    ((backend, run_dir),) = saved.items()
    wanted = {cfg.env_backend for cfg in cfgs} - {"auto"}
    if wanted - {backend}:
        raise ValueError(
            f"{run_dir} was trained with --env-backend {backend} and resumes only on it, not --env-backend "
            f"{wanted.pop()}"
        )
    return [dataclasses.replace(cfg, env_backend=backend) for cfg in cfgs]


def saved_config(run_dir: Path) -> TrainConfig:
    """The settings a run was started with, from its config.json, which must hold every setting but the runtime ones
    (a runtime setting it lacks, being newer than the run, takes its default)."""
    path = Path(run_dir) / CONFIG
    if not path.exists():
        raise FileNotFoundError(f"--resume: {run_dir} has no {CONFIG}; is it a run directory?")
    saved = read_json(path)
    if not isinstance(saved, dict):
        raise ValueError(f"{path} holds no settings; is it a run's {CONFIG}?")
    missing = [name for name in TrainConfig.missing_settings(saved) if name not in RUNTIME_SETTINGS]
    if missing:
        raise ValueError(f"{path} lacks the settings {', '.join(missing)}; it cannot be resumed")
    return TrainConfig.from_saved(saved)


def resume(run_dir: Path, progress: bool = True, **settings) -> dict:
    """Continue an interrupted run from its last checkpoint, with the settings it was started with.

    ``settings`` are this invocation's flags: the runtime ones (``RUNTIME_SETTINGS``: device, threads, tensorboard)
    are applied; any other must equal the saved value, since it would change what the run computes."""
    run_dir = Path(run_dir)
    if (run_dir / CONFIG).exists() and saved_config(run_dir).trainer == "sb3":
        raise ValueError(f"--resume: {run_dir} was trained with --trainer sb3, which cannot resume; start a new run")
    if not (run_dir / CHECKPOINT).exists():
        raise FileNotFoundError(f"--resume: {run_dir} has no {CHECKPOINT} to resume from")
    cfg = with_runtime_settings(saved_config(run_dir), run_dir, settings)
    return train_population([cfg], [run_dir], resume=[True], progress=progress)[0]


def with_runtime_settings(cfg: TrainConfig, run_dir: Path, settings: dict) -> TrainConfig:
    """``cfg`` with the runtime ``settings`` applied; ``ValueError`` naming every other setting that differs."""
    unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(cfg)})
    if unknown:
        raise ValueError(f"--resume: no such settings: {', '.join(unknown)}")
    changed = [
        f"{flag_name(name)} {value!r} (saved: {getattr(cfg, name)!r})"
        for name, value in settings.items()
        if name not in RUNTIME_SETTINGS and value != getattr(cfg, name)
    ]
    if changed:
        allowed = ", ".join(map(flag_name, RUNTIME_SETTINGS))
        raise ValueError(
            f"--resume {run_dir} continues with its saved settings, and these flags would change what it computes: "
            f"{', '.join(changed)}; only {allowed} may change (start a new run for other settings)"
        )
    return dataclasses.replace(cfg, **{name: settings[name] for name in settings if name in RUNTIME_SETTINGS})
