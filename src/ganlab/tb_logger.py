"""TensorBoard output of a run: scalars, histograms and pictures, all in the run directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary


class TBLogger:
    def __init__(self, log_dir: Path, enabled: bool = True, image_dir: Path | None = None,
                 purge_step: int | None = None):
        self.writer = SummaryWriter(str(log_dir), purge_step=purge_step) if enabled else None
        self.image_dir = image_dir

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer:
            for tag, value in values.items():
                self.writer.add_scalar(tag, value, step)

    def histograms(self, values: dict[str, torch.Tensor], step: int) -> None:
        if self.writer:
            for tag, value in values.items():
                self.writer.add_histogram(tag, value.detach().flatten(), step)

    def images(self, values: dict[str, np.ndarray], step: int) -> None:
        """HWC uint8 pictures; also saved as images/TAG/STEP.png when image_dir is set."""
        for tag, value in values.items():
            if self.writer:
                self.writer.add_image(tag, value, step, dataformats="HWC")
            if self.image_dir is not None:
                path = self.image_dir / tag / f"{step:08d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(value).save(path)

    def hparams(self, hparams: dict, metrics: dict[str, float]) -> None:
        """HParams data in this run's own event file, so the HParams dashboard lines up every run
        of a sweep (SummaryWriter.add_hparams would write it into a new timestamped subfolder)."""
        if self.writer:
            for summary in hparams_summary(hparams, metrics):
                self.writer.file_writer.add_summary(summary)
            for tag, value in metrics.items():
                self.writer.add_scalar(tag, value)

    def close(self) -> None:
        if self.writer:
            self.writer.close()
