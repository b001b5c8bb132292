"""shard: frame-exact clips into WebDataset tars (`.mp4`, `.json`, `.txt`) with Parquet sidecars, packed in
parallel by the workers.

Two passes. `assign` (one task per input part) gives every row a bucket and a sort key from a seeded hash of its
clip id; the number of buckets comes from the run's count of good clips (a run-wide step that reads only the
`error` column), so a bucket holds about 90% of `maxcount` samples. `pack` (one task per bucket) reads its bucket's
rows from every assigned part, encodes or copies its clips, and writes its tar(s) and their sidecars itself, with
fixed tar metadata: same input, same bytes, local or on Ray. The shard's index is the union of the sidecars.

A clip is stream-copied when that is frame-exact (its span starts on a keyframe and needs nothing outside it:
common, since encoders put keyframes at hard cuts) and re-encoded otherwise.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import tarfile
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from vlcurate.manifests import SCORED, SHARD_INDEX
from vlcurate.pipeline import parts, storage
from vlcurate.pipeline.stage import Context, Stage, StageConfig, StageError, Traits, error_reason, error_text
from vlcurate.stages import media
from vlcurate.stages.paths import source_path
from vlcurate.stages.catalog import STAGES

ASSIGNED = SCORED.extend("assigned", 1, pa.field("bucket", pa.int32()), pa.field("order", pa.string()))
ENCODED = SCORED.extend("encoded", 1, pa.field("mp4_path", pa.string()), pa.field("frame_count", pa.int64()),
                        pa.field("mp4_bytes", pa.int64()), pa.field("encoding", pa.string()))
ERRORS = pa.schema([("path", pa.string()), ("video_id", pa.string()), ("clip_id", pa.string()),
                    ("error", pa.string())])
FILL = 0.9  # buckets are sized to this share of maxcount, so few spill into a second tar
SAMPLE_OVERHEAD = 4096  # tar headers, .json and .txt of one sample, roughly
JSON_FIELDS = ("video_id", "path", "title", "fps", "start_frame", "end_frame", "start_s", "end_s", "caption",
               "caption_teacher", "caption_score", "scorer", "detector", "encoding", "damaged")
CANDIDATE_FIELDS = ("teacher", "kind", "model", "weights", "inputs", "prompt_hash", "text", "status", "reason",
                    "score", "text_truncated", "flags", "prompt_tokens", "completion_tokens", "truncated")


class ShardConfig(StageConfig):
    maxcount: int = Field(1000, ge=1, description="samples per tar at most (tars are filled to about 90% of it)")
    maxsize: int = Field(1 << 30, ge=1, description="bytes per tar at most (a single larger sample gets its own)")
    shuffle_seed: int | None = Field(0, description="seeded shuffle across videos; null keeps clip order")
    stream_copy: bool = Field(True, description="copy a clip's packets instead of re-encoding it where that is "
                                                "frame-exact (lossless, and a fraction of an encode's CPU)")
    copy_codecs: list[str] = Field(["h264"], description="source codecs that may be copied; others are re-encoded "
                                                         "(AV1, for one, which decord cannot read)")
    crf: int = Field(23, ge=0, le=51, description="libx264 quality for re-encoded clips")
    preset: str = "veryfast"
    audio: bool = Field(True, description="keep the first audio stream, cut to the clip")
    max_short_side: int | None = Field(None, description="downscale clips so the short side is at most this")
    crop_bars: bool = Field(False, description="crop off the letterbox and pillarbox bars the blank filter found "
                                               "(re-encodes those clips)")
    encode_workers: int | None = Field(None, ge=1, description="parallel ffmpeg processes per worker; default: cores")
    prefix: str = "shard"


def sample_json(row: dict[str, Any], extras: tuple[str, ...] = ()) -> bytes:
    """The sample's metadata, free of timings and absolute run state, so reruns write identical bytes. `extras`:
    the columns stages outside the built-in chain added (plug-ins), under `extras`."""
    meta = {k: row.get(k) for k in JSON_FIELDS}
    meta["key"] = row["clip_id"]
    meta["frame_count"] = row["frame_count"]
    meta["candidates"] = [{k: c.get(k) for k in CANDIDATE_FIELDS} for c in row["candidates"] or []]
    if extras:
        meta["extras"] = {k: row.get(k) for k in extras}
    return (json.dumps(meta, sort_keys=True, ensure_ascii=False, indent=1, default=_jsonable) + "\n").encode()


def _jsonable(value: Any) -> Any:
    """What JSON has no type for, in a plug-in's column: bytes as hex, anything else as its text."""
    return value.hex() if isinstance(value, bytes) else str(value)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = len(data), 0, 0o644, 0, 0, "", ""
    tar.addfile(info, io.BytesIO(data))


