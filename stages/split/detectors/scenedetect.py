"""PySceneDetect's detectors fed with our own decoded, downscaled frames, so detection and frame sampling share
one decode and the detector never touches full-resolution pixels.

Frame scores (HSV deltas, PySceneDetect's ContentDetector metric) are computed for batches of frames in a few
vectorised OpenCV/NumPy calls, which release the GIL and so run beside the decoder thread. What the detectors then
do with those scores is PySceneDetect's own logic, run without a Python call per frame:
- content: PySceneDetect's detector (threshold, flash filter) sees only the frames that can change its state: the
  first, those above the threshold, and any while its merge filter is open; the rest are no-ops for it.
- adaptive: the rolling ratio is computed for a whole batch with the same float operations in the same order
  (so the same bits), and only frames that pass both thresholds meet PySceneDetect's own timecode arithmetic for
  the minimum scene length.
Both are checked against PySceneDetect's per-frame detectors on random and real score sequences
(tests/stages/split/test_split_detectors.py); `vectorised: false` runs PySceneDetect's own path on every frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vlcurate.stages.split.detectors.base import DETECTORS, Detector

_CHUNK = 16  # frames scored at once


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
        self._hsv: np.ndarray | None = None
        self._delta: np.ndarray | None = None
        self._scored = 0  # frames scored so far

    def frame_size(self, width: int, height: int) -> tuple[int, int]:
        w = min(self.detect_width, width)
        return w, max(2, int(round(height * w / width / 2)) * 2)

    def process(self, index: int, frame: np.ndarray) -> None:
        self.process_batch(index, frame[None])

    def _feed(self, index: int, frame: np.ndarray | None) -> None:
        for cut in self._detector.process_frame(self._timecode(index, self.fps), frame):
            self._cuts.append(cut.frame_num)

    def process_batch(self, first_index: int, frames: np.ndarray) -> None:
        if not self.vectorised:
            for offset, frame in enumerate(frames):
                self._feed(first_index + offset, frame)
            return
        self.take_scores(first_index, self.frame_scores(frames))

    def frame_scores(self, stack: np.ndarray) -> np.ndarray:
        """PySceneDetect's content score of each frame against the one before (the first frame ever scores 0):
        the weighted mean absolute HSV difference, from exact integer sums. Chunks of `_CHUNK` frames in buffers
        kept between calls: at 256x144 a chunk stays in cache, and no call faults in fresh pages (a 64-frame
        batch at once cost 90 us a frame against 64)."""
        n, h, w, _ = stack.shape
        if self._hsv is None or self._hsv.shape[1:3] != (h, w):
            self._hsv = np.empty((_CHUNK + 1, h, w, 3), np.uint8)  # [0]: the previous frame's HSV
            self._delta = np.empty((_CHUNK, h, w, 3), np.uint8)
        sums = np.empty((n, 3))
        for a in range(0, n, _CHUNK):
            m = min(_CHUNK, n - a)
            self._chunk_sums(stack[a:a + m], sums[a:a + m], first=self._scored == 0 and a == 0)
        components = sums / float(h * w)  # (n, 3): mean |delta| of hue, saturation, value, as PySceneDetect
        scores = components @ self._weights / np.abs(self._weights).sum()
        if not self._scored:
            scores[0] = 0.0
        self._scored += n
        return scores

    def _chunk_sums(self, frames: np.ndarray, out: np.ndarray, first: bool) -> None:
        import cv2

        m, h, w, _ = frames.shape
        hsv, delta = self._hsv, self._delta
        cv2.cvtColor(frames.reshape(m * h, w, 3), cv2.COLOR_BGR2HSV, dst=hsv[1:m + 1].reshape(m * h, w, 3))
        if first:  # the first frame ever is compared with itself
            hsv[0] = hsv[1]
        cv2.absdiff(hsv[1:m + 1].reshape(m * h, w * 3), hsv[:m].reshape(m * h, w * 3),
                    dst=delta[:m].reshape(m * h, w * 3))
        for i in range(m):
            out[i] = cv2.sumElems(delta[i])[:3]  # exact integer sums, GIL-free
        hsv[0] = hsv[m]

    def take_scores(self, first_index: int, scores: np.ndarray) -> None:
        """Run the detector's logic over the scores of frames `first_index`, `first_index + 1`, ..."""
        for offset, score in enumerate(scores.tolist()):
            self._detector.injected_score = score
            self._feed(first_index + offset, None)

    def finish(self, num_frames: int) -> list[int]:
        if num_frames:
            for cut in self._detector.post_process(self._timecode(num_frames - 1, self.fps)):
                self._cuts.append(cut.frame_num)
        return sorted({c for c in self._cuts if 0 < c < num_frames})


