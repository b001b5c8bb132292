"""Finding ffmpeg, hashing, probing with PyAV, and PyAV decoding for tests and tools."""

from __future__ import annotations

import functools
import hashlib
import shutil
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

from vlcurate.pipeline.stage import StageError


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


def open_container(path: str | Path):
    import av

    try:
        return av.open(str(path))
    except av.error.InvalidDataError as exc:
        if _looks_like_video(path):
            raise StageError("corrupt", "a video container that cannot be parsed (truncated or damaged?): "
                                        f"{exc}") from exc
        raise StageError("not_a_video", f"no video container could be read ({exc})") from exc
    except av.error.FFmpegError as exc:
        raise StageError("unreadable", str(exc)) from exc


def video_clock(container) -> tuple:
    """(first video stream, its time base, the container's start in seconds): packet times minus that start are
    times from the container's start, as manifests and `ffmpeg -ss` count them."""
    import av

    stream = container.streams.video[0]
    return stream, stream.time_base, (container.start_time or 0) / av.time_base


def holds_frame(packet) -> bool:
    """A packet with a frame to show: not empty (a flush packet) and not marked for discarding."""
    return bool(packet.size) and not getattr(packet, "is_discard", False)


def probe(path: str | Path) -> Probe:
    """Container facts, without decoding every frame (the split stage counts frames exactly)."""
    import av

    path = Path(path)
    if path.stat().st_size == 0:
        raise StageError("empty_file", "the file has 0 bytes")
    with open_container(path) as container:
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
    full frames. The split stage decodes with `FfmpegScan`, which keeps per-frame work out of Python."""
    import av

    DECODE_PASSES[str(path)] += 1
    with open_container(path) as container:
        stream, tb, start = video_clock(container)
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


def keyframe_times(src: str | Path) -> list[float]:
    """Presentation times of the video's keyframes, from the container's start, read from packet flags: no
    decoding."""
    with open_container(src) as container:
        stream, tb, origin = video_clock(container)
        return sorted(float(p.pts * tb) - origin for p in container.demux(stream)
                      if holds_frame(p) and p.is_keyframe and p.pts is not None)


def count_video_packets(path: str | Path) -> int:
    """Frames in an encoded clip, counted by demuxing (cheap) rather than decoding."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for p in container.demux(stream) if p.size)


def fraction(x: float) -> Fraction:
    return Fraction(x).limit_denominator(100000)
