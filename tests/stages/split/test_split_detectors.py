"""The batched detector logic against PySceneDetect's own per-frame detectors, fed the same scores: every cut the
same, on random score sequences that exercise flashes, merges, zero windows and every batch boundary."""

from __future__ import annotations

import numpy as np
import pytest

from vlcurate.stages.split.detectors import DETECTORS
from vlcurate.stages.split.detectors.scenedetect import _with_injected_scores


def score_sequences(seed: int, count: int = 40, length: int = 400):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        scores = rng.gamma(2.0, 2.0, length)  # motion noise
        for start in rng.choice(length, rng.integers(1, 25), replace=False):  # cuts and flashes, 1-4 frames
            scores[start:start + rng.integers(1, 5)] = rng.uniform(10, 80)
        if rng.random() < 0.5:  # a still stretch: zero windows
            a = rng.integers(0, length - 40)
            scores[a:a + 40] = 0.0
        scores[0] = 0.0  # the first frame ever scores 0
        yield scores


def pyscenedetect_cuts(name: str, fps: float, scores: np.ndarray, params: dict) -> list[int]:
    import scenedetect

    detector = _with_injected_scores(getattr(scenedetect, name))(**params)
    cuts = []
    for i, score in enumerate(scores.tolist()):
        detector.injected_score = score
        cuts += [c.frame_num for c in detector.process_frame(scenedetect.FrameTimecode(i, fps), None)]
    cuts += [c.frame_num for c in detector.post_process(scenedetect.FrameTimecode(len(scores) - 1, fps))]
    return sorted({c for c in cuts if 0 < c < len(scores)})


def batched_cuts(name: str, fps: float, scores: np.ndarray, params: dict, rng) -> list[int]:
    detector = DETECTORS.get(name)(fps, **params)
    bounds = sorted({0, len(scores), *rng.integers(1, len(scores), rng.integers(0, 12)).tolist()})
    for a, b in zip(bounds, bounds[1:]):
        detector.take_scores(a, scores[a:b])
    return detector.finish(len(scores))


ADAPTIVE = [{}, {"window_width": 1}, {"window_width": 4, "adaptive_threshold": 2.0},
            {"min_scene_len": 0, "min_content_val": 5.0}, {"min_scene_len": 0.5}, {"min_scene_len": 40}]
CONTENT = [{}, {"threshold": 15.0}, {"min_scene_len": 0}, {"min_scene_len": 4, "threshold": 12.0},
           {"min_scene_len": 0.3}, {"filter_mode": "SUPPRESS"}, {"filter_mode": "SUPPRESS", "min_scene_len": 3}]


@pytest.mark.parametrize("params", ADAPTIVE)
def test_batched_adaptive_logic_is_pyscenedetects(params):
    rng = np.random.default_rng(1)
    for fps in (25.0, 29.97):
        for scores in score_sequences(7):
            assert batched_cuts("adaptive", fps, scores, params, rng) == \
                pyscenedetect_cuts("AdaptiveDetector", fps, scores, params)


@pytest.mark.parametrize("params", CONTENT)
def test_batched_content_logic_is_pyscenedetects(params):
    from scenedetect.detector import FlashFilter

    if "filter_mode" in params:
        params = {**params, "filter_mode": FlashFilter.Mode[params["filter_mode"]]}
    rng = np.random.default_rng(2)
    found = 0
    for fps in (25.0, 29.97):
        for scores in score_sequences(8):
            expected = pyscenedetect_cuts("ContentDetector", fps, scores, params)
            assert batched_cuts("content", fps, scores, params, rng) == expected
            found += len(expected)
    assert found > 100  # the sequences do cut


def test_a_batch_shorter_than_the_window_keeps_its_scores():
    scores = np.array([0.0, 1, 1, 1, 1, 60, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 70, 1, 1, 1, 1])
    detector = DETECTORS.get("adaptive")(25.0, min_scene_len=1)
    for i in range(len(scores)):  # one frame at a time
        detector.take_scores(i, scores[i:i + 1])
    assert detector.finish(len(scores)) == pyscenedetect_cuts("AdaptiveDetector", 25.0, scores,
                                                              {"min_scene_len": 1}) == [5, 20]


def test_batched_frame_scores_are_pyscenedetects_on_frames():
    """Scores of frames scored in uneven batches (across the scoring chunks) against ContentDetector's own
    per-frame score of the same frames."""
    import scenedetect

    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (90, 36, 64, 3), dtype=np.uint8)
    frames[40:60] = frames[40]  # still frames score 0
    reference = scenedetect.ContentDetector()
    expected = [reference._calculate_frame_score(scenedetect.FrameTimecode(i, 25.0), f) for i, f in enumerate(frames)]
    detector = DETECTORS.get("content")(25.0)
    got = np.concatenate([detector.frame_scores(frames[a:b]) for a, b in [(0, 1), (1, 37), (37, 70), (70, 90)]])
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert got[0] == 0.0 and not got[41:60].any() and got[1:40].min() > 10
