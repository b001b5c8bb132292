"""Ingest's fetch path for URL rows (stages/ingest/sources.py, stages/ingest/stage.py): robots.txt when asked, a
failing disk is the machine's and no URL's, and kept sources go when the run is done if the config says so."""

from __future__ import annotations

import errno

import pyarrow as pa
import pytest
import yaml

from vlcurate.pipeline import failures, storage
from vlcurate.pipeline.stage import Context
from vlcurate.config import load_run_config
from vlcurate.stages.ingest.discover import SCHEMA
from vlcurate.stages.ingest.stage import IngestConfig, IngestStage
from vlcurate.run import run_stages
from tests.fixtures import make_video
from tests.httpserver import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("www")
    make_video(folder / "v.mp4", [20, 30], size=(160, 120))
    (folder / "robots.txt").write_text("User-agent: *\nDisallow: /redirect/\n")
    served = Server(folder)
    yield served
    served.stop()


def ingest(urls: list[str], root, **fetch) -> list[dict]:
    stage = IngestStage(IngestConfig(fetch={"retries": 1, "backoff_s": 0.0, **fetch}))
    rows = [{"path": u, **{k: None for k in SCHEMA.names if k != "path"}} for u in urls]
    return stage.process_batch(pa.Table.from_pylist(rows, schema=SCHEMA), Context(root=str(root))).table.to_pylist()


def test_robots_txt_is_respected_when_asked(server, tmp_path):
    urls = [server.url("v.mp4"), server.url("redirect/v.mp4")]
    allowed, refused = ingest(urls, tmp_path / "a", respect_robots=True)
    assert allowed["error"] is None and refused["error"].startswith("ingest/unavailable: robots.txt")
    assert [r["error"] for r in ingest(urls, tmp_path / "b")] == [None, None]


def test_a_full_disk_while_keeping_a_fetch_fails_the_task_not_the_url(server, tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage, "write_with", full)
    with pytest.raises(Exception) as info:
        ingest([server.url("v.mp4"), server.url("flaky/v.mp4")], tmp_path)
    assert failures.is_machine_failure(info.value)


def test_kept_sources_go_when_the_run_is_done_if_asked(server, tmp_path):
    listing = tmp_path / "urls.csv"
    listing.write_text(f"url\n{server.url('v.mp4')}\n")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"stages": ["ingest", "split"], "report": {"enabled": False},
                                      "ingest": {"fetch": {"keep_sources": False}},
                                      "split": {"min_clip_s": 0.5, "stitch": {"enabled": False}}}))
    results = run_stages(load_run_config(config=config, output=str(tmp_path / "out"), input=str(listing)))
    assert results["split"]["rows_out"] >= 1 and not (tmp_path / "out" / "sources").exists()
