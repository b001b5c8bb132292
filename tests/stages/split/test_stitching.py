"""Panda-70M's second step on constructed embeddings: each rule, its threshold, and the order they apply in."""

from __future__ import annotations

import numpy as np

from vlcurate.stages.split.stitching import (Segment, apply_length_limits, drop_redundant, filter_segments, forced_cuts,
                                             stitch)


def unit(*xs):
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_forced_cuts_follow_panda_seven_and_five():
    # 25 fps: 200 frames (8 s) -> 5 s + 3 s; 175 frames (7 s) stays; 400 (16 s) -> 5 + 5 + 6
    segs = forced_cuts([(0, 200), (200, 375), (375, 775)], 25.0, 7.0, 5.0)
    assert [(s.start, s.end, s.shots) for s in segs] == [(0, 125, [0]), (125, 200, [0]), (200, 375, [1]),
                                                          (375, 500, [2]), (500, 625, [2]), (625, 775, [2])]
    assert len(forced_cuts([(0, 1000)], 25.0, None, 5.0)) == 1


def test_forced_cuts_snap_to_the_nearest_keyframe_within_reach():
    keyframes = [0, 120, 250, 380, 600]
    # 25 fps, every 125 frames: 125 -> 120 (5 away), then 245 -> 250; then 150 frames are left, not over 7 s
    segs = forced_cuts([(0, 400)], 25.0, 7.0, 5.0, keyframes, snap_frames=10)
    assert [(s.start, s.end) for s in segs] == [(0, 120), (120, 250), (250, 400)]
    # out of reach (4 frames): Panda's exact cuts
    assert [(s.start, s.end) for s in forced_cuts([(0, 400)], 25.0, 7.0, 5.0, keyframes, snap_frames=4)] == [
        (0, 125), (125, 250), (250, 400)]
    # a tie goes to the earlier keyframe; a keyframe on the shot's own start or end is never a cut
    assert forced_cuts([(0, 200)], 25.0, 7.0, 5.0, [120, 130], snap_frames=5)[0].end == 120
    assert forced_cuts([(100, 300)], 25.0, 7.0, 5.0, [100, 300], snap_frames=200)[0].end == 225


def test_transitions_and_stills_are_dropped_with_their_distance():
    a, b = unit(1, 0), unit(0, 1)
    segs = [Segment(0, 10, [0], a, b),                        # L2 1.414 > 1.0: transition
            Segment(10, 20, [1], a, unit(1, 0.05)),           # L2 0.05 < 0.15: still
            Segment(20, 30, [2], a, unit(1, 0.5))]            # kept
    kept, dropped = filter_segments(segs, 1.0, 0.15)
    assert [s.start for s in kept] == [20]
    assert dropped[0].reason.startswith("transition: start-end L2 1.414 > 1.0")
    assert dropped[1].reason.startswith("still: start-end L2 0.050 < 0.15")


def test_stitch_merges_touching_neighbours_within_limits():
    x, y = unit(1, 0), unit(0, 1)
    segs = [Segment(0, 10, [0], x, x), Segment(10, 20, [1], unit(1, 0.2), y),  # boundary L2 0.2: merge
            Segment(20, 30, [2], x, x),                                       # boundary L2 1.41: keep apart
            Segment(35, 45, [3], x, x)]                                       # not touching: keep apart
    out = stitch(segs, 0.6, max_frames=100)
    assert [(s.start, s.end, s.shots) for s in out] == [(0, 20, [0, 1]), (20, 30, [2]), (35, 45, [3])]
    assert out[0].last is y and out[0].notes[0].startswith("merged frames 10-20 (shot 1): boundary L2 0.197 <= 0.6")
    assert len(stitch(segs, 0.6, max_frames=15)) == 4  # a merge may not exceed the maximum length


def test_length_limits_and_trim():
    segs = [Segment(0, 40, [0]), Segment(40, 200, [1]), Segment(200, 1700, [2])]
    kept, dropped = apply_length_limits(segs, 25.0, min_s=2.0, max_s=30.0)
    assert [(s.start, s.end) for s in kept] == [(40, 200), (200, 950), (950, 1700)]
    assert dropped[0].reason == "too_short: 1.60s < 2.0s"
    kept, _ = apply_length_limits([Segment(0, 100, [0])], 25.0, min_s=2.0, max_s=30.0, trim_s=0.4)
    assert (kept[0].start, kept[0].end) == (10, 90)


def test_redundant_clips_are_dropped():
    segs = [Segment(0, 10, [0]), Segment(10, 20, [1]), Segment(20, 30, [2])]
    kept, dropped = drop_redundant(segs, [unit(1, 0), unit(0, 1), unit(1, 0.01)], 0.1)
    assert [s.start for s in kept] == [0, 10] and "to frames 0-10" in dropped[0].reason
    assert drop_redundant(segs, [unit(1, 0)] * 3, None)[0] == segs
