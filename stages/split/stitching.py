"""Panda-70M's second splitting step, as pure functions over spans and embeddings (easy to test, no video).

Shots from a detector cut too often and keep transitions and still frames. Panda-70M: cut long shots into pieces,
embed frames near each piece's start and end, drop pieces whose ends disagree (a transition) or barely differ (a
still), then stitch neighbours whose boundary frames agree, within the length limits.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


@dataclass
class Segment:
    start: int                    # frame index, inclusive
    end: int                      # exclusive
    shots: list[int]              # indexes of the detector shots it came from
    first: np.ndarray | None = None   # unit embedding near the start (5%)
    last: np.ndarray | None = None    # unit embedding near the end (95%)
    notes: list[str] = field(default_factory=list)
    ends_differ: bool = True      # False when one sampled frame had to serve as both first and last

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass
class Dropped:
    start: int
    end: int
    shots: list[int]
    reason: str


def forced_cuts(spans: list[tuple[int, int]], fps: float, above_s: float | None, every_s: float,
                keyframes: Sequence[int] = (), snap_frames: int = 0) -> list[Segment]:
    """Panda: while a piece is longer than `above_s`, cut `every_s` off its start. None disables it.

    With `snap_frames`, a cut moves to the nearest keyframe at most that many frames away (the earlier one on a
    tie), so the pieces it makes start on keyframes and the shard stage can copy them instead of re-encoding."""
    segments = []
    for shot, (start, end) in enumerate(spans):
        if above_s is not None:
            above, every = above_s * fps, max(1, int(round(every_s * fps)))
            while end - start > above:
                cut = _snap(start + every, keyframes, snap_frames, start, end)
                segments.append(Segment(start, cut, [shot]))
                start = cut
        segments.append(Segment(start, end, [shot]))
    return segments


def _snap(cut: int, keyframes: Sequence[int], within: int, start: int, end: int) -> int:
    if not within or not keyframes:
        return cut
    lo, hi = bisect.bisect_left(keyframes, cut - within), bisect.bisect_right(keyframes, cut + within)
    near = [k for k in keyframes[lo:hi] if start < k < end]
    return min(near, key=lambda k: (abs(k - cut), k)) if near else cut


def l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b))


def filter_segments(segments: list[Segment], transition_l2: float | None,
                    still_l2: float | None) -> tuple[list[Segment], list[Dropped]]:
    kept, dropped = [], []
    for seg in segments:
        if seg.first is None or seg.last is None or not seg.ends_differ:
            kept.append(seg)  # too few samples to judge; the length limits decide
            continue
        d = l2(seg.first, seg.last)
        if transition_l2 is not None and d > transition_l2:
            why = f"transition: start-end L2 {d:.3f} > {transition_l2}"
            dropped.append(Dropped(seg.start, seg.end, seg.shots, why))
        elif still_l2 is not None and d < still_l2:
            dropped.append(Dropped(seg.start, seg.end, seg.shots, f"still: start-end L2 {d:.3f} < {still_l2}"))
        else:
            kept.append(seg)
    return kept, dropped


def stitch(segments: list[Segment], merge_l2: float | None, max_frames: float) -> list[Segment]:
    """Merge each segment into the one before it when they touch, their boundary frames agree, and the result
    stays within the maximum length."""
    out: list[Segment] = []
    for seg in segments:
        prev = out[-1] if out else None
        if (merge_l2 is not None and prev is not None and prev.end == seg.start and prev.last is not None
                and seg.first is not None and seg.end - prev.start <= max_frames):
            d = l2(prev.last, seg.first)
            if d <= merge_l2:
                prev.notes.append(f"merged frames {seg.start}-{seg.end} (shot {','.join(map(str, seg.shots))}): "
                                  f"boundary L2 {d:.3f} <= {merge_l2}")
                prev.end, prev.last = seg.end, seg.last
                prev.shots = sorted(set(prev.shots + seg.shots))
                continue
        out.append(Segment(seg.start, seg.end, list(seg.shots), seg.first, seg.last, list(seg.notes)))
    return out


def apply_length_limits(segments: list[Segment], fps: float, min_s: float, max_s: float,
                        trim_s: float = 0.0) -> tuple[list[Segment], list[Dropped]]:
    """Cut segments over the maximum into equal parts, trim ends if asked, drop what is under the minimum."""
    max_frames = max(1, int(math.floor(max_s * fps)))
    trim = int(round(trim_s * fps))
    kept, dropped = [], []
    for seg in segments:
        parts = math.ceil(seg.length / max_frames)
        edges = [seg.start + (seg.length * k) // parts for k in range(parts + 1)]
        for a, b in zip(edges, edges[1:]):
            part = Segment(a, b, seg.shots, seg.first, seg.last, list(seg.notes))
            if parts > 1:
                part.notes.append(f"cut to at most {max_s}s")
            if trim and b - a - 2 * trim >= min_s * fps:
                part.start, part.end = a + trim, b - trim
                part.notes.append(f"trimmed {trim} frames at each end")
            if part.length < min_s * fps:
                dropped.append(Dropped(part.start, part.end, part.shots,
                                       f"too_short: {part.length / fps:.2f}s < {min_s}s"))
            else:
                kept.append(part)
    return kept, dropped


def drop_redundant(segments: list[Segment], embeddings: list[np.ndarray],
                   max_l2: float | None) -> tuple[list[Segment], list[Dropped]]:
    """Drop a clip that looks like an earlier kept clip of the same video (L2 of mean embeddings)."""
    if max_l2 is None:
        return segments, []
    kept, kept_emb, dropped = [], [], []
    for seg, emb in zip(segments, embeddings):
        close = [l2(emb, other) for other in kept_emb]
        if close and min(close) < max_l2:
            j = int(np.argmin(close))
            dropped.append(Dropped(seg.start, seg.end, seg.shots,
                                   f"redundant: L2 {min(close):.3f} < {max_l2} to frames "
                                   f"{kept[j].start}-{kept[j].end}"))
        else:
            kept.append(seg)
            kept_emb.append(emb)
    return kept, dropped
