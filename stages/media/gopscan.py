"""Split's decode of one video on several cores (`split.decode_threads` > 1): the stream is cut into segments at its
IDR frames, each decoder thread takes the next free segment and decodes it from its IDR with a decoder of its own,
scaling each frame while it is hot, and the caller gets the segments back in order.

Why segments rather than libavcodec's frame threads: an IDR frame references nothing before it and nothing after it
references anything before it, so a segment decodes to the same frames, bit for bit, as one decoder running through
(the tests compare them); and each thread does whole frames start to finish on its own core. Frame threads hand
every frame's rows between threads: decoding 720p on 2 cores, they cost 30% more CPU than one thread; the whole
split with two segment threads cost 2-11% more than with one (two `make bench-split` runs, gather-free
scaling), much of it the cores themselves: two 720p PyAV decodes side by side cost this VM 5-8% more CPU than the
same two in turn.

Each thread demuxes the whole file for itself (5-8 us a packet at 720p, reading its NAL units included, against
1,200-1,400 us to decode the frame) and decodes only the segments it
claims, so all threads agree on where segments start without talking. A sampled frame's index is predicted from
the packets before its segment (one frame a packet); a segment that decodes to another count shifts the later
samples' indices by the difference, which the caller then sees exactly (samples are labelled by true index).
"""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol

from vlcurate.stages.media.scanbase import demux_stopped, get_until, put_until

if TYPE_CHECKING:
    import numpy as np


class SegmentScan(Protocol):
    """What the segment threads need of the scan they work for (pyavscan.PyAVScan)."""

    path: str
    frames: int
    segments: int
    decoder_errors: list[str]

    def take_sample(self, index: int, planes: Any) -> None: ...

    def add_times(self, stamps: Any) -> None: ...


class FrameSink(Protocol):
    """What a decoder thread hands each decoded frame to (pyavscan.FrameScaler)."""

    stamps: Any

    def start(self, put: Callable[[Any], bool], first: int) -> None: ...

    def decode(self, stream: Any, packet: Any, errors: list) -> bool: ...

    def flush(self) -> bool: ...

    def put(self, item: Any) -> bool: ...

MIN_SEGMENT_PACKETS = 16  # shorter runs between IDRs join the segment before: a segment costs a decoder drain
AHEAD = 1  # segments a thread may decode beyond those the caller and the other threads hold
HELD = 64  # batches and samples a segment ahead of the caller may hold (64 x 16 frames at 256x144: 113 MB); a full
# one waits for the caller, which always drains the segment it reads, so it never blocks the caller


class Nals:
    """An H.264 or HEVC stream's packets as NAL units: which packets start a clean segment, and the units a decoder
    that skipped packets must still see (parameter sets; the first packet's SEI, where x264 names its build, which
    changes how FFmpeg decodes some of its streams: High 4:4:4 decoded wrong without it)."""

    STATE = {"h264": {7, 8, 13, 15}, "hevc": {32, 33, 34}}  # sequence and picture parameter sets
    SEI = {"h264": {6}, "hevc": {39}}

    def __init__(self, codec: str, size: int | None):
        self.codec, self.size = codec, size  # size: bytes of each unit's length prefix; None for start codes

    @classmethod
    def of(cls, stream: Any) -> Nals | None:
        """For an H.264 or HEVC stream; None for other codecs, which are not cut into segments."""
        codec = stream.codec_context.name
        if codec not in ("h264", "hevc"):
            return None
        extradata = bytes(stream.codec_context.extradata or b"")
        if extradata[:1] != b"\x01":  # MPEG-TS, raw streams: units after 00 00 01 start codes
            return cls(codec, None)
        at = 4 if codec == "h264" else 21  # avcC / hvcC (MP4, Matroska): units prefixed by their length
        return cls(codec, (extradata[at] & 3) + 1) if len(extradata) > at else None

    def units(self, data: bytes) -> list[bytes]:
        return [u for u in (_prefixed(data, self.size) if self.size else _annex_b(data)) if u]

    def kind(self, unit: bytes) -> int:
        return unit[0] & 0x1F if self.codec == "h264" else (unit[0] >> 1) & 0x3F

    def is_idr(self, units: list[bytes]) -> bool:
        """Does the packet hold an IDR picture, every slice intra (a stream may label a predicted slice IDR)?"""
        vcl = [u for u in units if (1 <= self.kind(u) <= 5 if self.codec == "h264" else self.kind(u) < 32)]
        return bool(vcl) and all(_intra_idr(self.codec, self.kind(u), u) for u in vcl)

    def state(self, units: list[bytes], first: bool) -> list[bytes]:
        keep = self.STATE[self.codec] | (self.SEI[self.codec] if first else set())
        return [u for u in units if self.kind(u) in keep]

    def join(self, units: list[bytes]) -> bytes:
        if self.size:
            return b"".join(len(u).to_bytes(self.size, "big") + u for u in units)
        return b"".join(b"\x00\x00\x00\x01" + u for u in units)


def _prefixed(data: bytes, size: int) -> Iterator[bytes]:
    at = 0
    while at + size <= len(data):
        length = int.from_bytes(data[at:at + size], "big")
        yield data[at + size:at + size + length]
        at += size + length


def _annex_b(data: bytes) -> Iterator[bytes]:
    starts = []
    at = data.find(b"\x00\x00\x01")
    while at >= 0:
        starts.append(at + 3)
        at = data.find(b"\x00\x00\x01", at + 3)
    for i, start in enumerate(starts):
        end = starts[i + 1] - 3 if i + 1 < len(starts) else len(data)
        yield data[start:end].rstrip(b"\x00") if i + 1 < len(starts) else data[start:end]


