"""What a shown clip and a source video's timeline look like to the templates: plain dicts, every candidate with
its score or its reason, every filter's verdict, and each piece of a video placed on its time axis."""

from __future__ import annotations

import heapq
import re
from typing import Any

from vlcurate.stages.report.gallery import sheet_name
from vlcurate.stages.report.runinfo import RunInfo

PIECE = re.compile(r"frames (\d+)-(\d+): (.*)")


def clip_card(row: dict[str, Any], sharded: set[str] | None) -> dict[str, Any]:
    """A gallery entry: the chosen caption first, then every other candidate by score, the rejected and failed
    ones last with their reasons; the filters' verdicts with their scores."""
    chosen = row.get("caption_teacher")
    candidates = []
    for c in row.get("candidates") or []:
        candidates.append({**c, "chosen": c["teacher"] == chosen and c["status"] == "ok"})
    candidates.sort(key=lambda c: (not c["chosen"], c["status"] != "ok",
                                   -(c["score"] if c["score"] is not None else -1e9), c["teacher"]))
    verdicts = [{"filter": f["filter"], "passed": f["passed"], "reason": f["reason"],
                 "scores": ", ".join(f"{s['name']} {fmt(s['value'])}" for s in f["scores"] or [])}
                for f in row.get("filters") or []]
    return {"clip_id": row["clip_id"], "path": row.get("path"), "title": row.get("title"),
            "start_s": row.get("start_s"), "end_s": row.get("end_s"),
            "duration_s": (row.get("end_s") or 0.0) - (row.get("start_s") or 0.0),
            "sheet": sheet_name(row["clip_id"]), "caption": row.get("caption"), "caption_teacher": chosen,
            "caption_score": row.get("caption_score"), "scorer": row.get("scorer"), "candidates": candidates,
            "filters": verdicts, "notes": row.get("split_notes") or [], "damaged": row.get("damaged"),
            "damage": row.get("damage"), "sharded": None if sharded is None else row["clip_id"] in sharded}


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def timeline_videos(run: RunInfo, limit: int) -> list[dict[str, Any]]:
    """The `limit` good source videos with the lowest ids (ids are content hashes: a uniform sample)."""
    heap: list[tuple[str, dict[str, Any]]] = []
    members: set[str] = set()  # a run without ingest's folder lists videos once per clip
    for _, table in run.parts(run.stages[0], ["video_id", "path", "title", "duration_s", "error"]):
        for row in table.to_pylist():
            if row.get("error") or not row.get("video_id") or row["video_id"] in members:
                continue
            item = (_neg(row["video_id"]), row)
            if len(heap) < limit:
                heapq.heappush(heap, item)
                members.add(row["video_id"])
            elif item[0] > heap[0][0]:
                members.discard(heapq.heapreplace(heap, item)[1]["video_id"])
                members.add(row["video_id"])
    return sorted((row for _, row in heap), key=lambda r: r["video_id"])


def _neg(text: str) -> str:
    """An order-reversing key for a hex id, so a min-heap keeps the lowest ids."""
    return "".join("fedcba9876543210"["0123456789abcdef".index(c)] if c in "0123456789abcdef" else c
                   for c in text.lower())


def timelines(run: RunInfo, limit: int) -> list[dict[str, Any]]:
    """Per shown video: its detector shots, its clips (sharded, filtered with why, failed with why, or kept) with
    their captions, and the pieces split dropped, each placed as a share of the video's duration."""
    if limit <= 0 or not run.has("split"):
        return []
    videos = timeline_videos(run, limit)
    ids = {v["video_id"] for v in videos}
    shots = run.select("split", ["video_id", "shot_index", "start_frame", "end_frame", "start_s", "end_s",
                                 "outcome"], "video_id", ids, side="shots")
    clips = run.select("split", ["video_id", "clip_id", "start_s", "end_s", "error"], "video_id", ids)
    fate = _fates(run, ids)
    out = []
    for video in videos:
        vid = video["video_id"]
        length = max([video.get("duration_s") or 0.0] + [c["end_s"] or 0.0 for c in clips if c["video_id"] == vid])
        place = _placer(length)
        mine_shots = sorted((s for s in shots if s["video_id"] == vid and s["shot_index"] is not None),
                            key=lambda s: s["shot_index"])
        out.append({**video, "length_s": length,
                    "shots": [{**place(s["start_s"], s["end_s"]), "label": f"shot {s['shot_index']}"}
                              for s in mine_shots],
                    "clips": [{**place(c["start_s"], c["end_s"]), **fate.get(c["clip_id"], _kept(c))}
                              for c in _in_time_order(clips, vid)],
                    "dropped": [{**place(*span), "label": label} for s in mine_shots for span, label in _drops(s)]})
    return out


