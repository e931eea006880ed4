"""TensorBoard logging of a run (``--tensorboard``) into ``run_dir/tensorboard``; needs the tensorboard extra."""

from __future__ import annotations

from pathlib import Path

EXTRA = "--tensorboard needs the tensorboard extra: pip install -e '.[tensorboard]'"


def summary_writer_class():
    """TensorBoard's ``SummaryWriter``; a one-line ``ValueError`` naming the extra when it is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise ValueError(EXTRA) from error
    return SummaryWriter


class TensorBoardLogger:
    """Scalars of one run as TensorBoard events, each at its environment step."""

    check = staticmethod(summary_writer_class)

    def __init__(self, cfg, run_dir: Path, config: dict):
        self.writer = summary_writer_class()(str(Path(run_dir) / "tensorboard"))

    def log(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def close(self, failed: bool = False) -> None:
        self.writer.close()
