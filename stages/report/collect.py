"""The run's numbers for the report: the funnel from the stages' stats, and the few distributions that stats do not
hold (clip durations, shots per video), each streamed one part at a time from a column or two."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pyarrow.compute as pc

from vlcurate.stages.report.runinfo import RunInfo, good_rows, new_errors, side_rows

STEP_LABELS = {"ingest": "videos", "split": "clips", "caption": "captioned", "score": "scored", "shard": "sharded"}


def funnel(run: RunInfo) -> list[dict[str, Any]]:
    """One step per finished stage (plus inputs and detector shots): what came out, what each stage found wrong
    by reason, and what the filters dropped (or, in tag mode, would drop) by reason."""
    steps: list[dict[str, Any]] = []
    for stage in run.stages:
        stats = run.stats[stage]
        if stage == run.stages[0] and stats.get("rows_in") is not None:
            steps.append(step("inputs", "input", stats["rows_in"], note="entries the input named or held"))
        if stage == "split" and run.has("split"):
            steps.append(step("shots", stage, side_rows(run, "split", "shots"), note="raw detector shots"))
        count = stats.get("samples", stats.get("rows_out", 0)) if run.schema_name(stage) == "shard_index" \
            else good_rows(stats)
        funnel_stats = stats.get("funnel") or {}
        steps.append(step(STEP_LABELS.get(stage, stage), stage, count, errors=new_errors(stage, stats),
                          dropped=funnel_stats.get("dropped") or {}, tagged=funnel_stats.get("tagged") or {},
                          note=(stats.get("filter") or {}).get("rule", ""), seconds=stats.get("seconds"),
                          memory={k: stats.get(f"{k}_peak_rss_mb") for k in ("driver", "worker")}))
    top = max((s["count"] for s in steps), default=0) or 1
    for s in steps:
        s["share"] = round(100.0 * s["count"] / top, 1)
    return steps


def step(label: str, stage: str, count: int, *, errors: dict[str, int] | None = None,
         dropped: dict[str, int] | None = None, tagged: dict[str, int] | None = None, note: str = "",
         seconds: float | None = None, memory: dict[str, float | None] | None = None) -> dict[str, Any]:
    return {"label": label, "stage": stage, "count": int(count), "errors": dict(sorted((errors or {}).items())),
            "dropped": dict(sorted((dropped or {}).items())), "tagged": dict(sorted((tagged or {}).items())),
            "note": note, "seconds": seconds, "memory": {"driver": None, "worker": None, **(memory or {})}}


def errors_by_stage(run: RunInfo) -> list[dict[str, Any]]:
    """Every stage's own errors by reason, with counts: the whole run's, from stats alone."""
    rows = []
    for stage in run.stages:
        for reason, count in new_errors(stage, run.stats[stage]).items():
            rows.append({"stage": stage, "reason": reason, "count": count})
    return rows


def error_rows(run: RunInfo, limit: int) -> list[dict[str, Any]]:
    """The first `limit` inputs that produced nothing, with their error: shard's error list when the run was
    sharded (every input that gave no sample), else the error rows of the last stage."""
    if limit <= 0:
        return []
    last = run.stages[-1]
    side = "errors" if run.schema_name(last) == "shard_index" else None
    found: list[dict[str, Any]] = []
    for _, table in run.parts(last, ["path", "clip_id", "error"], side=side):
        if "error" not in table.column_names:
            continue
        errors = table.filter(pc.is_valid(table.column("error")))
        found.extend(errors.slice(0, limit - len(found)).to_pylist())
        if len(found) >= limit:
            break
    return found


def durations(run: RunInfo, stage: str | None) -> np.ndarray:
    """Every good clip's length in seconds: one float per clip, the only per-clip data the report holds whole."""
    chunks = [np.zeros(0, np.float32)]
    for _, table in run.parts(stage, ["start_s", "end_s", "error"]) if stage else []:
        good = table.filter(pc.is_null(table.column("error"))) if "error" in table.column_names else table
        chunks.append((good.column("end_s").to_numpy(zero_copy_only=False)
                       - good.column("start_s").to_numpy(zero_copy_only=False)).astype(np.float32))
    return np.concatenate(chunks)


def shots_per_video(run: RunInfo) -> dict[int, int]:
    """{shots: videos with that many}; split writes each video's shots in one part, so counting per part is
    exact and never holds more than a part's video ids."""
    videos: Counter = Counter()
    for _, table in run.parts("split", ["video_id"], side="shots"):
        counts = pc.value_counts(table.column("video_id"))
        videos.update(counts.field("counts").to_pylist())
    return dict(sorted(videos.items()))


def per_second(count: float | None, seconds: float | None) -> float | None:
    return count / seconds if count and seconds else None


def teacher_table(run: RunInfo) -> list[dict[str, Any]]:
    """Per teacher: candidates by status, the quality gate's flags, win rate, mean score, generation seconds, tokens
    written and tokens/s (caption's and score's stats; teachers without a language model write no tokens)."""
    caption, score = run.stats.get("caption", {}), run.stats.get("score", {})
    win, hist = score.get("win_rate") or {}, score.get("score_histograms") or {}
    seconds, tokens = caption.get("teacher_seconds") or {}, caption.get("teacher_tokens") or {}
    flagged, actions = caption.get("quality_flags") or {}, caption.get("quality_actions") or {}
    rows = []
    for teacher, statuses in (caption.get("teachers") or {}).items():
        flags = ", ".join(f"{flag} {n}" + (" (rejected)" if actions.get(flag) == "reject" else "")
                          for flag, n in (flagged.get(teacher) or {}).items())
        rows.append({"teacher": teacher, "ok": statuses.get("ok", 0), "rejected": statuses.get("rejected", 0),
                     "error": statuses.get("error", 0), "win_rate": win.get(teacher),
                     "mean_score": (hist.get(teacher) or {}).get("mean"), "seconds": seconds.get(teacher),
                     "flags": flags or "-", "tokens": tokens.get(teacher) or None,
                     "tokens_per_s": per_second(tokens.get(teacher), seconds.get(teacher))})
    return rows


def thresholds(run: RunInfo) -> list[dict[str, str]]:
    """The rules that decided what was kept, in run order: each stage says its own in its stats (`rules`; a filter's
    rule and mode under `filter`)."""
    rows = []
    for name in run.stages:
        stats = run.stats.get(name, {})
        rows += [{"stage": name, "rule": rule} for rule in stats.get("rules") or []]
        if "filter" in stats:
            spec = stats["filter"]
            rows.append({"stage": name, "rule": f"{spec.get('rule', '')} (mode {spec.get('mode', '')})"})
    return rows
