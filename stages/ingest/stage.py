"""ingest: videos from a folder, a glob or a list file -> a probed, content-hashed `videos` manifest."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa

from vlcurate.manifests import VIDEOS
from vlcurate.pipeline import failures, storage
from vlcurate.pipeline.parts import iter_parts
from vlcurate.pipeline.stage import Context, Output, RowStage, Stage, StageError, Traits, error_text
from vlcurate.stages import media
from vlcurate.stages.ingest.config import IngestConfig
from vlcurate.stages.ingest.sources import Kept, Sources, is_url, remove_kept
from vlcurate.stages.models import dist_version
from vlcurate.stages.paths import source_path
from vlcurate.stages.catalog import STAGES

log = logging.getLogger(__name__)


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
    config_class = IngestConfig
    summary = "Find videos (folder, glob or list file), hash and probe them -> <output>/ingest/."
    output_schema = VIDEOS.schema
    # hashing and probing: nothing to load; the list's own columns (info_json) are read, not carried
    traits = Traits(keeps_loaded=False, carries_columns=False)

    config: IngestConfig

    def discover_input(self, source: str) -> pa.Table:
        """The videos a folder, a glob, a URL or a list file names (stages/ingest/discover.py)."""
        from vlcurate.stages.ingest.discover import discover

        return discover(source, self.config)

    def end_run(self, output: str) -> None:
        if not self.config.fetch.keep_sources:
            remove_kept(output)  # fetched videos, once nothing after needs them

    def passes(self) -> list[Stage]:
        """Probing, then (a run-wide step) marking later copies of the same content."""
        return [self, DuplicatePass(self.config)] if self.config.drop_duplicates else [self]

    def setup(self) -> None:
        self._fetcher: Sources | None = None  # built on the first URL, in the worker: pools and locks stay there
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_fetcher", "_lock")} | {"_ready": False}

    def process_batch(self, batch: pa.Table, ctx: Context = Context()) -> Output:
        """A batch's URLs are fetched `fetch.concurrency` at a time (rows keep their order); files one by one."""
        self.ensure_setup()
        rows = batch.to_pylist()
        urls = sum(1 for r in rows if is_url(r["path"]) and not r.get("error"))
        if urls < 2 or self.config.fetch.concurrency < 2:
            return super().process_batch(batch, ctx)
        with ThreadPoolExecutor(min(urls, self.config.fetch.concurrency), thread_name_prefix="fetch") as pool:
            return self.gather(list(pool.map(lambda row: self.map_row(row, ctx), rows)))

    def process_row(self, row: dict[str, Any], ctx: Context) -> list[dict[str, Any]] | Output:
        out = {**row, "error": None}
        if is_url(row["path"]):
            return self._from_url(row["path"], row.get("info_json"), out, ctx.root)
        source = source_path(row)
        # a missing subtitle file costs only the candidates of the teachers that read subtitles (caption's
        # `bad_subtitles`), not the video
        if not storage.is_remote(source):
            check_entry(source)
        with _copied(source) as local:  # a store object is read once, for its hash and its probe
            return self._probed(out, local, source, media.content_hash(local))

    def _from_url(self, url: str, info_json: str | None, out: dict[str, Any], root: str | None) -> Output:
        """A URL's video: fetched into the run's store once (stages/ingest/sources.py), then probed like a file."""
        info = None
        if info_json:
            data = storage.read_bytes(info_json)
            if data is None:
                raise StageError("missing_file", f"no info JSON at {info_json}")
            info = data.decode("utf-8", "replace")
        with self._lock:
            if self._fetcher is None:
                self._fetcher = Sources(self.config.fetch, f"urllib3 {dist_version('urllib3')}")
        with self._fetcher.get(url, root or ".", info) as (local, kept):
            out.update(source=kept.source, fetch=kept.fetch, title=out["title"] or kept.metadata.get("title"),
                       description=out["description"] or kept.metadata.get("description"),
                       subtitles_path=out["subtitles_path"] or kept.subtitles)
            return Output(self._probed(out, local, url, kept.fetch["sha256"][:16]), counts=fetch_counts(kept))

    def _probed(self, out: dict[str, Any], local: str, source: str, video_id: str) -> list[dict[str, Any]]:
        path = Path(local)
        out["size_bytes"] = path.stat().st_size
        out["video_id"] = video_id
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


def fetch_counts(kept: Kept) -> dict[str, Any]:
    """A URL's part of stats.json's `fetch`: fetched (only after retries?), or found kept by an earlier run; bytes
    and seconds."""
    if kept.reused:
        return {"fetch": {"reused": 1}}
    return {"fetch": {"fetched": 1, "after_retries": int(kept.attempts > 1), "attempts": kept.attempts,
                      "bytes": kept.fetch["bytes"], "seconds": round(kept.seconds, 3)}}


class DuplicatePass(Stage):
    """Later copies (in path order) of content seen before become `ingest/duplicate` errors: run-wide, so the
    driver first reads every part's (path, video_id, error), the only columns it needs."""

    name = "ingest"
    config_class = IngestConfig
    output_schema = VIDEOS.schema
    traits = Traits(keeps_loaded=False, carries_columns=False)

    def __init__(self, config: IngestConfig | None = None):
        super().__init__(config)
        self.first_path: dict[str, str] = {}

    @property
    def label(self) -> str:
        return "ingest:duplicates"

    def prepare(self, pass_input: list[str], stage_input: list[tuple[str, int]]) -> None:
        first: dict[str, str] = {}
        dupes: set[str] = set()
        for part in iter_parts([storage.path(p) for p in pass_input], ["video_id", "error"]):
            for video_id, error in zip(part.column("video_id").to_pylist(), part.column("error").to_pylist()):
                if video_id and not error:
                    dupes.add(video_id) if video_id in first else first.setdefault(video_id, "")
        self.first_path = {}
        for part in iter_parts([storage.path(p) for p in pass_input], ["path", "video_id", "error"]) if dupes else ():
            for row in part.to_pylist():
                if row["video_id"] in dupes and not row["error"]:
                    self.first_path.setdefault(row["video_id"], row["path"])

    def process_batch(self, batch: pa.Table, ctx: Context = Context()) -> pa.Table:
        rows = batch.to_pylist()
        for row in rows:
            first = self.first_path.get(row["video_id"] or "")
            if first is not None and not row["error"] and row["path"] != first:
                row["error"] = error_text(self.name, "duplicate", f"same content as {first}")
        return self.to_table(rows)
