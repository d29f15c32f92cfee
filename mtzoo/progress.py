"""A one-line progress bar for long loops (training steps, evaluated systems); no other mtzoo import."""

from __future__ import annotations

import sys
import time


class Progress:
    """A one-line progress bar on interactive terminals; silent otherwise."""

    def __init__(self, total: int, start: int, enabled: bool | None = None, unit: str = "steps") -> None:
        self.total, self.t0, self.start, self.unit = total, time.perf_counter(), start, unit
        self.enabled = sys.stderr.isatty() if enabled is None else enabled

    def update(self, step: int, text: str = "") -> None:
        if not self.enabled:
            return
        frac = step / max(self.total, 1)
        rate = (step - self.start) / max(time.perf_counter() - self.t0, 1e-9)
        eta = (self.total - step) / rate if rate > 0 else float("inf")
        bar = "#" * int(30 * frac)
        sys.stderr.write(f"\r[{bar:<30}] {step}/{self.total} {rate:.1f} {self.unit}/s eta {eta:.0f}s {text}  ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
