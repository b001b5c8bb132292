"""Runs on a real S3 server (SeaweedFS on loopback, tests/s3server.py): inputs and outputs on the store give the
same Parquet and tars as outputs on local disk; resume after kill -9, a server restart, a second run refused by the
lease, a missing object as its row's error, and no secret in any output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from vlcurate.pipeline.executor import read_manifest
from tests.test_kill import CONFIG, KILLER
from vlcurate.config import load_run_config
from vlcurate.run import run_stages

pytestmark = [pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]
SAME_BYTES = (".parquet", ".tar", "_index.json")  # what a run writes that names no folder and no time


def store_fs():
    import s3fs

    return s3fs.S3FileSystem(use_listings_cache=False)


def store_files(url: str) -> dict[str, bytes]:
    fs = store_fs()
    key = url[5:]
    return {k[len(key) + 1:]: fs.cat_file(k) for k in fs.find(key)}


def local_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def comparable(files: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in files.items() if k.endswith(SAME_BYTES) and "/_work/" not in f"/{k}"}


def test_the_demo_on_the_store_writes_the_bytes_it_writes_to_a_local_folder(s3, demo_local):
    """`-o s3://`: every stage of the demo writes through the store, and every Parquet, tar and index equals the
    session's local demo run byte for byte (lists and videos read from the store: the `small` runs below)."""
    store_run = s3.url("runs", "demo")
    run_stages(load_run_config("demo", output=store_run))
    remote = comparable(store_files(store_run))
    here = comparable(local_files(demo_local))
    assert sorted(remote) == sorted(here)
    assert any(k.endswith(".tar") for k in remote) and any(k.startswith("split/frames/") for k in remote)
    assert [k for k in remote if remote[k] != here[k]] == []
    assert "report/index.html" in store_files(store_run) and "shard/README.md" in store_files(store_run)


# a small pipeline (test_kill.py's): every stage, cheap teachers and the tiny scorer; its killer as well
SMALL = {**CONFIG, "ingest": {"part_rows": 2}}


def vlcurate(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vlcurate.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env={**os.environ, "VLCURATE_PROGRESS": "0"})


@pytest.fixture(scope="module")
def small(s3, video_folder, tmp_path_factory):
    """The session's videos on the store with a list (titles; one object that is not there), a config, and a clean
    run of it from the store to the store."""
    import yaml

    fs = store_fs()
    lines = ["path,title,subtitles"]
    for video in sorted(video_folder.glob("*.mp4"))[:2]:
        fs.put_file(str(video), s3.url("small-in", video.name)[5:])
        subtitles = video.with_suffix(".vtt")
        if subtitles.exists():  # read from the store by the subtitles teacher
            fs.put_file(str(subtitles), s3.url("small-in", subtitles.name)[5:])
        lines.append(f"{video.name},Video {video.stem},{subtitles.name if subtitles.exists() else ''}")
    lines.append("missing.mp4,Not there,")
    fs.pipe_file(s3.url("small-in", "videos.csv")[5:], ("\n".join(lines) + "\n").encode())
    root = tmp_path_factory.mktemp("small")
    config = root / "run.yaml"
    config.write_text(yaml.safe_dump({**SMALL, "storage_options": {"s3": {"key": s3.key, "secret": s3.secret}}}))
    out = s3.url("runs", "small-clean")
    result = vlcurate("run", "-c", str(config), "-i", s3.url("small-in", "videos.csv"), "-o", out)
    assert result.returncode == 0, result.stderr[-3000:]
    return config, s3.url("small-in", "videos.csv"), out, result.stdout + result.stderr


def test_a_missing_object_is_its_rows_error_and_no_secret_is_in_any_output(s3, small):
    config, listing, out, log = small
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in read_manifest(out + "/ingest").to_pylist()}
    assert rows["missing.mp4"]["error"].startswith("ingest/missing_file")
    captions = read_manifest(out + "/caption").to_pylist()
    read = [c for r in captions for c in r["candidates"] or [] if c["teacher"] == "subtitles" and c["status"] == "ok"]
    assert read and all("red room" in c["text"].lower() or "green" in c["text"].lower() for c in read)
    assert all(r["error"] is None for name, r in rows.items() if name != "missing.mp4")
    files = store_files(out)
    assert any(k.endswith(".tar") for k in files) and "report/index.html" in files
    scratch = (tempfile.gettempdir() + "/vlcurate-").encode()  # no worker's scratch copy is named in an output
    assert [k for k, v in files.items() if scratch in v] == []
    for secret in (s3.secret, s3.key):
        assert [k for k, v in files.items() if secret.encode() in v] == []
        assert secret not in log


