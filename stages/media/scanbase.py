"""What split's two decoding passes share (`scan.FfmpegScan`, an ffmpeg process; `pyavscan.PyAVScan`, in this
process): their arguments, and what a finished pass leaves behind."""

from __future__ import annotations

import queue
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

from vlcurate.pipeline import failures

CHANNELS = {"bgr24": 3, "rgb24": 3, "gray": 1}


class ScanBase:
    """One pass over a video: iterating gives the detector's frames in batches, (n, h, w, channels) uint8, while
    every `sample_every`-th frame goes to `on_sample(index, (y, cb, cr))`, or to `on_sample(index,
    encode_sample((y, cb, cr)))` with `encode_sample`, which runs off the caller's thread and must not touch shared
    state (PyAVScan: on the decoder thread that scaled the frame, its planes still in that core's cache, and
    `on_sample` on the caller's thread; FfmpegScan: both on the thread reading ffmpeg's samples); then `frames`,
    `times` (presentation times from the container's start) and `decoder_errors` (what the decoder said about a
    damaged stream)."""

    def __init__(self, path: str | Path, detect_size: tuple[int, int], *, detect_format: str = "bgr24",
                 detect_scaler: str = "area", sample_every: int = 0, sample_size: tuple[int, int] | None = None,
                 on_sample=None, encode_sample=None, threads: int = 1, batch_frames: int = 16):
        if detect_format not in CHANNELS:
            raise ValueError(f"detect_format must be one of {sorted(CHANNELS)}")
        if sample_every and (sample_size is None or on_sample is None):
            raise ValueError("sampling needs sample_size and on_sample")
        self.path = str(path)
        self.detect_size, self.detect_format, self.detect_scaler = detect_size, detect_format, detect_scaler
        self.sample_every, self.sample_size, self.on_sample = sample_every, sample_size, on_sample
        self.encode_sample = encode_sample
        self.threads, self.batch_frames = threads, batch_frames
        self.times: list[float] = []
        self.frames = 0
        self.decoder_errors: list[str] = []


def demux_stopped(exc: BaseException, path: str, errors: list[str]) -> None:
    """A PyAV decode loop's FFmpeg error from the demuxer: reading failed (EIO, ENOMEM), the machine's fault,
    raised as a MachineError to be retried; else the demuxer gave up on the bytes, noted in `errors` (the frames so
    far stand, and the source is flagged as damaged)."""
    if failures.is_machine_failure(exc):
        raise failures.as_machine_error(exc, f"decoding {path}") from exc
    errors.append(f"demuxing stopped: {exc}")


def put_until(out: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put `item` on a bounded queue, waiting for room, unless `stop` is set first (the reader gave up): False."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def get_until(source: queue.Queue, stop: threading.Event, default: Any) -> Any:
    """The next item of a queue, waiting for one, unless `stop` is set first (the writer gave up): `default`."""
    while not stop.is_set():
        try:
            return source.get(timeout=0.1)
        except queue.Empty:
            continue
    return default


class FrameTimes(list):
    """Frame times in seconds from the container's start, exact, appended frame by frame: a timestamp in its time
    base (`num`/`den`) less the container's start (`start_us`, rescaled to that base with ffmpeg's rounding, half
    away from zero, as `ffmpeg` without -copyts does), divided as integers so the float is correctly rounded."""

    def __init__(self, start_us: int | None = 0):
        super().__init__()
        self._start = Fraction(start_us or 0, 1_000_000)
        self._shifts: dict[tuple[int, int], int] = {}  # per time base: one in practice

    def add(self, ts: int | None, num: int, den: int) -> None:
        if ts is None:  # a frame without a timestamp (raw elementary streams): one step after the last
            step = self[-1] - self[-2] if len(self) > 1 else 0.0
            self.append(self[-1] + step if self else 0.0)
            return
        shift = self._shifts.get((num, den))
        if shift is None:
            exact, half = self._start * den / num, Fraction(1, 2)
            shift = self._shifts[num, den] = int(exact + half) if exact >= 0 else -int(-exact + half)
        self.append((ts - shift) * num / den)