def sample_order(seed: int | None, clip_id: str | None, position: int) -> str:
    """A row's sort key: a seeded hash of its clip id (the shuffle), or its input position when unshuffled."""
    if seed is None:
        return f"{position:016d}"
    return hashlib.sha256(f"{seed}:{clip_id}".encode()).hexdigest()


@STAGES.register("shard")
class ShardStage(Stage):
    config_class = ShardConfig
    reads = SCORED
    summary = "Write WebDataset tars (.mp4 clip, .json metadata, .txt caption) with Parquet sidecars."
    output_schema = SHARD_INDEX.schema
    traits = Traits(carries_columns=False)  # its rows are samples; the clips' columns go into the tars

    config: ShardConfig

    def __init__(self, config: ShardConfig | None = None):
        super().__init__(config)
        self._passes: list[Stage] | None = None

    def passes(self) -> list[Stage]:
        if self._passes is None:
            assign = AssignPass(self.config)
            self._passes = [assign, PackPass(self.config, assign)]
        return self._passes

    def set_input_schema(self, input_schema: pa.Schema) -> None:
        """Columns beyond the scored clips' (a plug-in stage's) travel with the samples, in their JSON's `extras`."""
        assign, pack = self.passes()
        assign.set_input_schema(input_schema)
        pack.extras = tuple(f.name for f in input_schema if f.name not in SCORED.schema.names)

    def rows_for_next_stage(self, stats: dict[str, Any]) -> int:
        return stats["rows_out"]  # rows are samples; errors are listed apart, in errors/

    def stats(self, view: Any) -> dict[str, Any]:
        samples = mp4_bytes = frames = 0
        encodings: Counter = Counter()
        for part in view.parts(["mp4_bytes", "frame_count", "encoding"]):
            samples += part.num_rows
            mp4_bytes += sum(part.column("mp4_bytes").to_pylist())
            frames += sum(part.column("frame_count").to_pylist())
            encodings.update(part.column("encoding").to_pylist())
        errors = [e for part in view.parts(["error"], kind="errors") for e in part.column("error").to_pylist()]
        counts = Counter(error_reason(e) for e in errors)
        return {
            "samples": samples,
            "shards": len(view.files("tar")),
            "mp4_bytes": mp4_bytes,
            "frames": frames,
            "clips_by_encoding": dict(sorted(encodings.items())),
            "errors_total": len(errors),
            "errors_new": sum(1 for e in errors if e.startswith(self.name + "/")),
            "errors_by_reason": dict(sorted(counts.items())),
        }


def clip_staging(folder: Path, task_name: str) -> Path:
    """Where a pack task stages its clips before they go into the tar: under the stage's `_work/` on local disk (an
    interrupted task keeps what it encoded), in a worker-local scratch folder when the output is on a store."""
    if not storage.is_remote(folder):
        return folder / parts.WORK / "clips" / task_name
    scratch = Path(os.environ.get("VLCURATE_SCRATCH") or tempfile.gettempdir())
    return scratch / f"vlcurate-clips-{hashlib.sha256(str(folder).encode()).hexdigest()[:12]}-{os.getpid()}" / task_name


