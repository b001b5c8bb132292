"""Where split's CPU goes, per frame, by step: measured in the same run as the decode it is compared with, so the
next person sees what to make cheaper. Used by `make bench-split` (bench/split.json, `cpu_us_per_frame`).

Steps, each the median over rounds, in CPU microseconds per decoded frame:
- decode: single-thread ffmpeg decode of the video, frames thrown away (the floor);
- scale: ffmpeg's detector downscale and colour conversion, with writing those frames to the pipe (a scan with
  no sampling, read and dropped, less decode);
- sample_scale: ffmpeg's sampling branch (a scan that also samples, less the one that does not);
- ffmpeg_beside_python: what the same ffmpeg costs more when the stage's Python runs beside it (cache and
  scheduling: the full stage's ffmpeg CPU less the sampling scan's);
- detector: the detector's own work on the frames (scores and decisions), on the stage's main thread;
- jpeg: encoding the sampled frames;
- python_other: the rest of the stage's Python: reading the pipes, stitching, embeddings, tables, threads.
"""

from __future__ import annotations

import contextlib
import resource
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from stages import media


def _cpu() -> tuple[float, float]:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


def _self_and_child(fn: Callable[[], Any]) -> tuple[float, float]:
    before = _cpu()
    fn()
    after = _cpu()
    return after[0] - before[0], after[1] - before[1]


@contextlib.contextmanager
def _thread_clock(owner: Any, name: str, spent: list[float]) -> Iterator[None]:
    """Add the CPU time of the calling thread inside `owner.name` to `spent[0]` for as long as this is open."""
    own = name in vars(owner)
    original = getattr(owner, name)

    def timed(*args, **kwargs):
        began = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.thread_time() - began

    setattr(owner, name, timed)
    try:
        yield
    finally:
        if own:
            setattr(owner, name, original)
        else:
            delattr(owner, name)


def _scan(path: Path, detect_size: tuple[int, int], sample_size: tuple[int, int] | None, every: int) -> None:
    options = {"sample_every": every, "sample_size": sample_size, "on_sample": lambda i, f: None} if sample_size else {}
    for _ in media.FrameScan(path, detect_size, **options):
        pass


def cpu_by_step(path: Path, stage: Any, videos: Any, rounds: int = 5) -> dict[str, float]:
    """Per-frame CPU microseconds of each step of splitting `videos` (one video at `path`) with `stage`, set up."""
    from stages.split.detectors import DETECTORS

    cfg, row = stage.config, videos.to_pylist()[0]
    detector_class = DETECTORS.get(cfg.detector)
    detect_size = detector_class(row["fps"], detect_width=cfg.detect_width,
                                 **cfg.detector_params).frame_size(row["width"], row["height"])
    sample_size = media.display_size(row["width"], row["height"], row["sample_aspect_ratio"] or 1.0,
                                     row["rotation"] or 0, cfg.frame_short_side)
    every = max(1, int(round(row["fps"] / cfg.sample_fps)))
    runs: dict[str, list[float]] = {}

    def note(key: str, value: float) -> None:
        runs.setdefault(key, []).append(value)

    for _ in range(rounds):  # alternated, so drift in what else the machine does hits every step alike
        note("decode", _self_and_child(lambda: media.commands.run(media.commands.decode_null(path)))[1])
        note("scan", _self_and_child(lambda: _scan(path, detect_size, None, every))[1])
        note("scan_sampling", _self_and_child(lambda: _scan(path, detect_size, sample_size, every))[1])
        detector_s, jpeg_s = [0.0], [0.0]
        with _thread_clock(detector_class, "process_batch", detector_s), \
                _thread_clock(media, "encode_jpeg", jpeg_s):
            own, child = _self_and_child(lambda: stage.process_batch(videos))
        note("stage_self", own)
        note("stage_child", child)
        note("detector", detector_s[0])
        note("jpeg", jpeg_s[0])
    m = {k: statistics.median(v) for k, v in runs.items()}
    steps = {"decode": m["decode"], "scale": m["scan"] - m["decode"], "sample_scale": m["scan_sampling"] - m["scan"],
             "ffmpeg_beside_python": m["stage_child"] - m["scan_sampling"], "detector": m["detector"],
             "jpeg": m["jpeg"], "python_other": m["stage_self"] - m["detector"] - m["jpeg"]}
    frames = media.probe(path).num_frames
    result: dict[str, float] = {k: round(v / frames * 1e6, 1) for k, v in steps.items()}
    result["total"] = round((m["stage_self"] + m["stage_child"]) / frames * 1e6, 1)
    result["frames"] = frames
    return result
