"""A page URL (a watch page, a page with a `<video>`) resolved to its media with yt-dlp, in our own retry loop.

yt-dlp picks the format and reads the site's metadata and subtitle list; the media bytes then come through
`fetch.fetch` like any direct file, so they get the same retries, Range resumes, checks and limits. yt-dlp does not
retry a failed page fetch (a 429 on the first request is final to it), hence the loop here. A saved info JSON
(`yt-dlp --write-info-json`, the list's `info_json` column) resolves a page offline: no request to the site.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from vlcurate.stages.ingest.fetch import FetchConfig, FetchFailed, backoff
from vlcurate.stages.ingest.limits import UNLIMITED, Limiter

TRANSIENT = re.compile(r"HTTP Error (403|408|429|5\d\d)|timed out|Connection (reset|refused|aborted)|"
                       r"Remote end closed|IncompleteRead|temporarily", re.I)


@dataclass
class Page:
    """What a page resolved to: the media URL(s) to fetch and what the site says about the video."""

    media: list[dict[str, Any]]         # each {"url", "ext", "headers"}; two when video and audio come apart
    ext: str
    extractor: str
    format: str
    page_id: str | None
    metadata: dict[str, Any] = field(default_factory=dict)  # title, description, channel, upload_date, license
    subtitles: dict[str, dict[str, Any]] = field(default_factory=dict)  # lang -> {"ext", "url"} or {"ext", "data"}


def yt_dlp_version() -> str:
    import yt_dlp.version

    return f"yt-dlp {yt_dlp.version.__version__}"


def _options(config: FetchConfig) -> dict[str, Any]:
    options: dict[str, Any] = {
        "quiet": True, "no_warnings": True, "noprogress": True, "skip_download": True, "noplaylist": True,
        "format": config.format, "socket_timeout": config.read_timeout_s, "retries": 0, "extractor_retries": 0,
        "writesubtitles": True, "writeautomaticsub": config.automatic_captions,
        "subtitleslangs": list(config.subtitle_langs), "subtitlesformat": "vtt/srt/best",
        "http_headers": {"User-Agent": config.user_agent, **config.headers}, "logger": _Quiet(),
    }
    if config.proxy:
        options["proxy"] = config.proxy
    if config.cookies_file:
        options["cookiefile"] = config.cookies_file
    return options


class _Quiet:
    """yt-dlp's messages go nowhere: errors come back as exceptions, and a cookie must never reach a log."""

    def debug(self, msg: str) -> None:
        pass

    info = warning = error = debug


def resolve(url: str, config: FetchConfig, info_json: str | None = None, limiter: Limiter = UNLIMITED,
            sleep: Callable[[float], None] = time.sleep) -> Page:
    """The page's media and metadata; FetchFailed with the site's own message when it will not give them."""
    from yt_dlp import YoutubeDL
    from yt_dlp.utils import DownloadError

    last = ""
    for attempt in range(config.retries + 1):
        if attempt:
            sleep(backoff(config, attempt))
        try:
            with YoutubeDL(_options(config)) as ydl:
                if info_json is not None:  # offline: the saved page, formats chosen as if just fetched
                    info = ydl.process_ie_result(ydl.sanitize_info(json.loads(info_json)), download=False)
                else:
                    with limiter.request(url):
                        info = ydl.extract_info(url, download=False)
            return _page(ydl.sanitize_info(info))
        except DownloadError as exc:
            last = " ".join(str(exc).removeprefix("ERROR: ").split())
            if not TRANSIENT.search(last):
                raise FetchFailed(_reason(last), last, attempt + 1) from None
    reason = "rate_limited" if "429" in last else "http_403" if "HTTP Error 403" in last else \
        "timeout" if "timed out" in last else "unavailable"
    raise FetchFailed(reason, f"{last} (after {config.retries + 1} attempts)", config.retries + 1)


def _reason(message: str) -> str:
    if "HTTP Error 404" in message or "HTTP Error 410" in message:
        return "http_404"
    if "Unsupported URL" in message or "No video formats found" in message:
        return "not_a_video"
    return "unavailable"  # private, removed, age- or geo-restricted, bot checks: the site's words kept verbatim


def _page(info: dict[str, Any]) -> Page:
    chosen = info.get("requested_formats") or [info]
    media = [{"url": f["url"], "ext": f.get("ext") or "mp4", "headers": dict(f.get("http_headers") or {})}
             for f in chosen]
    if any(not m["url"] for m in media):
        raise FetchFailed("not_a_video", "the page gives no media URL", 1)
    ext = info.get("ext") or media[0]["ext"]
    if len(media) > 1:
        ext = "mkv"  # video and audio fetched apart, then put into one file without re-encoding
    height = info.get("height")
    subtitles = {}
    for lang, sub in (info.get("requested_subtitles") or {}).items():
        if sub and (sub.get("url") or sub.get("data")):
            subtitles[lang] = {"ext": sub.get("ext") or "vtt", "url": sub.get("url"), "data": sub.get("data")}
    return Page(media=media, ext=ext, extractor=str(info.get("extractor_key") or info.get("extractor") or "generic"),
                format=f"{info.get('format_id')}" + (f" ({height}p)" if height else ""), page_id=info.get("id"),
                metadata={"title": info.get("title"), "description": info.get("description"),
                          "channel": info.get("channel") or info.get("uploader"),
                          "upload_date": info.get("upload_date"), "license": info.get("license")},
                subtitles=subtitles)
