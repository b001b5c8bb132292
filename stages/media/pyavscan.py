"""Split's one decoding pass inside this process: PyAV decodes on a thread of its own (libavcodec runs with the GIL
released) and scales each frame for the detector, and every `sample_every`-th frame for sampling, right after
decoding it, while the frame is still in that core's cache, and encodes each sample there too (`encode_sample`:
split's JPEG); the detector frames and the samples reach the caller in order, which hands the samples to
`on_sample`. With `threads` > 1 and a stream whose IDR frames can be found (H.264, HEVC), that many decoder
threads each take whole segments between IDR frames (gopscan.py).

Why scale on the decoder's thread: a 720p frame scaled on another core (read from the decoding core's cache)
cost 540-610 us of CPU, against 290 on its own core, on this 2-core VM; the split stage at 720p cost 1.38-1.53x
decode's CPU with the previous layout (scaling on the caller's thread) and 1.31-1.36x with this one, in the same
runs (the bench's throughput loop, 7 and 11 rounds); two `make bench-split` runs gave 1.22x and 1.50x (the VM),
and 1.21x and 1.23x with the gather-free scaling and the samples encoded here (below).
Why not the ffmpeg process (`scan.FfmpegScan`): an ffmpeg output costs 13-18% of decode's CPU before any scaling
(the raw encoder copies every frame, and ffmpeg's threads hand each one on), and PyAV's own decode of the same
frames costs up to 14% less CPU than the `ffmpeg` command's (360p; about the same at 720p); both measured with
ffmpeg-python graphs and PyAV loops on the bench's videos. The detector frames come from the same swscale filter
as in the process (area), and the cuts of all 15 bench and development videos stayed the same; a cheaper route
(swscale to 4:2:0, OpenCV to BGR) saved 35-55 us a frame but moved cuts in fades. swscale runs its gather-free
routines (simd.py): the same bits, a third less CPU for the 720p detector downscale on this VM. Why encode the
samples on the decoder's thread rather than on a sampler thread of their own, as before: the split stage cost 3-6%
less CPU, with one decoder thread and with two, at 720p and 360p (10 rounds side by side, each layout in turn),
and one thread fewer wakes on every sample; one decoder thread's speed moved by +2% (720p) and -3% (360p).
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:
    import numpy as np

from vlcurate.pipeline import failures
from vlcurate.pipeline.stage import StageError
from vlcurate.stages.media import gopscan, simd
from vlcurate.stages.media.probe import DECODE_PASSES, open_container
from vlcurate.stages.media.scanbase import CHANNELS, FrameTimes, ScanBase, demux_stopped, put_until

_DONE = object()


def _plane(frame: Any, i: int, width: int, height: int) -> np.ndarray:
    """Plane `i` of a PyAV frame as a (height, width) view of its own buffer, padding cut off, no copy."""
    import numpy as np

    plane = frame.planes[i]
    return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:height, :width]


class PyAVScan(ScanBase):
    """One decoding pass over a video, with `FfmpegScan`'s interface and output: every frame scaled to
    `detect_size` by swscale (`detect_scaler`) for a shot detector, in batches; every `sample_every`-th frame
    scaled to `sample_size` and handed to `on_sample(index, (y, cb, cr))` as JPEG's YCbCr 4:2:0 planes (BT.601,
    full range), or to `on_sample(index, encode_sample(planes))`, on the caller's thread. Times are presentation
    times from the container's start, exact, as ffmpeg counts them. Rotation is left to the caller. The decoder's
    error log is captured process-wide while a scan runs: one scan at a time per process, as split's workers run
    them."""

    def __init__(self, path: str | Path, detect_size: tuple[int, int], **options):
        super().__init__(path, detect_size, **options)
        self._failure: BaseException | None = None  # a decoder thread's or on_sample's failure, raised at the end
        self._time_base = (1, 1)  # the stream's, as (numerator, denominator): what its timestamps count
        self.segmented = False  # whether this pass decoded segments on several threads (set once it starts)
        self.segments = 1  # segments decoded

    def __iter__(self) -> Iterator[np.ndarray]:
        """Batches of detector frames, (n, h, w, channels) uint8, in presentation order."""
        import av

        DECODE_PASSES[self.path] += 1
        simd.prefer_gather_free()  # before any scaler of this pass is set up: the same frames, less CPU (simd.py)
        self.stop = threading.Event()  # set once the caller is done: every thread of this pass then ends
        # opened before the log is captured: probing's complaints are not decoding's
        containers = [open_container(self.path)]
        try:
            threads, batches = self._decoders(containers)
            previous_level, previous_skip = av.logging.get_level(), av.logging.get_skip_repeated()
            av.logging.set_level(av.logging.ERROR)  # the decoder's complaints about a damaged stream, kept below
            av.logging.set_skip_repeated(False)  # else a message the last scan ended on is held back from this one
            try:
                with av.logging.Capture(local=False) as logs:
                    for thread in threads:
                        thread.start()
                    yield from batches
                    for thread in threads:
                        thread.join()
            finally:
                self.stop.set()
                for thread in threads:
                    if thread.is_alive():
                        thread.join()
                av.logging.set_level(previous_level)
                av.logging.set_skip_repeated(previous_skip)
        finally:
            for container in containers:
                container.close()
        logs = [log for log in logs if log[0] <= av.logging.ERROR]
        self._finish(sorted(logs) if self.segmented else logs)  # threads interleave their logs: sorted, the same

    def _decoders(self, containers: list) -> tuple[list[threading.Thread], Iterator[np.ndarray]]:
        """The decoder threads of this pass, each with a container of its own from `containers` (opened here
        beyond the first), and the caller's iterator over their batches."""
        stream = containers[0].streams.video[0]
        self._time_base = (stream.time_base.numerator, stream.time_base.denominator)
        self.times = FrameTimes(containers[0].start_time)
        nals = gopscan.Nals.of(stream) if self.threads > 1 else None
        self.segmented = nals is not None
        if self.segmented:
            containers += [open_container(self.path) for _ in range(self.threads - 1)]
            segments = gopscan.Segments(self.threads, self.stop)
            return ([threading.Thread(target=self._guarded, args=(gopscan.decode_segments, c, segments, nals),
                                      daemon=True, name=f"vlcurate-decode-{i}") for i, c in enumerate(containers)],
                    gopscan.segment_batches(self, segments))
        frames: queue.Queue = queue.Queue(maxsize=4)  # batches and samples ahead of the caller: few frames held
        return ([threading.Thread(target=self._decode, args=(containers[0], frames), daemon=True,
                                  name="vlcurate-decode")], self._batches(frames))

    def _finish(self, logs: list) -> None:
        if self._failure is not None:
            raise self._failure
        self.decoder_errors += [f"[{name}] {message.strip()}" for _, name, message in logs if message.strip()]
        failures.check_tool_output("libavformat", "\n".join(self.decoder_errors))  # an I/O error: not the file
        if self.frames == 0:
            raise StageError("undecodable", "; ".join(self.decoder_errors)[-400:] or "no frame decoded")
        if len(self.times) != self.frames:
            raise StageError("decode_failed", f"{self.frames} frames but {len(self.times)} timestamps")

    def take_sample(self, index: int, sample: Any) -> None:
        """Hand a sampled frame to `on_sample`, on the caller's thread; its first failure is raised once the scan
        ends (the detector still sees every frame), and the samples after it are dropped."""
        if self._failure is None:
            try:
                self.on_sample(index, sample)
            except Exception as exc:  # noqa: BLE001 - raised once the scan ends
                self._failure = exc

    def add_times(self, stamps: list[int | None]) -> None:
        """The next frames' timestamps, in presentation order, to `times`."""
        for stamp in stamps:
            self.times.add(stamp, *self._time_base)

    def _guarded(self, decode: Callable, *args: Any) -> None:
        """Run a segment decoder thread; its failure stops the pass and is raised on the caller's thread."""
        try:
            decode(self, *args, FrameScaler(self))
        except BaseException as exc:  # noqa: BLE001 - raised on the caller's thread once the scan ends
            self._failure = self._failure or exc
            self.stop.set()

    def _decode(self, container: Any, frames: queue.Queue) -> None:
        """The one decoder thread: every frame, in order, scaled into batches for `frames` (and every
        `sample_every`-th sampled, in between), its time to `self.times`; then _DONE to `frames`."""
        import av

        work = None
        try:
            work = FrameScaler(self)
            work.start(lambda item: put_until(frames, item, self.stop), 0)
            stream = container.streams.video[0]
            stream.thread_count = self.threads
            stream.thread_type = "AUTO" if self.threads > 1 else "SLICE"
            try:
                for packet in container.demux(stream):  # the last, empty, drains the decoder
                    if not work.decode(stream, packet, self.decoder_errors):
                        return
            except av.error.FFmpegError as exc:
                demux_stopped(exc, self.path, self.decoder_errors)
            work.flush()
        except BaseException as exc:  # noqa: BLE001 - raised on the caller's thread once the scan ends
            self._failure = exc
        finally:
            if work is not None:
                self.add_times(work.stamps)
            put_until(frames, _DONE, self.stop)

    def _batches(self, frames: queue.Queue) -> Iterator[np.ndarray]:
        """The decoder's batches of detector frames, as they come; its samples to `take_sample` on the way."""
        while (item := frames.get()) is not _DONE:
            if item[0] == "batch":
                self.frames += len(item[1])
                yield item[1]
            else:
                self.take_sample(*item[1:])


