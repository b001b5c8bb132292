"""pipeline/storage.py and the lease, on local disk and on a real S3 server: whole-object writes (a failed write
leaves nothing), put-if-absent, moves without rename, listings, and the output lease's takeovers."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time

import pytest

from vlcurate.pipeline import lease, lock, storage
from vlcurate.pipeline.failures import is_machine_failure


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    if request.param == "local":
        return tmp_path / "root"
    s3 = request.getfixturevalue("s3")
    return s3.url("storage-tests", request.node.name.replace("[", "-").replace("]", ""), str(time.time_ns()))


def test_writes_are_whole_and_a_failed_write_leaves_nothing(root):
    target = storage.path(root) / "a" / "b.bin"
    storage.write_bytes(target, b"one")
    assert target.read_bytes() == b"one"

    def broken(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise RuntimeError("the writer failed")

    with pytest.raises(RuntimeError):
        storage.write_with(storage.path(root) / "c.bin", broken)
    assert not (storage.path(root) / "c.bin").exists()
    with pytest.raises(RuntimeError):
        storage.write_with(target, broken)
    assert target.read_bytes() == b"one"  # the old object stays whole
    assert [p.name for p in storage.children(storage.path(root))] == ["a"]  # no temp file left beside it


def test_put_if_absent_move_and_remove(root):
    where = storage.path(root) / "x.json"
    assert storage.create_exclusive(where, b"first") is True
    assert storage.create_exclusive(where, b"second") is False
    assert where.read_bytes() == b"first"
    storage.move(where, storage.path(root) / "moved" / "x.json")
    assert not where.exists() and (storage.path(root) / "moved" / "x.json").read_bytes() == b"first"
    storage.rmtree(storage.path(root) / "moved")
    storage.rmtree(storage.path(root) / "never-there")
    assert storage.children(storage.path(root) / "moved") == []


def test_a_store_object_is_copied_to_scratch_and_the_copy_goes(s3):
    url = s3.url("storage-tests", "video.bin")
    storage.write_bytes(url, b"\x00" * 1000)
    with storage.local_copy(url) as local:
        assert os.path.getsize(local) == 1000 and not storage.is_remote(local)
    assert not os.path.exists(local)
    with storage.media_input(url) as link:
        assert link.startswith("http://127.0.0.1") and "Signature" in link


def test_store_and_network_failures_are_the_machines():
    from botocore.exceptions import EndpointConnectionError

    assert is_machine_failure(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert is_machine_failure(OSError(5, "SlowDown"))  # s3fs's translation of a 5xx
    assert not is_machine_failure(FileNotFoundError("no such object"))


def test_the_lease_refuses_a_second_run_and_is_released(s3):
    out = s3.url("storage-tests", "lease", str(time.time_ns()))
    with lock.output_lock(out):
        assert lock.owns(out, lock.run_token(out))
        found = lease.current(storage.path(out))
        assert found is not None and found[2]["pid"] == os.getpid()
        other = subprocess.run([sys.executable, "-c", f"from vlcurate.pipeline.lock import output_lock\n"
                                f"with output_lock({out!r}): pass"], capture_output=True, text=True)
        assert other.returncode != 0 and f"is in use by pid {os.getpid()}" in other.stderr
    assert lease.current(storage.path(out)) is None and lock.holder(out) is None


def test_an_expired_lease_is_taken_over_with_a_warning_and_its_run_stops_writing(s3, monkeypatch, caplog):
    out = s3.url("storage-tests", "expired", str(time.time_ns()))
    stale = {"pid": 999999, "host": "another-host", "started": 0, "run": "old-token", "command": "vlcurate run"}
    storage.write_bytes(storage.path(out) / lease.FOLDER / "lease-000000003", json.dumps(stale).encode())
    assert "another-host" in lock.holder(out)
    monkeypatch.setattr(lease, "TTL_S", 0.5)
    time.sleep(1.2)
    with caplog.at_level(logging.WARNING), lock.output_lock(out):
        assert "took over the lock of pid 999999 on another-host" in caplog.text
        assert lease.current(storage.path(out))[0] == 4  # the next generation
        assert not lock.owns(out, "old-token")
        with pytest.raises(lock.Superseded):
            lock.check_task({"root": out, "run": "old-token", "name": "part-000000"})


def test_a_missing_bucket_or_wrong_keys_are_one_line_before_any_work(s3, monkeypatch):
    from vlcurate.pipeline.failures import UserError

    with pytest.raises(UserError, match="bucket 'no-such-bucket' does not exist"):
        storage.check_bucket("s3://no-such-bucket/run")
    storage.check_bucket(s3.url("run"))  # the test bucket is there
    result = subprocess.run([sys.executable, "-m", "vlcurate.cli", "run", "-p", "demo", "-i", s3.url("in"), "-o",
                             "s3://no-such-bucket/run"], capture_output=True, text=True,
                            env={**os.environ, "AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "no-such-bucket" in result.stderr
