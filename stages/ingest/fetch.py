"""Fetching a video named by an http(s) URL, with retries that tell the truth.

What a fetch does, and why:
  - transient failures are retried with exponential backoff and jitter: the statuses datatrove's reader retries
    (403, 408, 429, 500, 502, 503, 504), timeouts, resets, and bodies cut short of their `Content-Length`;
    `Retry-After` is honoured (up to `max_backoff_s`);
  - a body cut short resumes with a Range request from the bytes already kept (a server that ignores Range
    starts over);
  - the status and the first bytes are checked before anything is kept: an HTML or JSON body under a `.mp4` name is
    `not_a_video`, never a file;
  - timeouts for connect, for each read, and for the whole transfer; a size cap (`Content-Length` up front, and the
    bytes as they come);
  - what cannot be fetched raises `FetchFailed` with the reason ingest records (`http_404`, `http_403`,
    `rate_limited`, `timeout`, `too_large`, `not_a_video`, `unavailable`) and how many attempts it took; a failing
    local disk is the machine's (the OSError passes through).
urllib3 (already under botocore) rather than a hand-written HTTP client; the retry loop is ours, since urllib3's
`Retry` neither resumes a cut body with Range nor tells a rate limit from a server error in the end.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vlcurate.pipeline import storage
from vlcurate.stages.ingest.limits import UNLIMITED, Limiter

RETRY_STATUSES = frozenset({403, 408, 429, 500, 502, 503, 504})
CHUNK = 1 << 16  # bytes a read: what a drop mid-read can cost before the resume
TEXT_STARTS = (b"<!doctype", b"<html", b"<?xml", b"<head", b"<body", b"{", b"[")


class FetchConfig(BaseModel):
    """How ingest fetches videos named by URLs. Cookies, proxies and headers are used, never written anywhere: they
    are left out of every dump of the config (and so of outputs and logs)."""

    model_config = ConfigDict(extra="forbid")

    retries: int = Field(5, ge=0, description="attempts after the first, for transient failures")
    backoff_s: float = Field(2.0, ge=0, description="the n-th retry waits backoff_s * 2**(n-1), plus up to as much "
                                                    "again of jitter (a Retry-After header wins)")
    max_backoff_s: float = Field(60.0, ge=0, description="longest wait between two attempts")
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(30.0, gt=0, description="longest wait for the next bytes")
    total_timeout_s: float = Field(3600.0, gt=0, description="the whole fetch of one URL, retries included")
    max_bytes: int = Field(20 << 30, ge=1, description="a larger video is `ingest/too_large`")
    user_agent: str = Field("vlcurate (video-text dataset curation)",
                            description="sent with every request; add a contact a site can reach")
    headers: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False,
                                    description="extra request headers")
    cookies_file: str | None = Field(None, exclude=True, repr=False,
                                     description="a Netscape cookies.txt for sites that want a session")
    proxy: str | None = Field(None, exclude=True, repr=False, description="http(s)://[user:pass@]host:port")
    concurrency: int = Field(4, ge=1, description="URLs an ingest worker fetches at once")
    per_host_rps: float | None = Field(None, gt=0, description="requests per second to one host, per worker")
    per_host_connections: int | None = Field(None, ge=1, description="open connections to one host, per worker")
    max_connections: int | None = Field(None, ge=1, description="open connections over all hosts, per worker")
    max_bytes_per_s: float | None = Field(None, gt=0, description="bandwidth over all hosts, per worker")
    resolver: Literal["auto", "direct", "yt-dlp"] = Field(
        "auto", description="how a URL becomes media: `direct` fetches it as a file; `yt-dlp` resolves it as a page "
                            "first; `auto`: a URL whose path ends in a video extension is direct, others are pages")
    format: str = Field("best[height<=720][vcodec!=none][acodec!=none]/best[height<=720]/best",
                        description="yt-dlp's format selector for pages (one file: video and audio together)")
    subtitle_langs: list[str] = Field(default_factory=lambda: ["en"],
                                      description="subtitle languages taken from pages, first found wins")
    automatic_captions: bool = Field(True, description="take a site's automatic captions when it has no subtitles")
    respect_robots: bool = Field(False, description="check robots.txt before fetching (a disallowed URL is "
                                                    "`ingest/unavailable`)")
    keep_sources: bool = Field(True, description="keep fetched videos in <output>/sources/ when the run is done "
                                                 "(false: deleted once the run finishes; a later rerun fetches again)")


@dataclass
class Fetched:
    url: str
    final_url: str
    status: int
    bytes: int
    sha256: str
    attempts: int
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None


class FetchFailed(Exception):
    """A URL that could not be fetched: `reason` is ingest's (`http_404`, `rate_limited`, ...)."""

    def __init__(self, reason: str, detail: str, attempts: int):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.attempts = reason, detail, attempts


