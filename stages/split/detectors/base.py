"""A detector sees every decoded frame once, in order, downscaled to the size it asks for, and reports the frames
that start a new shot. Streaming, so a long video never sits in memory."""

from __future__ import annotations

from typing import Any

import numpy as np

from vlcurate.pipeline.registry import Registry


class Detector:
    """`process` per frame, `finish` once; cuts are decoded frame indices that begin a new shot."""

    name: str = "base"
    pixel_format: str = "bgr24"
    scaler: str = "area"  # ffmpeg's scaler for the downscale: 2-tap ones alias on texture and add false cuts

    def __init__(self, fps: float, detect_width: int = 256, **params: Any):
        self.fps = fps
        self.detect_width = detect_width  # detectors that choose their own size (TransNetV2: 48x27) ignore it
        self.params = params

    def frame_size(self, width: int, height: int) -> tuple[int, int]:
        """Size of the frames this detector wants, from the video's coded size."""
        return width, height

    def process(self, index: int, frame: np.ndarray) -> None:
        raise NotImplementedError

    def process_batch(self, first_index: int, frames: np.ndarray) -> None:
        """Frames `first_index`, `first_index + 1`, ... as one (n, h, w, c) array; detectors that can vectorise
        override this."""
        for offset, frame in enumerate(frames):
            self.process(first_index + offset, frame)

    def finish(self, num_frames: int) -> list[int]:
        raise NotImplementedError


DETECTORS: Registry[type[Detector]] = Registry("detector", attribute="name", groups=("vlcurate.detectors",))
