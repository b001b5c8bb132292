"""Where split's CPU goes, per frame, by step: measured in the same run as the decode it is compared with, so the
next person sees what to make cheaper. Used by `make bench-split` (bench/split.json, `cpu_us_per_frame`).

Steps, each the median over rounds, in CPU microseconds per decoded frame (the process's own CPU and its children's):
- ffmpeg_decode: single-thread `ffmpeg` decode of the video, frames thrown away (what the bench's ratios divide by);
- decode: the stage's own decoder alone (`split.decoder`: PyAV in this process, or that same ffmpeg command);
- scale: the detector's downscale and colour conversion, with handing frames over (a scan with no sampling, frames
  dropped, less decode);
- sample_scale: the sampling branch (a scan that also samples, less the one that does not);
- detector: the detector's own work on the frames (scores and decisions), on the stage's main thread;
- jpeg: encoding the sampled frames;
- python_other: the rest of the stage: stitching, embeddings, tables, threads, and what the scan costs more beside
  the detector and the JPEG encoder (cache, scheduling).
"""

from __future__ import annotations

import contextlib
import resource
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from vlcurate.stages import media


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


def _scan(scan_class: Any, path: Path, detector: Any, detect_size: tuple[int, int],
          sample_size: tuple[int, int] | None, every: int) -> None:
    options = {"sample_every": every, "sample_size": sample_size, "on_sample": lambda i, f: None} if sample_size else {}
    for _ in scan_class(path, detect_size, detect_format=detector.pixel_format, detect_scaler=detector.scaler,
                        **options):
        pass


def _pyav_decode(path: Path) -> None:
    """PyAV's decode alone, as the scan's decoder thread runs it; not `media.decode_frames`, whose per-frame
    Fraction arithmetic for times would be counted as decode."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        for _ in container.decode(stream):
            pass


def cpu_by_step(path: Path, stage: Any, videos: Any, rounds: int = 5) -> dict[str, float]:
    """Per-frame CPU microseconds of each step of splitting `videos` (one video at `path`) with `stage`, set up."""
    from vlcurate.stages.split.detectors import DETECTORS
    from vlcurate.stages.split.stage import SCANS

    cfg, row = stage.config, videos.to_pylist()[0]
    detector_class = DETECTORS.get(cfg.detector)
    detector = detector_class(row["fps"], detect_width=cfg.detect_width, **cfg.detector_params)
    detect_size = detector.frame_size(row["width"], row["height"])
    sample_size = media.display_size(row["width"], row["height"], row["sample_aspect_ratio"] or 1.0,
                                     row["rotation"] or 0, cfg.frame_short_side)
    every = max(1, int(round(row["fps"] / cfg.sample_fps)))
    scan_class = SCANS.get(cfg.decoder)
    runs: dict[str, list[float]] = {}

    def note(key: str, fn: Callable[[], Any]) -> None:
        runs.setdefault(key, []).append(sum(_self_and_child(fn)))

    def ffmpeg_decode() -> None:
        media.commands.run(media.commands.decode_null(path))

    for _ in range(rounds):  # alternated, so drift in what else the machine does hits every step alike
        note("ffmpeg_decode", ffmpeg_decode)
        note("decode", (lambda: _pyav_decode(path)) if cfg.decoder == "pyav" else ffmpeg_decode)
        note("scan", lambda: _scan(scan_class, path, detector, detect_size, None, every))
        note("scan_sampling", lambda: _scan(scan_class, path, detector, detect_size, sample_size, every))
        detector_s, jpeg_s = [0.0], [0.0]
        with _thread_clock(detector_class, "process_batch", detector_s), \
                _thread_clock(media, "encode_jpeg", jpeg_s):
            note("stage", lambda: stage.process_batch(videos))
        runs.setdefault("detector", []).append(detector_s[0])
        runs.setdefault("jpeg", []).append(jpeg_s[0])
    m = {k: statistics.median(v) for k, v in runs.items()}
    steps = {"ffmpeg_decode": m["ffmpeg_decode"], "decode": m["decode"], "scale": m["scan"] - m["decode"],
             "sample_scale": m["scan_sampling"] - m["scan"], "detector": m["detector"], "jpeg": m["jpeg"],
             "python_other": m["stage"] - m["scan_sampling"] - m["detector"] - m["jpeg"]}
    frames = media.probe(path).num_frames
    result: dict[str, Any] = {k: round(v / frames * 1e6, 1) for k, v in steps.items()}
    result["total"] = round(m["stage"] / frames * 1e6, 1)
    result["frames"], result["decoder"] = frames, cfg.decoder
    return result
