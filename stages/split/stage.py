"""split: each video -> clips, in one decoding pass that both detects shots and samples the frames later stages use."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import Field

from manifests import CLIPS
from pipeline.stage import RowStage, StageConfig, StageError
from stages import media
from stages.split.detectors import DETECTORS


class SplitConfig(StageConfig):
    detector: str = Field("adaptive", description="registered detector: adaptive | content | transnetv2")
    detector_params: dict[str, Any] = Field(default_factory=dict, description="passed to the detector")
    detect_width: int = Field(256, ge=32, description="frames are downscaled to this width for detection")
    min_clip_s: float = Field(2.0, ge=0, description="shots shorter than this are dropped")
    max_clip_s: float = Field(60.0, gt=0, description="longer shots are cut into equal parts no longer than this")
    frames_per_clip: int = Field(3, ge=1, description="frames stored per clip for captioning and scoring")
    sample_fps: float = Field(2.0, gt=0, description="frames kept per second while decoding, to choose from")
    frame_short_side: int = Field(336, ge=32, description="stored frames' short side in pixels (never upscaled)")
    jpeg_quality: int = Field(90, ge=10, le=100)
    decode_threads: int = Field(1, ge=1, description="decoder threads per video")


def plan_clips(cuts: list[int], num_frames: int, fps: float, min_clip_s: float,
               max_clip_s: float) -> list[tuple[int, int]]:
    """Shots from cuts, too-short ones dropped, too-long ones cut into equal parts; spans are [start, end)."""
    bounds = [0, *sorted(c for c in cuts if 0 < c < num_frames), num_frames]
    min_frames = min_clip_s * fps
    max_frames = max(1, int(math.floor(max_clip_s * fps)))
    clips = []
    for start, end in zip(bounds, bounds[1:]):
        length = end - start
        if length <= 0 or length < min_frames:
            continue
        parts = math.ceil(length / max_frames)
        edges = [start + (length * k) // parts for k in range(parts + 1)]
        clips.extend((a, b) for a, b in zip(edges, edges[1:]))
    return clips


def pick_frames(sampled: list[int], start: int, end: int, count: int) -> list[int]:
    """`count` sampled frame indices spread evenly over [start, end), nearest to evenly spaced targets."""
    inside = [i for i in sampled if start <= i < end]
    if len(inside) <= count:
        return inside
    chosen: list[int] = []
    for k in range(count):
        target = start + (k + 0.5) * (end - start) / count
        best = min((i for i in inside if i not in chosen), key=lambda i: (abs(i - target), i))
        chosen.append(best)
    return sorted(chosen)


class SplitStage(RowStage):
    name = "split"
    config_class = SplitConfig
    input_stage = "ingest"
    output_schema = CLIPS.schema
    sort_keys = ("path", "start_frame")

    config: SplitConfig

    def setup(self) -> None:
        DETECTORS.get(self.config.detector)  # fail at start, not on the first video

    def process_row(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        cfg = self.config
        fps = row["fps"]
        params = dict(cfg.detector_params)
        if cfg.detector in ("adaptive", "content"):
            params.setdefault("detect_width", cfg.detect_width)
        detector = DETECTORS.get(cfg.detector)(fps, **params)
        out_w, out_h = media.display_size(row["width"], row["height"], row["sample_aspect_ratio"] or 1.0,
                                          row["rotation"] or 0, cfg.frame_short_side)
        det_w, det_h = detector.frame_size(row["width"], row["height"])
        stride = max(1, int(round(fps / cfg.sample_fps)))

        times: list[float] = []
        sampled: dict[int, bytes] = {}
        for decoded in media.decode_frames(row["path"], threads=cfg.decode_threads):
            frame = decoded.frame
            small = frame.to_ndarray(width=det_w, height=det_h, format=detector.pixel_format)
            detector.process(decoded.index, small)
            times.append(decoded.time_s)
            if decoded.index % stride == 0:
                sampled[decoded.index] = media.frame_to_jpeg(frame, out_w, out_h, row["rotation"] or 0,
                                                             cfg.jpeg_quality)
        num_frames = len(times)
        if num_frames == 0:
            raise StageError("undecodable", "no frames decoded")
        cuts = detector.finish(num_frames)
        spans = plan_clips(cuts, num_frames, fps, cfg.min_clip_s, cfg.max_clip_s)
        if not spans:
            raise StageError("no_clips", f"{len(cuts) + 1} shots, none at least {cfg.min_clip_s}s long")
        frame_step = float(np.median(np.diff(times))) if num_frames > 1 else 1.0 / fps
        video = {**row, "num_frames": num_frames, "duration_s": times[-1] + frame_step}
        clips = []
        for index, (start, end) in enumerate(spans):
            chosen = pick_frames(sorted(sampled), start, end, cfg.frames_per_clip)
            clips.append({
                **video,
                "clip_id": f"{row['video_id']}_{start:07d}_{end:07d}",
                "clip_index": index,
                "start_frame": start,
                "end_frame": end,
                "start_s": round(times[start], 6),
                "end_s": round(times[end] if end < num_frames else times[-1] + frame_step, 6),
                "detector": cfg.detector,
                "frame_indices": chosen,
                "frames": [sampled[i] for i in chosen],
                "error": None,
            })
        return clips

    def stats(self, table: pa.Table) -> dict[str, Any]:
        rows = table.select(["video_id", "start_s", "end_s", "error"]).to_pylist()
        ok = [r for r in rows if not r["error"]]
        lengths = [r["end_s"] - r["start_s"] for r in ok]
        return {
            "clips": len(ok),
            "videos_with_clips": len({r["video_id"] for r in ok}),
            "mean_clip_s": round(float(np.mean(lengths)), 3) if lengths else 0.0,
            "clip_hours": round(sum(lengths) / 3600, 4),
            "detector": self.config.detector,
        }
