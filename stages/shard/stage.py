"""shard: frame-exact clips into WebDataset tars (`.mp4`, `.json`, `.txt`) with Parquet sidecars.

A clip is stream-copied when that is frame-exact (its span starts on a keyframe and needs nothing outside it:
common, since encoders put keyframes at hard cuts) and re-encoded otherwise.

Encoding runs in the workers and lands in a staging folder under deterministic names; the driver then shuffles
with a seed and packs tars with fixed metadata, so the same input gives the same bytes, local or on Ray.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import tarfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import Field

from manifests import SCORED, SHARD_INDEX
from pipeline import io as pio
from pipeline.stage import Stage, StageConfig, StageError, count_errors, error_text
from stages import media

ENCODED = SCORED.extend("encoded", 1, pa.field("mp4_path", pa.string()), pa.field("frame_count", pa.int64()),
                        pa.field("mp4_bytes", pa.int64()), pa.field("encoding", pa.string()))
STAGING = "_clips"
SAMPLE_OVERHEAD = 4096  # tar headers, .json and .txt of one sample, roughly
JSON_FIELDS = ("video_id", "path", "title", "fps", "start_frame", "end_frame", "start_s", "end_s", "caption",
               "caption_teacher", "caption_score", "scorer", "detector", "encoding")
CANDIDATE_FIELDS = ("teacher", "kind", "model", "weights", "inputs", "prompt_hash", "text", "status", "reason",
                    "score", "text_truncated")


class ShardConfig(StageConfig):
    maxcount: int = Field(1000, ge=1, description="samples per tar at most")
    maxsize: int = Field(1 << 30, ge=1, description="bytes per tar at most (a single larger sample gets its own)")
    shuffle_seed: int | None = Field(0, description="seeded shuffle across videos; null keeps clip order")
    stream_copy: bool = Field(True, description="copy a clip's packets instead of re-encoding it where that is frame-exact "
                                         "(lossless, and a fraction of an encode's CPU)")
    copy_codecs: list[str] = Field(["h264"], description="source codecs that may be copied; others are re-encoded "
                                                         "(AV1, for one, which decord cannot read)")
    crf: int = Field(23, ge=0, le=51, description="libx264 quality for re-encoded clips")
    preset: str = "veryfast"
    audio: bool = Field(True, description="keep the first audio stream, cut to the clip")
    max_short_side: int | None = Field(None, description="downscale clips so the short side is at most this")
    encode_workers: int | None = Field(None, ge=1, description="parallel ffmpeg processes per worker; default: cores")
    prefix: str = "shard"


def sample_json(row: dict[str, Any]) -> bytes:
    """The sample's metadata, free of timings and absolute run state, so reruns write identical bytes."""
    meta = {k: row.get(k) for k in JSON_FIELDS}
    meta["key"] = row["clip_id"]
    meta["frame_count"] = row["frame_count"]
    meta["candidates"] = [{k: c.get(k) for k in CANDIDATE_FIELDS} for c in row["candidates"] or []]
    return (json.dumps(meta, sort_keys=True, ensure_ascii=False, indent=1) + "\n").encode()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = len(data), 0, 0o644, 0, 0, "", ""
    tar.addfile(info, io.BytesIO(data))


