from __future__ import annotations

import numpy as np
import pytest
import scenedetect

from stages.split.detectors.scenedetect import AdaptiveDetector, _with_injected_scores

FPS = 24.0


def pyscenedetect_cuts(scores: list[float], **params) -> list[int]:
    """AdaptiveDetector's own per-frame logic on given frame scores."""
    detector = _with_injected_scores(scenedetect.AdaptiveDetector)(**params)
    cuts = []
    for index, score in enumerate(scores):
        detector.injected_score = score
        cuts += [c.frame_num for c in detector.process_frame(scenedetect.FrameTimecode(index, FPS), None)]
    cuts += [c.frame_num for c in detector.post_process(scenedetect.FrameTimecode(len(scores) - 1, FPS))]
    return cuts


def batched_cuts(scores: list[float], batch_sizes: list[int], **params) -> list[int]:
    detector = AdaptiveDetector(FPS, **params)
    first = 0
    for size in batch_sizes:
        chunk = scores[first:first + size]
        if chunk:
            detector._decide(list(range(first, first + len(chunk))), np.array(chunk))
        first += size
    assert first >= len(scores)
    return detector.finish(len(scores))


def scores_with_cuts(rng: np.random.Generator, frames: int) -> list[float]:
    """Noisy motion scores with spikes (cuts), near-spikes, runs of exact zeros (still frames) and a zero first
    frame, as the scorer gives."""
    scores = rng.gamma(2.0, 3.0, frames)
    spikes = rng.choice(frames, frames // 15, replace=False)
    scores[spikes] = rng.uniform(10, 150, len(spikes))
    for start in rng.choice(frames - 10, 3, replace=False):
        scores[start:start + rng.integers(3, 10)] = 0.0
    scores[0] = 0.0
    return scores.tolist()


@pytest.mark.parametrize("params", [{}, {"window_width": 1}, {"window_width": 3, "min_scene_len": 0},
                                    {"min_scene_len": "0.5s", "adaptive_threshold": 2.0},
                                    {"min_content_val": 0.0, "min_scene_len": 1}])
def test_batched_adaptive_logic_cuts_where_pyscenedetect_does(params):
    """The rolling ratio is computed per batch; every batch split must give PySceneDetect's cuts, bit for bit."""
    rng = np.random.default_rng(7)
    for trial in range(6):
        scores = scores_with_cuts(rng, int(rng.integers(40, 400)))
        expected = sorted({c for c in pyscenedetect_cuts(scores, **params) if 0 < c < len(scores)})
        assert expected, "the generated scores should contain cuts"
        splits = [[len(scores)], [1] * len(scores), [64] * (len(scores) // 64 + 1),
                  rng.integers(1, 9, len(scores)).tolist()]
        for sizes in splits:
            assert batched_cuts(scores, sizes, **params) == expected, (trial, sizes[:5])


def test_batched_adaptive_logic_on_fewer_frames_than_its_window():
    assert batched_cuts([0.0, 90.0, 0.0], [1, 1, 1]) == []