def test_kill_9_on_the_store_then_the_same_command_gives_the_same_bytes(s3, small):
    config, listing, clean, _ = small
    out = s3.url("runs", "small-killed")
    killed = subprocess.run([sys.executable, "-c", KILLER, "caption", "2", "run", "-c", str(config), "-i", listing,
                             "-o", out], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert "_SUCCESS" not in store_files(out + "/caption")
    again = vlcurate("run", "-c", str(config), "-i", listing, "-o", out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed" in again.stderr  # the lease of the killed run was taken over, its finished parts kept
    first, second = comparable(store_files(clean)), comparable(store_files(out))
    assert sorted(first) == sorted(second) and [k for k in first if first[k] != second[k]] == []


def test_a_second_run_into_the_same_store_output_is_refused_with_the_holder_named(s3, small):
    config, listing, _, _ = small
    out = s3.url("runs", "small-held")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                               "from vlcurate.pipeline.lock import output_lock\n"
                               f"with output_lock({out!r}):\n    print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = vlcurate("run", "-c", str(config), "-i", listing, "-o", out)
        assert refused.returncode != 0
        assert f"is in use by pid {holder.pid}" in refused.stderr and "Traceback" not in refused.stderr
    finally:
        holder.kill()
        holder.wait()


def test_the_store_going_away_mid_run_fails_the_run_as_the_machines_and_the_rerun_is_identical(s3, small):
    config, listing, clean, _ = small
    out = s3.url("runs", "small-restart")
    run = subprocess.Popen([sys.executable, "-m", "vlcurate.cli", "run", "-c", str(config), "-i", listing, "-o", out],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                           env={**os.environ, "VLCURATE_PROGRESS": "0"})
    fs = store_fs()
    deadline = time.monotonic() + 300
    while not fs.exists(out[5:] + "/split/_work") and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    s3.stop()
    time.sleep(2)
    s3.start()
    _, stderr = run.communicate(timeout=600)
    if run.returncode != 0:  # not retried through: a machine failure, never an input's error
        assert "machine" in stderr.lower() or "store" in stderr.lower() or "connect" in stderr.lower(), stderr[-3000:]
    again = vlcurate("run", "-c", str(config), "-i", listing, "-o", out)
    assert again.returncode == 0, again.stderr[-3000:]
    for stage in ("ingest", "split", "caption", "score"):
        assert all(r["error"] is None or r["path"].endswith("missing.mp4")
                   for r in read_manifest(f"{out}/{stage}").to_pylist())
    first, second = comparable(store_files(clean)), comparable(store_files(out))
    assert sorted(first) == sorted(second) and [k for k in first if first[k] != second[k]] == []


def test_status_report_card_and_loader_read_the_store(s3, small, tmp_path):
    from vlcurate.stages.shard.loader import clip_dataset

    _, _, out, _ = small
    status = vlcurate("status", "-o", out)
    assert status.returncode == 0, status.stderr
    assert [line.split()[1] for line in status.stdout.splitlines()] == ["done:"] * 5
    report = vlcurate("report", "-o", out, "--to", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr[-2000:]
    assert (tmp_path / "report" / "index.html").exists() and list((tmp_path / "report" / "frames").glob("*.jpg"))
    assert "dataset card: s3://" in report.stdout  # the card is rewritten beside the shards on the store
    index = read_manifest(out + "/shard").to_pylist()
    samples = list(clip_dataset(out + "/shard/*.tar", num_frames=2))
    assert sorted(s["key"] for s in samples) == sorted(r["key"] for r in index) and len(index) >= 4
    assert all(tuple(s["video"].shape[:2]) == (2, 3) for s in samples)


def test_a_changed_caption_config_on_the_store_keeps_the_previous_runs_candidates(s3, small, tmp_path):
    """caption keeps its last finished manifest aside (`_previous`: copied, then deleted, as a store has no rename)
    and carries the candidates a changed config would write again."""
    import yaml

    config, listing, _, _ = small
    out = s3.url("runs", "small-carry")
    first = vlcurate("run", "-c", str(config), "-i", listing, "-o", out, "--stages", "ingest,split,caption")
    assert first.returncode == 0, first.stderr[-3000:]
    changed = yaml.safe_load(config.read_text())
    changed["caption"]["teachers"].append({"name": "title_again", "kind": "title"})
    config2 = tmp_path / "changed.yaml"
    config2.write_text(yaml.safe_dump(changed))
    second = vlcurate("run", "-c", str(config2), "-i", listing, "-o", out, "--stages", "caption", "--overwrite")
    assert second.returncode == 0, second.stderr[-3000:]
    stats = json.loads(store_fs().cat_file(out[5:] + "/caption/stats.json"))
    rows = [r for r in read_manifest(out + "/caption").to_pylist() if not r["error"]]
    assert stats["candidates_kept_from_previous_run"] == 2 * len(rows) > 0, second.stderr[-3000:]
    assert all({c["teacher"] for c in r["candidates"]} == {"title", "subtitles", "title_again"} for r in rows)
    assert not [k for k in store_files(out) if "/_previous/" in k]