class ShardStage(Stage):
    name = "shard"
    config_class = ShardConfig
    input_stage = "score"
    output_schema = ENCODED.schema
    sort_keys = ("clip_id",)
    input_key = ("path", "clip_id")

    config: ShardConfig

    def _encode(self, row: dict[str, Any]) -> dict[str, Any]:
        if row.get("error"):
            return row
        staging = Path(self.out_dir) / STAGING
        staging.mkdir(parents=True, exist_ok=True)
        target = staging / f"{row['clip_id']}.mp4"
        tmp = staging / f".{row['clip_id']}.{os.getpid()}.tmp.mp4"
        expected = row["end_frame"] - row["start_frame"]
        cfg = self.config
        audio = cfg.audio and bool(row.get("has_audio"))
        try:
            if self._may_copy(row) and media.copy_clip(row["path"], tmp, row["start_s"], row["end_s"], expected,
                                                       audio=audio):
                encoding = "copy"
            else:
                media.encode_clip(row["path"], tmp, row["start_s"], expected, row["fps"], crf=cfg.crf,
                                  preset=cfg.preset, audio=audio, max_short_side=cfg.max_short_side,
                                  end_s=row["end_s"])
                encoding = f"libx264 -preset {cfg.preset} -crf {cfg.crf}"
            got = media.count_video_packets(tmp)
            if got != expected:
                raise StageError("frame_count_mismatch", f"wrote {got} frames, the span has {expected}")
            os.replace(tmp, target)
        except StageError as exc:
            tmp.unlink(missing_ok=True)
            return {**row, "error": error_text(self.name, exc.reason, exc.detail)}
        return {**row, "mp4_path": str(target), "frame_count": expected, "mp4_bytes": target.stat().st_size,
                "encoding": encoding}

    def _may_copy(self, row: dict[str, Any]) -> bool:
        """Copying keeps the coded pixels as they are: only when no rotation or downscale is wanted of them."""
        cfg = self.config
        short_side = min(row["width"] or 0, row["height"] or 0)
        return (cfg.stream_copy and row.get("codec") in cfg.copy_codecs and not row.get("rotation")
                and (cfg.max_short_side is None or short_side <= cfg.max_short_side))

    def process_batch(self, batch: pa.Table) -> pa.Table:
        if not self.out_dir:
            raise ValueError("shard writes clips under its output folder: set stage.out_dir (the executor does)")
        rows = batch.to_pylist()
        workers = self.config.encode_workers or os.cpu_count() or 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            encoded = list(pool.map(self._encode, rows))
        return self.to_table(encoded)

    def plan_shards(self, rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        order = sorted(rows, key=lambda r: r["clip_id"])
        if self.config.shuffle_seed is not None:
            random.Random(self.config.shuffle_seed).shuffle(order)
        shards: list[list[dict[str, Any]]] = []
        size = 0
        for row in order:
            sample_size = row["mp4_bytes"] + SAMPLE_OVERHEAD
            if not shards or len(shards[-1]) >= self.config.maxcount or (
                    shards[-1] and size + sample_size > self.config.maxsize):
                shards.append([])
                size = 0
            shards[-1].append(row)
            size += sample_size
        return shards

    def finalize(self, table: pa.Table, out_dir: str) -> pa.Table:
        table = super().finalize(table, out_dir)
        rows = table.to_pylist()
        good = [r for r in rows if not r["error"]]
        self._errors = [r for r in rows if r["error"]]
        out = Path(out_dir)
        index: list[dict[str, Any]] = []
        for n, shard_rows in enumerate(self.plan_shards(good)):
            name = f"{self.config.prefix}-{n:05d}"
            tmp = out / f".{name}.tar.tmp"
            with tarfile.open(tmp, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                for position, row in enumerate(shard_rows):
                    key = row["clip_id"]
                    _add(tar, f"{key}.mp4", Path(row["mp4_path"]).read_bytes())
                    _add(tar, f"{key}.json", sample_json(row))
                    _add(tar, f"{key}.txt", (row["caption"] + "\n").encode())
                    index.append({**{k: row[k] for k in SHARD_INDEX.schema.names if k in row}, "key": key,
                                  "shard": f"{name}.tar", "position": position})
            os.replace(tmp, out / f"{name}.tar")
            pio.write_parquet(out / f"{name}.parquet", pa.Table.from_pylist(index[-len(shard_rows):],
                                                                         schema=SHARD_INDEX.schema))
        errors = pa.Table.from_pylist([{"path": r["path"], "video_id": r["video_id"], "clip_id": r["clip_id"],
                                        "error": r["error"]} for r in self._errors],
                                      schema=pa.schema([("path", pa.string()), ("video_id", pa.string()),
                                                        ("clip_id", pa.string()), ("error", pa.string())]))
        pio.write_parquet(out / "errors.parquet", errors)
        shutil.rmtree(out / STAGING, ignore_errors=True)
        return pa.Table.from_pylist(index, schema=SHARD_INDEX.schema)

    def stats(self, table: pa.Table) -> dict[str, Any]:
        errors = [r["error"] for r in getattr(self, "_errors", [])]
        return {
            "samples": table.num_rows,
            "shards": len(set(table.column("shard").to_pylist())),
            "mp4_bytes": int(sum(table.column("mp4_bytes").to_pylist())),
            "frames": int(sum(table.column("frame_count").to_pylist())),
            "clips_by_encoding": dict(sorted(Counter(table.column("encoding").to_pylist()).items())),
            "errors_total": len(errors),
            "errors_by_reason": count_errors(errors),
        }
