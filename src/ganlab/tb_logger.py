"""TensorBoard output of a run: scalars, histograms and pictures, all in the run directory."""

from __future__ import annotations

import io
import itertools
import os
import socket
import struct
import time
from pathlib import Path

import torch
from PIL import Image
from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
from torch.utils.tensorboard.summary import custom_scalars, hparams as hparams_summary, histogram, text

from ganlab.crc32c import masked_crc32c

_file_numbers = itertools.count()  # event files opened in the same second by one process differ by it


class EventFile:
    """A TensorBoard event file (what torch's SummaryWriter writes), written in the caller's thread.

    Each record is an Event proto, length-prefixed and checksummed as TFRecord frames it.
    SummaryWriter starts a writer thread for each run, and a population has a run a copy: 32
    threads wanting the GIL the training loop holds. Writing here instead took 4-19% off the
    population's time after its first iteration (in-process A/B, experiments/README.md, "Speed").
    A record is a buffered write; flush() makes the records so far visible to a TensorBoard
    reading along.
    """

    def __init__(self, log_dir: Path, purge_step: int | None = None):
        # TensorBoard reads a run's files in the order of their names: the number is padded, so
        # that a process's 10th file of a second sorts after its 9th (a resumed run's purge of
        # the steps after its checkpoint must come after them)
        name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
                f"{os.getpid()}.{next(_file_numbers):06d}")
        self.file = open(log_dir / name, "wb")
        self.write(Event(file_version="brain.Event:2"), purge_step)
        if purge_step is not None:  # TensorBoard discards this run's older events at steps >= purge_step
            self.write(Event(session_log=SessionLog(status=SessionLog.START)), purge_step)
        self.flush()

    def write(self, event: Event, step: int | None = None) -> None:
        event.wall_time = time.time()
        if step is not None:
            event.step = step
        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        self.file.write(b"".join((header, struct.pack("<I", masked_crc32c(header)),
                                  data, struct.pack("<I", masked_crc32c(data)))))

    def summary(self, summary: Summary, step: int | None = None) -> None:
        self.write(Event(summary=summary), step)

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def with_status(session_end: Summary, status: int) -> Summary:
    """torch's session-end summary (always a success) with another status."""
    value = session_end.value[0]
    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    data.session_end_info.status = status
    value.metadata.plugin_data.content = data.SerializeToString()
    return session_end


class TBLogger:
    def __init__(self, log_dir: Path, enabled: bool = True, image_dir: Path | None = None,
                 purge_step: int | None = None):
        self.log_dir, self.enabled, self.purge_step = log_dir, enabled, purge_step
        self.image_dir = image_dir
        self._events: EventFile | None = None
        self._histograms: dict[str, tuple[torch.Tensor, Summary]] = {}

    @property
    def events(self) -> EventFile | None:
        """The event file (None when disabled), made with its first record: a process that logs
        nothing (a resume with nothing left to do) leaves no empty file behind."""
        if self._events is None and self.enabled:
            self._events = EventFile(self.log_dir, self.purge_step)
        return self._events

    def scalars(self, values: dict[str, float], step: int | None = None) -> None:
        if self.events:
            self.events.summary(Summary(value=[Summary.Value(tag=tag, simple_value=value)
                                               for tag, value in values.items()]), step)

    def text(self, values: dict[str, str], step: int) -> None:
        """Markdown for TensorBoard's Text tab (as tag/text_summary, where SummaryWriter.add_text puts it)."""
        if self.events:
            for tag, value in values.items():
                self.events.summary(text(tag, value), step)

    def histograms(self, values: dict[str, torch.Tensor], step: int) -> None:
        """Histograms of tensors; a tensor logged again as the same object (the fixed real samples
        and noise an evaluator keeps) reuses its summary instead of binning it again."""
        if self.events:
            for tag, value in values.items():
                cached = self._histograms.get(tag)
                if cached is None or cached[0] is not value:
                    cached = self._histograms[tag] = (value, histogram(tag, value.detach().flatten().numpy(), 64))
                self.events.summary(cached[1], step)

    def images(self, values: dict[str, Image.Image], step: int) -> None:
        """Pictures, encoded as PNG once for both TensorBoard and images/TAG/STEP.png (when
        image_dir is set)."""
        for tag, value in values.items():
            if not self.events and self.image_dir is None:
                continue
            buffer = io.BytesIO()
            value.save(buffer, format="PNG", compress_level=1)
            png = buffer.getvalue()
            if self.events:
                channels = {"L": 1, "LA": 2, "RGBA": 4}.get(value.mode, 3)  # a palette decodes to RGB
                image = Summary.Image(height=value.height, width=value.width, colorspace=channels,
                                      encoded_image_string=png)
                self.events.summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
            if self.image_dir is not None:
                path = self.image_dir / tag / f"{step:08d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(png)

    def hparams(self, hparams: dict, metrics: dict[str, float], failed: bool = False) -> None:
        """HParams data in this run's own event file, so the HParams dashboard lines up every run
        of a sweep (SummaryWriter.add_hparams would write it into a new timestamped subfolder).

        Only the session's start and end: without an experiment summary TensorBoard computes one
        over all the runs it shows, and puts the settings whose values differ between them first
        (its table ticks the first five). Each run writing its own summary, as add_hparams does,
        left TensorBoard to pick one run's at random, which marks no setting as differing.
        `failed`: the session's status is a failure (a run that diverged), which the dashboard's
        Status filter shows or hides; before, such a run was not in the dashboard at all."""
        if self.events:
            _experiment, session_start, session_end = hparams_summary(hparams, metrics)
            if failed:
                session_end = with_status(session_end, api_pb2.STATUS_FAILURE)
            self.events.summary(session_start)
            self.events.summary(session_end)
            self.scalars(metrics)

    def margin_charts(self, category: str, charts: dict[str, tuple[str, str, str]]) -> None:
        """A Custom Scalars dashboard layout: for each metric, the tag of its value drawn with a
        band between the tags of a lower and an upper bound."""
        if self.events:
            self.events.summary(custom_scalars({category: {title: ["Margin", list(tags)]
                                                           for title, tags in charts.items()}}))

    def flush(self) -> None:
        if self._events:
            self._events.flush()

    def close(self) -> None:
        if self._events:
            self._events.close()
