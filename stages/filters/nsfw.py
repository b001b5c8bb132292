"""nsfw: nudity, with NudeNet's real detector (320n ONNX, MIT, in the `nudenet` wheel), on the stored frames.

Score: `nsfw`, the highest confidence of an exposed-body class over the frames read. A clip at or above
`max_nsfw` is dropped.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from pydantic import Field

from vlcurate.stages.catalog import STAGES
from vlcurate.stages.filters.base import FilterConfig, FilterStage, spread

EXPOSED = ("FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "BUTTOCKS_EXPOSED",
           "ANUS_EXPOSED")


class NsfwConfig(FilterConfig):
    max_nsfw: float = Field(0.5, ge=0, le=1, description="drop a clip with an exposed-body detection this confident")
    frames: int = Field(3, ge=1, description="stored frames read per clip, spread evenly")


@STAGES.register("nsfw")
class NsfwFilter(FilterStage):
    config_class = NsfwConfig
    method = "nudenet"
    summary = "Filter: nudity with NudeNet's 320n detector on the stored frames; drop clips above a confidence."
    primary = "nsfw"
    # a model loaded once per worker, which runs threads of its own
    traits = dataclasses.replace(FilterStage.traits, keeps_loaded=True, local_parallel=False)

    config: NsfwConfig

    def setup(self) -> None:
        from nudenet import NudeDetector

        from vlcurate.stages.models import dist_version

        self.detector = NudeDetector()
        self.model = "NudeNet 320n"
        self.weights = f"pypi:nudenet=={dist_version('nudenet')}"

    def measure(self, rows: list[dict[str, Any]]) -> list[dict[str, float]]:
        import cv2

        out = []
        for row in rows:
            picked = spread(row.get("frames") or [], self.config.frames)
            best = 0.0
            for data in picked:
                image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                for found in self.detector.detect(image):
                    if found["class"] in EXPOSED:
                        best = max(best, float(found["score"]))
            out.append({"nsfw": round(best, 6) if picked else None})
        return out

    def verdict(self, scores: dict[str, float], row: dict[str, Any]) -> str | None:
        if scores["nsfw"] is None or scores["nsfw"] < self.config.max_nsfw:
            return None
        return f"nsfw: exposed-body detection at {scores['nsfw']:.2f} (>= {self.config.max_nsfw})"

    def limits(self) -> dict[str, dict[str, float]]:
        return {"nsfw": {"max": self.config.max_nsfw}}

    def rule(self) -> str:
        return f"drop if an exposed-body class ({', '.join(EXPOSED)}) is detected at >= {self.config.max_nsfw}"
