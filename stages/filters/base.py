"""What every filter shares: measure each clip, record the verdict with its provenance, drop (or tag) it, list what
was dropped in `<filter>/filtered/`, count the funnel and the score distribution.

A filter implements `measure` (numbers per clip, from the frames split stored) and `verdict` (why those numbers
drop the clip, or None), and says its rule in words (`rule`). Its output keeps whatever columns came in, so it can
stand after split or after score.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from vlcurate.manifests import CLIPS, FILTERED, STORED_FRAMES
from vlcurate.pipeline.stage import Context, Output, Stage, StageConfig, Traits, passed_through


class FilterConfig(StageConfig):
    mode: Literal["drop", "tag"] = Field("drop", description="drop clips that fail the rule, or only record the "
                                                             "scores and verdicts (choose thresholds later)")


def gray_frames(frames: list[bytes], width: int = 0, at_least: tuple[int, int] = (0, 0)):
    """The stored JPEGs as grayscale float32 arrays (0..255): at their own size, or `width` pixels wide, or just at
    least `at_least` (width, height). A smaller picture is decoded small (libjpeg-turbo's DCT scaling, 1/2 to 1/8),
    so a 64 px motion frame never costs a full-size decode."""
    return [gray_frame(data, width, at_least) for data in frames]


def gray_frame(data: bytes, width: int = 0, at_least: tuple[int, int] = (0, 0)) -> np.ndarray:
    import cv2
    import simplejpeg

    height = 0
    if width:
        full_height, full_width = simplejpeg.decode_jpeg_header(data)[:2]
        height = max(1, round(full_height * width / full_width))
    min_width, min_height = max(width, at_least[0]), max(height, at_least[1])
    if min_width or min_height:
        image = simplejpeg.decode_jpeg(data, colorspace="GRAY", min_width=min_width, min_height=min_height)[..., 0]
    else:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if width and image.shape[1] != width:
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return image.astype(np.float32)


def spread(frames: list[bytes], count: int) -> list[bytes]:
    """Up to `count` of a clip's stored frames, spread evenly over it (each at most once), in time order."""
    from vlcurate.stages.media import sample_frames

    return [frames[i] for i in sorted(set(sample_frames(len(frames), min(count, len(frames)))))] if frames else []


class FilterStage(Stage):
    """Base of the filters: subclasses set `name`, `config_class`, `method`, and implement `measure`, `verdict`,
    `rule`."""

    reads = CLIPS  # clips (split's, or score's rows, which keep every clip column)
    traits = Traits(loads=(STORED_FRAMES,), local_parallel=True, keeps_loaded=False)
    side_schemas = {"filtered": FILTERED.schema}  # the clips it dropped, with why
    method: ClassVar[str] = ""
    primary: ClassVar[str] = ""  # the score whose distribution stats.json reports
    output_schema = CLIPS.schema

    config: FilterConfig

    def __init__(self, config: FilterConfig | None = None):
        super().__init__(config)
        self.model, self.weights = "", "none"

    def set_input_schema(self, input_schema: pa.Schema) -> None:
        """Its output is its input as it came (a filter may stand after split or after score)."""
        self.schema = passed_through(input_schema, self.traits)

    def measure(self, rows: list[dict[str, Any]]) -> list[dict[str, float]]:
        """The numbers for each clip (rows carry their `frames`)."""
        raise NotImplementedError

    def verdict(self, scores: dict[str, float], row: dict[str, Any]) -> str | None:
        """Why these numbers drop the clip ("<reason>: <detail>"), or None to keep it."""
        raise NotImplementedError

    def rule(self) -> str:
        raise NotImplementedError

    def limits(self) -> dict[str, dict[str, float]]:
        """The rule's numbers per score (`{"motion": {"min": 0.003}}`): what the report draws on each histogram and
        ranks the dropped clips by (nearest first)."""
        return {}

    def process_batch(self, batch: pa.Table, ctx: Context = Context()) -> Output:
        self.ensure_setup()
        rows = batch.to_pylist()
        dropped: list[dict[str, Any]] = []
        funnel: dict[str, Any] = {"clips_in": 0, "clips_out": 0}
        good = [r for r in rows if not r.get("error")]
        measured = dict(zip((id(r) for r in good), self.measure(good))) if good else {}
        kept = []
        for row in rows:
            if row.get("error"):
                kept.append(row)
                continue
            scores = measured[id(row)]
            reason = self.verdict(scores, row)
            entry = {"filter": self.name, "method": self.method, "model": self.model, "weights": self.weights,
                     "scores": [{"name": k, "value": v} for k, v in scores.items()], "threshold": self.rule(),
                     "passed": reason is None, "reason": reason}
            row["filters"] = [*(row.get("filters") or []), entry]
            self._count(funnel, reason)
            if reason is not None and self.config.mode == "drop":
                dropped.append({**{k: row.get(k) for k in FILTERED.schema.names}, "filter": self.name,
                                      "reason": reason, "scores": entry["scores"]})
            else:
                kept.append(row)
        return Output(pa.Table.from_pylist(kept, schema=self.schema),
                      {"filtered": pa.Table.from_pylist(dropped, schema=FILTERED.schema)}, {"funnel": funnel})

    def _count(self, funnel: dict[str, Any], reason: str | None) -> None:
        """The funnel: clips in, out, and by reason dropped (or, in tag mode, kept but failing the rule)."""
        funnel["clips_in"] = funnel.get("clips_in", 0) + 1
        dropped = reason is not None and self.config.mode == "drop"
        if not dropped:
            funnel["clips_out"] = funnel.get("clips_out", 0) + 1
        if reason is not None:
            by_reason = funnel.setdefault("dropped" if dropped else "tagged", {})
            key = reason.split(":")[0]
            by_reason[key] = by_reason.get(key, 0) + 1

    def stats(self, view: Any) -> dict[str, Any]:
        """The distribution of each score over every clip measured, kept or dropped."""
        values: dict[str, list[float]] = {}
        for part in view.parts(["filters"]):
            for entries in part.column("filters").to_pylist():
                for entry in entries or []:
                    if entry["filter"] == self.name:
                        for score in entry["scores"]:
                            values.setdefault(score["name"], []).append(score["value"])
        for part in view.parts(["scores"], kind="filtered"):
            for scores in part.column("scores").to_pylist():
                for score in scores:
                    values.setdefault(score["name"], []).append(score["value"])
        return {"filter": {"method": self.method, "mode": self.config.mode, "rule": self.rule(),
                           "limits": self.limits(),
                           "scores": {name: distribution(v) for name, v in sorted(values.items())}}}


def distribution(values: list[float]) -> dict[str, Any]:
    data = np.asarray([v for v in values if v is not None and np.isfinite(v)], np.float64)
    if not len(data):
        return {"count": 0}
    counts, edges = np.histogram(data, bins=10)
    return {"count": int(len(data)), "min": round(float(data.min()), 6), "max": round(float(data.max()), 6),
            "mean": round(float(data.mean()), 6),
            "percentiles": {str(p): round(float(np.percentile(data, p)), 6) for p in (5, 25, 50, 75, 95)},
            "histogram": {"edges": [round(float(e), 6) for e in edges], "counts": counts.tolist()}}

