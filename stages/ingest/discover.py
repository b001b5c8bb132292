"""What ingest sees: every entry of a folder (recursive), a glob's matches, or a CSV/JSONL/Parquet list's rows,
each one a row. Nothing is dropped here: entries that are not videos by name get a reason (`ingest/skipped`);
special files, broken links and unreadable files are told apart by the ingest stage, per row.

Names are bytes on Linux and need not be UTF-8: such a path is kept exactly in `path_bytes` and shown with its odd
bytes escaped in `path`, so one strange name never stops a scan or goes missing.
"""

from __future__ import annotations

import glob
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa

from vlcurate.pipeline import storage
from vlcurate.pipeline.stage import error_text
from vlcurate.manifests import SPAN
from vlcurate.stages.ingest import columns, lists
from vlcurate.stages.ingest.config import AUDIO_EXTENSIONS, LIST_EXTENSIONS, SUBTITLE_EXTENSIONS, IngestConfig

SCHEMA = pa.schema([("path", pa.string()), ("path_bytes", pa.binary()), ("title", pa.string()),
                    ("description", pa.string()), ("subtitles_path", pa.string()), ("spans", pa.list_(SPAN)),
                    ("given_captions", pa.list_(pa.string())), ("info_json", pa.string()), ("error", pa.string())])

log = logging.getLogger(__name__)


