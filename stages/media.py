"""Video I/O shared by the stages: finding ffmpeg, hashing, probing with PyAV, decoding frames, encoding clips."""

from __future__ import annotations

import functools
import hashlib
import queue
import shutil
import subprocess
import threading
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

if TYPE_CHECKING:
    import numpy as np

from pipeline import failures, faults
from pipeline.stage import StageError


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """ffmpeg from PATH if present, else the static binary the imageio-ffmpeg wheel ships: no apt step."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise RuntimeError("no ffmpeg on PATH and imageio-ffmpeg is not installed") from exc
    return imageio_ffmpeg.get_ffmpeg_exe()


def content_hash(path: str | Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()[:16]


@dataclass
class Probe:
    duration_s: float
    fps: float
    num_frames: int
    width: int
    height: int
    codec: str
    rotation: int
    sample_aspect_ratio: float
    has_audio: bool
    frames_stated: int | None = None  # the container's own frame count, if it states one


_MAGIC = (b"ftyp", b"\x1aE\xdf\xa3", b"RIFF", b"OggS", b"FLV", b"\x00\x00\x01\xba", b"G")


def _looks_like_video(path: str | Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(12)
    return head[4:8] == b"ftyp" or any(head.startswith(m) for m in _MAGIC if m != b"ftyp" and m != b"G") or (
        len(head) > 0 and head[:1] == b"G" and Path(path).suffix.lower() == ".ts")


def _open(path: str | Path):
    import av

    try:
        return av.open(str(path))
    except av.error.InvalidDataError as exc:
        if _looks_like_video(path):
            raise StageError("corrupt", f"a video container that cannot be parsed (truncated or damaged?): {exc}") from exc
        raise StageError("not_a_video", f"no video container could be read ({exc})") from exc
    except av.error.FFmpegError as exc:
        raise StageError("unreadable", str(exc)) from exc


def _video_clock(container) -> tuple:
    """(first video stream, its time base, the container's start in seconds): packet times minus that start are
    times from the container's start, as manifests and `ffmpeg -ss` count them."""
    import av

    stream = container.streams.video[0]
    return stream, stream.time_base, (container.start_time or 0) / av.time_base


def _holds_frame(packet) -> bool:
    """A packet with a frame to show: not empty (a flush packet) and not marked for discarding."""
    return bool(packet.size) and not getattr(packet, "is_discard", False)


# Output options of every clip written: no metadata or chapters carried over, bit-exact muxing, index first.
_MP4_OUT = ["-map_metadata", "-1", "-map_chapters", "-1", "-fflags", "+bitexact", "-flags", "+bitexact",
            "-movflags", "+faststart", "-f", "mp4"]
_AAC = ["-c:a", "aac", "-b:a", "128k"]


def probe(path: str | Path) -> Probe:
    """Container facts, without decoding every frame (the split stage counts frames exactly)."""
    import av

    path = Path(path)
    if path.stat().st_size == 0:
        raise StageError("empty_file", "the file has 0 bytes")
    with _open(path) as container:
        if not container.streams.video:
            if container.streams.audio:
                codec = container.streams.audio[0].codec_context.name
                raise StageError("audio_only", f"an audio file ({codec}): no video stream")
            raise StageError("no_video_stream", "the file has no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        if container.duration is not None:
            duration = container.duration / av.time_base
        elif stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = 0.0
        num_frames = int(stream.frames) if stream.frames else int(round(duration * fps))
        rotation = 0
        sar = stream.sample_aspect_ratio
        # Decode one frame: proves the stream decodes and gives the display rotation.
        rotation = int(getattr(_first_frame(container, stream), "rotation", 0) or 0)
        if fps <= 0:
            raise StageError("no_frame_rate", "the video stream states no frame rate")
        return Probe(
            duration_s=float(duration), fps=fps, num_frames=num_frames, width=stream.width, height=stream.height,
            codec=stream.codec_context.codec.canonical_name, rotation=rotation % 360,
            sample_aspect_ratio=float(sar) if sar else 1.0, has_audio=bool(container.streams.audio),
            frames_stated=int(stream.frames) if stream.frames else None,
        )


def _first_frame(container, stream, packets: int = 64):
    """The stream's first frame that decodes; damaged packets before it are passed over (split flags the video)."""
    import av

    problem: Exception | None = None
    for n, packet in enumerate(container.demux(stream)):
        if n >= packets:
            break
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            problem = exc
            continue
        if frames:
            return frames[0]
    raise StageError("undecodable", f"no frame could be decoded ({problem or 'no frame in the stream'})")


@dataclass
class DecodedFrame:
    index: int
    time_s: float  # presentation time from the container's start, as ffmpeg's -ss counts it
    frame: object  # av.VideoFrame


DECODE_PASSES: Counter[str] = Counter()  # per process: how often each file was decoded, for stats


def decode_frames(path: str | Path, threads: int = 1) -> Iterator[DecodedFrame]:
    """Every frame in presentation order with its decoded index, through PyAV: for tests and tools that need
    full frames. The split stage decodes with `FrameScan`, which keeps per-frame work out of Python."""
    import av

    DECODE_PASSES[str(path)] += 1
    with _open(path) as container:
        stream, tb, start = _video_clock(container)
        stream.thread_count = threads
        stream.thread_type = "AUTO" if threads > 1 else "SLICE"
        index = 0
        try:
            for frame in container.decode(stream):
                pts = frame.pts if frame.pts is not None else frame.dts
                t = float(pts * tb) - start if pts is not None else index / float(stream.average_rate or 25)
                yield DecodedFrame(index, t, frame)
                index += 1
        except av.error.FFmpegError as exc:
            if index == 0:
                raise StageError("undecodable", str(exc)) from exc
            raise StageError("decode_failed", f"after {index} frames: {exc}") from exc


def display_size(width: int, height: int, sar: float, rotation: int, short_side: int) -> tuple[int, int]:
    """Output size for sampled frames: square pixels, rotation applied, short side at most `short_side`."""
    w = width * (sar or 1.0)
    h = float(height)
    if rotation in (90, 270):
        w, h = h, w
    scale = min(1.0, short_side / min(w, h))
    return max(2, int(round(w * scale / 2)) * 2), max(2, int(round(h * scale / 2)) * 2)


def encode_jpeg(bgr, rotation: int = 0, quality: int = 90) -> bytes:
    """Rotate a stored-orientation frame for display (counter-clockwise, as the display matrix says) and encode it
    with libjpeg-turbo via OpenCV, which releases the GIL."""
    import cv2
    import numpy as np

    if rotation:
        bgr = np.ascontiguousarray(np.rot90(bgr, k=rotation // 90))
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise StageError("jpeg_failed", f"could not encode a {bgr.shape[1]}x{bgr.shape[0]} frame")
    return buf.tobytes()


def decode_jpeg(data: bytes):
    """A stored frame as an RGB PIL image: the form every model's processor takes."""
    import io

    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")


def sample_frames(stored: int, count: int) -> list[int]:
    """Indexes of `count` of a clip's `stored` frames, in time order: the middle frame of each of `count` equal
    segments, so fewer stored frames are repeated evenly (4 -> 0,0,1,1,2,2,3,3) and more are thinned evenly
    (16 -> 1,3,...,15). Integer arithmetic: the same picks on every machine."""
    if stored < 1:
        raise ValueError("a clip has no stored frames to pick from")
    return [((2 * i + 1) * stored) // (2 * count) for i in range(count)]


def frame_images(frames: Sequence[bytes], count: int) -> list:
    """`count` stored frames picked by `sample_frames` as PIL images, each distinct frame decoded once."""
    if not frames:
        return []
    picks = sample_frames(len(frames), count)
    decoded = {i: decode_jpeg(frames[i]) for i in set(picks)}
    return [decoded[i] for i in picks]


_PIPE_BYTES = 1 << 20
_CHANNELS = {"bgr24": 3, "rgb24": 3, "gray": 1}


class FrameScan:
    """One decoding pass over a video, done by an ffmpeg process: every frame scaled down for a shot detector,
    and every `sample_every`-th frame scaled to `sample_size` for the stages after split.

    Why a process rather than PyAV frames: decoding, scaling and colour conversion then run in ffmpeg's own
    threads (the decoder itself on `threads` threads, 1 by default) and Python only sees whole batches of small
    frames, so per-frame interpreter work and GIL handovers no longer limit small videos to half of decode speed.
    Presentation timestamps come from ffmpeg's per-frame stats in the input's own time base, so variable frame
    rates keep exact times. Rotation is not applied here (`-noautorotate`): callers rotate the few sampled frames.
    """

    def __init__(self, path: str | Path, detect_size: tuple[int, int], *, detect_format: str = "bgr24",
                 detect_scaler: str = "area", sample_every: int = 0,
                 sample_size: tuple[int, int] | None = None, on_sample=None, threads: int = 1,
                 batch_frames: int = 64, prefetch_batches: int = 4):
        if detect_format not in _CHANNELS:
            raise ValueError(f"detect_format must be one of {sorted(_CHANNELS)}")
        if sample_every and (sample_size is None or on_sample is None):
            raise ValueError("sampling needs sample_size and on_sample")
        self.path = str(path)
        self.detect_size, self.detect_format, self.detect_scaler = detect_size, detect_format, detect_scaler
        self.sample_every, self.sample_size, self.on_sample = sample_every, sample_size, on_sample
        self.threads, self.batch_frames, self.prefetch_batches = threads, batch_frames, prefetch_batches
        self.times: list[float] = []
        self.frames = 0
        self.decoder_errors: list[str] = []  # what the decoder reported about the stream (a damaged source)
        self._sample_error: BaseException | None = None  # raised to the caller once the scan ends

    def _command(self, stats: str, sample_fd: int | None) -> list[str]:
        dw, dh = self.detect_size
        detect = f"scale={dw}:{dh}:flags={self.detect_scaler},format={self.detect_format}"
        cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error", "-threads", str(self.threads),
               "-noautorotate", "-i", self.path, "-filter_complex_threads", "1"]
        if sample_fd is None:
            cmd += ["-filter_complex", f"[0:v:0]{detect}[det]"]
        else:
            sw, sh = self.sample_size
            cmd += ["-filter_complex", f"[0:v:0]split=2[a][b];[a]{detect}[det];"
                    f"[b]select='not(mod(n\\,{self.sample_every}))',scale={sw}:{sh}:flags=area,format=bgr24[smp]"]
        cmd += ["-map", "[det]", "-fps_mode", "passthrough", "-stats_enc_pre", stats,
                "-stats_enc_pre_fmt", "{ptsi} {tbi}", "-f", "rawvideo", "pipe:1"]
        if sample_fd is not None:
            cmd += ["-map", "[smp]", "-fps_mode", "passthrough", "-f", "rawvideo", f"pipe:{sample_fd}"]
        return cmd

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
            try:
                fcntl.fcntl(proc.stdout.fileno(), 1031, _PIPE_BYTES)  # F_SETPIPE_SZ: fewer, larger reads
            except OSError:
                pass
            # The pipe holds only a few frames: a thread keeps draining it while the caller works on a batch, so
            # ffmpeg never waits on Python.
            batches: queue.Queue = queue.Queue(maxsize=self.prefetch_batches)
            stop = threading.Event()
            shape = (self.batch_frames, dh, dw, _CHANNELS[self.detect_format])
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
            text = errors.read().decode("utf-8", "replace").strip()
            failures.check_tool_output("ffmpeg", text)  # e.g. an I/O error reading the source: not the file's fault
            self.decoder_errors = [line for line in text.splitlines() if line.strip()]
            message = text[-400:]
            if code < 0:  # killed (the OOM killer, a signal): the machine's failure, not the video's
                raise failures.MachineError(f"ffmpeg decoding {self.path} was killed by signal {-code}")
            if self.frames == 0:
                raise StageError("undecodable", message or f"no frame decoded (ffmpeg exited {code})")
            if code != 0:  # frames came, then the decoder gave up: a damaged source, which the caller flags
                self.decoder_errors.append(f"ffmpeg exited {code} after {self.frames} frames")
            if self._sample_error is not None:
                raise self._sample_error
            self.times = self._read_times(stats)

    @staticmethod
    def _read_batches(pipe, shape: tuple[int, ...], out: queue.Queue, stop: threading.Event) -> None:
        """Fill `out` with full batches, then the partial last one, then None; give up once `stop` is set."""
        import numpy as np

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        frame_bytes = int(np.prod(shape[1:]))
        while True:
            batch = np.empty(shape, np.uint8)
            got = _read_full(pipe, memoryview(batch).cast("B"))
            if got >= frame_bytes and not put(batch[:got // frame_bytes]):
                return
            if got < batch.nbytes:
                put(None)
                return

    def _read_samples(self, fd: int) -> None:
        import numpy as np

        sw, sh = self.sample_size
        with open(fd, "rb", buffering=0) as pipe:
            index = 0
            while True:
                frame = np.empty((sh, sw, 3), np.uint8)
                if _read_full(pipe, memoryview(frame).cast("B")) < frame.nbytes:
                    return
                if self._sample_error is None:
                    try:
                        self.on_sample(index, frame)
                    except BaseException as exc:
                        self._sample_error = exc
                index += self.sample_every

    def _read_times(self, stats: str) -> list[float]:
        """Frame times from the container's start, exact: input pts in the input time base. ffmpeg has already
        subtracted the container's start time (its default input offset, without -copyts), so MPEG-TS times that
        begin at 1.4 s start at 0 here, as in `decode_frames` and as `-ss` counts."""
        times = []
        time_bases: dict[str, Fraction] = {}  # one in practice; a Fraction per line cost ~10 us a frame
        with open(stats) as f:
            for line in f:
                pts, tb = line.split()
                if pts == "N/A":  # a frame without a timestamp (raw elementary streams): one step after the last
                    step = times[-1] - times[-2] if len(times) > 1 else 0.0
                    times.append(times[-1] + step if times else 0.0)
                    continue
                base = time_bases.get(tb) or time_bases.setdefault(tb, Fraction(tb))
                times.append(int(pts) * base.numerator / base.denominator)  # int division rounds exactly
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


def seek_point(src: str | Path, start_s: float, fps: float) -> float:
    """The `-ss` input seek that keeps the frame shown at `start_s` (seconds from the container's start) as the
    first frame: halfway back to the frame before it. Half of an average frame step is wrong under a variable
    frame rate, where the previous frame can be closer than that; its real time comes from demuxing packets (no
    decoding) from shortly before the start. Falls back to half an average step where packets carry no times."""
    import av

    fallback = max(0.0, start_s - 0.5 / fps)

    def times_from(back: float | None) -> list[float]:
        with _open(src) as container:
            stream, tb, origin = _video_clock(container)
            target = start_s + origin
            if back is not None:
                if target - back <= origin:
                    return []
                container.seek(int((target - back) / tb), stream=stream, backward=True)
            times = []
            for packet in container.demux(stream):
                if packet.pts is not None and _holds_frame(packet):
                    times.append(float(packet.pts * tb) - origin)
                if packet.dts is not None and float(packet.dts * tb) > target + 1e-3:
                    break  # every later packet is shown after the start frame (pts >= dts)
            return times

    try:
        for back in (2.0, None):  # from the beginning only if the previous frame is farther back than that
            times = times_from(back)
            if not times:
                continue
            first = min(times, key=lambda t: abs(t - start_s))
            if abs(first - start_s) > 0.5 / fps:
                return fallback  # no frame at start_s among the packets: do not guess
            earlier = [t for t in times if t < first]
            if earlier:
                return max(0.0, (max(earlier) + first) / 2)
            if back is None:
                return fallback  # the first frame
    except (StageError, av.error.FFmpegError):
        pass  # the encode reports an unreadable source
    return fallback


def encode_clip(src: str | Path, dst: str | Path, start_s: float, frame_count: int, fps: float, *,
                crf: int = 23, preset: str = "veryfast", audio: bool = True, max_short_side: int | None = None,
                threads: int = 1, end_s: float | None = None) -> None:
    """Re-encode frames [start, start + frame_count) exactly.

    Input seeking decodes from the previous keyframe and drops frames before the seek point, so seeking between
    the previous frame and the first wanted one (`seek_point`) makes it the first one kept; `-frames:v` stops
    after the last. Audio runs from the seek point to `end_s` (the presentation time of the frame after the clip),
    or for `frame_count` average frames when it is not known. Bit-exact flags and stripped metadata make equal
    inputs give equal bytes.
    """
    seek = seek_point(src, start_s, fps)
    audio_s = end_s - seek if end_s is not None and end_s > seek else frame_count / fps + 0.5 / fps
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-ss", f"{seek:.6f}", "-i", str(src),
           "-map", "0:v:0", "-frames:v", str(frame_count), "-fps_mode", "passthrough"]
    filters = []
    if max_short_side:
        filters.append(f"scale='if(lt(iw,ih),min({max_short_side},iw),-2)':'if(lt(iw,ih),-2,min({max_short_side},ih))'")
    filters.append("format=yuv420p")
    cmd += ["-vf", ",".join(filters), "-c:v", "libx264", "-preset", preset, "-crf", str(crf),
            "-threads", str(threads), "-x264-params", "threads=1"]
    if audio:
        # trim audio with a filter: an output -t would also cut the last video frame
        cmd += ["-map", "0:a:0?", "-af", f"atrim=duration={audio_s:.6f}", *_AAC]
    cmd += [*_MP4_OUT, str(dst)]
    _write_with_ffmpeg(cmd)


def _write_with_ffmpeg(cmd: list[str]) -> None:
    """Run an ffmpeg that writes a clip (its output the last argument). A full disk or an I/O error is the
    machine's failure (MachineError: the task fails, a rerun redoes it), anything else the clip's (StageError)."""
    cmd = [*cmd[:-1], faults.path("ffmpeg.output", cmd[-1])]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        failures.check_tool_output("ffmpeg", proc.stderr)
        raise StageError("encode_failed", proc.stderr.strip()[-400:] or f"ffmpeg exited {proc.returncode}")


SAME_TIME_S = 1e-4  # manifest times are rounded to 1e-6 s; no two frames of a video are this close
# Containers whose H.264/HEVC packets carry length-prefixed NAL units and out-of-band parameter sets, as MP4 wants
_COPY_CONTAINERS = ("mov", "mp4", "matroska", "webm")


def copyable_packets(container, start_s: float, end_s: float, frame_count: int) -> list | None:
    """The packets that hold exactly frames [start, start + frame_count), when stream-copying them is frame-exact:
    the span starts on a keyframe (a random access point, so nothing before it is needed), and from there, in
    decoding order, its frames come first and all together (nothing from before the span, which an open GOP would
    need, and nothing from after it, which a B-frame at the span's end would reference). Encoders put keyframes
    at hard cuts, so most shot-detector clips qualify. `container`: open, demuxed from here on. Returns the
    packets in decoding order, or None."""
    tolerance = SAME_TIME_S
    if not any(name in _COPY_CONTAINERS for name in container.format.name.split(",")):
        return None
    stream, tb, origin = _video_clock(container)
    if tb is None:
        return None
    container.seek(int((start_s + origin) / tb) + 1, stream=stream, backward=True)
    packets: list = []
    for packet in container.demux(stream):
        if not _holds_frame(packet):
            continue
        if packet.pts is None:
            return None
        t = float(packet.pts * tb) - origin
        if not packets:
            if packet.is_keyframe and abs(t - start_s) < tolerance:
                packets.append(packet)
            elif packet.dts is not None and float(packet.dts * tb) - origin > start_s + tolerance:
                return None  # decoding order passed the start without a keyframe on it
            continue
        if t < start_s - tolerance:
            return None  # a leading frame of an open GOP: needs frames before the span
        if t >= end_s - tolerance:
            break  # the first frame after the span: every frame of the span must be in already
        packets.append(packet)
        if len(packets) > frame_count:
            return None
    return packets if len(packets) == frame_count else None


def copy_clip(src: str | Path, dst: str | Path, start_s: float, end_s: float, frame_count: int, *,
              audio: bool = True) -> bool:
    """Write frames [start, start + frame_count) by copying their packets, without re-encoding: frame-exact,
    bit-identical to the source's own frames and a fraction of the CPU of an encode. Audio, when asked for, is
    re-encoded and cut to the same times. Returns False, writing nothing, when the span cannot be copied exactly
    (see `copyable_packets`) or the MP4 muxer refuses the stream as it is; the caller then re-encodes."""
    import av

    dst = Path(dst)
    video_only = dst.with_name(dst.name + ".video.mp4") if audio else dst
    with _open(src) as container:
        packets = copyable_packets(container, start_s, end_s, frame_count)
        if packets is None:
            return False
        template, base = container.streams.video[0], packets[0].pts
        try:
            with av.open(str(video_only), "w", format="mp4",
                         options={"movflags": "+faststart", "fflags": "+bitexact"}) as out:
                stream = out.add_stream_from_template(template)
                stream.time_base = template.time_base
                for packet in packets:
                    packet.pts -= base
                    packet.dts = None if packet.dts is None else packet.dts - base
                    packet.stream = stream
                    out.mux(packet)
        except av.error.FFmpegError as exc:
            video_only.unlink(missing_ok=True)
            if failures.is_machine_failure(exc):  # a full disk is not a stream the muxer refuses
                raise failures.as_machine_error(exc, f"writing {video_only}") from exc
            return False  # a stream the MP4 muxer refuses as it is: re-encoding still works
    if not audio:
        return True
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(video_only), "-ss", f"{start_s:.6f}",
           "-i", str(src), "-map", "0:v:0", "-map", "1:a:0?", "-c:v", "copy",
           "-af", f"atrim=duration={end_s - start_s:.6f}", *_AAC, *_MP4_OUT, str(dst)]
    try:
        _write_with_ffmpeg(cmd)
    finally:
        video_only.unlink(missing_ok=True)
    return True


def keyframe_times(src: str | Path) -> list[float]:
    """Presentation times of the video's keyframes, from the container's start, read from packet flags: no
    decoding."""
    with _open(src) as container:
        stream, tb, origin = _video_clock(container)
        return sorted(float(p.pts * tb) - origin for p in container.demux(stream)
                      if _holds_frame(p) and p.is_keyframe and p.pts is not None)


def count_video_packets(path: str | Path) -> int:
    """Frames in an encoded clip, counted by demuxing (cheap) rather than decoding."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for p in container.demux(stream) if p.size)


def fraction(x: float) -> Fraction:
    return Fraction(x).limit_denominator(100000)
