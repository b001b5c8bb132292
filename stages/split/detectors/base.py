"""A detector sees every decoded frame once, in order, downscaled, and reports the frames that start a new shot."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.registry import Registry


class Detector:
    """Streaming: `process` per frame, `finish` once; cuts are decoded frame indices that begin a new shot."""

    name: str = "base"

    def __init__(self, fps: float, **params: Any):
        self.fps = fps
        self.params = params

    def process(self, index: int, bgr: np.ndarray) -> None:
        raise NotImplementedError

    def finish(self, num_frames: int) -> list[int]:
        raise NotImplementedError


DETECTORS: Registry[type[Detector]] = Registry("detector")
