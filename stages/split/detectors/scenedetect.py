"""PySceneDetect's detectors fed with our own decoded, downscaled frames, so detection and frame sampling share
one decode and the detector never touches full-resolution pixels.

Frame scores (HSV deltas, PySceneDetect's ContentDetector metric) are computed for batches of frames in a few
vectorised OpenCV/NumPy calls, which release the GIL and so run beside the decoder thread; the detectors' own
logic (adaptive ratio, flash filter, minimum scene length) then runs unchanged on those scores. The scores are
exactly PySceneDetect's: integer sums over the same HSV planes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stages.split.detectors.base import DETECTORS, Detector


def _with_injected_scores(base: type) -> type:
    """A PySceneDetect detector class whose frame score comes from us instead of from the frame."""

    class Injected(base):  # type: ignore[misc, valid-type]
        injected_score: float = 0.0

        def _calculate_frame_score(self, timecode, frame_img):  # noqa: ANN001 - PySceneDetect's signature
            return self.injected_score

    return Injected


class _SceneDetect(Detector):
    detector_class_name: str

    def __init__(self, fps: float, detect_width: int = 256, vectorised: bool = True, **params: Any):
        super().__init__(fps, detect_width, **params)
        import scenedetect

        self._timecode = scenedetect.FrameTimecode
        detector_class = getattr(scenedetect, self.detector_class_name)
        probe = detector_class(**params)
        weights = probe._weights
        # Edge deltas need Canny per frame: only PySceneDetect's own per-frame path computes them.
        self.vectorised = vectorised and weights.delta_edges == 0
        if self.vectorised:
            self._detector = _with_injected_scores(detector_class)(**params)
            self._weights = np.array([weights.delta_hue, weights.delta_sat, weights.delta_lum], dtype=np.float64)
        else:
            self._detector = probe
        self._cuts: list[int] = []
        self._previous_hsv: np.ndarray | None = None

    def frame_size(self, width: int, height: int) -> tuple[int, int]:
        w = min(self.detect_width, width)
        return w, max(2, int(round(height * w / width / 2)) * 2)

    def process(self, index: int, frame: np.ndarray) -> None:
        if self.vectorised:
            self._score([index], frame[None])
        else:
            self._feed(index, frame)

    def _feed(self, index: int, frame: np.ndarray | None) -> None:
        for cut in self._detector.process_frame(self._timecode(index, self.fps), frame):
            self._cuts.append(cut.frame_num)

    def process_batch(self, first_index: int, frames: np.ndarray) -> None:
        if not self.vectorised:
            super().process_batch(first_index, frames)
            return
        self._score(list(range(first_index, first_index + len(frames))), frames)

    def _score(self, indexes: list[int], stack: np.ndarray) -> None:
        import cv2

        n, h, w, _ = stack.shape
        hsv = cv2.cvtColor(stack.reshape(n * h, w, 3), cv2.COLOR_BGR2HSV).reshape(n, h, w, 3)
        first_ever = self._previous_hsv is None
        delta = np.empty_like(hsv)  # frame i against frame i - 1, the batch's first against the last batch's last
        cv2.absdiff(hsv[0], hsv[0] if first_ever else self._previous_hsv, dst=delta[0])
        if n > 1:
            cv2.absdiff(hsv[1:].reshape((n - 1) * h, w * 3), hsv[:-1].reshape((n - 1) * h, w * 3),
                        dst=delta[1:].reshape((n - 1) * h, w * 3))
        sums = np.array([cv2.sumElems(delta[i])[:3] for i in range(n)])  # exact integer sums, GIL-free
        components = sums / float(h * w)  # (n, 3): mean |delta| of hue, saturation, value, as PySceneDetect
        scores = components @ self._weights / np.abs(self._weights).sum()
        if first_ever:
            scores[0] = 0.0
        for index, score in zip(indexes, scores.tolist()):
            self._detector.injected_score = score
            self._feed(index, None)
        self._previous_hsv = hsv[-1].copy()

    def finish(self, num_frames: int) -> list[int]:
        if num_frames:
            for cut in self._detector.post_process(self._timecode(num_frames - 1, self.fps)):
                self._cuts.append(cut.frame_num)
        return sorted({c for c in self._cuts if 0 < c < num_frames})


@DETECTORS.register("adaptive")
class AdaptiveDetector(_SceneDetect):
    """PySceneDetect's AdaptiveDetector: a cut must stand out from its neighbours; fewer false cuts on texture."""

    name = "adaptive"
    detector_class_name = "AdaptiveDetector"


@DETECTORS.register("content")
class ContentDetector(_SceneDetect):
    """PySceneDetect's ContentDetector: a fixed threshold on HSV change between frames."""

    name = "content"
    detector_class_name = "ContentDetector"
