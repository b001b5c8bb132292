"""What split's two decoding passes share (`scan.FrameScan`, an ffmpeg process; `pyavscan.PyAVScan`, in this
process): their arguments, and what a finished pass leaves behind."""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any

CHANNELS = {"bgr24": 3, "rgb24": 3, "gray": 1}


class ScanBase:
    """One pass over a video: iterating gives the detector's frames in batches, (n, h, w, channels) uint8, while
    every `sample_every`-th frame goes to `on_sample(index, (y, cb, cr))`; then `frames`, `times` (presentation
    times from the container's start) and `decoder_errors` (what the decoder said about a damaged stream)."""

    def __init__(self, path: str | Path, detect_size: tuple[int, int], *, detect_format: str = "bgr24",
                 detect_scaler: str = "area", sample_every: int = 0, sample_size: tuple[int, int] | None = None,
                 on_sample=None, threads: int = 1, batch_frames: int = 16):
        if detect_format not in CHANNELS:
            raise ValueError(f"detect_format must be one of {sorted(CHANNELS)}")
        if sample_every and (sample_size is None or on_sample is None):
            raise ValueError("sampling needs sample_size and on_sample")
        self.path = str(path)
        self.detect_size, self.detect_format, self.detect_scaler = detect_size, detect_format, detect_scaler
        self.sample_every, self.sample_size, self.on_sample = sample_every, sample_size, on_sample
        self.threads, self.batch_frames = threads, batch_frames
        self.times: list[float] = []
        self.frames = 0
        self.decoder_errors: list[str] = []


def put_until(out: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put `item` on a bounded queue, waiting for room, unless `stop` is set first (the reader gave up): False."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False
