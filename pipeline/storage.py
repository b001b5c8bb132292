"""One storage layer under every read and write: a local folder or an object store (s3://, gs://, any fsspec URL).

Locations are `pathlib.Path` for local paths and `upath.UPath` (pathlib's API over fsspec) for URLs, so code that
joins, names and reads paths is the same for both; what differs is here:
  - writes are whole objects: locally a temp file renamed into place (as before, the same bytes); on a store one PUT,
    or a multipart upload from a local temp file that is aborted on any exception, so no half object is ever seen;
  - there is no rename on a store: `move` copies each object, then deletes it;
  - reads of Parquet go through a buffered file object (ranged GETs, a few MB at a time);
  - videos are staged into a worker-local scratch file for the tools that need a path (ffmpeg, PyAV, decord), and
    the scratch file goes when the task is done with it.
fsspec (s3fs, gcsfs) rather than pyarrow.fs: it has put-if-absent (the output lease needs it), gs:// through gcsfs
with Google's default credentials, listing with globs, and it is what webdataset and Ray read URLs with.
Credentials come the standard way (AWS variables and profiles, `AWS_ENDPOINT_URL`, Google's application-default
credentials); `configure()` adds a run's `storage_options`, which never travel in a task or land in an output.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

Location = Path  # a Path, or a UPath (a Path subclass for URLs)
READ_BLOCK = 8 << 20  # bytes a store read fetches ahead: a Parquet row group, a video's next stretch
_options: dict[str, dict[str, Any]] = {}  # per protocol: the run's storage_options (this process only)
_DEFAULTS: dict[str, dict[str, Any]] = {
    # listings are never cached: another process (a worker) may have written since this one listed
    "s3": {"use_listings_cache": False, "config_kwargs": {"retries": {"max_attempts": 8, "mode": "adaptive"}}},
    "gs": {"use_listings_cache": False},
}


def configure(options: dict[str, dict[str, Any]] | None) -> None:
    """Extra fsspec options per protocol (`{"s3": {"endpoint_url": ...}}`) for this process's store access."""
    _options.clear()
    _options.update({k: dict(v) for k, v in (options or {}).items()})


def current() -> dict[str, dict[str, Any]]:
    """This process's extra options, for the runner to hand its workers (in memory, never in a task or a file)."""
    return {k: dict(v) for k, v in _options.items()}


def protocol(location: str | os.PathLike) -> str:
    """'' for a local path, else the URL's scheme ('s3', 'gs', 'http', ...)."""
    text = location if isinstance(location, str) else str(location)
    return text.split("://", 1)[0].lower() if "://" in text else ""


def is_remote(location: str | os.PathLike) -> bool:
    return bool(protocol(location)) and protocol(location) != "file"


def options_for(proto: str) -> dict[str, Any]:
    # deep copies: s3fs adds to the dicts it is given, which would change the key of fsspec's instance cache, and
    # every later path would build a new client (and new connections)
    merged = copy.deepcopy(_DEFAULTS.get("s3" if proto in ("s3", "s3a") else proto, {}))
    extra = copy.deepcopy(_options.get(proto, {}))
    if "config_kwargs" in extra and "config_kwargs" in merged:
        extra["config_kwargs"] = {**merged["config_kwargs"], **extra["config_kwargs"]}
    merged.update(extra)
    return merged


def path(location: str | os.PathLike) -> Path:
    """A location as a path object: `Path` for a local path (and file://), `UPath` for a store URL."""
    if isinstance(location, Path) or hasattr(location, "fs"):  # a Path, or already a UPath
        return location  # type: ignore[return-value]
    text = location if isinstance(location, str) else os.fspath(location)
    if text.startswith("file://"):
        return Path(text[len("file://"):])
    if not is_remote(text):
        return Path(text)
    from upath import UPath

    return UPath(text.rstrip("/"), **options_for(protocol(text)))


def _fs(location: Path) -> tuple[Any, str]:
    return location.fs, location.path  # type: ignore[attr-defined]


def write_bytes(location: str | Path, data: bytes) -> None:
    """Write one whole object: a reader sees the old bytes or the new, never part of them."""
    location = path(location)
    if not is_remote(location):
        _local_atomic(location, lambda tmp: Path(tmp).write_bytes(data))
        return
    fs, key = _fs(location)
    fs.pipe_file(key, data)


