"""score: a retrieval model scores every candidate of every clip; the best is chosen, every score is kept."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import Field

from vlcurate.manifests import CAPTIONS, SCORED, STORED_FRAMES
from vlcurate.pipeline import storage
from vlcurate.pipeline.parts import iter_parts
from vlcurate.pipeline.stage import Context, Stage, StageConfig, Traits, error_text
from vlcurate.stages import torch_setup
from vlcurate.stages.scorers import SCORERS, Scorer, ScorerConfig
from vlcurate.stages.catalog import STAGES


class ScoreConfig(StageConfig):
    scorer: ScorerConfig = Field(default_factory=ScorerConfig)
    decimals: int = Field(6, ge=1, le=12, description="scores are rounded to this many decimals")
    min_score: float | None = Field(None, description="drop clips whose best caption scores below this "
                                    "(Panda-70M: 0.43 on its model's scale)")
    keep_top_fraction: float | None = Field(None, gt=0, le=1, description="keep only this fraction of clips, the "
                                            "best-scored over the whole run (HowToCaption's global top-K)")


def choose(candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The highest-scored usable candidate; ties go to the earlier teacher in config order (deterministic)."""
    best = None
    for c in candidates:
        if c["status"] != "ok" or c["score"] is None:
            continue
        if best is None or c["score"] > best["score"]:
            best = c
    return best


@STAGES.register("score")
class ScoreStage(Stage):
    config_class = ScoreConfig
    reads = CAPTIONS
    summary = "Score every candidate caption with a video-text retrieval model and choose the best."
    output_schema = SCORED.schema
    traits = Traits(loads=(STORED_FRAMES,))

    config: ScoreConfig

    def passes(self) -> list[Stage]:
        """Scoring, then the run-wide filters if any are set (writing the same columns)."""
        cfg = self.config
        if cfg.min_score is None and cfg.keep_top_fraction is None:
            return [self]
        cut = RunWideFilter(cfg)
        cut.schema = self.schema
        return [self, cut]

    def __init__(self, config: ScoreConfig | None = None):
        super().__init__(config)
        # resolved here, on the driver: the class travels to the workers by reference, whatever they imported
        self.scorer_class = SCORERS.get(self.config.scorer.kind)

    def setup(self) -> None:
        torch_setup.set_torch_threads(self.resources.threads)
        self.scorer: Scorer = self.scorer_class(self.config.scorer)
        self.scorer.setup()

    def process_batch(self, batch: pa.Table, ctx: Context = Context()) -> pa.Table:
        self.ensure_setup()
        rows = batch.to_pylist()
        live = [r for r in rows if not r.get("error") and r.get("frames")]
        for r in rows:
            if not r.get("error") and not r.get("frames"):
                r["error"] = error_text(self.name, "no_frames", "the clip has no stored frames to score")
        if live:
            texts = [[c["text"] for c in r["candidates"] if c["status"] == "ok"] for r in live]
            scores = self.scorer.score_pairs([r["frames"] for r in live], texts)
            for n, r in enumerate(live):
                k = 0
                for c in r["candidates"]:
                    if c["status"] == "ok":
                        c["score"] = round(float(scores[n][k]), self.config.decimals)
                        c["text_truncated"] = self.scorer.truncated(c["text"])
                        k += 1
                best = choose(r["candidates"])
                if best is None:
                    r["error"] = error_text(self.name, "no_candidate", "no usable candidate caption")
                    continue
                r["caption"], r["caption_teacher"], r["caption_score"] = best["text"], best["teacher"], best["score"]
                r["scorer"] = self.scorer.label
        return self.to_table(rows)

    def stats(self, view: Any) -> dict[str, Any]:
        """Win rates, truncations and per-teacher score histograms, read part by part: a first pass finds each
        teacher's range, a second counts into the same 10 bins `np.histogram` would use over all scores at once."""
        columns = ["caption_teacher", "candidates", "error"]
        wins: Counter = Counter()
        truncated: Counter = Counter()
        low: dict[str, float] = {}
        high: dict[str, float] = {}
        total: dict[str, float] = {}
        count: Counter = Counter()
        for rows in (part.to_pylist() for part in view.parts(columns)):
            for r in rows:
                truncated.update(c["teacher"] for c in r["candidates"] or [] if c.get("text_truncated"))
                if r["error"] or not r["caption_teacher"]:
                    continue
                wins[r["caption_teacher"]] += 1
                for c in r["candidates"]:
                    if c["score"] is not None:
                        t, v = c["teacher"], c["score"]
                        low[t], high[t] = min(low.get(t, v), v), max(high.get(t, v), v)
                        total[t] = total.get(t, 0.0) + v
                        count[t] += 1
        chosen = sum(wins.values())
        ranges = {t: (low[t] - 0.5, high[t] + 0.5) if low[t] == high[t] else (low[t], high[t]) for t in low}
        counts = {t: np.zeros(10, np.int64) for t in low}
        for rows in (part.to_pylist() for part in view.parts(columns)) if low else ():
            values: dict[str, list[float]] = {}
            for r in rows:
                if not r["error"] and r["caption_teacher"]:
                    for c in r["candidates"]:
                        if c["score"] is not None:
                            values.setdefault(c["teacher"], []).append(c["score"])
            for t, v in values.items():
                counts[t] += np.histogram(v, bins=10, range=ranges[t])[0]
        hist = {t: {"mean": round(total[t] / count[t], 6), "counts": counts[t].tolist(),
                    "edges": [round(float(e), 6) for e in np.linspace(*ranges[t], 11)]} for t in sorted(low)}
        return {
            "clips_scored": chosen,
            "texts_truncated": dict(sorted(truncated.items())),
            "win_rate": {t: round(wins[t] / chosen, 4) for t in sorted(low)} if chosen else {},
            "score_histograms": hist,
            # the run-wide cuts, in words, for the report and the card
            "rules": [f"min_score {self.config.min_score}, keep_top_fraction {self.config.keep_top_fraction}"],
        }


