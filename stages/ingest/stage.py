"""ingest: videos from a folder, a glob or a list file -> a probed, content-hashed `videos` manifest."""

from __future__ import annotations

import glob
import json
import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import Field

from manifests import VIDEOS
from pipeline.parts import iter_parts
from pipeline.stage import RowStage, Stage, StageConfig, StageError, error_text
from stages import media
from stages.models import local_path, package_dir

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv",
                    ".3gp", ".ogv")
SUBTITLE_EXTENSIONS = (".vtt", ".srt", ".json")
LIST_EXTENSIONS = (".csv", ".jsonl", ".parquet")

log = logging.getLogger(__name__)


class IngestConfig(StageConfig):
    extensions: list[str] = Field(default_factory=lambda: list(VIDEO_EXTENSIONS),
                                  description="file endings picked up from folders and globs")
    sidecar_subtitles: bool = Field(True, description="use <video>.vtt/.srt next to a video as its subtitles")
    drop_duplicates: bool = Field(True, description="mark later copies of identical content as errors")


def _read_list_file(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".csv":
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    elif path.suffix == ".parquet":
        table = pq.read_table(path)
    else:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return _normalise_rows(rows, path.parent)
    return _normalise_rows(table.to_pylist(), path.parent)


def _normalise_rows(rows: list[dict[str, Any]], base: Path) -> list[dict[str, Any]]:
    out = []
    for i, row in enumerate(rows):
        if not row.get("path"):
            raise ValueError(f"row {i} of the list file has no 'path'")
        unknown = set(row) - {"path", "title", "description", "subtitles"}
        if unknown:
            raise ValueError(f"list file has unknown columns {sorted(unknown)}; use path, title, description, subtitles")

        def resolve(p: str | None) -> str | None:
            if not p:
                return None
            if p.startswith("pkg:"):  # a file shipped inside an installed package, e.g. sample videos: kept as
                package_dir(p[4:].partition("/")[0])  # given (its package must be installed)
                return p
            q = Path(p).expanduser()
            return str((q if q.is_absolute() else base / q).resolve())

        out.append({"path": resolve(row["path"]), "title": row.get("title") or None,
                    "description": row.get("description") or None, "subtitles_path": resolve(row.get("subtitles"))})
    return out


def discover(source: str | Path, config: IngestConfig | None = None) -> pa.Table:
    """A folder (recursive), a glob, or a CSV/JSONL/Parquet list with path[, title, description, subtitles]."""
    config = config or IngestConfig()
    source_text = str(source)
    path = Path(source_text).expanduser()
    extensions = tuple(e.lower() for e in config.extensions)
    if path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
        rows = _read_list_file(path)
    else:
        if path.is_dir():
            files = [p for p in path.rglob("*") if p.is_file()]
        elif any(ch in source_text for ch in "*?["):
            files = [Path(p) for p in glob.glob(source_text, recursive=True) if Path(p).is_file()]
        elif path.is_file():
            files = [path]
        else:
            raise FileNotFoundError(f"input {source_text!r} is not a folder, a glob, a video or a list file")
        files = sorted(p.resolve() for p in files if p.suffix.lower() in extensions)
        rows = []
        for f in files:
            subtitles = None
            if config.sidecar_subtitles:
                subtitles = next((str(f.with_suffix(ext)) for ext in SUBTITLE_EXTENSIONS
                                  if f.with_suffix(ext).is_file()), None)
            rows.append({"path": str(f), "title": None, "description": None, "subtitles_path": subtitles})
    if not rows:
        raise FileNotFoundError(f"no videos found in {source_text!r} (extensions: {', '.join(extensions)})")
    first: dict[str, dict[str, Any]] = {}
    for row in rows:  # a path is one input: stages after ingest key their rows (and resume) by it
        if row["path"] in first:
            log.warning("ingest: %s is listed more than once; keeping its first row", row["path"])
        else:
            first[row["path"]] = row
    rows = sorted(first.values(), key=lambda r: r["path"])
    return pa.Table.from_pylist(rows, schema=pa.schema([
        ("path", pa.string()), ("title", pa.string()), ("description", pa.string()), ("subtitles_path", pa.string())]))


class IngestStage(RowStage):
    name = "ingest"
    config_class = IngestConfig
    input_stage = None
    output_schema = VIDEOS.schema
    stateful = False  # hashing and probing: nothing to load

    config: IngestConfig

    def passes(self) -> list[Stage]:
        """Probing, then (a run-wide step) marking later copies of the same content."""
        return [self, DuplicatePass(self.config)] if self.config.drop_duplicates else [self]

    def process_row(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        path = Path(local_path(row["path"]))
        out = {**row, "error": None}
        if not path.is_file():
            return [self.error_row(out, error_text(self.name, "missing_file", row["path"]))]
        if row.get("subtitles_path") and not Path(local_path(row["subtitles_path"])).is_file():
            return [self.error_row(out, error_text(self.name, "missing_subtitles", row["subtitles_path"]))]
        out["size_bytes"] = path.stat().st_size
        out["video_id"] = media.content_hash(path)
        try:
            info = media.probe(path)
        except StageError as exc:  # keep the hash: bad files are still identified by content
            return [{**out, "error": error_text(self.name, exc.reason, exc.detail)}]
        out.update(duration_s=info.duration_s, fps=info.fps, num_frames=info.num_frames, width=info.width,
                   height=info.height, codec=info.codec, rotation=info.rotation,
                   sample_aspect_ratio=info.sample_aspect_ratio, has_audio=info.has_audio)
        return [out]

    def stats(self, view: Any) -> dict[str, Any]:
        ok, seconds = 0, 0.0
        for part in view.parts(["duration_s", "error"]):
            for duration, error in zip(part.column("duration_s").to_pylist(), part.column("error").to_pylist()):
                if not error:
                    ok += 1
                    seconds += duration or 0
        return {"videos_ok": ok, "hours": round(seconds / 3600, 4)}


class DuplicatePass(Stage):
    """Later copies (in path order) of content seen before become `ingest/duplicate` errors: run-wide, so the
    driver first reads every part's (path, video_id, error), the only columns it needs."""

    name = "ingest"
    config_class = IngestConfig
    output_schema = VIDEOS.schema
    stateful = False

    def __init__(self, config: IngestConfig | None = None):
        super().__init__(config)
        self.first_path: dict[str, str] = {}

    @property
    def label(self) -> str:
        return "ingest:duplicates"

    def before(self, previous: list[str], stage_input: list[tuple[str, int]]) -> None:
        first: dict[str, str] = {}
        dupes: set[str] = set()
        for part in iter_parts([Path(p) for p in previous], ["video_id", "error"]):
            for video_id, error in zip(part.column("video_id").to_pylist(), part.column("error").to_pylist()):
                if video_id and not error:
                    dupes.add(video_id) if video_id in first else first.setdefault(video_id, "")
        self.first_path = {}
        for part in iter_parts([Path(p) for p in previous], ["path", "video_id", "error"]) if dupes else ():
            for row in part.to_pylist():
                if row["video_id"] in dupes and not row["error"]:
                    self.first_path.setdefault(row["video_id"], row["path"])

    def process_batch(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        for row in rows:
            first = self.first_path.get(row["video_id"] or "")
            if first is not None and not row["error"] and row["path"] != first:
                row["error"] = error_text(self.name, "duplicate", f"same content as {first}")
        return self.to_table(rows)
