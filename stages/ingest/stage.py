"""ingest: videos from a folder, a glob or a list file -> a probed, content-hashed `videos` manifest."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from pathlib import Path
from typing import Any, Iterator, Literal

import pyarrow as pa
from pydantic import Field

from manifests import VIDEOS
from pipeline import failures, storage
from pipeline.parts import iter_parts
from pipeline.stage import RowStage, Stage, StageConfig, StageError, error_text
from stages import media
from stages.ingest.discover import VIDEO_EXTENSIONS, discover
from stages.models import source_path
from stages.catalog import STAGES

log = logging.getLogger(__name__)


class IngestConfig(StageConfig):
    extensions: list[str] = Field(default_factory=lambda: list(VIDEO_EXTENSIONS),
                                  description="file endings picked up from folders and globs")
    sidecar_subtitles: bool = Field(True, description="use <video>.vtt/.srt next to a video as its subtitles")
    drop_duplicates: bool = Field(True, description="mark later copies of identical content as errors")
    list_paths: Literal["confined", "anywhere"] = Field(
        "confined", description="what a list file's paths may name: files under the list's own folder (and "
                                "allowed_roots), or any path; /proc, /sys and /dev only if allowed_roots names them")
    allowed_roots: list[str] = Field(default_factory=list, description="folders a list file's paths may name "
                                                                      "besides the list's own")


def check_entry(path: str) -> None:
    """Why a path cannot be read as a file, as a StageError (links, special files, permissions), else nothing."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        raise StageError("missing_file", "no such file") from None
    except OSError as exc:
        raise StageError("unreadable", exc.strerror or str(exc)) from None
    if stat.S_ISLNK(mode):
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            raise StageError("dangling_symlink", f"a link to {os.readlink(path)!r}, which does not exist") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StageError("symlink_loop", "a link that leads back to itself") from None
            raise StageError("unreadable", exc.strerror or str(exc)) from None
    kinds = {stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a character device",
             stat.S_ISBLK: "a block device", stat.S_ISDIR: "a folder"}
    for test, what in kinds.items():
        if test(mode):
            raise StageError("not_a_file", f"{what}, not a regular file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        if failures.is_machine_failure(exc):
            raise
        raise StageError("unreadable", exc.strerror or str(exc)) from None


@contextlib.contextmanager
def _copied(source: str) -> Iterator[str]:
    """`storage.local_copy`, with a store object that is not there as its input's error (one GET, no HEAD first);
    a store that fails to answer stays the machine's."""
    fetched = False
    try:
        with storage.local_copy(source) as local:
            fetched = True
            yield local
    except FileNotFoundError:
        if fetched or not storage.is_remote(source):
            raise
        raise StageError("missing_file", "no such object") from None


@STAGES.register("ingest")
class IngestStage(RowStage):
    name = "ingest"
    config_class = IngestConfig
    reads_input = True
    summary = "Find videos (folder, glob or list file), hash and probe them -> <output>/ingest/."
    output_schema = VIDEOS.schema
    stateful = False  # hashing and probing: nothing to load

    config: IngestConfig

    def passes(self) -> list[Stage]:
        """Probing, then (a run-wide step) marking later copies of the same content."""
        return [self, DuplicatePass(self.config)] if self.config.drop_duplicates else [self]

    def process_row(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        source = source_path(row)
        out = {**row, "error": None}
        # a missing subtitle file costs only the candidates of the teachers that read subtitles (caption's
        # `bad_subtitles`), not the video
        if not storage.is_remote(source):
            check_entry(source)
        with _copied(source) as local:  # a store object is read once, for its hash and its probe
            path = Path(local)
            out["size_bytes"] = path.stat().st_size
            out["video_id"] = media.content_hash(path)
            try:
                info = media.probe(path)
            except StageError as exc:  # keep the hash: bad files are still identified by content
                detail = exc.detail.replace(local, source)  # the input as given, never a scratch copy's path
                return [{**out, "error": error_text(self.name, exc.reason, detail)}]
        out.update(duration_s=info.duration_s, fps=info.fps, num_frames=info.num_frames,
                   frames_stated=info.frames_stated, width=info.width,
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
        for part in iter_parts([storage.path(p) for p in previous], ["video_id", "error"]):
            for video_id, error in zip(part.column("video_id").to_pylist(), part.column("error").to_pylist()):
                if video_id and not error:
                    dupes.add(video_id) if video_id in first else first.setdefault(video_id, "")
        self.first_path = {}
        for part in iter_parts([storage.path(p) for p in previous], ["path", "video_id", "error"]) if dupes else ():
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
