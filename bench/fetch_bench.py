"""make bench-fetch: ingest's fetch path (stages/ingest/sources.py: limits, the fetcher, the kept copy written to
the run's store) over `--videos` URLs from a rate-limited loopback server, with 1 and with 8 concurrent fetches per
worker (what `ingest.fetch.concurrency` gives a batch). Writes bench/fetch.json.

The server is one a site would be: it answers 429 to a host over `--rps` requests in any second, caps each
connection at `--per-connection-mb` MB/s and takes 50 ms to a first byte. vlcurate is configured with that request
limit and a bandwidth limit of `--limit-mb` MB/s. Reported: throughput as a share of the bandwidth limit (the
criterion: at least 0.9 with 8 concurrent fetches), the most requests the server saw in any one second (never
above `--rps`), and 429s received (0). A run without vlcurate's limits, measured in the same run, shows the server
could go faster than the limit: the limit, not the server, is what the share is measured against.
"""

from __future__ import annotations

import argparse
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.common import WORK, write_result

MB = 1_000_000


class Site:
    """A loopback server of one blob under many names, with a request limit, a per-connection cap and latency."""

    def __init__(self, blob: bytes, rps: float, per_connection: float, latency_s: float = 0.05):
        self.blob, self.rps, self.per_connection, self.latency_s = blob, rps, per_connection, latency_s
        self.arrivals: list[float] = []
        self.refused = 0
        self.lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                site.serve(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        now = time.monotonic()
        with self.lock:
            recent = sum(1 for t in self.arrivals if now - t < 1.0)
            self.arrivals.append(now)
            over = recent >= self.rps
            self.refused += over
        if over:
            handler.send_response(429)
            handler.send_header("Retry-After", "1")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        time.sleep(self.latency_s)
        handler.send_response(200)
        handler.send_header("Content-Type", "video/mp4")
        handler.send_header("Content-Length", str(len(self.blob)))
        handler.end_headers()
        chunk, began = 1 << 16, time.monotonic()
        for sent in range(0, len(self.blob), chunk):
            ahead = (sent / self.per_connection) - (time.monotonic() - began)
            if ahead > 0:
                time.sleep(ahead)
            handler.wfile.write(self.blob[sent:sent + chunk])

    def most_in_a_second(self) -> int:
        times = sorted(self.arrivals)
        return max((sum(1 for u in times if t <= u < t + 1.0) for t in times), default=0)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def fetch_all(site: Site, count: int, concurrency: int, limits: dict[str, Any], out: Path) -> dict[str, Any]:
    """`count` URLs through the ingest worker's fetch path, `concurrency` at a time, into a fresh run folder."""
    from vlcurate.stages.ingest.fetch import FetchConfig
    from vlcurate.stages.ingest.sources import Sources

    shutil.rmtree(out, ignore_errors=True)
    config = FetchConfig(concurrency=concurrency, retries=5, backoff_s=0.5, **limits)
    sources = Sources(config, "bench")
    site.arrivals.clear()
    site.refused = 0

    def one(i: int) -> int:
        with sources.get(f"{site.base}/v/{i:04d}.mp4", str(out)) as (_, kept):
            return kept.fetch["bytes"]

    began = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        total = sum(pool.map(one, range(count)))
    seconds = time.monotonic() - began
    shutil.rmtree(out, ignore_errors=True)
    return {"concurrency": concurrency, "videos": count, "bytes": total, "seconds": round(seconds, 3),
            "mb_per_s": round(total / seconds / MB, 2), "most_requests_in_a_second": site.most_in_a_second(),
            "429s": site.refused}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=32)
    parser.add_argument("--video-mb", type=float, default=8.0)
    parser.add_argument("--limit-mb", type=float, default=32.0, help="ingest.fetch.max_bytes_per_s, in MB/s")
    parser.add_argument("--rps", type=float, default=10.0, help="the server's (and ingest's) requests per second")
    parser.add_argument("--per-connection-mb", type=float, default=12.0, help="the server's cap per connection")
    args = parser.parse_args()
    os.environ.setdefault("VLCURATE_SCRATCH", str(WORK / "fetch-scratch"))
    site = Site(os.urandom(int(args.video_mb * MB)), args.rps, args.per_connection_mb * MB)
    limits = {"max_bytes_per_s": args.limit_mb * MB, "per_host_rps": args.rps}
    try:
        runs = [fetch_all(site, args.videos, c, limits, WORK / "fetch-run") for c in (1, 8)]
        unlimited = fetch_all(site, args.videos, 8, {"per_host_rps": args.rps}, WORK / "fetch-run")
    finally:
        site.stop()
    for r in runs:
        r["share_of_limit"] = round(r["mb_per_s"] / args.limit_mb, 3)
    write_result("fetch", {
        "settings": vars(args),
        "limited": runs,
        "without_bandwidth_limit": unlimited,
        "criteria": {"share_of_limit_at_8": runs[1]["share_of_limit"], "target": 0.9,
                     "met": runs[1]["share_of_limit"] >= 0.9,
                     "most_requests_in_a_second": max(r["most_requests_in_a_second"] for r in [*runs, unlimited]),
                     "request_limit": args.rps,
                     "429s": sum(r["429s"] for r in [*runs, unlimited])},
    })


if __name__ == "__main__":
    main()
