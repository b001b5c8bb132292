"""Spans given by the list, cut frame-exact (stages/split/given.py)."""

from __future__ import annotations

from vlcurate.stages.split.given import caption_for, frame_span, given_segments
from vlcurate.stages.split.stitching import Segment

TIMES = [i / 25 for i in range(100)]  # 100 frames at 25 fps
SHOTS = [(0, 40), (40, 100)]


def test_a_span_starts_at_the_first_frame_at_or_after_its_start():
    assert frame_span(TIMES, 0.0, 1.2) == (0, 30)
    assert frame_span(TIMES, 1.2, 2.0) == (30, 50)  # a frame on the boundary belongs to the span starting there
    assert frame_span(TIMES, 1.21, 1.99) == (31, 50)
    assert frame_span(TIMES, 3.9, 9.0) == (98, 100)


def test_exact_spans_are_cut_as_given_and_what_cannot_be_cut_says_why():
    spans = [{"start_s": 1.2, "end_s": 2.0}, {"start_s": 0.0, "end_s": 1.2}, {"start_s": 5.0, "end_s": 6.0},
             {"start_s": 0.0, "end_s": 1.2}]
    out, dropped = given_segments(spans, SHOTS, TIMES, "exact", lambda p: ([], []))
    assert [(s.start, s.end, s.shots, k) for s, k in out] == [(0, 30, [0], 1), (30, 50, [0, 1], 0)]
    assert [d.reason.split(":")[0] for d in dropped] == ["given_span_outside", "given_span_repeated"]


def test_detect_runs_inside_each_span_never_across_two():
    seen = []

    def segment(pieces):
        seen.append(pieces)
        return [Segment(a, b, [i]) for i, (a, b) in enumerate(pieces)], []

    out, _ = given_segments([{"start_s": 1.0, "end_s": 3.0}], SHOTS, TIMES, "detect", segment)
    assert seen == [[(25, 40), (40, 75)]]
    assert [(s.start, s.end, s.shots) for s, _ in out] == [(25, 40, [0]), (40, 75, [1])]


def test_a_clip_takes_its_spans_caption_or_the_videos_one():
    assert caption_for(["a", "b"], [{}, {}], 1) == "b"
    assert caption_for(["whole"], None, None) == "whole"
    assert caption_for(None, [{}], 0) is None