class RunWideFilter(Stage):
    """`min_score` and `keep_top_fraction`: the driver reads every part's (clip_id, caption_score, error), decides
    the cut (a score, and for ties at it the last clip id kept: the same clips whatever the parts or runner),
    and workers mark the rest of each part."""

    name = "score"
    config_class = ScoreConfig
    output_schema = SCORED.schema
    traits = Traits(keeps_loaded=False)

    config: ScoreConfig

    def __init__(self, config: ScoreConfig | None = None):
        super().__init__(config)
        self.top: tuple[float, str] | None = None  # keep (score > s) or (score == s and clip_id <= id)

    @property
    def label(self) -> str:
        return "score:filter"

    def prepare(self, pass_input: list[str], stage_input: list[tuple[str, int]]) -> None:
        fraction = self.config.keep_top_fraction
        self.top = None
        if fraction is None:
            return
        files = [storage.path(p) for p in pass_input]
        scores = np.array([s for part in iter_parts(files, ["caption_score", "error"])
                           for s, e in zip(part.column("caption_score").to_pylist(), part.column("error").to_pylist())
                           if not e and s is not None], np.float64)
        if not len(scores):
            return
        keep = max(1, int(round(len(scores) * fraction)))
        cut = float(np.partition(scores, len(scores) - keep)[len(scores) - keep])  # the keep-th best score
        room = keep - int((scores > cut).sum())
        tied = sorted(i for part in iter_parts(files, ["clip_id", "caption_score", "error"])
                      for i, s, e in zip(*(part.column(c).to_pylist() for c in ("clip_id", "caption_score", "error")))
                      if not e and s == cut)
        self.top = (cut, tied[room - 1])

    def process_batch(self, batch: pa.Table, ctx: Context = Context()) -> pa.Table:
        cfg = self.config
        rows = batch.to_pylist()
        for r in rows:
            score = r["caption_score"]
            if r["error"] or score is None:
                continue
            if self.top is not None and not (score > self.top[0] or (score == self.top[0]
                                                                     and r["clip_id"] <= self.top[1])):
                r["error"] = error_text("score", "below_top_fraction", f"score {score} outside the best "
                                        f"{cfg.keep_top_fraction} of the run (cut at {self.top[0]})")
            elif cfg.min_score is not None and score < cfg.min_score:
                r["error"] = error_text("score", "below_min_score", f"score {score} < {cfg.min_score}")
        return self.to_table(rows)
