"""Pages resolved with yt-dlp (stages/ingest/pages.py), offline from saved info JSONs whose media URLs point at a
loopback server, and fetched through ingest's fetch path (stages/ingest/sources.py)."""

from __future__ import annotations

import json

import pytest

from vlcurate.stages import media
from vlcurate.stages.ingest.fetch import FetchConfig, FetchFailed
from vlcurate.stages.ingest.pages import _reason, resolve
from vlcurate.stages.ingest.sources import Sources
from tests.fixtures import make_video
from tests.httpserver import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("www")
    make_video(folder / "av.mp4", [20, 30], size=(160, 120), audio=True)
    make_video(folder / "v.mp4", [25, 25], size=(160, 120))
    served = Server(folder)
    yield served
    served.stop()


def watch_page(server, formats: list[dict]) -> str:
    return json.dumps({"_type": "video", "id": "xyz", "title": "T", "extractor": "youtube",
                       "extractor_key": "Youtube", "webpage_url": "https://www.youtube.com/watch?v=xyz",
                       "formats": formats})


def test_the_format_rule_picks_one_file_at_most_720p(server):
    formats = [{"format_id": "18", "url": server.url("v.mp4"), "ext": "mp4", "height": 360, "vcodec": "avc1",
                "acodec": "mp4a"},
               {"format_id": "137", "url": server.url("missing.mp4"), "ext": "mp4", "height": 1080, "vcodec": "avc1",
                "acodec": "mp4a"}]
    page = resolve("https://www.youtube.com/watch?v=xyz", FetchConfig(), watch_page(server, formats))
    assert page.format == "18 (360p)" and [m["url"] for m in page.media] == [server.url("v.mp4")]


def test_video_and_audio_fetched_apart_are_put_together_untouched(server, tmp_path):
    formats = [{"format_id": "160", "url": server.url("v.mp4"), "ext": "mp4", "height": 120, "vcodec": "avc1",
                "acodec": "none"},
               {"format_id": "140", "url": server.url("av.mp4"), "ext": "m4a", "vcodec": "none", "acodec": "mp4a"}]
    sources = Sources(FetchConfig(format="bv*+ba"), "test")
    with sources.get("https://www.youtube.com/watch?v=xyz", str(tmp_path),
                     watch_page(server, formats)) as (local, kept):
        probe, packets = media.probe(local), media.count_video_packets(local)
    assert kept.source.endswith(".mkv") and kept.fetch["format"].startswith("160+140")
    assert probe.has_audio and packets == 50 and kept.attempts == 2  # every video packet, one request each


def test_the_sites_own_words_are_kept_and_sorted_into_reasons():
    assert _reason("[youtube] xyz: Private video. Sign in if you've been granted access") == "unavailable"
    assert _reason("[youtube] xyz: Sign in to confirm you're not a bot") == "unavailable"
    assert _reason("Unsupported URL: https://e.x/") == "not_a_video"
    assert _reason("Unable to download webpage: HTTP Error 404: Not Found") == "http_404"


def test_a_page_that_fails_for_good_is_not_retried_and_one_that_flickers_is(server):
    with pytest.raises(FetchFailed) as info:
        resolve(server.url("html/v.mp4"), FetchConfig(retries=3, backoff_s=0.0))
    assert info.value.reason == "not_a_video" and info.value.attempts == 1
    waits: list[float] = []
    with pytest.raises(FetchFailed) as info:
        resolve(server.url("busy/page.html"), FetchConfig(retries=2, backoff_s=0.01), sleep=waits.append)
    assert info.value.reason == "rate_limited" and info.value.attempts == 3 and len(waits) == 2
