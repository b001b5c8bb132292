"""Videos named by URLs, fetched once: on the worker into scratch, then kept whole in the run's store under
`sources/<sha256(url)[:16]>.<ext>`, where every later stage reads them (`run:sources/...`).

The media object lands first (a whole-object write), then `<key>.json`, its completion marker, with the fetch's
provenance: a rerun, a resumed run, or a later task that meets the URL again finds the marker and fetches nothing;
a `kill -9` before the marker leaves no marker, so the URL is fetched again from the start. What the fetch took
(seconds, attempts) lives in the marker and in stats, never in a manifest, so reruns stay byte-identical.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.robotparser
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from vlcurate.pipeline import storage
from vlcurate.pipeline.stage import StageError
from vlcurate.stages.ingest import pages
from vlcurate.stages.ingest.config import VIDEO_EXTENSIONS
from vlcurate.stages.ingest.fetch import FetchConfig, FetchFailed, Fetched, fetch, make_pool
from vlcurate.stages.ingest.limits import Limiter

FOLDER = "sources"
CONTENT_TYPES = {"video/mp4": ".mp4", "video/webm": ".webm", "video/x-matroska": ".mkv", "video/quicktime": ".mov",
                 "video/mp2t": ".ts", "video/x-flv": ".flv", "video/ogg": ".ogv", "video/3gpp": ".3gp"}


def is_url(path: str | None) -> bool:
    return bool(path) and storage.protocol(path) in ("http", "https")  # type: ignore[arg-type]


def key_of(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


@dataclass
class Kept:
    """A URL's video in the run's store, and what the manifest row takes from its fetch."""

    source: str                      # run:sources/<key>.<ext>
    fetch: dict[str, Any]            # the manifest's FETCH struct
    metadata: dict[str, Any] = field(default_factory=dict)  # title, description from a page
    subtitles: str | None = None     # run:sources/<key>.<lang>.<ext>, from a page
    attempts: int = 1
    seconds: float = 0.0
    reused: bool = False


class Sources:
    """One ingest worker's fetcher: its connection pool, limits and robots.txt answers, shared by its threads."""

    def __init__(self, config: FetchConfig, version: str):
        self.config, self.version = config, version
        self.limiter = Limiter(config.per_host_rps, config.per_host_connections, config.max_connections,
                               config.max_bytes_per_s)
        self.pool = make_pool(config, connections=max(config.concurrency, 4))
        self.robots: dict[str, urllib.robotparser.RobotFileParser | None] = {}
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def get(self, url: str, root: str, info_json: str | None = None) -> Iterator[tuple[str, Kept]]:
        """(a local file with the URL's video, what was kept): fetched now, or found kept by an earlier run."""
        folder = storage.path(root) / FOLDER
        marker = folder / f"{key_of(url)}.json"
        recorded = storage.read_bytes(marker)
        if recorded is not None:  # fetched before: the marker is written only after the whole video
            kept = Kept(**{**json.loads(recorded), "reused": True})
            with storage.local_copy(storage.in_run(kept.source, root)) as local:
                yield local, kept
            return
        with storage.scratch_file() as local:
            began = time.monotonic()
            kept = self._fetch(url, local, folder, info_json)
            kept.seconds = round(time.monotonic() - began, 3)
            storage.write_with(folder / kept.source.rsplit("/", 1)[1], lambda tmp: shutil.copyfile(local, tmp))
            storage.write_bytes(marker, json.dumps({**kept.__dict__, "reused": False}, sort_keys=True).encode())
            yield local, kept

    def _fetch(self, url: str, local: str, folder: Path, info_json: str | None) -> Kept:
        """A direct file, or a page resolved by yt-dlp: `auto` tries a URL with a video's extension as a file,
        and a page when what comes is HTML."""
        self._check_robots(url)
        mode = self.config.resolver
        try:
            if mode == "direct" or (mode == "auto" and info_json is None and _video_suffix(url)):
                try:
                    got = fetch(url, local, self.config, self.pool, limiter=self.limiter)
                except FetchFailed as exc:
                    if mode == "direct" or exc.reason != "not_a_video" or "html" not in exc.detail:
                        raise
                    return self._page(url, local, folder, None)
                ext = _video_suffix(url) or CONTENT_TYPES.get((got.content_type or "").split(";")[0], ".mp4")
                return Kept(source=f"run:{FOLDER}/{key_of(url)}{ext}", fetch=self._record(got, "http"),
                            attempts=got.attempts)
            return self._page(url, local, folder, info_json)
        except FetchFailed as exc:
            raise StageError(exc.reason, exc.detail) from None

    def _page(self, url: str, local: str, folder: Path, info_json: str | None) -> Kept:
        page = pages.resolve(url, self.config, info_json, self.limiter)
        attempts, got = 0, None
        with contextlib.ExitStack() as parts:
            files = []
            for media in page.media:
                target = local if len(page.media) == 1 else parts.enter_context(storage.scratch_file())
                got = fetch(media["url"], target, self.config, self.pool, limiter=self.limiter,
                            headers=media["headers"])
                attempts += got.attempts
                files.append(target)
            if len(files) > 1:
                _merge(files, local)
                merged = storage.digest(local)
                got.sha256, got.bytes = merged["sha256"], merged["bytes"]
        assert got is not None
        record = {**self._record(got, page.extractor, pages.yt_dlp_version()), "format": page.format,
                  "page_id": page.page_id, **{k: page.metadata.get(k) for k in ("channel", "upload_date", "license")}}
        key = key_of(url)
        return Kept(source=f"run:{FOLDER}/{key}.{page.ext}", fetch=record, attempts=attempts,
                    metadata={k: page.metadata.get(k) for k in ("title", "description")},
                    subtitles=self._subtitles(page, folder, key))

    def _subtitles(self, page: pages.Page, folder: Path, key: str) -> str | None:
        """The first configured language the page has, kept beside the video (a subtitle that cannot be fetched
        costs only the subtitles, not the video)."""
        for lang in self.config.subtitle_langs:
            sub = page.subtitles.get(lang)
            if not sub:
                continue
            name = f"{key}.{lang}.{sub['ext']}"
            if sub.get("data"):
                storage.write_bytes(folder / name, sub["data"].encode())
                return f"run:{FOLDER}/{name}"
            with storage.scratch_file() as tmp:
                try:
                    fetch(sub["url"], tmp, self.config, self.pool, limiter=self.limiter, media=False)
                except FetchFailed:
                    continue
                storage.write_with(folder / name, lambda t: shutil.copyfile(tmp, t))
            return f"run:{FOLDER}/{name}"
        return None

    def _record(self, got: Fetched, extractor: str, version: str | None = None) -> dict[str, Any]:
        return {"final_url": got.final_url, "status": got.status, "etag": got.etag,
                "last_modified": got.last_modified, "content_type": got.content_type, "bytes": got.bytes,
                "sha256": got.sha256, "extractor": extractor, "extractor_version": version or self.version,
                "format": None, "page_id": None, "channel": None, "upload_date": None, "license": None}

    def _check_robots(self, url: str) -> None:
        if not self.config.respect_robots:
            return
        parts = urllib.parse.urlsplit(url)
        site = f"{parts.scheme}://{parts.netloc}"
        with self.lock:
            if site not in self.robots:
                parser: urllib.robotparser.RobotFileParser | None = urllib.robotparser.RobotFileParser()
                with storage.scratch_file() as tmp:
                    try:
                        fetch(f"{site}/robots.txt", tmp, self.config.model_copy(update={"retries": 1}), self.pool,
                              limiter=self.limiter, media=False)
                        parser.parse(Path(tmp).read_text(errors="replace").splitlines())  # type: ignore[union-attr]
                    except FetchFailed:
                        parser = None  # no robots.txt: nothing is disallowed
                self.robots[site] = parser
            parser = self.robots[site]
        if parser is not None and not parser.can_fetch(self.config.user_agent, url):
            raise StageError("unavailable", f"robots.txt of {site} disallows it ({url})")


def _video_suffix(url: str) -> str | None:
    suffix = os.path.splitext(urllib.parse.urlsplit(url).path)[1].lower()
    return suffix if suffix in VIDEO_EXTENSIONS else None


def _merge(files: list[str], target: str) -> None:
    """Video and audio fetched apart, into one Matroska file with their packets untouched."""
    from vlcurate.stages.media import commands

    done = subprocess.run(commands.merge_streams_args(files[0], files[1], target), capture_output=True, text=True)
    if done.returncode != 0:
        raise StageError("not_a_video", f"video and audio could not be put together: {done.stderr.strip()[:300]}")


def remove_kept(root: str) -> None:
    """`fetch.keep_sources: false`: the run's fetched videos go once it is done."""
    storage.rmtree(storage.path(root) / FOLDER)
