"""How fast an ingest worker may fetch: requests per second and connections per host, connections and bandwidth
over all hosts. Shared by the worker's fetch threads; a fetch asks before each request and reports its bytes as
they come, and waits here rather than anywhere else.

The limits hold per ingest worker (process); a run's totals are at most the worker count times them, so a run
that must stay under a site's limit sets `ingest.resources.pool_size` (and Ray's worker count) accordingly.
Token buckets with a burst of one second's worth: a host never sees more than its rate over any second.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from typing import Callable, Iterator
from urllib.parse import urlsplit


class Bucket:
    """A token bucket: `take(n)` waits until n tokens are there; `rate` tokens come per second, up to `burst`."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.rate, self.burst = rate, burst if burst is not None else max(rate, 1.0)
        self.tokens, self.clock, self.sleep = self.burst, clock, sleep
        self.stamp = clock()
        self.lock = threading.Lock()

    def take(self, n: float = 1.0) -> None:
        while True:
            with self.lock:
                now = self.clock()
                self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                # a request bigger than the burst goes through once the bucket is full, leaving it in debt
                if self.tokens >= min(n, self.burst):
                    self.tokens -= n
                    return
                wait = (min(n, self.burst) - self.tokens) / self.rate
            self.sleep(wait)


class Limiter:
    """The worker's limits; a None limit is no limit."""

    def __init__(self, per_host_rps: float | None = None, per_host_connections: int | None = None,
                 max_connections: int | None = None, max_bytes_per_s: float | None = None):
        self.per_host_rps, self.per_host_connections = per_host_rps, per_host_connections
        self.total = threading.BoundedSemaphore(max_connections) if max_connections else None
        # a burst of a tenth of a second: bytes flow evenly instead of a second's worth at once
        self.bandwidth = Bucket(max_bytes_per_s, max_bytes_per_s / 10) if max_bytes_per_s else None
        self.hosts: dict[str, tuple[Bucket | None, threading.BoundedSemaphore | None]] = defaultdict(self._host)
        self.lock = threading.Lock()

    def _host(self) -> tuple[Bucket | None, threading.BoundedSemaphore | None]:
        # 3% under the rate: a host counting arrivals over any second never sees one request more, even when the
        # network delays one request a few tens of milliseconds more than the next
        return (Bucket(self.per_host_rps * 0.97, 1.0) if self.per_host_rps else None,
                threading.BoundedSemaphore(self.per_host_connections) if self.per_host_connections else None)

    @contextlib.contextmanager
    def request(self, url: str) -> Iterator[None]:
        """Around one request to `url`'s host: a connection slot (the host's, then the worker's) and a request
        token, held until the body is read."""
        with self.lock:
            rate, slots = self.hosts[urlsplit(url).netloc.lower()]
        with contextlib.ExitStack() as held:
            for semaphore in (slots, self.total):
                if semaphore is not None:
                    semaphore.acquire()
                    held.callback(semaphore.release)
            if rate is not None:
                rate.take()
            yield

    def transferred(self, n: int) -> None:
        """After `n` bytes came: waits while the worker is over its bandwidth."""
        if self.bandwidth is not None and n:
            self.bandwidth.take(n)


UNLIMITED = Limiter()
