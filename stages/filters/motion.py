"""motion: how much a clip moves, from its stored frames; drops static clips (slides, still images) and, if asked,
camera-shake extremes.

`frame_diff` (default): the mean absolute difference of consecutive stored frames, 64 px wide grayscale, over 255.
`flow`: the mean Farneback optical-flow magnitude between them, in frame widths. Both read only what split stored:
no decode (`decoder_passes` stays 1). A clip with one stored frame has no motion to measure and is kept.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from vlcurate.stages.catalog import STAGES
from vlcurate.stages.filters.base import FilterConfig, FilterStage, gray_frames


class MotionConfig(FilterConfig):
    method: Literal["frame_diff", "flow"] = "frame_diff"
    min_motion: float | None = Field(0.003, ge=0, description="below this a clip is static (dropped)")
    max_motion: float | None = Field(None, ge=0, description="above this a clip is shaking too much (dropped)")
    width: int = Field(64, ge=16, description="frames are compared this many pixels wide")


@STAGES.register("motion")
class MotionFilter(FilterStage):
    config_class = MotionConfig
    summary = "Filter: score each clip's motion from its stored frames; drop static clips (and shaking ones)."
    primary = "motion"

    config: MotionConfig

    @property
    def method(self) -> str:  # type: ignore[override]
        return self.config.method

    def measure(self, rows: list[dict[str, Any]]) -> list[dict[str, float]]:
        out = []
        for row in rows:
            frames = gray_frames(row.get("frames") or [], self.config.width)
            pairs = list(zip(frames, frames[1:]))
            if not pairs:
                out.append({"motion": None})
                continue
            values = [self._flow(a, b) if self.config.method == "flow" else float(np.mean(np.abs(a - b))) / 255.0
                      for a, b in pairs]
            out.append({"motion": round(float(np.mean(values)), 6), "motion_max": round(float(np.max(values)), 6)})
        return out

    def _flow(self, a: np.ndarray, b: np.ndarray) -> float:
        import cv2

        flow = cv2.calcOpticalFlowFarneback(a.astype(np.uint8), b.astype(np.uint8), None, 0.5, 3, 9, 3, 5, 1.1, 0)
        return float(np.mean(np.linalg.norm(flow, axis=2))) / a.shape[1]

    def verdict(self, scores: dict[str, float], row: dict[str, Any]) -> str | None:
        motion, cfg = scores["motion"], self.config
        if motion is None:
            return None
        if cfg.min_motion is not None and motion < cfg.min_motion:
            return f"static: motion {motion:.5f} < {cfg.min_motion}"
        if cfg.max_motion is not None and motion > cfg.max_motion:
            return f"shaking: motion {motion:.5f} > {cfg.max_motion}"
        return None

    def limits(self) -> dict[str, dict[str, float]]:
        bounds = {"min": self.config.min_motion, "max": self.config.max_motion}
        return {"motion": {k: v for k, v in bounds.items() if v is not None}}

    def rule(self) -> str:
        parts = [f"motion < {self.config.min_motion}" if self.config.min_motion is not None else "",
                 f"motion > {self.config.max_motion}" if self.config.max_motion is not None else ""]
        return f"{self.config.method}: drop if " + " or ".join(p for p in parts if p) if any(parts) else "none"
