"""Named fault points, armed from the environment, so the fault suite (tests/faults/, `make faults`) can kill or
break a run at an exact place instead of racing a timer: `VLCURATE_FAULTS="caption.pass1.done=kill"`.

`point=action[@n]`, comma-separated; the action fires at the point's n-th hit in a process (default: every hit).
Actions: `kill` (SIGKILL this process), `raise` (a RuntimeError), `enospc` (an OSError: no space left on device),
`full` (the caller writes to /dev/full instead of its file: the tool itself meets a full disk). Unarmed points cost
one dictionary lookup.
"""

from __future__ import annotations

import errno
import os
import signal
from collections import Counter

ENV = "VLCURATE_FAULTS"
_hits: Counter = Counter()


def _armed() -> dict[str, tuple[str, int]]:
    spec = os.environ.get(ENV, "")
    out = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        point, _, action = item.partition("=")
        action, _, nth = action.partition("@")
        out[point.strip()] = (action.strip(), int(nth) if nth else 0)
    return out


def _fires(point: str) -> str | None:
    armed = _armed().get(point) if os.environ.get(ENV) else None
    if armed is None:
        return None
    _hits[point] += 1
    action, nth = armed
    return action if not nth or _hits[point] == nth else None


def hit(point: str) -> None:
    """Fire the action armed at `point`, if any."""
    _do(point, _fires(point))


def _do(point: str, action: str | None) -> None:
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "raise":
        raise RuntimeError(f"fault injected at {point}")
    elif action == "enospc":
        raise OSError(errno.ENOSPC, f"No space left on device (fault injected at {point})")


def path(point: str, target: str | os.PathLike) -> str:
    """`target`, or /dev/full when `full` is armed at `point` (any other action fires as in `hit`)."""
    action = _fires(point)
    if action == "full":
        return "/dev/full"
    _do(point, action)
    return str(target)
