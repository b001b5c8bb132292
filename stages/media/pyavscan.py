"""Split's one decoding pass inside this process: PyAV decodes on a thread of its own (libavcodec runs with the GIL
released), each frame is scaled for the detector by swscale on the caller's thread as it arrives (four at a time), and
every `sample_every`-th frame is scaled and handed over on a third thread for the stages after split.

Why not the ffmpeg process (`scan.FrameScan`): an ffmpeg output costs 13-18% of decode's CPU before any scaling
(the raw encoder copies every frame, and ffmpeg's threads hand each one on), and PyAV's own decode of the same
frames costs up to 14% less CPU than the `ffmpeg` command's (360p; about the same at 720p); both measured with
ffmpeg-python graphs and PyAV loops on the bench's videos. On 2 cores, the bench's throughput loop gave 1.84x
decode's CPU and 0.75 of its speed at 360p with the process, and `make bench-split` 1.53x and 0.93 with this scan;
at 720p both stayed within noise (1.42x to 1.37x, 0.96 to 0.94). The detector frames come from
the same swscale filter as in the process (area), and the cuts of all 15 bench and development videos stayed the
same; a cheaper route (swscale to 4:2:0, OpenCV to BGR) saved 35-55 us a frame but moved cuts in fades.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    import numpy as np

from pipeline import failures
from pipeline.stage import StageError
from stages.media.probe import DECODE_PASSES, _open
from stages.media.scanbase import CHANNELS, FrameTimes, ScanBase, get_until, put_until

_DONE = object()


def _plane(frame: Any, i: int, width: int, height: int) -> np.ndarray:
    """Plane `i` of a PyAV frame as a (height, width) view of its own buffer, padding cut off, no copy."""
    import numpy as np

    plane = frame.planes[i]
    return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:height, :width]


class PyAVScan(ScanBase):
    """One decoding pass over a video, with `FrameScan`'s interface and output: every frame scaled to
    `detect_size` by swscale (`detect_scaler`) for a shot detector, in batches; every `sample_every`-th frame
    scaled to `sample_size` and handed to `on_sample(index, (y, cb, cr))` as JPEG's YCbCr 4:2:0 planes (BT.601,
    full range). Times are presentation times from the container's start, exact, as ffmpeg counts them. Rotation
    is left to the caller. The decoder's error log is captured process-wide while a scan runs: one scan at a
    time per process, as split's workers run them."""

    def __init__(self, path: str | Path, detect_size: tuple[int, int], *, handoff_frames: int = 4, **options):
        super().__init__(path, detect_size, **options)
        self.handoff_frames = handoff_frames  # one at a time cost 0.03 s more CPU per 720 frames at 360p
        self._failure: BaseException | None = None  # a decoder or sampler thread's own failure, raised at the end

    def __iter__(self) -> Iterator[np.ndarray]:
        """Batches of detector frames, (n, h, w, channels) uint8, in presentation order."""
        import av

        DECODE_PASSES[self.path] += 1
        self._stop = threading.Event()  # set once the caller is done: every thread of this pass then ends
        container = _open(self.path)
        frames: queue.Queue = queue.Queue(maxsize=2)  # handoffs ahead of the caller: few decoded frames held
        samples: queue.Queue = queue.Queue(maxsize=4)
        threads = [threading.Thread(target=self._decode, args=(container, frames, samples), daemon=True,
                                    name="vlcurate-decode")]
        if self.sample_every:
            threads.append(threading.Thread(target=self._sample, args=(samples,), daemon=True,
                                            name="vlcurate-samples"))
        previous_level = av.logging.get_level()
        av.logging.set_level(av.logging.ERROR)  # the decoder's complaints about a damaged stream, kept below
        try:
            with av.logging.Capture(local=False) as logs:
                for thread in threads:
                    thread.start()
                yield from self._batches(frames)
                for thread in threads:
                    thread.join()
        finally:
            self._stop.set()
            for thread in threads:
                if thread.is_alive():
                    thread.join()
            container.close()
            av.logging.set_level(previous_level)
        self._finish([log for log in logs if log[0] <= av.logging.ERROR])

    def _finish(self, logs: list) -> None:
        if self._failure is not None:
            raise self._failure
        self.decoder_errors += [f"[{name}] {message.strip()}" for _, name, message in logs if message.strip()]
        failures.check_tool_output("libavformat", "\n".join(self.decoder_errors))  # an I/O error: not the file
        if self.frames == 0:
            raise StageError("undecodable", "; ".join(self.decoder_errors)[-400:] or "no frame decoded")
        if len(self.times) != self.frames:
            raise StageError("decode_failed", f"{self.frames} frames but {len(self.times)} timestamps")

    def _put(self, out: queue.Queue, item: Any) -> bool:
        return put_until(out, item, self._stop)

    def _decode(self, container: Any, frames: queue.Queue, samples: queue.Queue) -> None:
        """Decoder thread: every frame, in order, to `frames` (and every `sample_every`-th to `samples`), its time
        to `self.times`; then _DONE to both."""
        import av

        try:
            stream = container.streams.video[0]
            stream.thread_count = self.threads
            stream.thread_type = "AUTO" if self.threads > 1 else "SLICE"
            self.times = times = FrameTimes(container.start_time)
            tb = stream.time_base
            num, den = tb.numerator, tb.denominator
            index, pending = 0, []
            for packet in container.demux(stream):
                try:
                    decoded = stream.decode(packet)
                except av.error.FFmpegError as exc:  # a damaged packet: passed over, as ffmpeg does, and reported
                    self.decoder_errors.append(f"packet at {packet.pts}: {exc}")
                    continue
                for frame in decoded:
                    times.add(frame.pts if frame.pts is not None else frame.dts, num, den)
                    if self.sample_every and index % self.sample_every == 0 and not self._put(samples, (index, frame)):
                        return
                    pending.append(frame)
                    index += 1
                if len(pending) >= self.handoff_frames:
                    if not self._put(frames, pending):
                        return
                    pending = []
            if pending and not self._put(frames, pending):
                return
        except av.error.FFmpegError as exc:
            if failures.is_machine_failure(exc):  # reading failed (EIO, ENOMEM): the machine's fault, retried
                self._failure = failures.as_machine_error(exc, f"decoding {self.path}")
            else:  # the demuxer gave up on the bytes: the frames so far stand, the source is flagged
                self.decoder_errors.append(f"demuxing stopped: {exc}")
        except BaseException as exc:  # noqa: BLE001 - raised on the caller's thread once the scan ends
            self._failure = exc
        finally:
            self._put(frames, _DONE)
            self._put(samples, _DONE)

    def _sample(self, samples: queue.Queue) -> None:
        """Sampler thread: each sampled frame to JPEG's YCbCr 4:2:0 planes at `sample_size`, to `on_sample`."""
        from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter

        reformatter, (sw, sh) = VideoReformatter(), self.sample_size
        while (item := get_until(samples, self._stop, _DONE)) is not _DONE:
            if self._failure is not None:
                continue  # drain, so the decoder never waits on a sampler that has given up
            index, frame = item
            try:
                small = reformatter.reformat(frame, sw, sh, "yuv420p", dst_colorspace=Colorspace.ITU601,
                                             interpolation=Interpolation.AREA, src_color_range=frame.color_range,
                                             dst_color_range=ColorRange.JPEG, threads=1)
                self.on_sample(index, (_plane(small, 0, sw, sh), _plane(small, 1, sw // 2, sh // 2),
                                       _plane(small, 2, sw // 2, sh // 2)))
            except BaseException as exc:  # noqa: BLE001 - raised on the caller's thread once the scan ends
                self._failure = exc

    def _batches(self, frames: queue.Queue) -> Iterator[np.ndarray]:
        """Each frame scaled for the detector as it arrives, gathered into batches."""
        import av
        import numpy as np
        from av.video.reformatter import Interpolation, VideoReformatter

        (dw, dh), reformatter = self.detect_size, VideoReformatter()
        interpolation = Interpolation[self.detect_scaler.upper()]
        channels = CHANNELS[self.detect_format]  # packed formats: one plane, `channels` bytes a pixel
        batch = np.empty((self.batch_frames, dh, dw, channels), np.uint8)
        n = 0
        while (handed := frames.get()) is not _DONE:
            for frame in handed:
                try:
                    small = reformatter.reformat(frame, dw, dh, self.detect_format, interpolation=interpolation,
                                                 src_color_range=frame.color_range, threads=1)
                except av.error.FFmpegError as exc:  # a frame swscale cannot take: the video's problem
                    raise StageError("decode_failed", f"frame {self.frames + n} cannot be scaled: {exc}") from exc
                batch[n] = _plane(small, 0, dw * channels, dh).reshape(dh, dw, channels)  # one copy, not two
                n += 1
                if n == self.batch_frames:
                    self.frames += n
                    yield batch
                    batch, n = np.empty_like(batch), 0
        if n:
            self.frames += n
            yield batch[:n]
