"""stages/media/pyavscan.py: the in-process scan gives what the ffmpeg process gives (the same frames counted, the same
times to the bit, detector frames and samples from the same scaler), and its threads end with it, however it ends."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from vlcurate.stages import media
from tests.stages.media.test_formats import FORMATS, N, make

CASES = ["vfr.mkv", "mpegts.ts", "vp9.webm", "rot90.mp4"]  # B-frames, VFR, a start offset, another codec, rotation


def _scan(scan_class, path, **options) -> tuple[np.ndarray, list[float], dict[int, np.ndarray], list[str]]:
    samples: dict[int, np.ndarray] = {}

    def keep(index, planes):
        samples[index] = np.concatenate([p.ravel() for p in planes])

    scan = scan_class(path, (64, 48), sample_every=7, sample_size=(96, 72), on_sample=keep, **options)
    frames = np.concatenate(list(scan))
    return frames, scan.times, samples, scan.decoder_errors


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("pyavscan")
    return {name: make(root / name, **FORMATS[name]) for name in CASES}


@pytest.mark.parametrize("name", CASES)
def test_the_in_process_scan_gives_the_ffmpeg_scans_frames_and_times(made, name):
    frames, times, samples, errors = _scan(media.PyAVScan, made[name])
    ref_frames, ref_times, ref_samples, ref_errors = _scan(media.FfmpegScan, made[name])
    assert len(frames) == len(ref_frames) == N and errors == ref_errors == []
    assert times == ref_times  # exact: the same rational arithmetic from the same timestamps
    assert sorted(samples) == sorted(ref_samples) == list(range(0, N, 7))
    # the same swscale filters; PyAV's libswscale may be another release than the ffmpeg binary's (chroma siting)
    assert np.abs(frames.astype(int) - ref_frames).mean() < 1.0
    assert max(np.abs(samples[i].astype(int) - ref_samples[i]).mean() for i in samples) < 1.0


def test_two_decoder_threads_give_the_same_frames(made):
    one, times, _, _ = _scan(media.PyAVScan, made["vfr.mkv"])
    two, times_two, _, _ = _scan(media.PyAVScan, made["vfr.mkv"], threads=2)
    assert times == times_two and np.array_equal(one, two)


def _scan_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("vlcurate-decode", "vlcurate-samples"))]


def test_a_caller_that_stops_early_leaves_no_thread_running(made):
    scan = media.PyAVScan(made["vfr.mkv"], (64, 48), sample_every=5, sample_size=(96, 72),
                          on_sample=lambda i, planes: None, batch_frames=8)
    batches = iter(scan)
    assert len(next(batches)) == 8
    batches.close()  # the caller gives up after one batch (an error in its detector, say)
    assert _scan_threads() == []


def test_a_failing_sample_callback_is_raised_once_the_scan_ends(made):
    def broken(index, planes):
        raise RuntimeError(f"no room for sample {index}")

    scan = media.PyAVScan(made["vfr.mkv"], (64, 48), sample_every=5, sample_size=(96, 72), on_sample=broken)
    with pytest.raises(RuntimeError, match="no room for sample 0"):
        for _ in scan:
            pass
    assert _scan_threads() == [] and scan.frames == N  # every frame still went to the detector


@pytest.mark.parametrize("scan_class, options", [(media.PyAVScan, {}), (media.PyAVScan, {"threads": 2}),
                                                 (media.FfmpegScan, {})])
def test_samples_are_encoded_where_they_are_scaled_and_kept_on_the_callers_thread(made, scan_class, options):
    encoded_on, kept_on, kept = set(), set(), {}

    def encode(planes):
        encoded_on.add(threading.current_thread().name)
        return sum(int(p.sum()) for p in planes)

    def keep(index, checksum):
        kept_on.add(threading.current_thread().name)
        kept[index] = checksum

    path = made["mpegts.ts"] if options.get("threads") else made["vfr.mkv"]  # H.264 in TS: cut into segments
    scan = scan_class(path, (64, 48), sample_every=7, sample_size=(96, 72), on_sample=keep, encode_sample=encode,
                      batch_frames=4, **options)
    frames = sum(len(batch) for batch in scan)
    _, _, planes, _ = _scan(scan_class, path, **options)
    assert frames == N and sorted(kept) == sorted(planes) == list(range(0, N, 7))
    assert all(kept[i] == int(planes[i].sum()) for i in kept)  # each index carries its own frame's encoding
    assert threading.current_thread().name not in encoded_on
    if options.get("threads"):
        assert scan.segments > 1
    if scan_class is media.PyAVScan:
        assert kept_on == {threading.current_thread().name}
        assert encoded_on <= {f"vlcurate-decode{suffix}" for suffix in ("", "-0", "-1")}


class _DemuxFailsAfter:
    """A container whose demuxer raises `error` after `packets` packets (a damaged file, or a failing disk)."""

    def __init__(self, container, error, packets):
        self._container, self._error, self._packets = container, error, packets

    def __getattr__(self, name):
        return getattr(self._container, name)

    def demux(self, stream):
        for i, packet in enumerate(self._container.demux(stream)):
            if i == self._packets:
                raise self._error
            yield packet


@pytest.mark.parametrize("threads", [1, 2])
def test_a_demuxer_error_flags_the_source_and_a_failing_disk_is_the_machines(made, monkeypatch, threads):
    import errno

    import av

    from vlcurate.pipeline.failures import MachineError
    from vlcurate.stages.media import pyavscan

    path = made["mpegts.ts"]  # with two threads: segments
    opened = pyavscan.open_container

    def failing(error):
        monkeypatch.setattr(pyavscan, "open_container", lambda p: _DemuxFailsAfter(opened(p), error, 40))

    failing(av.error.InvalidDataError(errno.EINVAL, "Invalid data found when processing input"))
    scan = media.PyAVScan(path, (64, 48), threads=threads)
    frames = sum(len(batch) for batch in scan)
    assert 0 < frames < N and any(e.startswith("demuxing stopped: ") for e in scan.decoder_errors)
    failing(av.error.OSError(errno.EIO, "Input/output error"))
    with pytest.raises(MachineError, match="decoding .*Input/output error"):
        for _ in media.PyAVScan(path, (64, 48), threads=threads):
            pass
    assert _scan_threads() == []
