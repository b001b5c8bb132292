"""Clip spans given by the input list (Panda-70M's `timestamp`, video2dataset's `clips`, `start`/`end`), cut
frame-exact: a span's first frame is the first decoded frame at or after its start, its end the first at or after
its end (a frame on the boundary, within media.SAME_TIME_S, belongs to the span that starts there).

`exact` cuts the spans as given, nothing more (no forced cuts, stitching or length limits: the list decided);
`detect` runs split's own shot detection and Panda-70M's second step inside each span, never across two.
"""

from __future__ import annotations

import bisect
from typing import Any, Callable

from vlcurate.stages import media
from vlcurate.stages.split.stitching import Dropped, Segment

Segmenter = Callable[[list[tuple[int, int]]], tuple[list[Segment], list[Dropped]]]


def frame_span(times: list[float], start_s: float, end_s: float) -> tuple[int, int]:
    """[first, end) decoded frame indexes of a span in seconds."""
    first = bisect.bisect_left(times, start_s - media.SAME_TIME_S)
    end = bisect.bisect_left(times, end_s - media.SAME_TIME_S)
    return first, max(first, end)


def given_segments(spans: list[dict[str, float]], shots: list[tuple[int, int]], times: list[float],
                   mode: str, segment: Segmenter) -> tuple[list[tuple[Segment, int]], list[Dropped]]:
    """(segment, index of the given span it came from) in frame order, and the pieces dropped, with why."""
    out: list[tuple[Segment, int]] = []
    dropped: list[Dropped] = []
    seen: dict[tuple[int, int], int] = {}
    for k, span in enumerate(spans):
        a, b = frame_span(times, span["start_s"], span["end_s"])
        inside = [i for i, (s, e) in enumerate(shots) if s < b and e > a]
        where = f"given span {k} ({span['start_s']:g}-{span['end_s']:g} s)"
        if b <= a:
            end_s = times[-1] if times else 0.0
            dropped.append(Dropped(a, a, inside, f"given_span_outside: {where} holds no frame of the video "
                                                 f"(last frame at {end_s:.3f} s)"))
            continue
        if (a, b) in seen:
            dropped.append(Dropped(a, b, inside, f"given_span_repeated: {where} is span {seen[(a, b)]}'s frames"))
            continue
        seen[(a, b)] = k
        if mode == "exact":
            out.append((Segment(a, b, inside, notes=[f"{where}: frames {a}-{b}, cut as given"]), k))
            continue
        pieces = [(max(s, a), min(e, b)) for s, e in (shots[i] for i in inside)]
        segments, drops = segment(pieces)
        for seg in segments:  # shot numbers back from the span's pieces to the video's shots
            seg.shots = [inside[i] for i in seg.shots]
            seg.notes.insert(0, f"inside {where}")
            out.append((seg, k))
        for d in drops:
            d.shots = [inside[i] for i in d.shots]
        dropped += drops
    out.sort(key=lambda pair: (pair[0].start, pair[0].end))
    return out, dropped


def caption_for(captions: list[str] | None, spans: list[Any] | None, k: int | None) -> str | None:
    """A clip's caption from the list: its span's, or the one caption a list gives a whole video."""
    if not captions:
        return None
    if spans and k is not None and len(captions) == len(spans):
        return captions[k]
    return captions[0] if len(captions) == 1 else None
