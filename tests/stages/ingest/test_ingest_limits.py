"""An ingest worker's limits (stages/ingest/limits.py), against the loopback server: a host never sees more requests
in a second than its limit, and bytes flow at the bandwidth asked for."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from vlcurate.stages.ingest.fetch import FetchConfig, fetch, make_pool
from vlcurate.stages.ingest.limits import Bucket, Limiter
from tests.httpserver import Handler, Server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("www")
    (folder / "blob.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(100_000))
    served = Server(folder)
    yield served
    served.stop()


def most_in_a_second(times: list[float]) -> int:
    times = sorted(times)
    return max(sum(1 for u in times if t <= u < t + 1.0) for t in times)


def test_a_bucket_gives_its_rate_and_no_more():
    clock = [0.0]
    bucket = Bucket(2.0, 1.0, clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    for _ in range(5):
        bucket.take()
    assert clock[0] == pytest.approx(2.0)


def test_eight_threads_stay_under_a_hosts_request_rate(server, tmp_path):
    config = FetchConfig()
    limiter, pool = Limiter(per_host_rps=4, per_host_connections=8), make_pool(config, 8)
    before = len(Handler.arrivals)

    def one(i: int) -> None:
        fetch(server.url("blob.mp4"), str(tmp_path / f"{i}.bin"), config, pool, limiter=limiter)

    with ThreadPoolExecutor(8) as threads:
        list(threads.map(one, range(12)))
    arrivals = [t for t, _ in Handler.arrivals[before:]]
    assert len(arrivals) == 12 and most_in_a_second(arrivals) <= 4


def test_bytes_flow_at_the_bandwidth_asked_for(server, tmp_path):
    config = FetchConfig()
    limiter, pool = Limiter(max_bytes_per_s=200_000), make_pool(config, 4)
    began = time.monotonic()
    with ThreadPoolExecutor(4) as threads:
        list(threads.map(lambda i: fetch(server.url("blob.mp4"), str(tmp_path / f"{i}.bin"), config, pool,
                                         limiter=limiter), range(4)))
    took = time.monotonic() - began
    assert took >= (400_000 - 20_000) / 200_000 * 0.95  # no faster than asked (a tenth of a second of burst)
