"""Weights & Biases tracking of a run (``--track``), as in CleanRL.

A tracked run is a W&B run named after its run directory (so after ``--exp-name`` too), in project
``--wandb-project-name`` of entity ``--wandb-entity``, whose config is the run's config.json. It logs the scalars the
run writes to train.csv and eval.csv (``losses/policy``, ``eval/diamond/true_return``...), each at its environment
step, as TensorBoard gets them, and is finished when the run ends, as failed when training raised. wandb is imported
only when a run is tracked (the ``wandb`` extra); W&B keeps its files under ``./wandb`` (or ``$WANDB_DIR``), and
``WANDB_MODE=offline`` tracks without an account, for ``wandb sync`` later.
"""

from __future__ import annotations

from pathlib import Path

WANDB_EXTRA = "pip install -e '.[wandb]'"


def import_wandb():
    """The wandb module; a one-line ``ValueError`` naming the extra when it is not installed."""
    try:
        import wandb
    except ImportError:
        raise ValueError(f"--track needs the wandb extra: {WANDB_EXTRA}") from None
    return wandb


class WandbLogger:
    """One training run as a W&B run. Several may be open at once (the runs of a population); a W&B failure to
    start (no account set up, say) is a one-line ``ValueError``."""

    check = staticmethod(import_wandb)

    def __init__(self, cfg, run_dir: Path, config: dict):
        wandb = import_wandb()
        try:
            self.run = wandb.init(
                project=cfg.wandb_project_name,
                entity=cfg.wandb_entity,
                name=Path(run_dir).name,
                config=config,
                reinit="create_new",
            )
        except wandb.errors.Error as error:
            reason = " ".join(f"{type(error).__name__}: {error}".split())
            raise ValueError(f"--track: Weights & Biases could not start the run ({reason})") from error

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def close(self, failed: bool = False) -> None:
        """Finish the W&B run, as failed (exit code 1) when training raised."""
        self.run.finish(exit_code=1 if failed else 0)
