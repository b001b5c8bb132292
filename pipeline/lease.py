"""The output lock on an object store, where there is no flock: a lease object that names its holder.

`<output>/.vlcurate.lock/lease-<generation>` is created with a conditional PUT (`If-None-Match: *`), so of two runs
that race for a generation exactly one wins; the lease with the highest generation is the one that counts. Its
holder rewrites it every `TTL_S / 4` seconds while the run lives; a lease not rewritten for `TTL_S` seconds (by the
store's clock, its LastModified) belongs to a run that died, and the next run takes over by creating the next
generation, with the warning a local takeover prints. A run that ends cleanly deletes its lease. Tasks check before
they write that the highest lease is still their run's (`owns`), so a worker of a dead or superseded run writes
nothing.

On a store that ignores `If-None-Match` (old MinIO, some gateways), two runs starting in the same instant could both
believe they won; each reads its lease back after writing it, and the loser of that race stops, but the window is
not closed. Do not point two runs at one output on such a store.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from vlcurate.pipeline import storage

log = logging.getLogger(__name__)
FOLDER = ".vlcurate.lock"
TTL_S = 60.0


def _leases(folder: Path) -> list[tuple[int, Path]]:
    """(generation, object) of the leases under `folder`, highest last."""
    names = [p for p in storage.children(folder / FOLDER) if p.name.startswith("lease-")]
    return sorted((int(p.name.split("-", 1)[1]), p) for p in names if p.name.split("-", 1)[1].isdigit())


def _read(lease: Path) -> tuple[dict[str, Any], float] | None:
    """The lease's holder and its age in seconds (by the store's clock), or None if it is gone."""
    try:
        fs, key = lease.fs, lease.path  # type: ignore[attr-defined]
        info = fs.info(key)
        holder = json.loads(fs.cat_file(key) or b"{}")
    except (FileNotFoundError, ValueError):
        return None
    modified = info.get("LastModified") or info.get("mtime") or info.get("updated")
    if isinstance(modified, str):
        modified = dt.datetime.fromisoformat(modified.replace("Z", "+00:00"))
    age = time.time() - modified.timestamp() if isinstance(modified, dt.datetime) else 0.0
    return holder, max(0.0, age)


def current(folder: Path) -> tuple[int, Path, dict[str, Any], float] | None:
    """The lease that counts (the highest generation): (generation, object, holder, age); None when none is held."""
    for generation, lease in reversed(_leases(folder)):
        got = _read(lease)
        if got is not None:
            return generation, lease, got[0], got[1]
    return None


def live_holder(folder: Path) -> dict[str, Any] | None:
    """The holder of a live lease on `folder`, else None (no lease, or the last one expired)."""
    found = current(folder)
    if found is None or found[3] > TTL_S:
        return None
    return found[2]


_confirmed: dict[tuple[str, str], float] = {}  # (folder, token) -> when this process last saw the token hold it
CONFIRMED_S = 5.0  # a check within this long of a positive one is answered from memory (a lease lives TTL_S)


def owns(folder: Path, token: str) -> bool:
    """Whether the run `token` holds the lease: a takeover needs the lease unrenewed for TTL_S, so a positive answer
    seen less than CONFIRMED_S ago still stands (tasks check before every write; this spares the store 3 requests
    a check)."""
    key = (str(folder), token)
    if time.monotonic() - _confirmed.get(key, -1e9) < CONFIRMED_S:
        return True
    found = current(folder)
    mine = found is not None and found[2].get("run") == token and found[3] <= TTL_S
    if mine:
        _confirmed[key] = time.monotonic()
    return mine


class Lease:
    """A held lease: `renew` in a daemon thread until `release`."""

    def __init__(self, folder: Path, generation: int, holder: dict[str, Any]):
        self.folder, self.generation, self.holder = folder, generation, holder
        self.object = folder / FOLDER / f"lease-{generation:09d}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="vlcurate-lease", daemon=True)

    def start(self) -> "Lease":
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(TTL_S / 4):
            try:
                found = current(self.folder)
                if found is None or found[0] != self.generation:
                    log.error("%s: another run took over this output's lease; this run's tasks will stop",
                              self.folder)
                    return
                storage.write_bytes(self.object, json.dumps(self.holder).encode())
            except Exception as exc:  # noqa: BLE001  (a store hiccup: the next renewal tries again)
                log.warning("%s: renewing the lease failed (%s); trying again", self.folder, exc)

    def release(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        found = current(self.folder)
        if found is not None and found[0] == self.generation:
            storage.remove(self.object)


def _died_here(holder: dict[str, Any]) -> bool:
    """A holder on this machine whose process is gone (kill -9): its lease need not wait out the TTL."""
    if holder.get("host") != socket.gethostname() or not holder.get("pid"):
        return False
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def try_take(folder: Path, holder: dict[str, Any]) -> tuple[Lease | None, dict[str, Any] | None, dict[str, Any] | None]:
    """(the lease, None, the expired holder taken over) when this run now holds `folder`; (None, the live holder,
    None) when another run does."""
    found = current(folder)
    if found is not None and found[3] <= TTL_S and not _died_here(found[2]):
        return None, found[2], None
    generation = found[0] + 1 if found is not None else 1
    lease = Lease(folder, generation, holder)
    if not storage.create_exclusive(lease.object, json.dumps(holder).encode()):
        again = current(folder)
        return None, (again[2] if again else {}), None
    check = current(folder)  # read back: a store that ignored the condition shows who really won
    if check is None or check[2].get("run") != holder["run"]:
        return None, (check[2] if check else {}), None
    for old_generation, old in _leases(folder):
        if old_generation < generation:
            storage.remove(old)
    return lease.start(), None, (found[2] if found is not None else None)
