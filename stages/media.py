"""Video I/O shared by the stages: finding ffmpeg, hashing, probing with PyAV, decoding frames, encoding clips."""

from __future__ import annotations

import functools
import hashlib
import shutil
import queue
import subprocess
import threading
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

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


def probe(path: str | Path) -> Probe:
    """Container facts, without decoding every frame (the split stage counts frames exactly)."""
    import av

    path = Path(path)
    if path.stat().st_size == 0:
        raise StageError("empty_file", "the file has 0 bytes")
    with _open(path) as container:
        if not container.streams.video:
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
        try:
            frame = next(container.decode(video=0))
            rotation = int(getattr(frame, "rotation", 0) or 0)
        except (StopIteration, av.error.FFmpegError) as exc:
            raise StageError("undecodable", f"no frame could be decoded ({exc})") from exc
        if fps <= 0:
            raise StageError("no_frame_rate", "the video stream states no frame rate")
        return Probe(
            duration_s=float(duration), fps=fps, num_frames=num_frames, width=stream.width, height=stream.height,
            codec=stream.codec_context.name, rotation=rotation % 360,
            sample_aspect_ratio=float(sar) if sar else 1.0, has_audio=bool(container.streams.audio),
        )


@dataclass
class DecodedFrame:
    index: int
    time_s: float  # presentation time from the container's start, as ffmpeg's -ss counts it
    frame: object  # av.VideoFrame


DECODE_PASSES: Counter[str] = Counter()  # per process: how often each file was decoded, for stats
_END = object()


def _decode(path: str | Path, threads: int) -> Iterator[DecodedFrame]:
    import av

    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_count = threads
        stream.thread_type = "AUTO" if threads > 1 else "SLICE"
        start = (container.start_time or 0) / av.time_base
        tb = stream.time_base
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


def decode_frames(path: str | Path, threads: int = 1, prefetch: int = 16) -> Iterator[DecodedFrame]:
    """Every frame in presentation order with its decoded index; streaming, never the whole video in memory.

    With `prefetch`, the decoder runs in its own thread (libavcodec releases the GIL) and hands frames over a
    bounded queue, so decoding and the caller's per-frame work overlap instead of adding up.
    """
    DECODE_PASSES[str(path)] += 1
    if prefetch <= 0:
        yield from _decode(path, threads)
        return
    frames: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in _decode(path, threads):
                while not stop.is_set():
                    try:
                        frames.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            frames.put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            frames.put(exc)

    worker = threading.Thread(target=produce, name="vlcurate-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = frames.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


def display_size(width: int, height: int, sar: float, rotation: int, short_side: int) -> tuple[int, int]:
    """Output size for sampled frames: square pixels, rotation applied, short side at most `short_side`."""
    w = width * (sar or 1.0)
    h = float(height)
    if rotation in (90, 270):
        w, h = h, w
    scale = min(1.0, short_side / min(w, h))
    return max(2, int(round(w * scale / 2)) * 2), max(2, int(round(h * scale / 2)) * 2)


def frame_to_jpeg(frame, width: int, height: int, rotation: int, quality: int = 90) -> bytes:
    """Downscale with swscale (area filter), rotate for display, encode with libjpeg-turbo via OpenCV."""
    import cv2
    import numpy as np

    if rotation in (90, 270):
        width, height = height, width
    bgr = frame.to_ndarray(width=width, height=height, format="bgr24", interpolation="AREA")
    if rotation:
        bgr = np.ascontiguousarray(np.rot90(bgr, k=rotation // 90))  # counter-clockwise, as PyAV's rotation
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise StageError("jpeg_failed", f"could not encode a {width}x{height} frame")
    return buf.tobytes()


def encode_clip(src: str | Path, dst: str | Path, start_s: float, frame_count: int, fps: float, *,
                crf: int = 23, preset: str = "veryfast", audio: bool = True, max_short_side: int | None = None,
                threads: int = 1) -> None:
    """Re-encode frames [start, start + frame_count) exactly.

    Input seeking decodes from the previous keyframe and drops frames before the seek point, so seeking half a
    frame before the first wanted frame makes it the first one kept; `-frames:v` stops after the last. Bit-exact
    flags and stripped metadata make equal inputs give equal bytes.
    """
    seek = max(0.0, start_s - 0.5 / fps)
    duration = frame_count / fps
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
        cmd += ["-map", "0:a:0?", "-af", f"atrim=duration={duration + 0.5 / fps:.6f}", "-c:a", "aac", "-b:a", "128k"]
    cmd += ["-map_metadata", "-1", "-map_chapters", "-1", "-fflags", "+bitexact", "-flags", "+bitexact",
            "-movflags", "+faststart", "-f", "mp4", str(dst)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise StageError("encode_failed", proc.stderr.strip()[-400:] or f"ffmpeg exited {proc.returncode}")


def count_video_packets(path: str | Path) -> int:
    """Frames in an encoded clip, counted by demuxing (cheap) rather than decoding."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for p in container.demux(stream) if p.size)


def fraction(x: float) -> Fraction:
    return Fraction(x).limit_denominator(100000)
