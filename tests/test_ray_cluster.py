"""A real Ray cluster batch job with no shared disk: two nodes on loopback, each with its own temp and scratch folders
and working directory, `ray job submit` of `vlcurate run --executor ray` with the input and the output on an S3
server (tests/s3server.py); the shards it writes equal a local run's byte for byte, and both nodes did work; Ray
Data reads the shards back from the store. Every process the test starts is ended by its PID."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from vlcurate.pipeline.executor import read_manifest

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.cluster]

BIN = Path(sys.executable).parent
CONFIG = {
    "split": {"min_clip_s": 0.5, "stitch": {"enabled": False}, "part_rows": 1, "resources": {"cpus": 0.5}},
    "caption": {"part_rows": 2, "resources": {"cpus": 0.5},
                "teachers": [{"name": "title", "kind": "title"}, {"name": "subtitles", "kind": "subtitles"}]},
    "score": {"part_rows": 2, "resources": {"cpus": 0.5}, "scorer": {"kind": "open_clip", "model": "tiny:open_clip"}},
    "shard": {"maxcount": 2, "part_rows": 2, "resources": {"cpus": 0.5}},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def end(processes: list[subprocess.Popen], temp_dir: Path) -> None:
    """Stop the `ray start --block` parents (they stop what they started), then anything left that runs from
    this test's own Ray folder; never `ray stop`, which would stop every Ray process on the machine."""
    import psutil

    # every process the nodes started, known before they end: agents renamed to `ray::...` are reparented to init
    # when their raylet goes, and their command lines no longer name the temp folder
    started = []
    for proc in processes:
        try:
            started += psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            pass
    for proc in reversed(processes):
        if proc.poll() is None:
            proc.terminate()
    for proc in processes:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    for child in started:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if any(str(temp_dir) in part for part in proc.info["cmdline"] or []):
            proc.kill()
    shutil.rmtree(temp_dir, ignore_errors=True)


def wait_for_nodes(address: str, env: dict[str, str], count: int, timeout: float = 90.0) -> None:
    probe = ("import ray; ray.init(address=%r, logging_level='ERROR'); "
             "print(sum(1 for n in ray.nodes() if n['Alive']))" % address)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(count)]:
            return
        time.sleep(1.0)
    raise TimeoutError(f"the cluster at {address} did not reach {count} nodes: {out.stdout} {out.stderr}")


def own_ports() -> list[str]:
    """Ports Ray would otherwise take at fixed defaults (the agent's 52365 above all), which another Ray on this
    machine, such as the test session's own, may hold: then the job agent cannot start."""
    return [f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}"]


def start_nodes(processes: list[subprocess.Popen], temp_dir: Path, env: dict[str, str], port: int,
                dashboard: int) -> None:
    """A head and a worker node on 127.0.0.1, each with its own working directory, temp and scratch folders (which
    no other node sees), added to `processes` as they start."""
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0", "--block", "--disable-usage-stats"]

    def node(name: str, args: list[str]) -> None:
        home = temp_dir / name
        (home / "tmp").mkdir(parents=True)
        node_env = {**env, "TMPDIR": str(home / "tmp"), "VLCURATE_SCRATCH": str(home / "scratch")}
        processes.append(subprocess.Popen([str(BIN / "ray"), "start", *args, *own_ports(), *common], env=node_env,
                                          cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    node("head", ["--head", f"--port={port}", f"--temp-dir={temp_dir / 'ray'}",
                  f"--ray-client-server-port={free_port()}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                  f"--dashboard-port={dashboard}"])
    wait_for_nodes(f"127.0.0.1:{port}", env, 1)
    node("worker", [f"--address=127.0.0.1:{port}"])
    wait_for_nodes(f"127.0.0.1:{port}", env, 2)


def test_ray_job_submit_on_two_nodes_with_no_shared_disk_writes_the_local_runs_shards(tmp_path, video_folder, s3):
    import s3fs

    from vlcurate.config import load_run_config
    from vlcurate.run import run_stages

    fs = s3fs.S3FileSystem(use_listings_cache=False)
    source = s3.url("cluster-in")
    for video in sorted(video_folder.iterdir()):
        fs.put_file(str(video), f"{source[5:]}/{video.name}")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    local = tmp_path / "local"
    run_stages(load_run_config(config=config, input=source, output=str(local)))

    temp_dir = Path("/tmp") / f"vlc-ray-{secrets.token_hex(4)}"  # short: Ray's socket paths have a length limit
    port, dashboard = free_port(), free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "RAY_USAGE_STATS_ENABLED": "0", "VLCURATE_PROGRESS": "0"}
    processes: list[subprocess.Popen] = []
    try:
        start_nodes(processes, temp_dir, env, port, dashboard)

        remote = s3.url("cluster-run")
        submit = [str(BIN / "ray"), "job", "submit", f"--address=http://127.0.0.1:{dashboard}", "--",
                  str(BIN / "vlcurate"), "run", "-c", str(config), "-i", source, "-o", remote,
                  "--executor", "ray", "--ray-address", "auto"]
        for _ in range(30):  # the head's job agent registers a few seconds after the node is up
            job = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=540)
            if "No available agent" not in job.stdout + job.stderr:
                break
            time.sleep(2.0)
        assert job.returncode == 0 and "succeeded" in job.stdout, job.stdout[-3000:] + job.stderr[-3000:]
        read_back = subprocess.run([sys.executable, "-c", READ_SHARDS, f"127.0.0.1:{port}", remote + "/shard"],
                                   env=env, capture_output=True, text=True, timeout=300)
        assert read_back.returncode == 0, read_back.stderr[-3000:]
    finally:
        end(processes, temp_dir)

    stats = json.loads(fs.cat_file(remote[5:] + "/split/stats.json"))
    assert stats["executor"] == "ray" and stats["nodes"] == 2  # both nodes split videos
    files = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.suffix in (".tar", ".parquet")
                   and "_input" not in p.parts)
    stored = sorted(k[len(remote) - 4:] for k in fs.find(remote[5:]) if k.endswith((".tar", ".parquet"))
                    and "/_input/" not in k)
    assert files == stored and any(f.endswith(".tar") for f in files)
    for name in files:
        assert (local / name).read_bytes() == fs.cat_file(f"{remote[5:]}/{name}"), name
    keys = sorted(row["key"] for row in read_manifest(remote + "/shard").to_pylist())
    assert json.loads(read_back.stdout.strip().splitlines()[-1]) == keys  # Ray Data read every sample


# Ray Data over the shards on the store (pyarrow's S3 filesystem, from the same AWS variables)
READ_SHARDS = """
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR")
data = ray.data.read_webdataset(sys.argv[2], file_extensions=["tar"])
print(json.dumps(sorted(row["__key__"] for row in data.take_all())))
"""
