"""Two kinds of failure, kept apart: what is wrong with an input is data (an error row, final), what is wrong with
the machine (a full disk, an I/O error, memory, a model that will not load) is not.

A machine failure raised while a task runs fails the task: nothing of it is written, no row records it, Ray retries
it, and a rerun of the same command redoes it once the machine is fixed. A user mistake (a bad config, an output
folder that cannot be written, a model that is not on this machine) stops the run with one line and exit code 2.
"""

from __future__ import annotations

import errno
from typing import Iterator

# errno values that say the machine, not the input, failed
MACHINE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM, errno.EROFS, errno.ENFILE,
                            errno.EMFILE, errno.ESTALE})
# how ffmpeg and other tools print those errnos on stderr
MACHINE_MESSAGES = ("No space left on device", "Disk quota exceeded", "Input/output error", "Cannot allocate memory",
                    "Read-only file system", "Too many open files", "Stale file handle")
_OOM_TYPES = ("OutOfMemoryError",)  # torch.cuda.OutOfMemoryError and friends, without importing torch


class MachineError(RuntimeError):
    """The machine failed while a task ran: the task fails (and is retried), it is never an input's error."""


class Terminated(KeyboardInterrupt):
    """The driver was asked to stop (SIGTERM, SIGHUP): handled like Ctrl-C, so its workers go with it."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


_STOP_SIGNALS: list[int] = []  # the signals `stop_on_signals` took over (the CLI's, not a library user's)


def stop_on_signals(again: bool = False) -> None:
    """SIGTERM and SIGHUP raise `Terminated` in the main thread (Ctrl-C raises KeyboardInterrupt): every runner then
    ends its workers as it does for Ctrl-C, instead of the process vanishing and leaving them running. `again`:
    take back the signals taken before, from a library that put in its own handlers since (ray.init does)."""
    import signal

    def raise_terminated(signum: int, frame: object) -> None:
        raise Terminated(signum)

    if again:
        for signum in _STOP_SIGNALS:
            signal.signal(signum, raise_terminated)
        return
    for signum in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if signum is not None and signal.getsignal(signum) in (signal.SIG_DFL, None):
            signal.signal(signum, raise_terminated)
            _STOP_SIGNALS.append(signum)


class UserError(ValueError):
    """A mistake the user can fix (config, paths, models): one line, exit code 2."""


class ModelUnavailable(UserError):
    """A model that cannot be had here: not cached, no hub to download it from, or no such local path."""


class SetupFailed(MachineError):
    """A stage's workers could not set up (load a model, import a library): the stage stops; no row is blamed."""


def chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what caused it (`__cause__`, `__context__`, Ray's `.cause`), each once."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        cause = getattr(current, "cause", None)
        todo += [current.__cause__, current.__context__, cause if isinstance(cause, BaseException) else None]


def is_machine_failure(exc: BaseException) -> bool:
    """Whether `exc` is the machine's fault rather than the input's."""
    for current in chain(exc):
        if isinstance(current, (MachineError, MemoryError)) or type(current).__name__ in _OOM_TYPES:
            return True
        if isinstance(current, OSError) and current.errno in MACHINE_ERRNOS:
            return True
        if isinstance(current, (ConnectionError, TimeoutError)) or is_store_failure(current):
            return True
    return False


# the clients of the object store and the network under it: what they raise once their own retries (backoff with
# jitter, pipeline/storage.py) are spent is a failing store or network, not a bad input
_STORE_MODULES = ("botocore", "aiobotocore", "aiohttp", "urllib3", "google.api_core", "google.auth", "requests")


def is_store_failure(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return module.split(".")[0] in {m.split(".")[0] for m in _STORE_MODULES} and \
        not isinstance(exc, (FileNotFoundError, PermissionError))


def machine_message(text: str) -> str | None:
    """The machine failure a tool's error output reports (e.g. ffmpeg's 'No space left on device'), if any."""
    return next((m for m in MACHINE_MESSAGES if m in text), None)


def check_tool_output(tool: str, text: str) -> None:
    """Raise MachineError when a tool's error output says the machine failed, so its failure is not taken for a
    fault of the file it was working on."""
    found = machine_message(text)
    if found:
        tail = " ".join(text.split())[-200:]
        raise MachineError(f"{tool}: {found} ({tail})")


def as_machine_error(exc: BaseException, where: str) -> MachineError:
    first = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    error = MachineError(f"{where}: {first}")
    error.__cause__ = exc
    return error


def find(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    return next((e for e in chain(exc) if isinstance(e, kind)), None)


_HUB_SIGNS = ("Failed to download", "couldn't connect", "Could not connect", "offline mode", "HF_HUB_OFFLINE",
              "Max retries exceeded", "Name or service not known", "Temporary failure in name resolution",
              "Network is unreachable", "LocalEntryNotFoundError", "Connection refused", "getaddrinfo failed")


_MISSING_SIGNS = ("is not a local folder and is not a valid model identifier", "Repository Not Found",
                  "RepositoryNotFoundError", "does not appear to have a file named")


def setup_failure(label: str, exc: Exception) -> Exception:
    """What a stage's failed `setup` means for the run: a model that needs the hub when it cannot be reached is the
    user's to fix (one line that says how); config mistakes pass through as they are; the rest stops the stage as
    a machine failure. Never an input's error."""
    if isinstance(exc, (UserError, MachineError, ValueError, KeyError, FileNotFoundError)):
        return exc
    text = " ".join(f"{type(e).__name__}: {e}" for e in chain(exc))
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0][:200]
    if any(sign in text for sign in _MISSING_SIGNS):
        return ModelUnavailable(f"{label}: its model cannot be found ({first}); check the model's name or path")
    if any(sign in text for sign in _HUB_SIGNS):
        return ModelUnavailable(f"{label}: its model is not on this machine and the model hub cannot be reached "
                                f"({first}); use --profile demo (offline models), or set the model to a local path")
    return as_machine_error(exc, f"{label}: could not set up")