class AssignPass(Stage):
    """Every input row gets its bucket (the tar it goes to) and its place in it."""

    name = "shard"
    config_class = ShardConfig
    output_schema = ASSIGNED.schema
    traits = Traits(keeps_loaded=False)

    config: ShardConfig

    def __init__(self, config: ShardConfig | None = None):
        super().__init__(config)
        self.buckets = 1
        self.total = 0

    @property
    def label(self) -> str:
        return "shard:assign"

    def prepare(self, pass_input: list[str], stage_input: list[tuple[str, int]]) -> None:
        good = sum(sum(1 for e in part.column("error").to_pylist() if not e)
                   for part in parts.iter_parts([storage.path(f) for f, _ in stage_input], ["error"]))
        self.buckets = max(1, math.ceil(good / (self.config.maxcount * FILL)))
        self.total = sum(rows for _, rows in stage_input)

    def process_batch(self, batch: pa.Table, ctx: Context = Context()) -> pa.Table:
        """Each row's bucket and its sort key in it (the pack pass sorts each bucket's rows by it)."""
        # parts are fixed chunks of the stage input: the row's position in the run
        first = int(ctx.part.split("-")[1]) * self.config.part_rows + ctx.first_row
        seed = self.config.shuffle_seed
        orders = [sample_order(seed, c, first + i) for i, c in enumerate(batch.column("clip_id").to_pylist())]
        if seed is None:
            buckets = [(first + i) * self.buckets // max(self.total, 1) for i in range(batch.num_rows)]
        else:
            buckets = [int(o[:15], 16) % self.buckets for o in orders]
        return batch.append_column("bucket", pa.array(buckets, pa.int32())).append_column(
            "order", pa.array(orders, pa.string()))


class PackPass(Stage):
    """One task per bucket: its clips encoded or copied, then its tar(s) and sidecar(s) written, in the bucket's
    seeded order; upstream errors and clips that could not be written go to `errors/`."""

    name = "shard"
    config_class = ShardConfig
    output_schema = SHARD_INDEX.schema
    traits = Traits(keeps_loaded=False, carries_columns=False)  # ffmpeg processes: nothing to keep loaded

    config: ShardConfig

    def __init__(self, config: ShardConfig, assign: AssignPass):
        super().__init__(config)
        self.assign = assign
        self.extras: tuple[str, ...] = ()  # columns plug-in stages added, for each sample's JSON (`set_input_schema`)

    @property
    def label(self) -> str:
        return "shard:pack"

    def plan_tasks(self, pass_input: list[str]) -> list[dict[str, Any]]:
        return [{"name": f"{self.config.prefix}-{b:05d}", "bucket": b, "sources": pass_input}
                for b in range(self.assign.buckets)]

    def run_planned(self, spec: dict[str, Any], ctx: Context) -> tuple[list[dict[str, Any]], int, int]:
        """One bucket: its rows from every assigned part, in order; encoded; cut into tars."""
        folder = storage.path(ctx.stage_dir)
        if not spec["sources"]:  # nothing reached the shard stage
            return [], 0, 0
        mine = [part.filter(pc.field("bucket") == spec["bucket"])
                for part in parts.iter_parts([storage.path(f) for f in spec["sources"]])]
        rows = pa.concat_tables(mine).sort_by([("order", "ascending")]).to_pylist()
        staging = clip_staging(folder, spec["name"])
        workers = self.config.encode_workers or os.cpu_count() or 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            encoded = list(pool.map(lambda r: self._encode(r, staging, ctx.root), rows))
        good = [r for r in encoded if not r["error"]]
        ctx.check_owner()  # a worker that outlived its run writes no tar into the next one
        written: list[tuple[str, Path, dict[str, Any]]] = []
        for k, tar_rows in enumerate(self.plan_tars(good)):
            name = spec["name"] if k == 0 else f"{spec['name']}-{k}"
            written += self._write_tar(folder, name, tar_rows)
        errors = [{"path": r["path"], "video_id": r["video_id"], "clip_id": r["clip_id"], "error": r["error"]}
                  for r in encoded if r["error"]]
        if errors:
            path = folder / "errors" / f"{spec['name']}.parquet"
            facts = parts.write_table(path, pa.Table.from_pylist(errors, schema=ERRORS))
            written.append(("errors", path, facts))
        shutil.rmtree(staging, ignore_errors=True)
        if storage.is_remote(folder):
            shutil.rmtree(staging.parent, ignore_errors=True)
        return [{**parts.written(p, folder, facts), "kind": kind} for kind, p, facts in written], len(rows), len(good)

    def plan_tars(self, rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """The bucket's samples in order, cut into tars of at most `maxcount` samples and `maxsize` bytes."""
        tars: list[list[dict[str, Any]]] = []
        size = 0
        for row in rows:
            sample_size = row["mp4_bytes"] + SAMPLE_OVERHEAD
            if not tars or len(tars[-1]) >= self.config.maxcount or (tars[-1] and size + sample_size >
                                                                      self.config.maxsize):
                tars.append([])
                size = 0
            tars[-1].append(row)
            size += sample_size
        return tars

    def _write_tar(self, folder: Path, name: str, rows: list[dict[str, Any]]) -> list[tuple[str, Path, dict]]:
        index = []

        def write(tmp: str) -> None:
            with tarfile.open(tmp, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                for position, row in enumerate(rows):
                    key = row["clip_id"]
                    _add(tar, f"{key}.mp4", Path(row["mp4_path"]).read_bytes())
                    _add(tar, f"{key}.json", sample_json(row, self.extras))
                    _add(tar, f"{key}.txt", (row["caption"] + "\n").encode())
                    index.append({**{k: row[k] for k in SHARD_INDEX.schema.names if k in row}, "key": key,
                                  "shard": f"{name}.tar", "position": position})

        facts = storage.write_with(folder / f"{name}.tar", write)
        sidecar = folder / f"{name}.parquet"
        sidecar_facts = parts.write_table(sidecar, pa.Table.from_pylist(index, schema=SHARD_INDEX.schema))
        return [("tar", folder / f"{name}.tar", facts), ("part", sidecar, sidecar_facts)]

    def _encode(self, row: dict[str, Any], staging: Path, root: str | None) -> dict[str, Any]:
        if row.get("error"):
            return row
        staging.mkdir(parents=True, exist_ok=True)
        target = staging / f"{row['clip_id']}.mp4"
        if target.exists():  # staged by an interrupted run: complete, since it was renamed into place
            return {**row, "mp4_path": str(target), "frame_count": row["end_frame"] - row["start_frame"],
                    "mp4_bytes": target.stat().st_size,
                    "encoding": (staging / f"{row['clip_id']}.encoding").read_text()}
        tmp = staging / f".{row['clip_id']}.{os.getpid()}.tmp.mp4"
        expected = row["end_frame"] - row["start_frame"]
        cfg = self.config
        audio = cfg.audio and bool(row.get("has_audio"))
        try:
            with storage.media_input(source_path(row, root)) as source:
                encoding = self._cut(row, source, tmp, expected, audio)
            got = media.count_video_packets(tmp)
            if got != expected:
                raise StageError("frame_count_mismatch", f"wrote {got} frames, the span has {expected}")
            (staging / f"{row['clip_id']}.encoding").write_text(encoding)  # before the clip: a staged clip has one
            os.replace(tmp, target)
        except StageError as exc:
            tmp.unlink(missing_ok=True)
            return {**row, "error": error_text(self.name, exc.reason, exc.detail)}
        return {**row, "mp4_path": str(target), "frame_count": expected, "mp4_bytes": target.stat().st_size,
                "encoding": encoding}

    def _cut(self, row: dict[str, Any], source: str, tmp: Path, expected: int, audio: bool) -> str:
        """The clip's span of `source` into `tmp`, copied where the coded pixels may stay, else encoded."""
        cfg = self.config
        if self._may_copy(row) and media.copy_clip(source, tmp, row["start_s"], row["end_s"], expected, audio=audio):
            return "copy"
        media.encode_clip(source, tmp, row["start_s"], expected, row["fps"], crf=cfg.crf, preset=cfg.preset,
                          audio=audio, max_short_side=cfg.max_short_side, crop=self._crop(row), end_s=row["end_s"])
        return f"libx264 -preset {cfg.preset} -crf {cfg.crf}"

    def _may_copy(self, row: dict[str, Any]) -> bool:
        """Copying keeps the coded pixels as they are: only when no rotation or downscale is wanted of them."""
        cfg = self.config
        short_side = min(row["width"] or 0, row["height"] or 0)
        return (cfg.stream_copy and row.get("codec") in cfg.copy_codecs and not row.get("rotation")
                and (cfg.max_short_side is None or short_side <= cfg.max_short_side) and self._crop(row) is None)

    def _crop(self, row: dict[str, Any]) -> tuple[int, int, int, int] | None:
        """The bars the blank filter measured (display pixels), in coded pixels, when `crop_bars` is on: even
        numbers (4:2:0 chroma), and only for unrotated sources."""
        if not self.config.crop_bars or row.get("rotation"):
            return None
        entry = next((e for e in row.get("filters") or [] if any(s["name"] == "bar_top" for s in e["scores"])),
                     None)
        scores = {s["name"]: s["value"] for s in entry["scores"]} if entry else {}
        if not scores.get("bar_top") and not scores.get("bar_bottom") and not scores.get("bar_left") \
                and not scores.get("bar_right"):
            return None
        sar = row.get("sample_aspect_ratio") or 1.0
        even = lambda v: int(v) // 2 * 2  # noqa: E731
        return (even(scores["bar_top"]), even(scores["bar_bottom"]), even(scores["bar_left"] / sar),
                even(scores["bar_right"] / sar))

