"""Runs on a real S3 server (SeaweedFS on loopback, tests/s3server.py): inputs and outputs on the store give the
same Parquet and tars as outputs on local disk; resume after kill -9, a server restart, a second run refused by the
lease, a missing object as its row's error, and no secret in any output."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.executor import read_manifest
from stages.config import load_run_config
from stages.run import run_stages

pytestmark = [pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]
SAME_BYTES = (".parquet", ".tar", "_index.json")  # what a run writes that names no folder and no time


def store_fs():
    import s3fs

    return s3fs.S3FileSystem(use_listings_cache=False)


def upload_demo(s3, prefix: str) -> str:
    """The demo's videos and subtitles on the store, with a list that names them relative to itself."""
    from stages.models import local_path

    fs = store_fs()
    samples = ROOT / "manifests" / "samples"
    out_rows = []
    with open(samples / "demo.csv", newline="") as f:
        for row in csv.DictReader(f):
            video = Path(local_path(row["path"]))
            fs.put_file(str(video), f"{s3.url(prefix, 'videos', video.name)[5:]}")
            row["path"] = f"videos/{video.name}"
            if row["subtitles"]:
                sub = samples / row["subtitles"]
                fs.put_file(str(sub), s3.url(prefix, "subtitles", sub.name)[5:])
                row["subtitles"] = f"subtitles/{sub.name}"
            out_rows.append(row)
    lines = ["path,title,description,subtitles"]
    import io as _io

    buffer = _io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["path", "title", "description", "subtitles"])
    writer.writeheader()
    writer.writerows(out_rows)
    fs.pipe_file(s3.url(prefix, "demo.csv")[5:], buffer.getvalue().encode())
    del lines
    return s3.url(prefix, "demo.csv")


def store_files(url: str) -> dict[str, bytes]:
    fs = store_fs()
    key = url[5:]
    return {k[len(key) + 1:]: fs.cat_file(k) for k in fs.find(key)}


def local_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def comparable(files: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in files.items() if k.endswith(SAME_BYTES) and "/_work/" not in f"/{k}"}


@pytest.fixture(scope="module")
def demo_input(s3) -> str:
    return upload_demo(s3, "demo-in")


@pytest.fixture(scope="module")
def store_run(s3, demo_input) -> str:
    out = s3.url("runs", "demo")
    run_stages(load_run_config("demo", output=out, input=demo_input))
    return out


def test_a_run_on_the_store_writes_the_bytes_a_local_run_writes(store_run, demo_input, tmp_path):
    local = tmp_path / "local"
    run_stages(load_run_config("demo", output=str(local), input=demo_input))
    remote = comparable(store_files(store_run))
    here = comparable(local_files(local))
    assert sorted(remote) == sorted(here)
    assert any(k.endswith(".tar") for k in remote) and any(k.startswith("split/frames/") for k in remote)
    assert [k for k in remote if remote[k] != here[k]] == []
    rows = read_manifest(store_run + "/ingest").to_pylist()
    assert all(r["path"].startswith("s3://") and r["error"] is None for r in rows)  # as the list resolved them
    assert "report/index.html" in store_files(store_run) and "shard/README.md" in store_files(store_run)