def write_with(location: str | Path, writer: Callable[[str], None]) -> dict[str, Any]:
    """`writer(local_file)` writes the content; it lands at `location` whole (renamed locally, uploaded to a store:
    multipart uploads are aborted on any exception). Returns the content's `bytes` and `sha256`, taken from the
    local file before it moves: an index never reads back what was just written."""
    location = path(location)
    facts: dict[str, Any] = {}

    def write_and_digest(tmp: str) -> None:
        writer(tmp)
        facts.update(digest(tmp))

    if not is_remote(location):
        _local_atomic(location, write_and_digest)
        return facts
    fs, key = _fs(location)
    with scratch_file(location.suffix) as tmp:
        write_and_digest(tmp)
        fs.put_file(tmp, key)
    return facts


def digest(local: str) -> dict[str, Any]:
    """A local file's size and sha256."""
    sha, size = hashlib.sha256(), 0
    with open(local, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
            size += len(block)
    return {"bytes": size, "sha256": sha.hexdigest()}


def create_exclusive(location: str | Path, data: bytes) -> bool:
    """Write `data` only if nothing is there yet (S3 `If-None-Match: *`; O_EXCL locally): False if something was."""
    location = path(location)
    if not is_remote(location):
        location.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(location, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True
    fs, key = _fs(location)
    try:
        fs.pipe_file(key, data, mode="create")
    except (FileExistsError, OSError) as exc:
        if isinstance(exc, FileExistsError) or "pre-condition" in str(exc).lower() or "412" in str(exc):
            return False
        raise
    return True


def _local_atomic(location: Path, writer: Callable[[str], None]) -> None:
    location.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=location.parent, prefix=f".{location.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, location)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def open_read(location: str | Path) -> str | BinaryIO:
    """What pyarrow reads a Parquet file from: a local path as a string, a store object as a buffered file object
    (ranged GETs of `READ_BLOCK`)."""
    location = path(location)
    if not is_remote(location):
        return str(location)
    fs, key = _fs(location)
    return fs.open(key, "rb", block_size=READ_BLOCK, cache_type="readahead")


_kept: dict[str, tuple[Any, Any]] = {}  # store objects held open by `parquet_file(keep=True)`, oldest first
KEPT = 2  # at most this many: each holds its footer and one READ_BLOCK of read-ahead


@contextlib.contextmanager
def parquet_file(location: str | Path, keep: bool = False, **options: Any) -> Iterator[Any]:
    """A `pyarrow.parquet.ParquetFile` over a local file or a store object, closed (with its connection) after.
    `keep`: a store object stays open until `release()` (a task reading a frame store batch after batch opens it,
    and reads its footer, once instead of once a batch)."""
    import pyarrow.parquet as pq

    if keep and is_remote(location):
        key = str(path(location))
        if key not in _kept:
            source = open_read(location)
            _kept[key] = (source, pq.ParquetFile(source, **options))
            while len(_kept) > KEPT:
                _kept.pop(next(iter(_kept)))[0].close()
        _kept[key] = _kept.pop(key)  # the newest now
        yield _kept[key][1]
        return
    source = open_read(location)
    try:
        with pq.ParquetFile(source, **options) as parquet:
            yield parquet
    finally:
        if not isinstance(source, str):
            source.close()


def release() -> None:
    """Close what `parquet_file(keep=True)` held open (a task's end: the next task sees the store as it is now)."""
    while _kept:
        _kept.pop(next(iter(_kept)))[0].close()


def in_run(reference: str, root: str | Path | None) -> Path:
    """A `run:<key>` reference (what manifests keep for files a run made: transcripts, fetched sources) as a
    location under the run's output `root`; manifests never name the folder itself."""
    if not reference.startswith("run:"):
        raise ValueError(f"{reference} is not a run: reference")
    if root is None:
        raise ValueError(f"{reference} is relative to a run's output folder, and none was given")
    return path(root) / reference[4:]


def relative(location: str | Path, root: str | Path) -> str:
    """`location`'s key under `root`, '/'-separated (what indexes and references keep: never a machine's path)."""
    full, base = str(path(location)), str(path(root)).rstrip("/")
    if base == ".":
        return full
    if not full.startswith(base + "/"):
        raise ValueError(f"{full} is not under {base}")
    return full[len(base) + 1:]


def read_bytes(location: str | Path) -> bytes | None:
    """The whole content, or None when nothing is there (on a store: one GET, no HEAD or listing first)."""
    location = path(location)
    if not is_remote(location):
        try:
            return location.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
    fs, key = _fs(location)
    try:
        return fs.cat_file(key, max_concurrency=1)  # one GET (s3fs asks for the size first when concurrent)
    except (FileNotFoundError, IsADirectoryError):
        return None


def rmtree(location: str | Path) -> None:
    """Remove a folder (a prefix on a store) and all under it; nothing there is not an error."""
    location = path(location)
    if not is_remote(location):
        shutil.rmtree(location, ignore_errors=True)
        return
    fs, key = _fs(location)
    found = _keys(location, recursive=True)
    if found:
        with contextlib.suppress(FileNotFoundError):
            fs.rm(sorted(found, key=len, reverse=True))


def remove(location: str | Path) -> None:
    location = path(location)
    if not is_remote(location):
        location.unlink(missing_ok=True)
        return
    fs, key = _fs(location)
    with contextlib.suppress(FileNotFoundError):
        fs.rm_file(key)


def move(source: str | Path, target: str | Path) -> None:
    """Move one file: a rename locally; on a store (no rename there), copy, then delete."""
    source, target = path(source), path(target)
    if not is_remote(source):
        target.parent.mkdir(parents=True, exist_ok=True)
        source.rename(target)
        return
    fs, key = _fs(source)
    fs.copy(key, _fs(target)[1])
    fs.rm_file(key)


def children(location: str | Path) -> list[Path]:
    """What a folder (a prefix) holds, one level down; nothing when it is not there."""
    location = path(location)
    if not is_remote(location):
        try:
            return sorted(location.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return []
    names = _keys(location, recursive=False)
    key = _fs(location)[1]
    base = str(location).rstrip("/")
    return sorted(path(f"{base}/{n.rstrip('/').rsplit('/', 1)[-1]}") for n in names if n.rstrip("/") != key.rstrip("/"))


def _keys(location: Path, recursive: bool) -> list[str]:
    """The keys under a prefix (one level down, or all), from listings only: on S3 one LIST request a thousand
    keys (fsspec's `find` and `ls` add a HEAD and a second LIST when the prefix is empty, as it usually is)."""
    fs, key = _fs(location)
    if protocol(location) not in ("s3", "s3a"):
        try:
            return list(fs.find(key, withdirs=True) if recursive else fs.ls(key, detail=False))
        except (FileNotFoundError, NotADirectoryError):
            return []
    bucket, _, prefix = key.partition("/")
    prefix = prefix.rstrip("/") + "/"
    args = {"Bucket": bucket, "Prefix": prefix, **({} if recursive else {"Delimiter": "/"})}
    out: list[str] = []
    while True:
        page = fs.call_s3("list_objects_v2", **args)
        out += [f"{bucket}/{o['Key']}" for o in page.get("Contents", [])]
        out += [f"{bucket}/{p['Prefix'].rstrip('/')}" for p in page.get("CommonPrefixes", [])]
        if not page.get("IsTruncated"):
            return out
        args["ContinuationToken"] = page["NextContinuationToken"]


def check_bucket(location: str | Path) -> None:
    """One clear line, before any work, when a store location's bucket is not there or these credentials cannot
    reach it (else the first task would fail as the machine's)."""
    from vlcurate.pipeline.failures import UserError

    where = path(location)
    fs, key = _fs(where)
    bucket = key.split("/", 1)[0]
    try:
        found = fs.exists(bucket)
    except PermissionError as exc:
        raise UserError(f"{location}: access to bucket {bucket!r} denied ({exc}); check the credentials "
                        "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, a profile) and AWS_ENDPOINT_URL") from None
    if not found:
        raise UserError(f"{location}: bucket {bucket!r} does not exist, or these credentials cannot see it "
                        "(check AWS_ENDPOINT_URL and the keys)")


def exists(location: str | Path) -> bool:
    return path(location).exists()


@contextlib.contextmanager
def scratch_file(suffix: str = "") -> Iterator[str]:
    """A worker-local temp file (under $VLCURATE_SCRATCH, else the system's temp folder), gone when the block ends."""
    root = os.environ.get("VLCURATE_SCRATCH") or None
    if root:
        Path(root).mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=root, prefix="vlcurate-", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextlib.contextmanager
def local_copy(location: str | os.PathLike) -> Iterator[str]:
    """A local path holding the location's bytes, for tools that need a path (ffprobe, ffmpeg, PyAV, decord): a
    local path as it is; a store object downloaded once (one streamed GET) into a scratch file that goes after."""
    if not is_remote(location):
        yield os.fspath(location)
        return
    where = path(location)
    fs, key = _fs(where)
    with scratch_file(where.suffix) as tmp:
        fs.get_file(key, tmp)
        yield tmp


@contextlib.contextmanager
def media_input(location: str | os.PathLike) -> Iterator[str]:
    """What ffmpeg opens for a clip cut out of a video: a local path as it is; an S3 object as a presigned HTTPS URL
    (ffmpeg seeks in it with ranged reads, no download first); any other store object as a local copy."""
    if not is_remote(location):
        yield os.fspath(location)
        return
    where = path(location)
    fs, key = _fs(where)
    if protocol(where) in ("s3", "s3a"):
        yield fs.url(key, expires=6 * 3600)
        return
    with local_copy(location) as tmp:
        yield tmp
