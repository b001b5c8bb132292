"""make bench-scale: memory and time of every frame-reading stage of the demo profile, local and Ray, at two run
sizes whose parts are full (default 1 and 4 parts of 512 clips), with clips as people configure them for captioning
(16 stored frames at a 360 px short side); and `vlcurate report`'s peak at two sizes under its gallery cap.
Writes bench/scale.json.

The clips are real: generated videos are ingested and split once, then split's manifest and frame store are
replicated to N clips (fresh clip ids, the same frames) as a finished split folder. For each (N, executor) every
stage runs in a child process of its own (`--chained`: all in one), so its peaks are its own: the driver's peak over
the stage and the highest peak of a worker over one task (stats.json), and the stage's own seconds. The criterion: a
stage's peak RSS grows by
at most 5% of a clip's stored frames per extra clip, from the small run to the large one. The old data-plane run
(caption and score at 1k-50k small clips) is `--sizes 1000,10000,50000 --frames 4 --short-side 224 --stages
caption,score --part-rows 512`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import ffmpeg as ffmpeg_python
import pyarrow as pa

from bench.common import WORK, ffmpeg, make_h264, write_result
from vlcurate.manifests import CLIPS, STORED_FRAMES, with_frames
from vlcurate.pipeline import storage
from vlcurate.pipeline.tasks import peak_rss_mb

# the demo profile's frame-reading stages, as it configures them; caption with its frame teachers (tiny, untrained)
# and the cheap title teacher (the GGUF teachers read no frames and take seconds a clip)
STAGES = ("motion", "blank", "dedup", "text", "caption", "score")
CONFIG: dict[str, Any] = {
    "motion": {"mode": "tag"},
    "blank": {"mode": "tag"},
    "dedup": {"mode": "tag"},
    "text": {"mode": "tag", "frames": 1},
    "caption": {"resources": {"batch_size": 4},
                "teachers": [{"name": "blip", "kind": "hf_image_captioner", "model": "tiny:blip", "inputs": ["frames"],
                              "generation": {"max_new_tokens": 8}},
                             {"name": "video_lm", "kind": "video_lm", "model": "tiny:video_lm",
                              "inputs": ["frames", "title"], "num_frames": 4, "generation": {"max_new_tokens": 8}},
                             {"name": "title", "kind": "title"}]},
    "score": {"resources": {"batch_size": 4}, "scorer": {"kind": "open_clip", "model": "tiny:open_clip"}},
}
REPORT_SIZES = (80, 320)  # both under the report's gallery cap (480 clips)


def make_source(root: Path, frames: int, short_side: int) -> Path:
    """Two generated 1080p videos (test patterns with hard cuts: one moving, one still) and real footage (Big Buck
    Bunny at 720p, bench/common.py), ingested and split: the clips to replicate."""
    from vlcurate.pipeline.executor import run_table
    from vlcurate.stages.ingest import IngestStage, discover
    from vlcurate.stages.split import SplitConfig, SplitStage

    videos = root / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    for pattern in ("testsrc2", "smptehdbars"):
        target = videos / f"{pattern}.mp4"
        if not target.exists():
            source = ffmpeg_python.input(f"{pattern}=size=1920x1080:rate=25", f="lavfi", t=12)
            ffmpeg(source.output(str(target), **{"c:v": "libx264"}, preset="ultrafast", g=50, pix_fmt="yuv420p"))
    if not (videos / "footage.mp4").exists():
        shutil.copy(make_h264(720), videos / "footage.mp4")
    out = root / "source"
    table = run_table(IngestStage(), discover(videos), out, overwrite=True)
    config = SplitConfig(min_clip_s=1.0, stitch={"enabled": False}, forced_cut_above_s=2.0, forced_cut_every_s=2.0,
                         frames_per_clip=frames, sample_fps=max(4.0, frames / 1.5), frame_short_side=short_side)
    run_table(SplitStage(config), table, out, overwrite=True)
    return out


def replicate(source: Path, clips: int, run: Path, part_rows: int = 512) -> int:
    """`run/split/` as a finished split stage of `clips` clips: the source's clips repeated with fresh ids and
    titles, frames copied into the new frame store. Returns split's bytes on disk."""
    from vlcurate.pipeline.executor import read_manifest, write_stage

    template = read_manifest(source / "split", root=source).to_pylist()
    template = [r for r in template if not r["error"]]
    schema = with_frames(CLIPS)

    def tables():
        for start in range(0, clips, part_rows):
            rows = []
            for i in range(start, min(clips, start + part_rows)):
                row = dict(template[i % len(template)])
                row.update(video_id=f"{i // 10:016x}", clip_id=f"{i // 10:016x}_{i:07d}_{i + 1:07d}",
                           title=f"Synthetic clip {i}")
                rows.append(row)
            yield pa.Table.from_pylist(rows, schema=schema)

    run = storage.path(run)  # a local folder, or a prefix on a store (make bench-storage)
    storage.rmtree(run)
    write_stage(run / "split", run, tables(), {"stage": "split", "rows_out": clips, "replicated": True},
                stores=(STORED_FRAMES,))
    storage.write_bytes(run / "split" / "config.json", b"{}\n")
    return folder_bytes(run / "split")


