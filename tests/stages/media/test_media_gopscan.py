"""stages/media/gopscan.py: two decoder threads, each decoding whole segments between IDR frames, give the frames,
times, samples and decoder errors one decoder gives, bit for bit; a slice labelled IDR but predicted, and HEVC's
open-GOP keyframes, start no segment; the parameter sets and the x264 build a skipped packet carries still reach
the decoder that skipped it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from vlcurate.pipeline.stage import StageError
from vlcurate.stages import media
from vlcurate.stages.media import gopscan
from tests.conftest import shared_video
from tests.stages.media.test_formats import FORMATS, N, X264, make

CASES = {
    "h264.mp4": dict(out=X264),  # B-frames, an IDR every 12 frames, x264's build in the first packet
    "vfr.mkv": FORMATS["vfr.mkv"],  # Matroska, variable frame rate
    "mpegts.ts": FORMATS["mpegts.ts"],  # start codes instead of length prefixes, starts at 1.4 s
    "hevc_idr.mp4": dict(out={"c:v": "libx265", "preset": "ultrafast", "crf": 20,
                              "x265-params": "keyint=12:min-keyint=12:open-gop=0:bframes=2:log-level=error"}),
    "hevc_open.mp4": dict(out={"c:v": "libx265", "preset": "ultrafast", "crf": 20,  # CRA keyframes: no segments
                               "x265-params": "keyint=12:min-keyint=12:open-gop=1:bframes=2:log-level=error"}),
}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("gopscan")
    return {name: make(root / name, **spec) for name, spec in CASES.items()}


def _scan(path, threads, **options):
    samples: dict[int, np.ndarray] = {}

    def keep(index, planes):
        samples[index] = np.concatenate([p.ravel() for p in planes])

    scan = media.PyAVScan(path, (64, 48), sample_every=5, sample_size=(96, 72), on_sample=keep, threads=threads,
                          **options)
    return np.concatenate(list(scan)), scan, samples


@pytest.mark.parametrize("name", list(CASES))
def test_segments_give_one_decoders_frames_times_and_samples(made, name):
    one, first, samples_one = _scan(made[name], 1)
    two, second, samples_two = _scan(made[name], 2)
    assert second.segmented and not first.segmented
    assert (second.segments == 1) if name == "hevc_open.mp4" else second.segments >= N // 24  # IDRs 16+ apart
    assert len(two) == N and np.array_equal(one, two)
    assert second.times == first.times
    assert sorted(samples_two) == sorted(samples_one) == list(range(0, N, 5))
    assert all(np.array_equal(samples_one[i], samples_two[i]) for i in samples_one)
    assert second.decoder_errors == first.decoder_errors == []


def test_three_threads_small_batches_and_a_full_segment_change_nothing(made, monkeypatch):
    """Segments ahead of the caller hold one batch at most here: their threads wait, and nothing is lost."""
    monkeypatch.setattr(gopscan, "HELD", 1)
    one, _, samples_one = _scan(made["h264.mp4"], 1)
    three, scan, samples_three = _scan(made["h264.mp4"], 3, batch_frames=5)
    assert scan.segments > 3 and np.array_equal(one, three)
    assert all(np.array_equal(samples_one[i], samples_three[i]) for i in samples_one)


def test_a_predicted_slice_labelled_idr_starts_no_segment():
    nals = gopscan.Nals("h264", 4)

    def unit(header: bytes) -> list[bytes]:
        return nals.units(nals.join([header + b"\xff" * 8]))

    # NAL type 5 (IDR); then first_mb_in_slice = 0 ("1") and slice_type: 7 = I ("0001000") or 0 = P ("1")
    assert nals.is_idr(unit(b"\x65\x88")) and not nals.is_idr(unit(b"\x65\xc0"))
    assert not nals.is_idr(unit(b"\x41\x88"))  # a non-IDR slice
    assert nals.units(b"\x00\x00\x00\x03\x67\x01\x02\x00\x00\x00\x01\x68") == [b"\x67\x01\x02", b"\x68"]
    assert gopscan.Nals("h264", None).units(b"\x00\x00\x00\x01\x67\x01\x02\x00\x00\x00\x01\x65\x88") == [
        b"\x67\x01\x02", b"\x65\x88"]


def test_a_skipped_first_packets_x264_build_still_reaches_every_decoder(monkeypatch):
    """cockatoo.mp4 is x264 High 4:4:4, which FFmpeg decodes by the x264 build the first packet names: a decoder
    that starts at a later IDR without that SEI decodes garbage."""
    path = shared_video("cockatoo.mp4")
    one, _, _ = _scan(path, 1)
    two, scan, _ = _scan(path, 2)
    assert scan.segments == 3 and np.array_equal(one, two)
    monkeypatch.setattr(gopscan.Nals, "state", lambda self, units, first: [])
    broken, _, _ = _scan(path, 2)
    assert not np.array_equal(one, broken)


def test_a_caller_that_stops_early_leaves_no_decoder_running(made):
    scan = media.PyAVScan(made["h264.mp4"], (64, 48), sample_every=5, sample_size=(96, 72),
                          on_sample=lambda i, planes: None, batch_frames=4, threads=2)
    batches = iter(scan)
    assert len(next(batches)) == 4
    batches.close()
    assert [t for t in threading.enumerate() if t.name.startswith("vlcurate-")] == []


def test_a_frame_that_cannot_be_scaled_fails_the_pass(made, monkeypatch):
    from vlcurate.stages.media import pyavscan

    def refuse(self, frame):
        raise StageError("decode_failed", "frame cannot be scaled")

    monkeypatch.setattr(pyavscan.FrameScaler, "take", refuse)
    with pytest.raises(StageError, match="cannot be scaled"):
        _scan(made["h264.mp4"], 2)
    assert [t for t in threading.enumerate() if t.name.startswith("vlcurate-")] == []