def _intra_idr(codec: str, kind: int, unit: bytes) -> bool:
    """An IDR slice (H.264: type 5; HEVC: IDR_W_RADL or IDR_N_LP, not CRA or BLA, whose leading frames reference
    the segment before); for H.264 also an I or SI slice, read from the slice header (HEVC requires it)."""
    if codec == "hevc":
        return kind in (19, 20)
    if kind != 5:
        return False
    bits = _Bits(unit[1:24].replace(b"\x00\x00\x03", b"\x00\x00"))  # emulation prevention bytes out
    bits.ue()  # first_mb_in_slice
    return bits.ue() % 5 in (2, 4)  # slice_type: I or SI


class _Bits:
    """Exp-Golomb numbers from the front of a slice header."""

    def __init__(self, data: bytes):
        self.value, self.left = int.from_bytes(data, "big"), len(data) * 8

    def bit(self) -> int:
        self.left -= 1
        return (self.value >> self.left) & 1 if self.left >= 0 else 1

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
        number = 0
        for _ in range(zeros):
            number = number << 1 | self.bit()
        return (1 << zeros) - 1 + number


class Segments:
    """Who decodes which segment, and the decoded segments on their way to the caller, in order."""

    def __init__(self, threads: int, stop: threading.Event):
        self.threads, self.stop = threads, stop
        self.cv = threading.Condition()
        self.next_claim = 0  # the first segment no thread has claimed
        self.reading = 0  # the segment the caller reads now
        self.outputs: dict[int, queue.Queue] = {}

    def claim(self, index: int) -> queue.Queue | None:
        """The output of segment `index` if this thread is the first to reach it (waiting while too many segments
        are ahead of the caller); None if another thread has it or the scan stopped."""
        with self.cv:
            if index < self.next_claim:
                return None
            self.next_claim = index + 1
            while index > self.reading + self.threads - 1 + AHEAD and not self.stop.is_set():
                self.cv.wait(0.1)
            out = self.outputs[index] = queue.Queue(maxsize=HELD)
            self.cv.notify_all()
            return out

    def output(self, index: int) -> queue.Queue | None:
        """Segment `index`'s output once some thread has claimed it; None if the scan stopped first."""
        with self.cv:
            self.reading = index
            self.cv.notify_all()
            while index not in self.outputs:
                if self.stop.is_set():
                    return None
                self.cv.wait(0.1)
            return self.outputs.pop(index)


def decode_segments(scan: SegmentScan, container: Any, segments: Segments, nals: Nals, work: FrameSink) -> None:
    """One decoder thread: demux the whole file, decode the segments this thread claims into their outputs as
    ("batch", frames), ("sample", index in segment, planes), then ("end", timestamps, errors, last)."""
    import av

    out: queue.Queue | None = None
    errors: list[str] = []
    stream = container.streams.video[0]
    try:
        stream.thread_count, stream.thread_type = 1, "SLICE"
        index, packets, predicted, carried = -1, 0, 0, _Carried()
        for packet in container.demux(stream):
            if segments.stop.is_set():
                return
            if packet.size == 0 and packet.pts is None:  # the demuxer's end marker: the tail drains below
                break
            units = nals.units(bytes(packet)) if out is None or packet.is_keyframe else None
            if index < 0 or (packet.is_keyframe and packets >= MIN_SEGMENT_PACKETS and nals.is_idr(units)):
                if out is not None and not _drain(stream, work, out, errors, last=False):
                    return
                index, predicted, packets = index + 1, predicted + packets, 0
                out, errors = segments.claim(index), []
                if out is not None:
                    work.start(lambda item, to=out: put_until(to, item, segments.stop), predicted)
                    packet = carried.before(packet, units, nals)
            packets += 1
            if out is None:
                carried.add(nals.state(units, first=index == 0 and packets == 1))
                continue
            if not work.decode(stream, packet, errors):
                return
    except av.error.FFmpegError as exc:
        demux_stopped(exc, scan.path, errors)
    if out is not None:
        _drain(stream, work, out, errors, last=True)


class _Carried(list):
    """NAL units a thread skipped that its decoder must still see, once each, the latest last."""

    def add(self, units: list[bytes]) -> None:
        for unit in units:
            if unit in self:
                self.remove(unit)
            self.append(unit)

    def before(self, packet: Any, units: list[bytes], nals: Nals) -> Any:
        """`packet` with the carried units in front (one access unit, as an encoder repeating them would write
        it), or `packet` itself if there are none."""
        import av

        if not self:
            return packet
        joined = av.Packet(nals.join(list(self) + units))
        joined.pts, joined.dts, joined.time_base, joined.is_keyframe = (packet.pts, packet.dts, packet.time_base,
                                                                        True)
        self.clear()
        return joined


def _drain(stream: Any, work: FrameSink, out: queue.Queue, errors: list, last: bool) -> bool:
    """The segment's frames still in the decoder, then its end; the decoder is reset for the next segment. False
    once the caller has gone."""
    if not (work.decode(stream, None, errors) and work.flush()):
        return False
    stream.codec_context.flush_buffers()
    return work.put(("end", work.stamps, errors, last))


def segment_batches(scan: SegmentScan, segments: Segments) -> Iterator[np.ndarray]:
    """The caller's side: each segment's batches in order, its samples to `scan.take_sample` under their true
    indices, its timestamps into `scan.times`."""
    start, index = 0, 0
    while (out := segments.output(index)) is not None:
        while (item := get_until(out, segments.stop, None)) is not None and item[0] != "end":
            if item[0] == "batch":
                scan.frames += len(item[1])
                yield item[1]
            else:
                scan.take_sample(start + item[1], item[2])
        if item is None:
            return
        _, stamps, errors, last = item
        scan.add_times(stamps)
        scan.decoder_errors += errors
        start += len(stamps)
        scan.segments = index + 1
        if last:
            return
        index += 1