def folder_bytes(folder: Path) -> int:
    if storage.is_remote(folder):
        return sum(int(v["size"]) for v in folder.fs.find(folder.path, detail=True).values())  # type: ignore
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def child(run: Path, executor: str, stages: list[str], only: list[str] | None = None) -> dict[str, Any]:
    """The stages over `run/split` in this process, each after the one before: per stage its stats' seconds and
    peaks; and the driver's peak over the whole child. Under Ray, the session's one-time costs are measured apart:
    starting Ray, and a first run of the stages over 64 clips (Ray's workers importing pyarrow, vlcurate and the
    models), which every later stage of the session is spared. `only`: run just these of `stages` (the ones before
    them finished already), with no warm-up: their peaks are then their own, not raised by what an earlier stage left
    in the process, and under Ray their time includes the workers' start."""
    from vlcurate.pipeline.runners import make_runner
    from vlcurate.config import run_config_class
    from vlcurate.run import run_stages

    config = run_config_class().model_validate({**{k: CONFIG[k] for k in stages}, "output": str(run),
                                                "executor": executor, "stages": ["ingest", "split", *stages],
                                                "report": {"enabled": False}})
    began = time.perf_counter()
    runner = make_runner(executor)
    session: dict[str, float] = {"start_s": round(time.perf_counter() - began, 3)}
    if executor == "ray" and only is None:
        warm = run.parent / f"{run.name}-warmup"
        replicate(run.parent / "source", 64, warm)
        began_warmup = time.perf_counter()
        run_stages(config.model_copy(update={"output": str(warm)}), stages, runner=runner)
        session["warmup_s"] = round(time.perf_counter() - began_warmup, 3)
        shutil.rmtree(warm, ignore_errors=True)
    began = time.perf_counter()
    stages = only or stages
    results = run_stages(config, stages, runner=runner)
    keys = ("seconds", "rows_out", "parts", "driver_peak_rss_mb", "worker_peak_rss_mb", "nodes")
    return {"driver_peak_rss_mb": peak_rss_mb(), "wall_s": round(time.perf_counter() - began, 3),
            "session": session,
            "stages": {name: {k: results[name][k] for k in keys if k in results[name]} for name in stages}}


def report_child(run: Path) -> dict[str, Any]:
    """`vlcurate report` of `run` in this process: its wall time and peak RSS."""
    from vlcurate.stages.report import ReportConfig, write_report

    began = time.perf_counter()
    write_report(run, ReportConfig())
    return {"seconds": round(time.perf_counter() - began, 3), "peak_rss_mb": peak_rss_mb()}


def in_child(*args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.scale_bench", *args], capture_output=True, text=True,
                         env={**os.environ, "VLCURATE_PROGRESS": "0"})
    if out.returncode:
        raise RuntimeError(f"child run failed: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(run: Path, clips: int, executor: str, stages: list[str], split_bytes: int,
            chained: bool = False) -> dict[str, Any]:
    """The stages in one child (`chained`), or each in a child of its own (its peaks its own)."""
    if chained:
        result = in_child("--child", str(run), "--executor", executor, "--stages", ",".join(stages))
    else:
        results = [in_child("--child", str(run), "--executor", executor, "--stages", ",".join(stages), "--only", s)
                   for s in stages]
        result = {"driver_peak_rss_mb": max(r["driver_peak_rss_mb"] for r in results),
                  "wall_s": round(sum(r["wall_s"] for r in results), 3),
                  "session": {"start_s": round(sum(r["session"]["start_s"] for r in results), 3)},
                  "stages": {s: r["stages"][s] for s, r in zip(stages, results)}}
    for name in stages:
        stage = result["stages"][name]
        stage["seconds_per_1000_clips"] = round(stage["seconds"] * 1000 / clips, 4)
        stage["bytes_per_clip"] = round(folder_bytes(run / name) / clips, 1)
    result["stages"]["split"] = {"bytes_per_clip": round(split_bytes / clips, 1)}
    return result


def measure_report(source: Path, root: Path, part_rows: int) -> dict[str, Any]:
    """The report's peak at two sizes under its gallery cap, over split and motion (its contact sheets and a filter
    section): the criterion is the larger within 10% of the smaller."""
    out: dict[str, Any] = {}
    for clips in REPORT_SIZES:
        run = root / f"report-{clips}"
        replicate(source, clips, run, part_rows)
        in_child("--child", str(run), "--executor", "local", "--stages", "motion")
        out[str(clips)] = in_child("--report-child", str(run))
        shutil.rmtree(run, ignore_errors=True)
    small, large = (out[str(n)]["peak_rss_mb"] for n in REPORT_SIZES)
    out["peak_ratio"] = round(large / small, 4)
    return out


def growth(a: dict[str, Any], b: dict[str, Any], key: str, extra: int, clip_bytes: float) -> float | None:
    """Peak RSS growth per extra clip, over a clip's stored split bytes (its frames, mostly)."""
    if a.get(key) is None or b.get(key) is None:
        return None
    return round((b[key] - a[key]) * 2**20 / extra / clip_bytes, 5)


