"""A one-line console progress bar: iterations, losses, speed and ETA."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, start: int = 0, enabled: bool = True, width: int = 24):
        self.total, self.start, self.enabled, self.width = total, start, enabled, width
        self.t0 = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.last_printed = start

    def restart_clock(self, it: int) -> None:
        """Measure speed from here: the first iteration of a compiled run or a population is
        mostly compilation, and counting it made the ETA of a 20 s run read minutes."""
        self.start, self.t0 = it, time.perf_counter()

    def update(self, it: int, values: dict[str, float]) -> None:
        # On a terminal redraw in place; in a log file print a plain line every 5% or so.
        if not self.enabled or (not self.tty and it < self.total and it - self.last_printed < self.total / 20):
            return
        self.last_printed = it
        elapsed = time.perf_counter() - self.t0
        rate = (it - self.start) / elapsed if elapsed > 0 else 0.0
        speed = f"{rate:.0f} it/s ETA {(self.total - it) / rate:.0f}s" if rate > 0 else "? it/s"
        filled = int(self.width * it / self.total)
        bar = "#" * filled + "-" * (self.width - filled)
        shown = " ".join(f"{k}={v:.3f}" for k, v in values.items())
        line = f"[{bar}] {it}/{self.total} {shown} {speed}"
        self.write(("\r" + line) if self.tty else line + "\n")

    def close(self) -> None:
        if self.enabled and self.tty:
            self.write("\n")

    def write(self, text: str) -> None:
        """A terminal that has gone (SSH dropped: the run saves and stops on its SIGHUP) or a
        closed pipe (`| head`) ends the bar, not the run."""
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except OSError:
            self.enabled = False
