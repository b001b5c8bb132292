"""One run per output folder: `<output>/.vlcurate.lock`, held (flock) for the whole run by the driver.

The kernel drops an flock when its process dies, however it dies, so a lock left by a killed run is never in the
way: the next run takes it over and says whose it was. The file names its holder (pid, host, command, start) for
the message a second run prints, and the run's token: every task carries it and checks it (`owns`) before it
writes, so a worker that outlived a killed driver never writes into the next run. Under Ray the driver holds it;
workers only write inside the folder.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from vlcurate.pipeline import lease, storage
from vlcurate.pipeline.failures import UserError

log = logging.getLogger(__name__)
NAME = ".vlcurate.lock"
_held: dict[str, int] = {}  # folders this process holds: nested runs (a stage inside `run`) just go on
_tokens: dict[str, str] = {}  # the run token of each folder this process holds


class OutputLocked(UserError):
    """Another live run holds the folder."""


def _holder(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 4096).decode() or "{}")
    except (OSError, ValueError):
        return {}


def _describe(holder: dict) -> str:
    if not holder:
        return "another run"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return (f"pid {holder.get('pid')} on {holder.get('host')} ({holder.get('command', 'vlcurate')}, "
            f"since {started})")


def _acquire(path: Path, wait: bool) -> int:
    """An fd holding the flock of the file now at `path` (a file replaced while we waited is locked again)."""
    announced = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            for _ in range(20):  # a run that has just taken the lock writes who it is a moment later
                if holder:
                    break
                time.sleep(0.1)
                holder = _holder(fd)
            os.close(fd)
            if not wait:
                raise OutputLocked(f"{path.parent} is in use by {_describe(holder)}; wait for it to finish, or "
                                   "pass --wait to start when it does") from None
            if not announced:
                log.warning("%s is in use by %s; waiting for it to finish", path.parent, _describe(holder))
                announced = True
            time.sleep(0.5)
            continue
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _key(folder: str | Path) -> str:
    return str(storage.path(folder)) if storage.is_remote(folder) else str(Path(folder).resolve())


def holder(folder: str | Path) -> str | None:
    """Who holds `folder`'s lock now (a live run), in words; None when no run does."""
    if storage.is_remote(folder):
        live = lease.live_holder(storage.path(folder))
        return None if live is None else _describe(live)
    path = Path(folder) / NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _describe(_holder(fd))
    finally:
        os.close(fd)
    return None


def run_token(folder: str | Path) -> str | None:
    """The token of the run this process holds `folder` for (None when it holds no lock there: library use)."""
    return _tokens.get(_key(folder))


def owns(folder: str | Path, token: str | None) -> bool:
    """Whether the run `token` still holds `folder`: a live run holds its lock and the lock names this token. A
    worker that outlived its driver (the lock free, or taken by a later run) must write nothing more. No token (a
    task run without a lock) and no lock file at all (a node that does not see the driver's disk) are not checked."""
    if token is None:
        return True
    if storage.is_remote(folder):
        return lease.owns(storage.path(folder), token)
    try:
        fd = os.open(Path(folder) / NAME, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:  # held: by this run, or by a later one
        return _holder(fd).get("run") == token
    finally:
        os.close(fd)
    return False  # nobody holds it: the run that made this task has ended


class Superseded(RuntimeError):
    """A task whose run no longer holds the output folder: it stops before writing anything more."""


def check_task(task: dict) -> None:
    """Raise `Superseded` unless the run that planned `task` still holds its output folder (`task["root"]`)."""
    if not owns(task["root"], task.get("run")):
        raise Superseded(f"{task.get('name')}: the run that planned this task no longer holds {task['root']}; "
                         "writing nothing")


def prepare_output(folder: Path) -> None:
    """The output folder, made if needed; a path that cannot be one is the user's to fix, in one line."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"output {folder} is a file, not a folder; choose another --output")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        above = next((p for p in folder.parents if p.exists() and not p.is_dir()), None)
        raise UserError(f"output {folder} lies under {above or 'a file'}, which is a file; choose another --output"
                        ) from None
    except OSError as exc:
        raise UserError(f"cannot create output folder {folder}: {exc.strerror}") from None


@contextmanager
def output_lock(folder: str | Path, *, wait: bool = False) -> Iterator[None]:
    """Hold `folder`'s lock while the block runs; a second holder in this process just goes on."""
    key = _key(folder)
    if key in _held:
        yield
        return
    if storage.is_remote(folder):
        storage.check_bucket(folder)
        with _leased(storage.path(folder), key, wait):
            yield
        return
    folder = Path(folder)
    prepare_output(folder)
    path = folder / NAME
    try:
        fd = _acquire(path, wait)
    except PermissionError as exc:
        raise UserError(f"cannot write to output folder {folder}: {exc.strerror}") from None
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES):
            raise
        raise UserError(f"cannot write to output folder {folder}: {exc.strerror}") from None
    _warn_takeover(folder, _holder(fd))
    me = _me()
    token = me["run"]
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode(), 0)
    _held[key], _tokens[key] = fd, token
    try:
        yield
    finally:
        del _held[key], _tokens[key]
        try:
            os.ftruncate(fd, 0)  # released cleanly: nothing stale for the next run to report
        finally:
            os.close(fd)


def _me() -> dict:
    """This run's holder record; its token is the run's identity, which tasks check before they write (`owns`)."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": round(time.time(), 3),
            "run": uuid.uuid4().hex, "command": " ".join(["vlcurate", *sys.argv[1:]])[:300] if sys.argv else "vlcurate"}


def _warn_takeover(folder: str | Path, old: dict | None) -> None:
    if old and old.get("pid") and (old.get("pid"), old.get("host")) != (os.getpid(), socket.gethostname()):
        log.warning("%s: took over the lock of %s, which ended without releasing it", folder, _describe(old))


@contextmanager
def _leased(folder: Path, key: str, wait: bool) -> Iterator[None]:
    """The lock on an object store: a lease object (pipeline/lease.py)."""
    announced = False
    me = _me()
    while True:
        held, other, expired = lease.try_take(folder, me)
        if held is not None:
            break
        if not wait:
            raise OutputLocked(f"{folder} is in use by {_describe(other or {})}; wait for it to finish, or pass "
                               "--wait to start when it does")
        if not announced:
            log.warning("%s is in use by %s; waiting for it to finish", folder, _describe(other or {}))
            announced = True
        time.sleep(2)
    _warn_takeover(folder, expired)
    _held[key], _tokens[key] = -1, me["run"]
    try:
        yield
    finally:
        del _held[key], _tokens[key]
        held.release()
