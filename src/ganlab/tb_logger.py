"""TensorBoard output of a run: scalars, histograms and pictures, all in the run directory."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from PIL import Image
from torch.utils.tensorboard import SummaryWriter
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer import record_writer
from torch.utils.tensorboard.summary import hparams as hparams_summary, histogram

from ganlab.crc32c import masked_crc32c

# TensorBoard's writer checksums every record with a pure-Python loop when TensorFlow is absent;
# the same checksum with numpy (crc32c.py), 5-10x faster on pictures and histograms.
record_writer.masked_crc32c = masked_crc32c


class TBLogger:
    def __init__(self, log_dir: Path, enabled: bool = True, image_dir: Path | None = None,
                 purge_step: int | None = None):
        self.writer = SummaryWriter(str(log_dir), purge_step=purge_step) if enabled else None
        self.image_dir = image_dir
        self._histograms: dict[str, tuple[torch.Tensor, Summary]] = {}

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer:
            for tag, value in values.items():
                self.writer.add_scalar(tag, value, step)

    def histograms(self, values: dict[str, torch.Tensor], step: int) -> None:
        """Histograms of tensors; a tensor logged again as the same object (the fixed real samples
        and noise an evaluator keeps) reuses its summary instead of binning it again."""
        if self.writer:
            for tag, value in values.items():
                cached = self._histograms.get(tag)
                if cached is None or cached[0] is not value:
                    cached = self._histograms[tag] = (value, histogram(tag, value.detach().flatten().numpy(), 64))
                self.writer.file_writer.add_summary(cached[1], step)

    def images(self, values: dict[str, Image.Image], step: int) -> None:
        """Pictures, encoded as PNG once for both TensorBoard and images/TAG/STEP.png (when
        image_dir is set)."""
        for tag, value in values.items():
            if not self.writer and self.image_dir is None:
                continue
            buffer = io.BytesIO()
            value.save(buffer, format="PNG", compress_level=1)
            png = buffer.getvalue()
            if self.writer:
                channels = {"L": 1, "LA": 2, "RGBA": 4}.get(value.mode, 3)  # a palette decodes to RGB
                image = Summary.Image(height=value.height, width=value.width, colorspace=channels,
                                      encoded_image_string=png)
                self.writer.file_writer.add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
            if self.image_dir is not None:
                path = self.image_dir / tag / f"{step:08d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(png)

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