def shown(raw: bytes) -> tuple[str, bytes | None]:
    """(the path as text, its exact bytes when that text is not them): UTF-8 names are stored as they are."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace"), raw


def _row(raw: bytes, error: str | None = None, subtitles: str | None = None) -> dict[str, Any]:
    path, exact = shown(raw)
    return {"path": path, "path_bytes": exact, "title": None, "description": None, "subtitles_path": subtitles,
            "spans": None, "given_captions": None, "info_json": None, "error": error}


def _walk(root: bytes) -> Iterator[tuple[bytes, str | None]]:
    """Every entry under `root` that is not a folder, with an error for folders that cannot be listed; links to
    folders are followed, each folder once (a link loop ends there)."""
    seen: set[tuple[int, int]] = set()
    todo = [root]
    while todo:
        folder = todo.pop()
        try:
            stat = os.stat(folder)
            if (stat.st_dev, stat.st_ino) in seen:
                continue
            seen.add((stat.st_dev, stat.st_ino))
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            yield folder, error_text("ingest", "unreadable_folder", exc.strerror or str(exc))
            continue
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:  # a link loop or a dangling link: an entry, told apart by the stage
                is_dir = False
            if is_dir:
                todo.append(entry.path)
            else:
                yield entry.path, None


def _folder_rows(entries: list[tuple[bytes, str | None]], extensions: tuple[str, ...],
                 sidecars: bool, is_file: Any = os.path.isfile) -> list[dict[str, Any]]:
    """Rows for the entries: videos (and audio files, which the stage reports as such) are probed, subtitle files
    beside a video are its sidecar, the rest are rows that say why they were skipped."""
    names = {raw for raw, _ in entries}
    used: set[bytes] = set()
    rows = []
    for raw, error in entries:
        stem, ext = os.path.splitext(raw)
        ext_text = ext.decode("utf-8", "replace").lower()
        if error or ext_text not in extensions + AUDIO_EXTENSIONS:
            continue
        subtitles = None
        for sub in SUBTITLE_EXTENSIONS if sidecars else ():
            candidate = stem + sub.encode()
            if candidate in names and is_file(candidate):
                text, exact = shown(candidate)
                if exact is None:
                    subtitles = text
                    used.add(candidate)
                else:
                    log.warning("ingest: subtitles %s are not used: their name is not UTF-8", text)
                break
        rows.append(_row(raw, subtitles=subtitles))
    for raw, error in entries:
        ext_text = os.path.splitext(raw)[1].decode("utf-8", "replace").lower()
        if error:
            rows.append(_row(raw, error))
        elif raw not in used and ext_text not in extensions + AUDIO_EXTENSIONS:
            what = f"a {ext_text} file" if ext_text else "a file without an extension"
            rows.append(_row(raw, error_text("ingest", "skipped", f"{what}, not a video by name "
                                                                  "(ingest.extensions lists those taken)")))
    return rows


def _read_list_file(path: Path, config: Any) -> list[dict[str, Any]]:
    """A list's rows (stages/ingest/lists.py: strict parsing, confined paths); a malformed one stops the run with
    the file and the row named, a path it may not name is a row with its reason."""
    confine = lists.Confinement(path, config.list_paths == "anywhere", config.allowed_roots)
    out = []
    for where, row in lists.read_list(path):
        video, error = confine.resolve(columns.video_of(row))
        subtitles, sub_error = confine.resolve(row.get("subtitles"))
        info_json, info_error = confine.resolve(row.get("info_json"))
        for what, extra in (("subtitles", sub_error), ("info_json", info_error)):
            if extra and not error:
                error = extra.replace(": ", f": {what} ", 1)
        spans = columns.spans_of(row, f"{path}, {where}")
        out.append({**_row(os.fsencode(video), error), "title": row.get("title") or None,
                    "description": row.get("description") or None, "subtitles_path": subtitles, "spans": spans,
                    "given_captions": columns.captions_of(row, spans, f"{path}, {where}"), "info_json": info_json})
    return out


def _store_rows(url: str, config: Any, extensions: tuple[str, ...]) -> list[dict[str, Any]]:
    """An input on an object store: a list file, a glob, or every object under a prefix (subtitles beside their
    videos), each named by its full URL."""
    storage.check_bucket(url)
    where = storage.path(url)
    fs, key, scheme = where.fs, where.path, storage.protocol(url)  # type: ignore[attr-defined]
    if where.suffix.lower() in LIST_EXTENSIONS and fs.isfile(key):
        return _read_list_file(where, config)
    if any(ch in url for ch in "*?["):
        keys = sorted(fs.glob(key))
    else:
        keys = sorted(fs.find(key)) or ([key] if fs.isfile(key) else [])
    if not keys:
        raise FileNotFoundError(f"input {url!r}: no objects there")
    entries = [(f"{scheme}://{k}".encode(), None) for k in keys if not k.endswith("/")]
    return _folder_rows(entries, extensions, config.sidecar_subtitles, is_file=lambda _: True)


def discover(source: str | Path, config: Any = None) -> pa.Table:
    """A folder (recursive), a glob, a single video, or a CSV/JSONL/Parquet list with path[, title, description,
    subtitles]: one row per entry, sorted by path."""
    config = config or IngestConfig()
    text = str(source)
    path = Path(text).expanduser()
    extensions = tuple(e.lower() for e in config.extensions)
    if storage.protocol(text) in ("http", "https") and not text.lower().endswith(LIST_EXTENSIONS):
        rows = [_row(text.encode())]  # one video (or page) named by its URL: fetched by the ingest stage
    elif storage.is_remote(text):
        rows = _store_rows(text, config, extensions)
    elif path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
        rows = _read_list_file(path, config)
    elif path.is_dir():
        rows = _folder_rows(list(_walk(os.fsencode(os.path.abspath(path)))), extensions, config.sidecar_subtitles)
    elif any(ch in text for ch in "*?["):
        matches = sorted(os.fsencode(os.path.abspath(p)) for p in glob.glob(text, recursive=True))
        rows = _folder_rows([(m, None) for m in matches if not os.path.isdir(m)], extensions,
                            config.sidecar_subtitles)
    elif path.exists() or path.is_symlink():
        rows = _folder_rows([(os.fsencode(os.path.abspath(path)), None)], extensions, config.sidecar_subtitles)
    else:
        raise FileNotFoundError(f"input {text!r} is not a folder, a glob, a video or a list file")
    if not any(r["error"] is None for r in rows):
        refused = Counter(r["error"].split(":")[0] for r in rows if not r["error"].startswith("ingest/skipped"))
        why = "; ".join(f"{n} {reason}" for reason, n in sorted(refused.items()))
        raise FileNotFoundError(f"no videos found in {text!r} (extensions: {', '.join(extensions)})"
                                + (f"; {len(rows)} other entries" if rows else "") + (f" ({why})" if why else "")
                                + ("; see ingest.allowed_roots and ingest.list_paths" if "outside_list_folder" in why
                                   else ""))
    first: dict[tuple[str, bytes | None], dict[str, Any]] = {}
    for row in rows:  # a path is one input: stages after ingest key their rows (and resume) by it
        key = (row["path"], row["path_bytes"])
        if key in first:
            log.warning("ingest: %s is listed more than once; keeping its first row", row["path"])
        else:
            first[key] = row
    return pa.Table.from_pylist(sorted(first.values(), key=lambda r: (r["path"], r["path_bytes"] or b"")),
                                schema=SCHEMA)