class FrameScaler:
    """What a decoder thread does with each decoded frame while it is hot: scale it for the detector into the
    batch being filled, and every `sample_every`-th frame for sampling; its timestamp to `stamps`. What it makes
    goes to `put`, as ("batch", frames) and ("sample", index from `start`'s first frame, planes); `put` says False
    once the caller has gone."""

    def __init__(self, scan: PyAVScan):
        import numpy as np
        from av.video.reformatter import Interpolation, VideoReformatter

        self.scan, self.first, self.index, self.n = scan, 0, 0, 0
        self.put: Callable[[tuple], bool] = lambda item: False
        self.stamps: list[int | None] = []  # since `start`: pts, or dts where a frame has none
        (self.dw, self.dh), self.channels = scan.detect_size, CHANNELS[scan.detect_format]
        self.interpolation = Interpolation[scan.detect_scaler.upper()]
        self.detector, self.sampler = VideoReformatter(), VideoReformatter()
        self.batch = np.empty((scan.batch_frames, self.dh, self.dw, self.channels), np.uint8)

    def start(self, put: Callable[[tuple], bool], first: int) -> None:
        """Frames from here on go to `put`; the next one is the video's frame `first` (for sampling)."""
        self.put, self.first, self.index, self.stamps = put, first, 0, []

    def decode(self, stream: Any, packet: Any, errors: list[str]) -> bool:
        """Decode `packet` (None: drain the decoder) and take its frames; a damaged packet is passed over, as
        ffmpeg does, and reported in `errors`. False once the caller has gone."""
        import av

        try:
            frames = stream.decode(packet)
        except av.error.FFmpegError as exc:
            errors.append(f"packet at {packet.pts}: {exc}" if packet is not None else f"draining: {exc}")
            return True
        return all(self.take(frame) for frame in frames)

    def take(self, frame: Any) -> bool:
        """Scale `frame` into the batch (put once full) and sample it if its turn: False if the caller has gone."""
        import av

        scan, dw, dh = self.scan, self.dw, self.dh
        try:
            small = self.detector.reformat(frame, dw, dh, scan.detect_format, interpolation=self.interpolation,
                                           src_color_range=frame.color_range, threads=1)
        except av.error.FFmpegError as exc:  # a frame swscale cannot take: the video's problem
            raise StageError("decode_failed", f"frame {self.first + self.index} cannot be scaled: {exc}") from exc
        self.batch[self.n] = _plane(small, 0, dw * self.channels, dh).reshape(dh, dw, self.channels)
        self.stamps.append(frame.pts if frame.pts is not None else frame.dts)
        if scan.sample_every and (self.first + self.index) % scan.sample_every == 0:
            planes = self._sample_planes(frame)
            if not self.put(("sample", self.index, scan.encode_sample(planes) if scan.encode_sample else planes)):
                return False
        self.index, self.n = self.index + 1, self.n + 1
        return self.n < len(self.batch) or self.flush()

    def _sample_planes(self, frame: Any) -> tuple[np.ndarray, ...]:
        from av.video.reformatter import ColorRange, Colorspace, Interpolation

        sw, sh = self.scan.sample_size
        small = self.sampler.reformat(frame, sw, sh, "yuv420p", dst_colorspace=Colorspace.ITU601,
                                      interpolation=Interpolation.AREA, src_color_range=frame.color_range,
                                      dst_color_range=ColorRange.JPEG, threads=1)
        return _plane(small, 0, sw, sh), _plane(small, 1, sw // 2, sh // 2), _plane(small, 2, sw // 2, sh // 2)

    def flush(self) -> bool:
        """Put the frames batched so far, and start a new batch."""
        import numpy as np

        if not self.n:
            return True
        handed, self.batch, self.n = self.batch[:self.n], np.empty_like(self.batch), 0
        return self.put(("batch", handed))
