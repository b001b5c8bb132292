"""Writing clips frame-exactly: re-encoding from a seek point, or copying the packets where that is exact."""

from __future__ import annotations

import subprocess
from pathlib import Path

from vlcurate.pipeline import failures, faults
from vlcurate.pipeline.stage import StageError
from vlcurate.stages.media import commands
from vlcurate.stages.media.probe import holds_frame, open_container, video_clock



def seek_point(src: str | Path, start_s: float, fps: float) -> float:
    """The `-ss` input seek that keeps the frame shown at `start_s` (seconds from the container's start) as the
    first frame: halfway back to the frame before it. Half of an average frame step is wrong under a variable
    frame rate, where the previous frame can be closer than that; its real time comes from demuxing packets (no
    decoding) from shortly before the start. Falls back to half an average step where packets carry no times."""
    import av

    fallback = max(0.0, start_s - 0.5 / fps)

    def times_from(back: float | None) -> list[float]:
        with open_container(src) as container:
            stream, tb, origin = video_clock(container)
            target = start_s + origin
            if back is not None:
                if target - back <= origin:
                    return []
                container.seek(int((target - back) / tb), stream=stream, backward=True)
            times = []
            for packet in container.demux(stream):
                if packet.pts is not None and holds_frame(packet):
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
                crop: tuple[int, int, int, int] | None = None,
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
    _write_with_ffmpeg(commands.encode_clip_args(
        str(src), _output(dst), seek=seek, frame_count=frame_count, crop=crop, max_short_side=max_short_side, crf=crf,
        preset=preset, threads=threads, audio_s=audio_s if audio and _has_audio(src) else None))


def _output(dst: str | Path) -> str:
    return faults.path("ffmpeg.output", str(dst))  # where a fault test swaps in a full disk


def _has_audio(src: str | Path) -> bool:
    with open_container(src) as container:
        return bool(container.streams.audio)


def _write_with_ffmpeg(cmd: list[str]) -> None:
    """Run an ffmpeg that writes a clip (to a path passed through `_output`). A full disk or an I/O error is the
    machine's failure (MachineError: the task fails, a rerun redoes it), anything else the clip's (StageError)."""
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
    stream, tb, origin = video_clock(container)
    if tb is None:
        return None
    container.seek(int((start_s + origin) / tb) + 1, stream=stream, backward=True)
    packets: list = []
    for packet in container.demux(stream):
        if not holds_frame(packet):
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
    with open_container(src) as container:
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
    try:
        _write_with_ffmpeg(commands.mux_audio_args(str(video_only), str(src), _output(dst), start_s=start_s,
                                                   duration_s=end_s - start_s if _has_audio(src) else None))
    finally:
        video_only.unlink(missing_ok=True)
    return True
