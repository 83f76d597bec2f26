"""logger=tensorboard: event files under ``<run dir>/<dir>`` (default ``tensorboard``) through
``torch.utils.tensorboard``; ``tensorboard --logdir runs/`` shows every run side by side.

Scalars are written as double-precision tensor summaries (``new_style``), so what TensorBoard
reads back equals metrics.json exactly; the config is a text summary (``config``), PNG figures
are image summaries."""

from __future__ import annotations

from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from .base import Backend, RunInfo


class TensorBoardBackend(Backend):
    name = "tensorboard"

    def __init__(self, settings: dict, run: RunInfo):
        super().__init__(settings, run)
        self.writer = SummaryWriter(log_dir=str(Path(run.dir) / settings.get("dir", "tensorboard")))

    def log_params(self, params: dict[str, str]) -> None:
        rows = [f"| {k} | {v} |" for k, v in {**self.run.tags, **params}.items()]
        self.writer.add_text("config", "\n".join(["| key | value |", "|---|---|", *rows]))
        self.writer.flush()

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step, new_style=True, double_precision=True)
        self.writer.flush()  # visible in a running TensorBoard after every epoch

    def log_artifact(self, path: Path) -> None:
        if path.suffix.lower() != ".png":
            return  # TensorBoard keeps no files; the run directory has them
        import matplotlib.image

        image = matplotlib.image.imread(path)[..., :3]
        self.writer.add_image(f"figures/{path.stem}", image, dataformats="HWC")
        self.writer.flush()

    def close(self, failed: bool = False) -> None:
        self.writer.close()
