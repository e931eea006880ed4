"""Weights & Biases tracking of a run (``--track``), as in CleanRL.

A tracked run is a W&B run named after its run directory (so after ``--exp-name`` too), in project
``--wandb-project-name`` of entity ``--wandb-entity``, whose config is the run's config.json. It logs the scalars the
run writes to train.csv and eval.csv (``losses/policy``, ``eval/diamond/true_return``...), each at its environment
step, as TensorBoard gets them, and is finished when the run ends, as failed when training raised. wandb is imported
only when a run is tracked (the ``wandb`` extra); W&B keeps its files under ``./wandb`` (or ``$WANDB_DIR``), and
``WANDB_MODE=offline`` tracks without an account, for ``wandb sync`` later.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from oversight_rl.config import TrainConfig

WANDB_EXTRA = "pip install 'oversight-rl[wandb]'"


def import_wandb():
    """The wandb module; a one-line ``ValueError`` naming the extra when it is not installed."""
    try:
        import wandb
    except ImportError:
        raise ValueError(f"--track needs the wandb extra: {WANDB_EXTRA}") from None
    return wandb


def start_wandb(cfg: TrainConfig, run_dir: Path, config: dict):
    """A W&B run for the training run in ``run_dir`` with settings ``cfg`` and config.json content ``config``.

    Several may be open at once (the runs of a population). A W&B failure to start (no account set up, say) is a
    one-line ``ValueError``."""
    wandb = import_wandb()
    try:
        return wandb.init(
            project=cfg.wandb_project_name,
            entity=cfg.wandb_entity,
            name=Path(run_dir).name,
            config=config,
            reinit="create_new",
        )
    except wandb.errors.Error as error:
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        raise ValueError(f"--track: Weights & Biases could not start the run ({reason})") from error


def finish_wandb(run, failed: bool = False) -> None:
    """Finish a W&B run, as failed (exit code 1) when training raised."""
    run.finish(exit_code=1 if failed else 0)


@contextmanager
def tracking(cfg: TrainConfig, run_dir: Path, config: dict) -> Iterator[object | None]:
    """The W&B run of :func:`start_wandb` for a ``with`` block (None when ``cfg.track`` is off), finished when the
    block ends, as failed if it raised."""
    if not cfg.track:
        yield None
        return
    run = start_wandb(cfg, run_dir, config)
    try:
        yield run
    except BaseException:
        finish_wandb(run, failed=True)
        raise
    finish_wandb(run)


def eval_scalars(results: dict[str, dict[str, float]]) -> dict[str, float]:
    """One evaluation's metrics of every variant as ``eval/<variant>/<metric>`` scalars."""
    return {f"eval/{variant}/{key}": value for variant, metrics in results.items() for key, value in metrics.items()}