def summarise(runs: dict[str, dict[str, Any]], sizes: list[int], stages: list[str],
              split_clip_bytes: float) -> dict[str, Any]:
    """The criteria as numbers: per executor and stage, driver and worker peak growth per extra clip over a clip's
    stored bytes (target <= 0.05), and time per clip's growth, from the smallest run to the largest."""
    small, large = min(sizes), max(sizes)
    out: dict[str, Any] = {"split_bytes_per_clip": round(split_clip_bytes, 1)}
    for executor in ("local", "ray"):
        a, b = runs.get(f"{executor}-{small}"), runs.get(f"{executor}-{large}")
        if not (a and b and large > small):
            continue
        out[f"{executor}_child_rss_growth_over_clip_split_bytes"] = growth(a, b, "driver_peak_rss_mb", large - small,
                                                                          split_clip_bytes)
        for name in stages:
            sa, sb = a["stages"][name], b["stages"][name]
            for who in ("driver", "worker"):
                value = growth(sa, sb, f"{who}_peak_rss_mb", large - small, split_clip_bytes)
                if value is not None:
                    out[f"{executor}_{name}_{who}_rss_growth_over_clip_split_bytes"] = value
            # where a task ran: the driver's process when a stage's tasks run in it (one part, or one worker), a
            # pool's worker otherwise; so the task's peak is the larger of the two, compared across sizes
            task = {k: {"task_peak_rss_mb": max(x.get("driver_peak_rss_mb") or 0, x.get("worker_peak_rss_mb") or 0)}
                    for k, x in (("a", sa), ("b", sb))}
            out[f"{executor}_{name}_task_rss_growth_over_clip_split_bytes"] = growth(
                task["a"], task["b"], "task_peak_rss_mb", large - small, split_clip_bytes)
            out[f"{executor}_{name}_time_per_clip_growth"] = round(
                sb["seconds_per_1000_clips"] / sa["seconds_per_1000_clips"] - 1, 3)
    growths = [v for k, v in out.items() if k.endswith("_rss_growth_over_clip_split_bytes") and v is not None]
    out["max_rss_growth_over_clip_split_bytes"] = max(growths, default=None)
    return out


def resummarise(path: Path) -> None:
    """Recompute a written scale.json's summary from its runs (after the summary gains a number)."""
    data = json.loads(path.read_text())
    clip_bytes = data["summary"]["split_bytes_per_clip"]
    data["summary"] = summarise(data["runs"], data["sizes"], [s for s in data["config"]], clip_bytes)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="512,2048", help="clip counts, comma-separated (default: 1 and 4 parts)")
    parser.add_argument("--executors", default="local,ray")
    parser.add_argument("--stages", default=",".join(STAGES), help="of " + ",".join(STAGES))
    parser.add_argument("--frames", type=int, default=16, help="stored frames per clip")
    parser.add_argument("--short-side", type=int, default=360)
    parser.add_argument("--part-rows", type=int, default=512, help="rows per part (every stage)")
    parser.add_argument("--no-report", action="store_true", help="skip the report's measurement")
    parser.add_argument("--chained", action="store_true", help="all stages in one child process (with a Ray "
                        "warm-up) instead of each in its own: times without start-ups, peaks raised by earlier stages")
    parser.add_argument("--only", help=argparse.SUPPRESS)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--report-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--executor", default="local", help=argparse.SUPPRESS)
    args = parser.parse_args()
    stages = args.stages.split(",")
    if args.child:
        print(json.dumps(child(args.child, args.executor, stages, [args.only] if args.only else None)))
        return
    if args.report_child:
        print(json.dumps(report_child(args.report_child)))
        return
    for name in stages:
        CONFIG[name]["part_rows"] = args.part_rows
    root = WORK / "scale"
    source = make_source(root, args.frames, args.short_side)
    sizes = [int(s) for s in args.sizes.split(",")]
    runs: dict[str, dict[str, Any]] = {}
    split_clip_bytes = 0.0
    for n in sizes:
        run = root / f"run-{n}"
        split_bytes = replicate(source, n, run, args.part_rows)
        split_clip_bytes = split_bytes / n
        for executor in args.executors.split(","):
            for name in stages:
                shutil.rmtree(run / name, ignore_errors=True)
            runs[f"{executor}-{n}"] = measure(run, n, executor, stages, split_bytes, args.chained)
            print(f"{executor} {n}: {json.dumps(runs[f'{executor}-{n}'])}", file=sys.stderr)
        shutil.rmtree(run, ignore_errors=True)
    report = None if args.no_report else measure_report(source, root, args.part_rows)
    write_result("scale", {"sizes": sizes, "frames_per_clip": args.frames, "short_side": args.short_side,
                           "part_rows": args.part_rows, "chained": args.chained,
                           "config": {k: CONFIG[k] for k in stages}, "runs": runs,
                           "report": report, "summary": summarise(runs, sizes, stages, split_clip_bytes)})


if __name__ == "__main__":
    main()
