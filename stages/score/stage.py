"""score: a retrieval model scores every candidate of every clip; the best is chosen, every score is kept."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import Field

from manifests import SCORED
from pipeline.stage import Stage, StageConfig, error_text
from stages import models
from stages.score.scorers import SCORERS, Scorer, ScorerConfig


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


class ScoreStage(Stage):
    name = "score"
    config_class = ScoreConfig
    input_stage = "caption"
    output_schema = SCORED.schema
    sort_keys = ("path", "start_frame")
    input_key = ("path", "clip_id")

    config: ScoreConfig

    def setup(self) -> None:
        models.set_torch_threads(self.resources.threads)
        self.scorer: Scorer = SCORERS.get(self.config.scorer.kind)(self.config.scorer)
        self.scorer.setup()

    def process_batch(self, batch: pa.Table) -> pa.Table:
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

    def finalize(self, table: pa.Table, out_dir: str) -> pa.Table:
        """Run-wide filters: they need every clip's score, so they run here, on the driver, local or Ray."""
        table = super().finalize(table, out_dir)
        cfg = self.config
        if cfg.min_score is None and cfg.keep_top_fraction is None:
            return table
        rows = table.to_pylist()
        live = [r for r in rows if not r["error"] and r["caption_score"] is not None]
        cutoff = cfg.min_score
        if cfg.keep_top_fraction is not None and live:
            keep = max(1, int(round(len(live) * cfg.keep_top_fraction)))
            # rank by score, ties by clip id, so the cut is the same whatever the batch order
            ranked = sorted(live, key=lambda r: (-r["caption_score"], r["clip_id"]))
            kept_ids = {r["clip_id"] for r in ranked[:keep]}
            top_cut = ranked[keep - 1]["caption_score"]
            for r in live:
                if r["clip_id"] not in kept_ids:
                    r["error"] = error_text(self.name, "below_top_fraction",
                                            f"score {r['caption_score']} outside the best {cfg.keep_top_fraction} "
                                            f"of the run (cut at {top_cut})")
        if cutoff is not None:
            for r in live:
                if not r["error"] and r["caption_score"] < cutoff:
                    r["error"] = error_text(self.name, "below_min_score", f"score {r['caption_score']} < {cutoff}")
        return self.to_table(rows)

    def stats(self, table: pa.Table) -> dict[str, Any]:
        rows = table.select(["caption_teacher", "candidates", "error"]).to_pylist()
        chosen = [r for r in rows if not r["error"] and r["caption_teacher"]]
        wins = Counter(r["caption_teacher"] for r in chosen)
        scores: dict[str, list[float]] = {}
        for r in chosen:
            for c in r["candidates"]:
                if c["score"] is not None:
                    scores.setdefault(c["teacher"], []).append(c["score"])
        hist = {}
        for teacher, values in sorted(scores.items()):
            counts, edges = np.histogram(values, bins=10)
            hist[teacher] = {"mean": round(float(np.mean(values)), 6), "counts": counts.tolist(),
                             "edges": [round(float(e), 6) for e in edges]}
        truncated = Counter(c["teacher"] for r in rows for c in (r["candidates"] or []) if c.get("text_truncated"))
        return {
            "clips_scored": len(chosen),
            "texts_truncated": dict(sorted(truncated.items())),
            "win_rate": {t: round(wins[t] / len(chosen), 4) for t in sorted(scores)} if chosen else {},
            "score_histograms": hist,
        }
