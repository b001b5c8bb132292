"""A loopback HTTP server with Range support (RangeHTTPServer) whose paths misbehave on purpose, for the fetcher's
tests: each `/<behaviour>/<name>` serves the file `<name>` from its folder after the behaviour (503 twice, 429 with
Retry-After, a connection dropped halfway, an HTML body, a slow drip past any timeout (resumable), a stall (not), a
slow but steady body, a
redirect, a page with a `<video>` of it, 403 or 429 every time); `/missing.mp4` is a 404. Every request's arrival time
is kept."""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import ThreadingHTTPServer
from pathlib import Path

from RangeHTTPServer import RangeRequestHandler


class Handler(RangeRequestHandler):
    hits: Counter = Counter()  # requests per path, across the server's life
    arrivals: list[tuple[float, str]] = []  # (monotonic time, path) of every request
    headers_seen: list[dict[str, str]] = []

    def log_message(self, *args) -> None:  # quiet
        pass

    def head(self, status: int, *headers: tuple[str, str]) -> None:
        """A status line and its headers, then the blank line: what every behaviour starts with."""
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        Handler.hits[self.path] += 1
        Handler.arrivals.append((time.monotonic(), self.path))
        seen = Handler.hits[self.path]
        parts = self.path.strip("/").split("/", 1)
        behaviour, name = (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0])
        Handler.headers_seen.append(dict(self.headers))
        if behaviour == "forbidden":  # every time
            return self.send_error(403, "forbidden")
        if behaviour == "busy":  # 429 every time
            self.head(429, ("Retry-After", "0"))
            return None
        if behaviour == "flaky" and seen <= 2:
            return self.send_error(503, "try again")
        if behaviour == "limited" and seen == 1:
            self.head(429, ("Retry-After", "1"))
            return None
        if behaviour == "redirect":
            self.head(302, ("Location", f"/{name}"))
            return None
        if behaviour == "page":  # a page with a <video>, for yt-dlp's generic extractor
            return self.html(f"<!DOCTYPE html><html><head><title>A page about {name}</title></head><body>"
                             f'<video controls src="/{name}"></video></body></html>', "text/html; charset=utf-8")
        if behaviour == "slow" and "Range" not in self.headers:  # 1 KiB every 0.1 s: a fetch a kill can land in
            data = (Path(self.directory) / name).read_bytes()
            self.head(200, ("Content-Type", "video/mp4"), ("Content-Length", str(len(data))))
            for i in range(0, len(data), 1024):
                self.wfile.write(data[i:i + 1024])
                self.wfile.flush()
                time.sleep(0.1)
            return None
        if behaviour == "stall":  # headers, a first chunk, then silence, every time (Range or not)
            self.head(200, ("Content-Type", "video/mp4"), ("Content-Length", "1000000"))
            self.wfile.write(b"\x00\x00\x00\x18ftypmp42" + bytes(1000))
            self.wfile.flush()
            time.sleep(5)
            return None
        if behaviour == "html":
            return self.html("<!DOCTYPE html><html><body>Sign in to continue</body></html>", "text/html")
        if behaviour in ("drop", "drip") and "Range" not in self.headers:
            data = (Path(self.directory) / name).read_bytes()
            self.head(200, ("Content-Type", "video/mp4"), ("Content-Length", str(len(data))),
                      ("Accept-Ranges", "bytes"))
            if behaviour == "drop":  # half the body, then the connection goes
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return None
            for i in range(0, len(data), 1024):  # a slow drip, past any read timeout
                self.wfile.write(data[i:i + 1024])
                self.wfile.flush()
                time.sleep(3)
            return None
        self.path = f"/{name}"
        return super().do_GET()

    def html(self, page: str, content_type: str) -> None:
        body = page.encode()
        self.head(200, ("Content-Type", content_type), ("Content-Length", str(len(body))))
        self.wfile.write(body)


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # a client that hung up (a timeout, a kill): expected
        pass


class Server:
    """Serves `folder` on 127.0.0.1 (a free port) in a thread until `stop()`."""

    def __init__(self, folder: Path):
        def handler(*args, **kwargs):
            return Handler(*args, directory=str(folder), **kwargs)

        self.httpd = _Quiet(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
