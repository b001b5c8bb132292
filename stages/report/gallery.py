"""Which clips the report shows, and what it shows of each: a seeded sample of the run's clips (all of them in a
small run), each filter's dropped clips nearest its threshold, and a contact sheet of every shown clip's stored
frames. Selection streams the id columns with bounded heaps; only the chosen rows are read whole."""

from __future__ import annotations

import hashlib
import heapq
import io
import math
from typing import Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vlcurate.pipeline import parts, storage
from vlcurate.stages.report.runinfo import RunInfo


def rank(seed: int, key: str) -> int:
    """A clip's place in the sample: the first 8 bytes of a seeded SHA-256, the same on every machine."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big")


def sample(run: RunInfo, stage: str, limit: int, seed: int) -> tuple[list[dict[str, Any]], int]:
    """The `limit` good clips of `stage` with the lowest ranks, as whole rows sorted by source and time, and the
    number of good clips there were. One pass over the clip id and error columns holds at most `limit` ids."""
    heap: list[tuple[int, str, int]] = []  # (-rank, file, row): the largest rank is the first to go
    total = 0
    for path, table in run.parts(stage, ["clip_id", "error"]):
        ids = table.column("clip_id").to_pylist()
        errors = table.column("error").to_pylist() if "error" in table.column_names else [None] * len(ids)
        for row, (clip_id, error) in enumerate(zip(ids, errors)):
            if error or clip_id is None:
                continue
            total += 1
            item = (-rank(seed, clip_id), str(path), row)
            if len(heap) < limit:
                heapq.heappush(heap, item)
            elif item > heap[0]:
                heapq.heapreplace(heap, item)
    rows = read_positions((file, row) for _, file, row in heap)
    rows.sort(key=lambda r: (r.get("path") or "", r.get("start_s") or 0.0, r["clip_id"]))
    return rows, total


def read_positions(positions: Iterable[tuple[str, int]]) -> list[dict[str, Any]]:
    by_file: dict[str, list[int]] = {}
    for file, row in positions:
        by_file.setdefault(file, []).append(row)
    rows: list[dict[str, Any]] = []
    for file, wanted in sorted(by_file.items()):
        columns = pq.read_schema(file).names
        rows.extend(parts.read_rows(storage.path(file), sorted(wanted), columns).to_pylist())
    return rows


def margin(scores: dict[str, float], limits: dict[str, dict[str, float]]) -> float:
    """How far a clip's scores sit from the rule's nearest limit, in units of that limit (0: on the line)."""
    best = math.inf
    for name, bounds in limits.items():
        value = scores.get(name)
        if value is None:
            continue
        for limit in bounds.values():
            best = min(best, abs(value - limit) / (abs(limit) or 1.0))
    return best


def flagged(run: RunInfo, name: str, limit: int) -> tuple[list[dict[str, Any]], int]:
    """The clips filter `name` dropped (drop mode: its `filtered` table) or failed (tag mode: the verdicts in the
    last clip manifest), the `limit` nearest its threshold first; and how many there were."""
    spec = run.stats[name]["filter"]
    limits = spec.get("limits") or {}
    heap: list[tuple[float, str, dict[str, Any]]] = []
    total = 0
    for entry in _failures(run, name, spec.get("mode")):
        total += 1
        scores = {s["name"]: s["value"] for s in entry["scores"] or []}
        item = (-margin(scores, limits), entry["clip_id"], {**entry, "scores": scores})
        if len(heap) < limit:
            heapq.heappush(heap, item)
        elif limit and item > heap[0]:
            heapq.heapreplace(heap, item)
    chosen = [entry for _, _, entry in sorted(heap, key=lambda x: (-x[0], x[1]))]
    return chosen, total


def _failures(run: RunInfo, name: str, mode: str | None) -> Iterable[dict[str, Any]]:
    if mode == "drop":
        for _, table in run.parts(name, ["clip_id", "reason", "scores"], side="filtered"):
            yield from table.to_pylist()
        return
    stage = run.clip_stage
    if stage is None:
        return
    for _, table in run.parts(stage, ["clip_id", "filters"]):
        if "filters" not in table.column_names:
            return
        column = table.column("filters").combine_chunks()
        entries = pc.list_flatten(column)
        owners = pc.list_parent_indices(column)
        mine = pc.and_(pc.equal(entries.field("filter"), name), pc.invert(entries.field("passed")))
        picked = entries.filter(mine).to_pylist()
        ids = table.column("clip_id").take(owners.filter(mine)).to_pylist()
        for clip_id, entry in zip(ids, picked):
            yield {"clip_id": clip_id, "reason": entry["reason"], "scores": entry["scores"]}


def frames_of(run: RunInfo, clip_ids: set[str]) -> Iterator[tuple[str, list[bytes]]]:
    """`(clip id, stored JPEG frames)` of `clip_ids`, found by reference in split's manifest and read from its store
    one row group at a time: the caller holds one group's frames, however many clips it shows."""
    refs = run.select("split", ["clip_id", "frames_file", "frames_row"], "clip_id", clip_ids)
    refs = [r for r in refs if r.get("frames_file")]
    if refs:
        yield from parts.iter_column(pa.Table.from_pylist(refs), "frames", "clip_id", run.output)


def contact_sheet(frames: list[bytes], height: int) -> bytes:
    """The frames side by side, each `height` pixels high, as one JPEG: what a clip looks like, at a glance."""
    from PIL import Image

    images = []
    for data in frames:
        image = Image.open(io.BytesIO(data)).convert("RGB")
        width = max(1, round(image.width * height / image.height))
        images.append(image.resize((width, height), Image.BILINEAR))
    sheet = Image.new("RGB", (sum(i.width for i in images) + 2 * max(0, len(images) - 1), height), (255, 255, 255))
    x = 0
    for image in images:
        sheet.paste(image, (x, 0))
        x += image.width + 2
    out = io.BytesIO()
    sheet.save(out, "JPEG", quality=82)
    return out.getvalue()


def sheet_name(clip_id: str) -> str:
    return f"frames/{clip_id}.jpg"
