"""PySceneDetect's detectors fed with our own decoded, downscaled frames, so detection and frame sampling share
one decode and the detector never touches full-resolution pixels."""

from __future__ import annotations

from typing import Any

import numpy as np

from stages.split.detectors.base import DETECTORS, Detector


class _SceneDetect(Detector):
    detector_class_name: str

    def __init__(self, fps: float, detect_width: int = 256, **params: Any):
        super().__init__(fps, **params)
        import scenedetect

        self.detect_width = detect_width
        self._timecode = scenedetect.FrameTimecode
        self._detector = getattr(scenedetect, self.detector_class_name)(**params)
        self._cuts: list[int] = []

    def frame_size(self, width: int, height: int) -> tuple[int, int]:
        w = min(self.detect_width, width)
        return w, max(2, int(round(height * w / width / 2)) * 2)

    def process(self, index: int, frame: np.ndarray) -> None:
        for cut in self._detector.process_frame(self._timecode(index, self.fps), frame):
            self._cuts.append(cut.frame_num)

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