def _in_time_order(clips: list[dict[str, Any]], video_id: str) -> list[dict[str, Any]]:
    """The video's placed clips by start: rows with no span (a duplicate of another input, an error before split
    cut anything) are left out before sorting, never compared."""
    mine = [c for c in clips if c["video_id"] == video_id and c["start_s"] is not None]
    return sorted(mine, key=lambda c: (c["start_s"], c["clip_id"] or ""))


def _kept(clip: dict[str, Any]) -> dict[str, Any]:
    if clip.get("error"):
        return {"state": "error", "label": clip["error"], "clip_id": clip["clip_id"]}
    return {"state": "kept", "label": clip["clip_id"], "clip_id": clip["clip_id"]}


def _fates(run: RunInfo, ids: set[str]) -> dict[str, dict[str, Any]]:
    """What became of each clip of these videos after split: filtered, failed, sharded or kept with a caption."""
    fate: dict[str, dict[str, Any]] = {}
    for name in run.filters:
        for row in run.select(name, ["clip_id", "reason"], "video_id", ids, side="filtered"):
            fate[row["clip_id"]] = {"state": "filtered", "label": f"{name}: {row['reason']}",
                                    "clip_id": row["clip_id"]}
    stage = run.clip_stage
    sharded = {r["key"] for r in run.select("shard", ["key"], "video_id", ids)} if run.has("shard") else None
    for row in run.select(stage, ["clip_id", "caption", "caption_teacher", "error"], "video_id", ids) if stage \
            else []:
        if row.get("error"):
            fate[row["clip_id"]] = {"state": "error", "label": row["error"], "clip_id": row["clip_id"]}
            continue
        state = "kept" if sharded is None else ("sharded" if row["clip_id"] in sharded else "unsharded")
        caption = row.get("caption")
        fate[row["clip_id"]] = {"state": state, "clip_id": row["clip_id"], "caption": caption,
                                "teacher": row.get("caption_teacher"),
                                "label": f"{caption} ({row.get('caption_teacher')})" if caption else row["clip_id"]}
    return fate


def _placer(length: float):
    scale = 100.0 / length if length > 0 else 0.0

    def place(start: float, end: float) -> dict[str, Any]:
        left = max(0.0, (start or 0.0) * scale)
        return {"start_s": start, "end_s": end, "left": round(left, 3),
                "width": round(max(0.15, ((end or 0.0) - (start or 0.0)) * scale), 3)}
    return place


def _drops(shot: dict[str, Any]) -> list[tuple[tuple[float, float], str]]:
    """The pieces of a shot that split dropped, in seconds (frames mapped linearly within the shot)."""
    frames = max(1, (shot["end_frame"] or 0) - (shot["start_frame"] or 0))
    per_frame = ((shot["end_s"] or 0.0) - (shot["start_s"] or 0.0)) / frames
    found = []
    for text in shot.get("outcome") or []:
        match = PIECE.match(text)
        if match and match.group(3).startswith("dropped"):
            a, b = int(match.group(1)), int(match.group(2))
            span = (shot["start_s"] + (a - shot["start_frame"]) * per_frame,
                    shot["start_s"] + (b - shot["start_frame"]) * per_frame)
            found.append((span, f"frames {a}-{b}: {match.group(3)}"))
    return found
