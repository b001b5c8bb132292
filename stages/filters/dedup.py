"""dedup: near-duplicate clips, run-wide, by perceptual hashes of their stored frames; one survivor per group.

Two passes. `hash` gives each clip the 64-bit difference hash (dHash) of every stored frame. Then, on the
driver, a run-wide step reads only (clip_id, hashes, times) part by part: clips with equal hashes are exact
copies; near copies are found by multi-index hashing (a clip's middle-frame hash cut into `max_distance + 1`
bands: two hashes within that Hamming distance share a band) and confirmed frame by frame. The survivor of a group
is the longest clip, then the lowest clip id, whatever the parts or the runner; the other clips are dropped as
`duplicate` with their survivor and distance.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from vlcurate.pipeline import storage
from vlcurate.pipeline.parts import iter_parts
from vlcurate.manifests import STORED_FRAMES
from vlcurate.pipeline.stage import Context, Stage, Traits
from vlcurate.stages.catalog import STAGES
from vlcurate.stages.filters.base import FilterConfig, FilterStage, gray_frames

HASHES = "_dhash"  # the first pass's columns (frame hashes, or an embedding's signature; the embedding), gone
VECTORS = "_embedding"  # from the stage's output


# dHash reads a 9x8 thumbnail: frames are decoded at the smallest DCT scale that still gives at least 8x that
HASH_DECODE = (72, 64)


class DedupConfig(FilterConfig):
    method: Literal["dhash", "embedding"] = Field("dhash", description="perceptual hashes of the stored frames, or "
                                                  "the cosine of the clips' image embeddings (open_clip tower)")
    max_distance: int = Field(6, ge=0, le=32, description="dhash: frames whose 64-bit hashes differ in at most this "
                                                          "many bits are the same picture (0: exact copies only)")
    eps: float = Field(0.02, ge=0, le=1, description="embedding: clips with cosine >= 1 - eps are duplicates")
    model: str = Field("ViT-B-32", description="embedding: open_clip tower (tiny:open_clip offline)")
    pretrained: str | None = "laion2b_s34b_b79k"
    device: str = "auto"


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
    output_schema = pa.schema([])  # set by DedupFilter.set_input_schema: the clips, with their hashes (and embeddings)

    config: DedupConfig

    def __init__(self, config: DedupConfig | None = None):
        super().__init__(config)
        # embeddings: a model to keep loaded
        self.traits = Traits(loads=(STORED_FRAMES,), local_parallel=True,
                             keeps_loaded=self.config.method == "embedding")

    @property
    def label(self) -> str:
        return "dedup:hash"

    def setup(self) -> None:
        if self.config.method == "embedding":
            from vlcurate.stages.scorers import open_clip_tower

            cfg = self.config
            self.tower = open_clip_tower(cfg.model, cfg.pretrained, cfg.device)

    def process_batch(self, batch: pa.Table, ctx: Context = Context()) -> pa.Table:
        self.ensure_setup()
        frames = batch.column("frames").to_pylist()
        if self.config.method == "dhash":
            hashes = [[dhash(f) for f in gray_frames(fs or [], at_least=HASH_DECODE)] for fs in frames]
            vectors = [None] * len(frames)
        else:
            todo = [i for i, fs in enumerate(frames) if fs]
            found = self.tower.embed_clips([frames[i] for i in todo]) if todo else np.zeros((0, 1), np.float32)
            vectors = [None] * len(frames)
            for i, v in zip(todo, found):
                vectors[i] = np.asarray(v, np.float32)
            planes = np.random.default_rng(0).standard_normal((found.shape[1], 64))  # the same on every worker
            hashes = [[] if v is None else [int(np.packbits(v @ planes > 0).view(">u8")[0])] for v in vectors]
        table = batch.append_column(HASHES, pa.array(hashes, pa.list_(pa.uint64())))
        return table.append_column(VECTORS, pa.array([None if v is None else v.tolist() for v in vectors],
                                                     pa.list_(pa.float32())))


def survivor_key(item: tuple[str, tuple[int, ...], float]) -> tuple[float, str]:
    """A group keeps its longest clip, then the lowest clip id: the same whatever the parts or the runner."""
    return (-round(item[2], 6), item[0])


def duplicates(items: list[tuple[str, tuple[int, ...], float]], bands: int,
               close: Callable[[str, str], bool], distance: Callable[[str, str], float]
               ) -> dict[str, tuple[str, float]]:
    """{clip id: (its survivor, distance)} for every clip that is not its group's survivor. `items`: (clip id,
    64-bit signatures, duration); two clips are candidates when their middle signature agrees on one of `bands`
    bit bands (or on all of them), and a pair of candidates that is `close` joins their groups."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    width = 64 // bands
    buckets: dict[tuple[int, int], list[str]] = {}
    for clip_id, hashes, _ in sorted(items):
        middle = hashes[len(hashes) // 2]
        seen: set[str] = set()
        for band in range(bands):
            key = (band, (middle >> (band * width)) & ((1 << width) - 1))
            for other in buckets.get(key, []):
                if other not in seen and find(other) != find(clip_id) and close(clip_id, other):
                    a, b = find(clip_id), find(other)
                    parent[max(a, b)] = min(a, b)
                seen.add(other)
            buckets.setdefault(key, []).append(clip_id)
    groups: dict[str, list[tuple[str, tuple[int, ...], float]]] = {}
    for item in items:
        groups.setdefault(find(item[0]), []).append(item)
    losers = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        survivor = min(members, key=survivor_key)
        for clip_id, _, _ in members:
            if clip_id != survivor[0]:
                losers[clip_id] = (survivor[0], distance(clip_id, survivor[0]))
    return losers


def hash_duplicates(items: list[tuple[str, tuple[int, ...], float]], max_distance: int) -> dict[str, tuple[str, float]]:
    """Clips whose every frame's dHash is within `max_distance` bits (the same number of frames)."""
    hashes = {clip_id: h for clip_id, h, _ in items}

    def close(a: str, b: str) -> bool:
        return len(hashes[a]) == len(hashes[b]) and all(hamming(x, y) <= max_distance
                                                        for x, y in zip(hashes[a], hashes[b]))

    def distance(a: str, b: str) -> float:
        return float(max(hamming(x, y) for x, y in zip(hashes[a], hashes[b])))

    copies: dict[tuple[int, ...], list[tuple[str, tuple[int, ...], float]]] = {}
    for item in items:  # equal hashes are copies outright: only one of each joins the band search
        copies.setdefault(item[1], []).append(item)
    heads = [min(group, key=survivor_key) for group in copies.values()]
    losers = duplicates(heads, max_distance + 1, close, distance)
    groups: dict[str, list[tuple[str, tuple[int, ...], float]]] = {}
    for head, group in zip(heads, copies.values()):
        groups.setdefault(losers[head[0]][0] if head[0] in losers else head[0], []).extend(group)
    out = {}
    for members in groups.values():
        survivor = min(members, key=survivor_key)
        out.update({m[0]: (survivor[0], distance(m[0], survivor[0])) for m in members if m[0] != survivor[0]})
    return out


def embedding_duplicates(items: list[tuple[str, tuple[int, ...], float]], vectors: Callable[[set[str]], dict],
                         eps: float) -> dict[str, tuple[str, float]]:
    """Clips whose image embeddings have cosine >= 1 - eps; `items` carry a 64-bit random-hyperplane signature
    each, and only candidates' embeddings are read (`vectors(ids)`)."""
    candidates: set[tuple[str, str]] = set()
    duplicates(items, 8, lambda a, b: candidates.add((a, b)) or False, lambda a, b: 0.0)
    found = vectors({c for pair in candidates for c in pair})

    def cosine(a: str, b: str) -> float:
        return float(np.dot(found[a], found[b]))

    near = {frozenset(pair) for pair in candidates if cosine(*pair) >= 1 - eps}
    return duplicates(items, 8, lambda a, b: frozenset((a, b)) in near, lambda a, b: round(1 - cosine(a, b), 6))


class DedupPass(FilterStage):
    name = "dedup"
    config_class = DedupConfig
    traits = dataclasses.replace(FilterStage.traits, loads=())  # it reads the hashes the first pass made

    config: DedupConfig

    def __init__(self, config: DedupConfig | None = None):
        super().__init__(config)
        self.losers: dict[str, tuple[str, float]] = {}
        if self.config.method == "embedding":
            self.model = f"open_clip {self.config.model}"
            self.weights = (self.config.pretrained or "untrained") if not self.config.model.startswith("tiny:") \
                else "untrained"

    @property
    def method(self) -> str:  # type: ignore[override]
        return self.config.method

    @property
    def score_name(self) -> str:
        return "hamming_to_survivor" if self.config.method == "dhash" else "cosine_distance_to_survivor"

    @property
    def label(self) -> str:
        return "dedup:mark"

    def prepare(self, pass_input: list[str], stage_input: list[tuple[str, int]]) -> None:
        items = []
        for part in iter_parts([storage.path(p) for p in pass_input], ["clip_id", HASHES, "start_s", "end_s", "error"]):
            for row in part.to_pylist():
                if not row["error"] and row[HASHES]:
                    items.append((row["clip_id"], tuple(row[HASHES]), row["end_s"] - row["start_s"]))
        if self.config.method == "dhash":
            self.losers = hash_duplicates(items, self.config.max_distance)
            return

        def vectors(ids: set[str]) -> dict[str, np.ndarray]:  # only the candidates' embeddings are read
            import pyarrow.compute as pc
            import pyarrow.dataset as ds

            table = ds.dataset(pass_input, format="parquet").to_table(columns=["clip_id", VECTORS],
                                                                    filter=pc.field("clip_id").isin(sorted(ids)))
            return {row["clip_id"]: np.asarray(row[VECTORS], np.float64) for row in table.to_pylist()}

        self.losers = embedding_duplicates(items, vectors, self.config.eps)

    def measure(self, rows: list[dict[str, Any]]) -> list[dict[str, float]]:
        return [{self.score_name: float(self.losers[r["clip_id"]][1]) if r["clip_id"] in self.losers else None}
                for r in rows]

    def verdict(self, scores: dict[str, float], row: dict[str, Any]) -> str | None:
        found = self.losers.get(row["clip_id"])
        if found is None:
            return None
        how = f"Hamming distance {int(found[1])}" if self.config.method == "dhash" else f"cosine distance {found[1]}"
        return f"duplicate: of {found[0]} ({how})"

    def limits(self) -> dict[str, dict[str, float]]:
        """A duplicate's distance to its survivor is at most this: the nearest to it are the least sure pairs."""
        limit = self.config.max_distance if self.config.method == "dhash" else self.config.eps
        return {self.score_name: {"max": float(limit)}}

    def rule(self) -> str:
        near = (f"dhash of every stored frame within {self.config.max_distance} bits" if self.config.method == "dhash"
                else f"image embedding at cosine >= {1 - self.config.eps:g}")
        return f"{near} of a longer clip's (or of an equal one's with a lower clip id): drop"


@STAGES.register("dedup")
class DedupFilter(Stage):
    config_class = DedupConfig
    reads = FilterStage.reads
    summary = "Filter: near-duplicate clips by perceptual hashes of their frames, run-wide; one survivor per group."

    config: DedupConfig

    def __init__(self, config: DedupConfig | None = None):
        super().__init__(config)
        self._passes = [HashPass(self.config), DedupPass(self.config)]

    def passes(self) -> list[Stage]:
        return self._passes

    def set_input_schema(self, input_schema: pa.Schema) -> None:
        hashed, mark = self._passes
        mark.set_input_schema(input_schema)
        hashed.schema = pa.schema([*mark.schema, pa.field(HASHES, pa.list_(pa.uint64())),
                                   pa.field(VECTORS, pa.list_(pa.float32()))], metadata=input_schema.metadata)
        self.schema = mark.schema

    def stats(self, view: Any) -> dict[str, Any]:
        return self._passes[1].stats(view)