class _Retry(Exception):
    def __init__(self, reason: str, detail: str, wait_s: float | None = None):
        super().__init__(detail)
        self.reason, self.detail, self.wait_s = reason, detail, wait_s


def make_pool(config: FetchConfig, connections: int = 4) -> Any:
    """A urllib3 pool (through `config.proxy` if set): it follows redirects and keeps their history for the final
    URL; every other retry is `fetch`'s."""
    import urllib3

    retries = urllib3.Retry(total=10, connect=0, read=0, status=0, other=0, redirect=10,
                            respect_retry_after_header=False)
    if config.proxy:
        return urllib3.ProxyManager(config.proxy, retries=retries, maxsize=connections)
    return urllib3.PoolManager(retries=retries, maxsize=connections)


def fetch(url: str, target: str, config: FetchConfig | None = None, pool: Any = None,
          sleep: Any = time.sleep, limiter: Limiter = UNLIMITED, headers: dict[str, str] | None = None,
          media: bool = True) -> Fetched:
    """Fetch `url` into the local file `target` (whole, or FetchFailed and the file holds nothing to trust);
    `headers` are this URL's own (a page's media may ask for some), over the config's; `media=False` for text
    (subtitles, robots.txt), which is not refused as `not_a_video`."""
    config = config or FetchConfig()
    pool = pool or make_pool(config)
    began = time.monotonic()
    kept = 0
    last: _Retry | None = None
    with open(target, "wb") as out:
        for attempt in range(config.retries + 1):
            if attempt:
                wait = backoff(config, attempt, last.wait_s if last else None)
                if time.monotonic() + wait - began > config.total_timeout_s:
                    break
                sleep(wait)
            try:
                with limiter.request(url):
                    result = _attempt(url, out, kept, config, pool, began, limiter, headers or {}, media)
                return Fetched(url=url, attempts=attempt + 1, **result)
            except _Retry as exc:
                last = exc
                kept = out.tell()
            except FetchFailed as exc:
                out.truncate(0)
                raise FetchFailed(exc.reason, exc.detail, attempt + 1) from None
        out.truncate(0)
    assert last is not None
    reason = last.reason if last.reason in ("http_403", "timeout") else \
        "rate_limited" if last.reason == "http_429" else "unavailable"
    raise FetchFailed(reason, f"{last.detail} (after {config.retries + 1} attempts)", config.retries + 1)


def backoff(config: FetchConfig, attempt: int, retry_after: float | None = None) -> float:
    """The wait before retry `attempt` (from 1): `Retry-After` when the server gave one, else exponential, with
    jitter."""
    if retry_after is not None:
        return min(config.max_backoff_s, retry_after)
    base = min(config.max_backoff_s, config.backoff_s * 2 ** (attempt - 1))
    return base + random.uniform(0, base)


def _attempt(url: str, out: Any, kept: int, config: FetchConfig, pool: Any, began: float, limiter: Limiter,
             own: dict[str, str], media: bool) -> dict[str, Any]:
    """One request: the body appended to `out` from byte `kept`; raises _Retry for what may pass, FetchFailed for
    what will not."""
    import urllib3

    headers = {"User-Agent": config.user_agent, **config.headers, **own, **_cookies(url, config.cookies_file),
               **({"Range": f"bytes={kept}-"} if kept else {})}
    timeout = urllib3.Timeout(connect=config.connect_timeout_s, read=config.read_timeout_s)
    try:
        # the length is checked here, so a body cut short keeps what came (and resumes from there)
        response = pool.request("GET", url, headers=headers, timeout=timeout, preload_content=False, redirect=True,
                                enforce_content_length=False)
    except urllib3.exceptions.TimeoutError as exc:
        raise _Retry("timeout", f"no answer within the timeout ({exc})") from None
    except urllib3.exceptions.HTTPError as exc:
        raise _Retry("unavailable", f"connection failed ({exc})") from None
    try:
        return _read_body(url, response, out, kept, config, began, limiter, media)
    finally:
        response.release_conn()


