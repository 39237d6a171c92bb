"""TensorBoard output of a run: scalars, histograms and pictures, all in the run directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter


class TBLogger:
    def __init__(self, log_dir: Path, enabled: bool = True):
        self.writer = SummaryWriter(str(log_dir)) if enabled else None

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer:
            for tag, value in values.items():
                self.writer.add_scalar(tag, value, step)

    def histograms(self, values: dict[str, torch.Tensor], step: int) -> None:
        if self.writer:
            for tag, value in values.items():
                self.writer.add_histogram(tag, value.detach().flatten(), step)

    def images(self, values: dict[str, np.ndarray], step: int) -> None:
        """HWC uint8 pictures (histogram figures, digit grids)."""
        if self.writer:
            for tag, value in values.items():
                self.writer.add_image(tag, value, step, dataformats="HWC")

    def close(self) -> None:
        if self.writer:
            self.writer.close()
