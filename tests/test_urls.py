"""Videos from the web, end to end, against a loopback server that misbehaves on purpose (tests/httpserver.py):
every URL ends as a row with its reason, the reachable ones are sharded, a rerun and a run resumed after kill -9
fetch nothing twice, Ray writes the same bytes, no header or cookie lands in an output, and a Panda-70M CSV goes in
as published, its spans cut as given and its captions scored beside the teachers'."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.fixtures import output_bytes as outputs
from vlcurate.pipeline.executor import read_manifest
from vlcurate.config import load_run_config
from vlcurate.stages.ingest.sources import key_of
from vlcurate.run import run_stages
from tests.fixtures import make_video
from tests.httpserver import Handler, Server
from tests.test_kill import CONFIG

pytestmark = [pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]
FAST = {"retries": 2, "backoff_s": 0.01, "max_backoff_s": 1.0, "read_timeout_s": 1.0, "connect_timeout_s": 2.0,
        "concurrency": 4, "headers": {"Authorization": "Bearer SECRET-TOKEN"}}
# the list's URLs (path under the server), and the reason each ends with (None: fetched, and sharded)
URLS = {"v0.mp4": None, "flaky/v1.mp4": None, "limited/v2.mp4": None, "drop/v3.mp4": None, "redirect/v4.mp4": None,
        "page/v5.mp4": None, "missing.mp4": "ingest/http_404", "html/v0.mp4": "ingest/not_a_video",
        "stall/v7.mp4": "ingest/timeout", "drip/v7.mp4": None, "forbidden/v0.mp4": "ingest/http_403",
        "busy/v0.mp4": "ingest/rate_limited"}
WATCH = "https://www.youtube.com/watch?v=abc123def45"  # resolved offline from its saved info JSON (v6)


def url_config(**changes) -> dict:
    config = json.loads(json.dumps(CONFIG))
    config["ingest"] = {"part_rows": 16, "resources": {"batch_size": 16}, "fetch": FAST}
    config["caption"]["teachers"].append({"name": "given", "kind": "given"})
    config.update(changes)
    return config


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """Eight distinct small videos served on 127.0.0.1, a URL list naming them (and failures), a saved info JSON."""
    www = tmp_path_factory.mktemp("www")
    for i in range(8):
        make_video(www / f"v{i}.mp4", [20 + 3 * i, 30], size=(160, 120))
    (www / "v6.en.vtt").write_text("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nA saved page's own words.\n")
    server = Server(www)
    info = {"_type": "video", "id": "abc123def45", "title": "A saved watch page", "description": "Offline.",
            "extractor": "youtube", "extractor_key": "Youtube", "webpage_url": WATCH, "channel": "Chan",
            "upload_date": "20240101", "license": "Creative Commons Attribution license (reuse allowed)",
            "formats": [{"format_id": "18", "url": server.url("v6.mp4"), "ext": "mp4", "height": 120,
                         "width": 160, "vcodec": "avc1", "acodec": "none", "protocol": "http"},
                        {"format_id": "37", "url": server.url("missing.mp4"), "ext": "mp4", "height": 1080,
                         "vcodec": "avc1", "acodec": "none", "protocol": "http"}],
            "subtitles": {"en": [{"ext": "vtt", "url": server.url("v6.en.vtt")}]}}
    lists = tmp_path_factory.mktemp("lists")
    (lists / "v6.info.json").write_text(json.dumps(info))
    rows = [{"url": server.url(u), "title": f"Video {u}"} for u in URLS] + [{"url": WATCH, "info_json": "v6.info.json"}]
    (lists / "urls.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    yield server, lists
    server.stop()


def run(folder: Path, config: dict, listing: Path, out: Path, **explicit):
    path = folder / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return run_stages(load_run_config(config=path, output=str(out), input=str(listing), **explicit))


@pytest.fixture(scope="module")
def fetched(web, tmp_path_factory):
    server, lists = web
    root = tmp_path_factory.mktemp("url-run")
    before = len(Handler.arrivals)
    results = run(root, url_config(), lists / "urls.jsonl", root / "out")
    return root, results, Handler.arrivals[before:]


def test_every_url_is_a_row_with_its_reason_and_the_reachable_ones_are_sharded(web, fetched):
    server, _ = web
    root, results, _ = fetched
    rows = {r["path"]: r for r in read_manifest(root / "out" / "ingest").to_pylist()}
    assert len(rows) == len(URLS) + 1  # 0 lost
    for url, reason in URLS.items():
        error = rows[server.url(url)]["error"]
        assert (error or "").split(":")[0] == (reason or ""), (url, error)
    assert "after 3 attempts" in rows[server.url("busy/v0.mp4")]["error"]
    sharded = {r["video_id"] for r in read_manifest(root / "out" / "shard").to_pylist()}
    reachable = {rows[server.url(u)]["video_id"] for u, reason in URLS.items() if reason is None}
    assert sharded == reachable | {rows[WATCH]["video_id"]} and len(sharded) == 8
    fetch = results["ingest"]["fetch"]
    assert fetch["fetched"] == 8 and fetch["after_retries"] == 4  # flaky, limited, drop, drip
    assert results["ingest"]["errors_by_reason"]["ingest/http_404"] == 1
    from vlcurate.status import describe, stage_states

    assert describe(stage_states(root / "out")[0]).endswith(", 8 URLs fetched (4 only after retries)")


def test_provenance_is_kept_and_no_header_lands_in_an_output(web, fetched):
    server, _ = web
    root, _, _ = fetched
    rows = {r["path"]: r for r in read_manifest(root / "out" / "ingest").to_pylist()}
    redirected = rows[server.url("redirect/v4.mp4")]
    assert redirected["fetch"]["final_url"] == server.url("v4.mp4") and redirected["fetch"]["status"] == 200
    assert redirected["source"] == f"run:sources/{key_of(server.url('redirect/v4.mp4'))}.mp4"
    assert redirected["fetch"]["sha256"][:16] == redirected["video_id"]
    page = rows[server.url("page/v5.mp4")]
    assert page["fetch"]["extractor_version"].startswith("yt-dlp ") and page["fetch"]["final_url"].endswith("/v5.mp4")
    assert page["title"] == "Video page/v5.mp4"  # the list's title wins over the page's
    watch = rows[WATCH]
    assert (watch["fetch"]["extractor"], watch["fetch"]["format"], watch["fetch"]["license"]) == \
        ("Youtube", "18 (120p)", "Creative Commons Attribution license (reuse allowed)")
    assert watch["title"] == "A saved watch page" and watch["subtitles_path"].endswith(".en.vtt")
    assert any(h.get("Authorization") == "Bearer SECRET-TOKEN" for h in Handler.headers_seen)
    for path in (root / "out").rglob("*"):
        if path.is_file():
            assert b"SECRET-TOKEN" not in path.read_bytes(), path


def test_a_rerun_fetches_nothing_again_and_ray_writes_the_same_bytes(web, fetched, tmp_path):
    server, lists = web
    root, _, arrivals = fetched
    media = {p for _, p in arrivals if p.endswith(".mp4")}
    before = len(Handler.arrivals)
    again = run(root, url_config(), lists / "urls.jsonl", root / "out")
    assert again["ingest"]["rows_out"] == len(URLS) + 1
    assert not any(p.endswith(".mp4") for _, p in Handler.arrivals[before:])
    # an ingest started over on an output holding the kept sources fetches none of them again
    shutil.copytree(root / "out" / "sources", root / "redo" / "sources")
    redo = run(root, url_config(stages=["ingest"]), lists / "urls.jsonl", root / "redo")
    assert redo["ingest"]["fetch"]["reused"] == 8
    assert not {p for _, p in Handler.arrivals[before:] if p.endswith(".mp4")} & {
        p for p in media if p.split("/")[1] in ("v0.mp4", "v4.mp4", "v5.mp4")}
    ray_out = tmp_path / "ray"
    run(tmp_path, url_config(), lists / "urls.jsonl", ray_out, executor="ray")
    local = outputs(root / "out")
    on_ray = outputs(ray_out)
    assert sorted(on_ray) == sorted(local)
    assert [k for k in local if local[k] != on_ray[k]] == []


KILL_AT_SLOW = """
import sys, time, os, signal, threading, urllib.request
from vlcurate.cli import app
def watch():  # the server (the test) says when the slow body has begun
    while not os.path.exists(sys.argv[1]):
        time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGKILL)
