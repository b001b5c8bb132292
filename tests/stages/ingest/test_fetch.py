"""The URL fetcher (stages/ingest/fetch.py) against a loopback server that misbehaves on purpose
(tests/httpserver.py): what is retried, what resumes, what is refused, with the reason ingest will record."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from vlcurate.stages.ingest.fetch import FetchConfig, FetchFailed, fetch
from tests.httpserver import Handler, Server

FAST = FetchConfig(retries=3, backoff_s=0.01, max_backoff_s=2.0, read_timeout_s=1.0, connect_timeout_s=2.0)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("www")
    (folder / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(300_000))
    served = Server(folder)
    yield served, folder
    served.stop()


def get(server, path: str, tmp_path: Path, config: FetchConfig = FAST, **kw):
    served, _ = server
    waits: list[float] = []
    target = tmp_path / "out.bin"
    try:
        return fetch(served.url(path), str(target), config, sleep=waits.append, **kw), target, waits
    except FetchFailed as exc:
        return exc, target, waits


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_plain_file_comes_whole_with_its_provenance(server, tmp_path):
    got, target, waits = get(server, "clip.mp4", tmp_path)
    assert got.status == 200 and got.attempts == 1 and waits == []
    assert got.bytes == target.stat().st_size and got.sha256 == sha(server[1] / "clip.mp4") == sha(target)
    assert got.last_modified and got.final_url.endswith("/clip.mp4")


def test_503s_are_retried_with_backoff_then_the_file_comes(server, tmp_path):
    got, target, waits = get(server, "flaky/clip.mp4", tmp_path)
    assert got.attempts == 3 and len(waits) == 2 and 0.01 <= waits[0] <= 0.02 and 0.02 <= waits[1] <= 0.04
    assert got.sha256 == sha(server[1] / "clip.mp4")


def test_a_429_waits_what_retry_after_says(server, tmp_path):
    got, _, waits = get(server, "limited/clip.mp4", tmp_path)
    assert got.attempts == 2 and waits == [1.0]


def test_a_dropped_connection_resumes_with_range(server, tmp_path):
    got, target, _ = get(server, "drop/clip.mp4", tmp_path)
    assert got.attempts == 2 and got.status == 206 and sha(target) == sha(server[1] / "clip.mp4")


def test_a_slow_drip_times_out_and_resumes(server, tmp_path):
    got, target, _ = get(server, "drip/clip.mp4", tmp_path)
    assert got.attempts == 2 and sha(target) == sha(server[1] / "clip.mp4")


def test_a_redirect_is_followed_and_the_final_url_kept(server, tmp_path):
    got, _, _ = get(server, "redirect/clip.mp4", tmp_path)
    assert got.url.endswith("/redirect/clip.mp4") and got.final_url.endswith("/clip.mp4")
    assert "/redirect/" not in got.final_url


@pytest.mark.parametrize("path,reason,attempts", [
    ("missing.mp4", "http_404", 1),
    ("html/clip.mp4", "not_a_video", 1),
])
def test_what_will_not_pass_is_refused_at_once_with_its_reason(server, tmp_path, path, reason, attempts):
    failed, target, waits = get(server, path, tmp_path)
    assert isinstance(failed, FetchFailed) and failed.reason == reason and failed.attempts == attempts
    assert waits == [] and target.stat().st_size == 0  # nothing kept that could pass for a file


def test_a_rate_limit_that_never_lifts_ends_as_rate_limited(server, tmp_path):
    Handler.hits.clear()
    config = FetchConfig(retries=0, backoff_s=0.01)
    failed, _, _ = get(server, "limited/clip.mp4", tmp_path, config)
    assert isinstance(failed, FetchFailed) and failed.reason == "rate_limited" and failed.attempts == 1


def test_over_the_size_cap_is_too_large(server, tmp_path):
    config = FetchConfig(retries=0, max_bytes=1000)
    failed, target, _ = get(server, "clip.mp4", tmp_path, config)
    assert failed.reason == "too_large" and target.stat().st_size == 0
