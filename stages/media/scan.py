"""The split stage's one decoding pass: an ffmpeg process that feeds a shot detector and samples frames."""

from __future__ import annotations

import queue
import subprocess
import threading
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import numpy as np

from vlcurate.pipeline import failures
from vlcurate.pipeline.stage import StageError
from vlcurate.stages.media import commands
from vlcurate.stages.media.probe import DECODE_PASSES
from vlcurate.stages.media.scanbase import CHANNELS, FrameTimes, ScanBase, put_until

_PIPE_BYTES = 1 << 20


class FfmpegScan(ScanBase):
    """One decoding pass over a video, done by an ffmpeg process: every frame scaled down for a shot detector,
    and every `sample_every`-th frame scaled to `sample_size` (even sides) for the stages after split, handed to
    `on_sample(index, (y, cb, cr))` as JPEG's YCbCr 4:2:0 planes (see `images.encode_jpeg`).

    Why a process rather than PyAV frames: decoding, scaling and colour conversion then run in ffmpeg's own
    threads (the decoder itself on `threads` threads, 1 by default) and Python only sees whole batches of small
    frames, so per-frame interpreter work and GIL handovers no longer limit small videos to half of decode speed.
    Presentation timestamps come from ffmpeg's per-frame stats in the input's own time base, so variable frame
    rates keep exact times. Rotation is not applied here (`-noautorotate`): callers rotate the few sampled frames.
    """

    def __init__(self, path: str | Path, detect_size: tuple[int, int], *, batch_frames: int = 64,
                 prefetch_batches: int = 4, **options):
        super().__init__(path, detect_size, batch_frames=batch_frames, **options)
        self.prefetch_batches = prefetch_batches
        self._sample_error: BaseException | None = None  # raised to the caller once the scan ends

    def _command(self, stats: str, sample_fd: int | None) -> list[str]:
        return commands.scan_args(self.path, threads=self.threads, detect_size=self.detect_size,
                                  detect_scaler=self.detect_scaler, detect_format=self.detect_format, stats=stats,
                                  sample_every=self.sample_every, sample_size=self.sample_size, sample_fd=sample_fd)

    def __iter__(self) -> Iterator[np.ndarray]:
        """Batches of detector frames, (n, h, w, channels) uint8, in presentation order."""
        import fcntl
        import os
        import tempfile

        DECODE_PASSES[self.path] += 1
        dw, dh = self.detect_size
        with tempfile.TemporaryDirectory(prefix="vlcurate-scan-") as tmp, \
                open(os.path.join(tmp, "stderr.txt"), "w+b") as errors:
            stats = os.path.join(tmp, "stats.txt")
            sample_read = sample_write = None
            if self.sample_every:
                sample_read, sample_write = os.pipe()
            proc = subprocess.Popen(self._command(stats, sample_write), stdout=subprocess.PIPE, stderr=errors,
                                    stdin=subprocess.DEVNULL, bufsize=0,
                                    pass_fds=(sample_write,) if sample_write is not None else ())
            threads = []
            if sample_write is not None:
                os.close(sample_write)
                threads.append(threading.Thread(target=self._read_samples, args=(sample_read,), daemon=True,
                                                name="vlcurate-samples"))
            for fd in (proc.stdout.fileno(), sample_read):  # F_SETPIPE_SZ: fewer, larger reads, and ffmpeg
                try:                                           # writes on while a sample is being encoded
                    if fd is not None:
                        fcntl.fcntl(fd, 1031, _PIPE_BYTES)
                except OSError:
                    pass
            # The pipe holds only a few frames: a thread keeps draining it while the caller works on a batch, so
            # ffmpeg never waits on Python.
            batches: queue.Queue = queue.Queue(maxsize=self.prefetch_batches)
            stop = threading.Event()
            shape = (self.batch_frames, dh, dw, CHANNELS[self.detect_format])
            threads.append(threading.Thread(target=self._read_batches, args=(proc.stdout, shape, batches, stop),
                                            daemon=True, name="vlcurate-frames"))
            for thread in threads:
                thread.start()
            try:
                while (batch := batches.get()) is not None:
                    self.frames += len(batch)
                    yield batch
                code = proc.wait()
            finally:
                stop.set()
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                for thread in threads:
                    thread.join()
                proc.stdout.close()
            errors.seek(0)
            self._check_exit(code, errors.read().decode("utf-8", "replace").strip())
            self.times = self._read_times(stats)

    def _check_exit(self, code: int, text: str) -> None:
        """What ffmpeg's exit and its error output say: the machine's failure, an undecodable video, or decoder
        errors the caller flags as damage."""
        failures.check_tool_output("ffmpeg", text)  # e.g. an I/O error reading the source: not the file's fault
        # what the input side said (demuxer, decoder); not the raw output's muxer complaining about timestamps
        self.decoder_errors = [line for line in text.splitlines() if line.strip() and not
                               line.startswith(("[out#", "[rawvideo @")) and "to muxer" not in line]
        message = text[-400:]
        if code < 0:  # killed (the OOM killer, a signal): the machine's failure, not the video's
            raise failures.MachineError(f"ffmpeg decoding {self.path} was killed by signal {-code}")
        if self.frames == 0:
            raise StageError("undecodable", message or f"no frame decoded (ffmpeg exited {code})")
        if code != 0:  # frames came, then the decoder gave up: a damaged source, which the caller flags
            self.decoder_errors.append(f"ffmpeg exited {code} after {self.frames} frames")
        if self._sample_error is not None:
            raise self._sample_error

    @staticmethod
    def _read_batches(pipe, shape: tuple[int, ...], out: queue.Queue, stop: threading.Event) -> None:
        """Fill `out` with full batches, then the partial last one, then None; give up once `stop` is set."""
        import numpy as np

        frame_bytes = int(np.prod(shape[1:]))
        while True:
            batch = np.empty(shape, np.uint8)
            got = _read_full(pipe, memoryview(batch).cast("B"))
            if got >= frame_bytes and not put_until(out, batch[:got // frame_bytes], stop):
                return
            if got < batch.nbytes:
                put_until(out, None, stop)
                return

    def _read_samples(self, fd: int) -> None:
        import numpy as np

        sw, sh = self.sample_size
        luma, chroma = sw * sh, (sw // 2) * (sh // 2)
        with open(fd, "rb", buffering=0) as pipe:
            index = 0
            while True:
                frame = np.empty(luma + 2 * chroma, np.uint8)
                if _read_full(pipe, memoryview(frame)) < frame.nbytes:
                    return
                planes = (frame[:luma].reshape(sh, sw), frame[luma:luma + chroma].reshape(sh // 2, sw // 2),
                          frame[luma + chroma:].reshape(sh // 2, sw // 2))
                if self._sample_error is None:
                    try:
                        self.on_sample(index, self.encode_sample(planes) if self.encode_sample else planes)
                    except BaseException as exc:
                        self._sample_error = exc
                index += self.sample_every

    def _read_times(self, stats: str) -> list[float]:
        """Frame times from the container's start, exact: input pts in the input time base. ffmpeg has already
        subtracted the container's start time (its default input offset, without -copyts), so MPEG-TS times that
        begin at 1.4 s start at 0 here, as in `decode_frames` and as `-ss` counts."""
        times = FrameTimes()  # ffmpeg has shifted the timestamps already
        time_bases: dict[str, tuple[int, int]] = {}  # one in practice; a Fraction per line cost ~10 us a frame
        with open(stats) as f:
            for line in f:
                pts, tb = line.split()
                if tb not in time_bases:
                    base = Fraction(tb)
                    time_bases[tb] = (base.numerator, base.denominator)
                times.add(None if pts == "N/A" else int(pts), *time_bases[tb])
        if len(times) != self.frames:
            raise StageError("decode_failed", f"{self.frames} frames but {len(times)} timestamps")
        return times


def _read_full(pipe, view: memoryview) -> int:
    """Fill `view` from a pipe unless it ends first; returns the bytes read."""
    got = 0
    while got < len(view):
        n = pipe.readinto(view[got:])
        if not n:
            break
        got += n
    return got
