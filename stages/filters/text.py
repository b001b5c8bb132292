"""text: on-screen text, read with real OCR weights that ship on PyPI (PP-OCRv4 detection and recognition in ONNX,
`rapidocr-onnxruntime`), from the stored frames.

Scores: `text_area` (the share of the frame its text boxes cover, mean over the frames read), `text_boxes` (most
boxes in one frame), `corner_text` (boxes in a corner at the same place in every frame read: logos, watermarks,
as cosmos-curate flags them). A clip with more text than `max_text_area` is dropped (slides, screen recordings,
burned-in subtitles); corner text is recorded.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from pydantic import Field

from vlcurate.stages.catalog import STAGES
from vlcurate.stages.filters.base import FilterConfig, FilterStage, spread


class TextConfig(FilterConfig):
    max_text_area: float | None = Field(0.05, ge=0, le=1, description="drop a clip whose text covers more of the "
                                                                      "frame than this")
    min_confidence: float = Field(0.5, ge=0, le=1, description="recognised text below this confidence is ignored")
    min_chars: int = Field(2, ge=1, description="text with fewer letters or digits is ignored (a lone shape read as "
                                                "a glyph, such as a square read as '口')")
    frames: int = Field(2, ge=1, description="stored frames read per clip, spread evenly (OCR costs ~0.3 s each)")
    corner: float = Field(0.25, gt=0, le=0.5, description="a box within this share of the width and height of a "
                                                          "corner is corner text")


def _corner(box: np.ndarray, w: int, h: int, share: float) -> tuple[int, int] | None:
    x0, y0 = box.min(axis=0)
    x1, y1 = box.max(axis=0)
    horizontal = 0 if x1 <= w * share else 1 if x0 >= w * (1 - share) else None
    vertical = 0 if y1 <= h * share else 1 if y0 >= h * (1 - share) else None
    return None if horizontal is None or vertical is None else (horizontal, vertical)


@STAGES.register("text")
class TextFilter(FilterStage):
    config_class = TextConfig
    method = "ocr"
    summary = "Filter: on-screen text with PP-OCRv4 (rapidocr-onnxruntime); drop clips with too much of it."
    primary = "text_area"
    # a model loaded once per worker, which runs threads of its own
    traits = dataclasses.replace(FilterStage.traits, keeps_loaded=True, local_parallel=False)

    config: TextConfig

    def setup(self) -> None:
        from rapidocr_onnxruntime import RapidOCR

        from vlcurate.stages.models import dist_version

        self.engine = RapidOCR()
        self.model = "PP-OCRv4 det + rec, mobile v2.0 cls (rapidocr-onnxruntime)"
        self.weights = f"pypi:rapidocr-onnxruntime=={dist_version('rapidocr_onnxruntime')}"

    def read(self, image: np.ndarray) -> list[tuple[np.ndarray, str, float]]:
        """(box corners, text, confidence) of the text in a BGR image."""
        found, _ = self.engine(image)
        return [(np.asarray(box, np.float32), text, float(score)) for box, text, score in found or []
                if float(score) >= self.config.min_confidence
                and sum(ch.isalnum() for ch in text) >= self.config.min_chars]

    def measure(self, rows: list[dict[str, Any]]) -> list[dict[str, float]]:
        import cv2

        out = []
        for row in rows:
            picked = spread(row.get("frames") or [], self.config.frames)
            if not picked:
                out.append({"text_area": None})
                continue
            areas, counts, corners = [], [], []
            for data in picked:
                image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                h, w = image.shape[:2]
                boxes = self.read(image)
                mask = np.zeros((h, w), np.uint8)
                for box, _, _ in boxes:
                    cv2.fillPoly(mask, [box.astype(np.int32)], 1)
                areas.append(float(mask.mean()))
                counts.append(len(boxes))
                corners.append({c for box, _, _ in boxes if (c := _corner(box, w, h, self.config.corner))})
            steady = set.intersection(*corners) if corners else set()
            out.append({"text_area": round(float(np.mean(areas)), 6), "text_boxes": float(max(counts)),
                        "corner_text": float(len(steady))})
        return out

    def verdict(self, scores: dict[str, float], row: dict[str, Any]) -> str | None:
        limit = self.config.max_text_area
        if scores["text_area"] is None or limit is None or scores["text_area"] <= limit:
            return None
        return f"text: covers {scores['text_area']:.3f} of the frame (> {limit})"

    def limits(self) -> dict[str, dict[str, float]]:
        limit = self.config.max_text_area
        return {"text_area": {"max": limit}} if limit is not None else {}

    def rule(self) -> str:
        return (f"drop if text (confidence >= {self.config.min_confidence}) covers more than "
                f"{self.config.max_text_area} of the frame; corner text recorded")