def _read_body(url: str, response: Any, out: Any, kept: int, config: FetchConfig, began: float,
               limiter: Limiter, media: bool) -> dict[str, Any]:
    import urllib3

    status = response.status
    if status in RETRY_STATUSES:
        raise _Retry(f"http_{status}", f"HTTP {status}", _retry_after(response.headers.get("Retry-After")))
    if status >= 400:
        raise FetchFailed(f"http_{status}" if status in (404, 410) else "unavailable", f"HTTP {status}", 1)
    if kept and status == 200:  # the server ignored Range: start over
        out.seek(0)
        out.truncate()
        kept = 0
    length = response.headers.get("Content-Length")
    expected = kept + int(length) if length is not None else None
    if expected is not None and expected > config.max_bytes:
        raise FetchFailed("too_large", f"{expected} bytes, over the cap of {config.max_bytes}", 1)
    try:
        # read1: what has come so far, up to CHUNK (a read that times out mid-chunk loses nothing already here)
        for chunk in iter(lambda: response.read1(CHUNK), b""):
            if media and out.tell() == 0 and _looks_like_text(chunk):
                raise FetchFailed("not_a_video", f"the body is {response.headers.get('Content-Type') or 'text'}, "
                                  f"not a video (starts {chunk[:40]!r})", 1)
            out.write(chunk)
            limiter.transferred(len(chunk))
            if out.tell() > config.max_bytes:
                raise FetchFailed("too_large", f"over the cap of {config.max_bytes} bytes", 1)
            if time.monotonic() - began > config.total_timeout_s:
                raise FetchFailed("timeout", f"the transfer took over {config.total_timeout_s:.0f} s", 1)
    except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
        raise _Retry("timeout", f"no byte for {config.read_timeout_s:.0f} s at byte {out.tell()}") from None
    except (urllib3.exceptions.ProtocolError, urllib3.exceptions.IncompleteRead, ConnectionError) as exc:
        raise _Retry("unavailable", f"the connection dropped at byte {out.tell()} ({type(exc).__name__})") from None
    if expected is not None and out.tell() != expected:
        raise _Retry("unavailable", f"the body ended at byte {out.tell()} of {expected}")
    out.flush()
    return {"final_url": _final_url(url, response), "status": status, "bytes": out.tell(),
            "sha256": storage.digest(out.name)["sha256"], "etag": response.headers.get("ETag"),
            "last_modified": response.headers.get("Last-Modified"),
            "content_type": response.headers.get("Content-Type")}


def _final_url(url: str, response: Any) -> str:
    """Where the body came from: the last redirect's target, or the URL itself."""
    from urllib.parse import urljoin

    final = url
    for step in getattr(getattr(response, "retries", None), "history", ()) or ():
        if step.redirect_location:
            final = urljoin(final, step.redirect_location)
    return final


def _cookies(url: str, cookies_file: str | None) -> dict[str, str]:
    """The Cookie header a Netscape cookies.txt gives `url` (none without a file)."""
    if not cookies_file:
        return {}
    import http.cookiejar
    import urllib.request

    jar = http.cookiejar.MozillaCookieJar()
    jar.load(cookies_file, ignore_discard=True, ignore_expires=True)
    request = urllib.request.Request(url)
    jar.add_cookie_header(request)
    cookie = request.get_header("Cookie")
    return {"Cookie": cookie} if cookie else {}


def _looks_like_text(chunk: bytes) -> bool:
    return chunk.lstrip()[:16].lower().startswith(TEXT_STARTS)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (a number, or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time()) if when else None