threading.Thread(target=watch, daemon=True).start()
app(sys.argv[2:])
"""


def test_kill_9_during_a_fetch_leaves_nothing_a_rerun_takes_for_a_whole_file(web, tmp_path):
    server, lists = web
    listing = tmp_path / "slow.csv"
    # parts go in path order: the redirect's part is done (and its source kept) before the slow one begins
    listing.write_text(f"url\n{server.url('redirect/v1.mp4')}\n{server.url('slow/v2.mp4')}\n")
    config = url_config(stages=["ingest", "split"])
    config["ingest"].update(part_rows=1, fetch={**FAST, "read_timeout_s": 5.0})
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    flag, out = tmp_path / "began", tmp_path / "out"
    args = ["run", "-c", str(tmp_path / "run.yaml"), "-i", str(listing), "-o", str(out)]
    child = subprocess.Popen([sys.executable, "-c", KILL_AT_SLOW, str(flag), *args], cwd=ROOT)
    before = len(Handler.arrivals)
    while child.poll() is None and not any(p == "/slow/v2.mp4" for _, p in Handler.arrivals[before:]):
        time.sleep(0.05)
    time.sleep(0.3)  # some of the body has come
    flag.touch()
    assert child.wait(60) == -9
    slow = key_of(server.url("slow/v2.mp4"))
    assert not (out / "sources" / f"{slow}.json").exists()  # no marker: nothing there counts as fetched
    assert (out / "sources" / f"{key_of(server.url('redirect/v1.mp4'))}.json").exists()
    resumed = run(tmp_path, config, listing, out)
    fetched_again = [p for _, p in Handler.arrivals[before:] if p.endswith(".mp4")]
    assert fetched_again.count("/redirect/v1.mp4") == 1 and fetched_again.count("/slow/v2.mp4") == 2
    clean = run(tmp_path, config, listing, tmp_path / "clean")
    assert resumed["split"]["rows_out"] == clean["split"]["rows_out"] > 0
    here, there = outputs(out), outputs(tmp_path / "clean")
    assert sorted(here) == sorted(there) and [k for k in here if here[k] != there[k]] == []


PANDA = ("videoID,url,timestamp,caption,matching_score\n"
         "v3,{url},\"[['0:00:00.000', '0:00:01.200'], ['0:00:01.200', '0:00:02.000']]\","
         "\"['A red square.', 'A green square.']\",\"[0.41, 0.38]\"\n")


def test_a_panda70m_csv_goes_in_as_published_and_its_spans_are_cut_as_given(web, tmp_path):
    server, _ = web
    listing = tmp_path / "panda.csv"
    listing.write_text(PANDA.format(url=server.url("v3.mp4")))
    config = url_config()
    config["split"]["min_clip_s"] = 5.0  # the list's spans are cut as given: no length rule applies to them
    out = tmp_path / "out"
    run(tmp_path, config, listing, out)
    clips = read_manifest(out / "split").to_pylist()
    assert [(c["start_frame"], c["end_frame"], c["given_caption"]) for c in clips] == [
        (0, 30, "A red square."), (30, 50, "A green square.")]
    assert [(c["start_s"], c["end_s"]) for c in clips] == [(0.0, 1.2), (1.2, 2.0)]
    scored = read_manifest(out / "score").to_pylist()
    given = [next(c for c in r["candidates"] if c["teacher"] == "given") for r in scored]
    assert [g["text"] for g in given] == ["A red square.", "A green square."]
    assert all(g["status"] == "ok" and g["score"] is not None for g in given)  # scored beside the title's


def test_fetched_sources_kept_on_an_object_store_give_the_bytes_of_local_disk(web, s3, tmp_path):
    """URLs in, the run's output (and so the kept sources) on S3: split reads them from there, and writes what it
    writes on local disk."""
    from tests.test_object_store import comparable, local_files, store_files

    server, _ = web
    listing = tmp_path / "urls.csv"
    listing.write_text(f"url,title\n{server.url('v0.mp4')},A\n{server.url('page/v5.mp4')},B\n")
    config = url_config(stages=["ingest", "split"])
    store_out = s3.url("runs", "urls")
    run(tmp_path, config, listing, tmp_path / "local")
    (tmp_path / "store.yaml").write_text(yaml.safe_dump(config))
    run_stages(load_run_config(config=tmp_path / "store.yaml", output=store_out, input=str(listing)))
    remote, here = store_files(store_out), local_files(tmp_path / "local")
    assert sorted(k for k in remote if k.startswith("sources/")) == sorted(k for k in here if k.startswith("sources/"))
    remote, here = comparable(remote), comparable(here)
    assert sorted(remote) == sorted(here) and [k for k in here if here[k] != remote[k]] == []
