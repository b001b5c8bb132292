"""blank: black frames, frozen (still) clips and letterbox or pillarbox bars, from the stored frames.

Scores: `black_fraction` (stored frames whose mean luma is under `black_luma`), `frozen_fraction` (consecutive
frames that are the same picture), and the bars (`bar_top`, `bar_bottom`, `bar_left`, `bar_right`) in the
source's display pixels: the dark rows and columns at the edges of every stored frame. Bars are recorded, not
dropped: the crop box is in the clip's `filters` entry.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from vlcurate.stages import media
from vlcurate.stages.catalog import STAGES
from vlcurate.stages.filters.base import FilterConfig, FilterStage, gray_frames


class BlankConfig(FilterConfig):
    black_luma: float = Field(20.0, ge=0, le=255, description="a frame darker than this (mean luma) is black")
    max_black: float | None = Field(0.5, ge=0, le=1, description="drop a clip with more black frames than this")
    bar_luma: float = Field(24.0, ge=0, le=255, description="an edge row or column with 98% of its pixels this "
                                                             "dark is part of a bar")
    frozen_diff: float = Field(0.5, ge=0, description="consecutive frames closer than this (mean abs luma) are "
                                                      "the same picture")
    max_frozen: float | None = Field(1.0, ge=0, le=1, description="drop a clip with at least this share of frozen "
                                                                  "frame pairs (1.0: only wholly frozen clips)")


def bars(image: np.ndarray, luma: float) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) rows and columns at the edges darker than `luma`, never the whole frame."""
    dark = image < luma
    rows = dark.mean(axis=1) >= 0.98  # 98% of the row is dark: a bar, however noisy its encoding
    cols = dark.mean(axis=0) >= 0.98

    def run(mask: np.ndarray) -> int:
        n = int(np.argmax(~mask)) if (~mask).any() else len(mask)
        return n if n < len(mask) else 0

    return run(rows), run(rows[::-1]), run(cols), run(cols[::-1])


@STAGES.register("blank")
class BlankFilter(FilterStage):
    config_class = BlankConfig
    method = "luma"
    summary = "Filter: black and frozen clips (dropped) and letterbox or pillarbox bars (recorded), from the frames."
    primary = "black_fraction"

    config: BlankConfig

    def measure(self, rows: list[dict[str, Any]]) -> list[dict[str, float]]:
        return [self._measure(row) for row in rows]

    def _measure(self, row: dict[str, Any]) -> dict[str, float]:
        cfg = self.config
        frames = gray_frames(row.get("frames") or [])
        if not frames:
            return {"black_fraction": None}
        black = sum(float(f.mean()) < cfg.black_luma for f in frames) / len(frames)
        pairs = list(zip(frames, frames[1:]))
        frozen = (sum(float(np.mean(np.abs(a - b))) < cfg.frozen_diff for a, b in pairs) / len(pairs)
                  if pairs else 0.0)
        lit = [f for f in frames if float(f.mean()) >= cfg.black_luma] or frames
        found = np.min([bars(f, cfg.bar_luma) for f in lit], axis=0)  # a bar is dark in every lit frame
        width, height = media.display_size(row["width"], row["height"], row.get("sample_aspect_ratio") or 1.0,
                                           row.get("rotation") or 0, 1 << 30)
        sy, sx = height / frames[0].shape[0], width / frames[0].shape[1]  # stored pixels -> display pixels
        top, bottom, left, right = (round(found[0] * sy), round(found[1] * sy), round(found[2] * sx),
                                    round(found[3] * sx))
        return {"black_fraction": round(black, 6), "frozen_fraction": round(frozen, 6), "bar_top": float(top),
                "bar_bottom": float(bottom), "bar_left": float(left), "bar_right": float(right)}

    def verdict(self, scores: dict[str, float], row: dict[str, Any]) -> str | None:
        cfg = self.config
        if scores["black_fraction"] is None:
            return None
        if cfg.max_black is not None and scores["black_fraction"] > cfg.max_black:
            return f"black: {scores['black_fraction']:.2f} of the frames are black"
        if cfg.max_frozen is not None and len(row.get("frames") or []) > 1 and scores["frozen_fraction"] >= \
                cfg.max_frozen:
            return f"frozen: {scores['frozen_fraction']:.2f} of the frame pairs are the same picture"
        return None

    def limits(self) -> dict[str, dict[str, float]]:
        cfg = self.config
        return {name: {"max": value} for name, value in (("black_fraction", cfg.max_black),
                                                         ("frozen_fraction", cfg.max_frozen)) if value is not None}

    def rule(self) -> str:
        cfg = self.config
        return (f"drop if black_fraction > {cfg.max_black} (mean luma < {cfg.black_luma}) or frozen_fraction >= "
                f"{cfg.max_frozen}; bars recorded (rows, columns 98% darker than {cfg.bar_luma})")
