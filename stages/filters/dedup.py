"""dedup: near-duplicate clips, run-wide, by perceptual hashes of their stored frames; one survivor per group.

Two passes. `hash` gives each clip the 64-bit difference hash (dHash) of every stored frame. Then, on the
driver, a run-wide step reads only (clip_id, hashes, times) part by part: clips with equal hashes are exact
copies; near copies are found by multi-index hashing (a clip's middle-frame hash cut into `max_distance + 1`
bands: two hashes within that Hamming distance share a band) and confirmed frame by frame. The survivor of a group
is the longest clip, then the lowest clip id, whatever the parts or the runner; the other clips are dropped as
`duplicate` with their survivor and distance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import Field

from pipeline.parts import iter_parts
from pipeline.stage import Stage
from stages.catalog import STAGES
from stages.filters.base import FilterConfig, FilterStage, gray_frames

HASHES = "_dhash"  # the first pass's column, gone from the stage's output


class DedupConfig(FilterConfig):
    max_distance: int = Field(6, ge=0, le=32, description="frames whose 64-bit hashes differ in at most this many "
                                                          "bits are the same picture (0: exact copies only)")


def dhash(image: np.ndarray) -> int:
    """64-bit difference hash: a 9x8 grayscale thumbnail, one bit per horizontally adjacent pair."""
    import cv2

    small = cv2.resize(image, (9, 8), interpolation=cv2.INTER_AREA)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int(np.packbits(bits).view(">u8")[0])


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


class HashPass(Stage):
    name = "dedup"
    config_class = DedupConfig
    reads_frames = True
    saves_batches = False
    stateful = False
    local_parallel = True
    output_schema = pa.schema([])

    @property
    def label(self) -> str:
        return "dedup:hash"

    def process_batch(self, batch: pa.Table) -> pa.Table:
        hashes = [[dhash(f) for f in gray_frames(frames or [])] for frames in batch.column("frames").to_pylist()]
        return batch.append_column(HASHES, pa.array(hashes, pa.list_(pa.uint64())))


def duplicates(items: list[tuple[str, tuple[int, ...], float]], max_distance: int) -> dict[str, tuple[str, int]]:
    """{clip id: (its survivor, Hamming distance)} for every clip that is not its group's survivor; `items`:
    (clip id, frame hashes, duration)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    exact: dict[tuple[int, ...], str] = {}
    for clip_id, hashes, _ in sorted(items):
        if hashes in exact:
            union(exact[hashes], clip_id)
        else:
            exact[hashes] = clip_id
    if max_distance:
        width = 64 // (max_distance + 1)
        buckets: dict[tuple[int, int], list[tuple[int, ...]]] = {}
        for hashes in exact:
            middle = hashes[len(hashes) // 2]
            for band in range(max_distance + 1):
                key = (band, (middle >> (band * width)) & ((1 << width) - 1))
                for other in buckets.get(key, []):
                    if len(other) == len(hashes) and all(hamming(a, b) <= max_distance for a, b in zip(hashes, other)):
                        union(exact[hashes], exact[other])
                buckets.setdefault(key, []).append(hashes)
    groups: dict[str, list[tuple[str, tuple[int, ...], float]]] = {}
    for item in items:
        groups.setdefault(find(item[0]), []).append(item)
    losers = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        survivor = min(members, key=lambda m: (-round(m[2], 6), m[0]))
        for clip_id, hashes, _ in members:
            if clip_id != survivor[0]:
                losers[clip_id] = (survivor[0], max(hamming(a, b) for a, b in zip(hashes, survivor[1])))
    return losers


class DedupPass(FilterStage):
    name = "dedup"
    config_class = DedupConfig
    method = "dhash"
    primary = "hamming_to_survivor"
    reads_frames = False

    config: DedupConfig

    def __init__(self, config: DedupConfig | None = None):
        super().__init__(config)
        self.losers: dict[str, tuple[str, int]] = {}

    @property
    def label(self) -> str:
        return "dedup:mark"

    def before(self, previous: list[str], stage_input: list[tuple[str, int]]) -> None:
        from pathlib import Path

        items = []
        for part in iter_parts([Path(p) for p in previous], ["clip_id", HASHES, "start_s", "end_s", "error"]):
            for row in part.to_pylist():
                if not row["error"] and row[HASHES]:
                    items.append((row["clip_id"], tuple(row[HASHES]), row["end_s"] - row["start_s"]))
        self.losers = duplicates(items, self.config.max_distance)

    def measure(self, rows: list[dict[str, Any]]) -> list[dict[str, float]]:
        return [{"hamming_to_survivor": float(self.losers[r["clip_id"]][1]) if r["clip_id"] in self.losers
                 else None} for r in rows]

    def verdict(self, scores: dict[str, float], row: dict[str, Any]) -> str | None:
        found = self.losers.get(row["clip_id"])
        return None if found is None else f"duplicate: of {found[0]} (Hamming distance {found[1]})"

    def rule(self) -> str:
        return (f"dhash of every stored frame within {self.config.max_distance} bits of a longer clip's (or of an "
                "equal one's with a lower clip id): drop")


@STAGES.register("dedup")
class DedupFilter(Stage):
    name = "dedup"
    config_class = DedupConfig
    reads = FilterStage.reads
    summary = "Filter: near-duplicate clips by perceptual hashes of their frames, run-wide; one survivor per group."

    config: DedupConfig

    def __init__(self, config: DedupConfig | None = None):
        super().__init__(config)
        self._passes = [HashPass(self.config), DedupPass(self.config)]

    def passes(self) -> list[Stage]:
        return self._passes

    def bind(self, input_schema: pa.Schema) -> None:
        hashed, mark = self._passes
        mark.bind(input_schema)
        hashed.output_schema = pa.schema([*mark.output_schema, pa.field(HASHES, pa.list_(pa.uint64()))],
                                         metadata=input_schema.metadata)
        self.output_schema = mark.output_schema

    def stats(self, view: Any) -> dict[str, Any]:
        return self._passes[1].stats(view)