@DETECTORS.register("adaptive")
class AdaptiveDetector(_SceneDetect):
    """PySceneDetect's AdaptiveDetector: a cut must stand out from its neighbours; fewer false cuts on texture."""

    detector_class_name = "AdaptiveDetector"

    def __init__(self, fps: float, detect_width: int = 256, vectorised: bool = True, **params: Any):
        super().__init__(fps, detect_width, vectorised, **params)
        self._history = np.zeros(0)  # the last 2 * window_width scores, for the next batch's first targets
        self._last_cut = None

    def take_scores(self, first_index: int, scores: np.ndarray) -> None:
        """PySceneDetect's `AdaptiveDetector.process_frame` for a batch: frame t is judged once frame
        t + window_width has arrived, against the mean of the window_width scores either side of it."""
        d = self._detector
        w = d.window_width
        if self._last_cut is None and len(scores):
            self._last_cut = self._timecode(first_index, self.fps)
        window = np.concatenate([self._history, scores])
        start = first_index - len(self._history)  # frame index of window[0]
        self._history = window[-2 * w:]
        targets = len(window) - 2 * w
        if targets <= 0:
            return
        total = np.zeros(targets)  # Python's sum(): 0 + s[t - w] + ... in order, skipping t; same floats
        for k in range(2 * w + 1):
            if k != w:
                total = total + window[k:k + targets]
        average = total / (2.0 * w)
        target = window[w:w + targets]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(np.abs(average) < 0.00001, np.where(target >= d.min_content_val, 255.0, 0.0),
                             np.minimum(target / average, 255.0))
        met = np.flatnonzero((ratio >= d.adaptive_threshold) & (target >= d.min_content_val))
        for t in (start + w + met).tolist():
            timecode = self._timecode(t, self.fps)
            if (timecode - self._last_cut) >= d.min_scene_len:  # PySceneDetect's own timecode comparison
                self._last_cut = timecode
                self._cuts.append(t)


@DETECTORS.register("content")
class ContentDetector(_SceneDetect):
    """PySceneDetect's ContentDetector: a fixed threshold on HSV change between frames."""

    detector_class_name = "ContentDetector"

    def take_scores(self, first_index: int, scores: np.ndarray) -> None:
        flash = getattr(self._detector, "_flash_filter", None)
        if flash is None or not hasattr(flash, "_merge_triggered"):  # another PySceneDetect: every frame
            super().take_scores(first_index, scores)
            return
        import bisect

        above = np.flatnonzero(scores >= self._detector._threshold).tolist()
        values = scores.tolist()
        i, n = 0, len(values)
        while i < n:
            # Below the threshold PySceneDetect's flash filter changes nothing, unless a merge is open or it
            # has never seen a frame: skip to the next frame above it.
            if not (flash._merge_triggered or first_index + i == 0 or values[i] >= self._detector._threshold):
                k = bisect.bisect_left(above, i)
                if k == len(above):
                    break
                i = above[k]
            self._detector.injected_score = values[i]
            self._feed(first_index + i, None)
            i += 1
