"""make bench-split: the split stage against the physical limit (single-thread ffmpeg decode) and against the
PySceneDetect CLI, all measured in this run on the same files. Writes bench/split.json."""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa

from bench.common import (ffmpeg_decode, ffmpeg_on_path, make_h264, make_long, timed, wall_and_cpu_seconds,
                          write_result)
from bench.split_steps import cpu_by_step
from vlcurate.pipeline.executor import run_table
from vlcurate.stages import media
from vlcurate.stages.ingest import IngestStage, discover
from vlcurate.stages.shard import ShardConfig
from vlcurate.stages.shard.stage import AssignPass, PackPass
from vlcurate.stages.split import SplitConfig, SplitStage

BENCH_SPLIT = {"detector": "adaptive", "stitch": {"embedder": {"kind": "histogram"}, "transition_l2": 1.2,
                                                  "still_l2": 0.02, "merge_l2": 0.5},
               "min_clip_s": 1.0, "decode_threads": 1}


def split_once(path: Path, out_dir: Path, **overrides) -> pa.Table:
    """Ingest and split as a pipeline does, into `out_dir`: the clips."""
    videos = run_table(IngestStage(), discover(path), out_dir, overwrite=True)
    return run_table(SplitStage(SplitConfig(**{**BENCH_SPLIT, **overrides})), videos, out_dir, overwrite=True)


def ready_stage(**overrides) -> SplitStage:
    """The bench's split stage, set up."""
    stage = SplitStage(SplitConfig(**{**BENCH_SPLIT, **overrides}))
    stage.ensure_setup()
    return stage


def ready_split(path: Path, **overrides) -> tuple[SplitStage, pa.Table]:
    """The bench's split stage, set up, and the ingested videos at `path`: what a timed call then maps."""
    return ready_stage(**overrides), run_table(IngestStage(), discover(path), tempfile.mkdtemp(prefix="bench-ingest-"))


def our_end_to_end(path: Path, out_dir: Path, **shard_cfg) -> tuple[float, dict[str, int]]:
    """split + frame-exact clip extraction by the shard stage's own encode step (one ffmpeg per core); returns the
    time and how many clips were copied and re-encoded."""
    import shutil

    counts: dict[str, int] = {}

    def run():
        shutil.rmtree(out_dir, ignore_errors=True)
        clips = split_once(path, out_dir / "split").to_pylist()
        rows = [{**c, "candidates": [], "caption": "", "caption_teacher": "", "caption_score": 0.0, "scorer": ""}
                for c in clips]
        config = ShardConfig(audio=False, **shard_cfg)
        pack = PackPass(config, AssignPass(config))
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            encoded = list(pool.map(lambda r: pack._encode(r, out_dir / "clips", None), rows))
        if any(r["error"] for r in encoded):
            raise RuntimeError(f"clip extraction failed: {[r['error'] for r in encoded if r['error']]}")
        counts.clear()
        for r in encoded:
            counts[r["encoding"]] = counts.get(r["encoding"], 0) + 1

    return timed(run), dict(counts)


def scenedetect_cli(path: Path, out_dir: Path, ffmpeg_output: dict | None = None) -> float:
    """The PySceneDetect CLI's detect-adaptive and split-video; `ffmpeg_output`: its encoder's output options."""
    import shlex

    env = ffmpeg_on_path()
    cmd = [str(Path(sys.executable).parent / "scenedetect"), "-q", "-i", str(path), "-o", str(out_dir),
           "detect-adaptive", "split-video"]
    if ffmpeg_output:
        cmd += ["--args", shlex.join(media.commands.output_options(**ffmpeg_output))]
    return timed(lambda: subprocess.run(cmd, check=True, env=env, capture_output=True))


def parallel_speedup(path_a: Path, path_b: Path, tmp: Path, rounds: int = 3) -> dict:
    """Two videos on two warm workers against the same two one after the other in one, alternated for `rounds`
    rounds (best of each). The workers are the local runner's own (spawned, stage set up in each); starting them is
    a one-off cost per stage run, reported apart as `pool_start_s`, and included in `speedup_with_pool_start`,
    which is what a user running just these two videos sees."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from vlcurate.pipeline.runners.local import _init_worker

    folder = tmp / "pair"
    folder.mkdir(exist_ok=True)
    for p in (path_a, path_b):
        target = folder / p.name
        if not target.exists():
            target.symlink_to(p)
    stage, videos = ready_split(folder)
    batches = [videos.slice(i, 1) for i in range(videos.num_rows)]
    began = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context, initializer=_init_worker, initargs=(stage, os.getpid())) as pool:
        pids: set[int] = set()
        while len(pids) < 2:  # until both workers have started and answered
            pids |= set(pool.map(_worker_pid, [0.05, 0.05]))
        pool_start = time.perf_counter() - began
        runs = [(timed(lambda: [stage.process_batch(b) for b in batches]),
                 timed(lambda: list(pool.map(_split_batch, batches))),
                 timed(lambda: [ffmpeg_decode(p) for p in (path_a, path_b)]),
                 timed(lambda: _decode_together(path_a, path_b))) for _ in range(rounds)]
    one, two, decode_one, decode_two = (min(r[i] for r in runs) for i in range(4))
    return {"one_worker_s": round(one, 3), "two_workers_s": round(two, 3), "speedup": round(one / two, 3),
            "speedup_median": round(statistics.median(r[0] for r in runs) / statistics.median(r[1] for r in runs), 3),
            "pool_start_s": round(pool_start, 3), "speedup_with_pool_start": round(one / (two + pool_start), 3),
            # the machine's own ceiling: the same two videos, plain single-thread decodes, one after the other
            # against both at once
            "ffmpeg_decode_speedup": round(decode_one / decode_two, 3), "rounds": rounds}


def _decode_together(*paths: Path) -> None:
    procs = [subprocess.Popen(media.commands.compile_args(media.commands.decode_null(p, threads=1))) for p in paths]
    if any(p.wait() for p in procs):
        raise RuntimeError("ffmpeg decode failed")


def _split_batch(batch: pa.Table) -> pa.Table:
    from vlcurate.pipeline.runners import local

    return local._WORKER_STAGE.process_batch(batch)  # type: ignore[union-attr]


def _worker_pid(hold_s: float) -> int:
    import os

    time.sleep(hold_s)  # so that a second ready worker takes the other task
    return os.getpid()


def _round(steps: list, which: int) -> tuple:
    """(wall, CPU) of each step, run once each starting at a different one each round: drift in what else the
    machine does, and whatever a step leaves behind for the next (caches, a child's exit), hit every step alike."""
    first = which % len(steps)
    order = list(range(first, len(steps))) + list(range(first))
    measured = {i: wall_and_cpu_seconds(steps[i]) for i in order}
    return tuple(measured[i] for i in range(len(steps)))


def _against_decode(runs: list, which: int, frames: int) -> dict:
    """Split's speed and CPU against single-thread ffmpeg decode's, from alternated (decode, split, ...) runs."""
    decode, split = [r[0] for r in runs], [r[which] for r in runs]
    best = min(s[0] for s in split)
    return {"split_s": round(best, 3), "split_fps": round(frames / best, 1),
            "split_over_decode": round(min(d[0] for d in decode) / best, 3),  # best of each
            "split_over_decode_median": round(statistics.median(d[0] for d in decode)
                                              / statistics.median(s[0] for s in split), 3),
            # CPU per video against decode's: on a machine with as many cores as videos in flight, n videos in
            # parallel can run at most n / this times faster than one video split at decode speed
            "cpu_over_decode_cpu": round(statistics.median(s[1] for s in split)
                                         / statistics.median(d[1] for d in decode), 3)}  # median of each


def peak_rss_child(path: Path) -> tuple[float, int]:
    """Split a long video in a fresh process and report its peak RSS in MB (`peak_rss_mb`: its own, not this
    parent's, which getrusage would carry over)."""
    code = ("import sys, tempfile; from pathlib import Path; from bench.split_bench import split_once;"
            "from vlcurate.pipeline.tasks import peak_rss_mb; "
            "t = split_once(Path(sys.argv[1]), Path(tempfile.mkdtemp()));"
            "print(t.num_rows, peak_rss_mb())")
    out = subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True, text=True)
    clips, rss = out.stdout.strip().splitlines()[-1].split()
    return float(rss), int(clips)


def transnet_fps(path: Path, frames: int) -> float:
    stage, videos = ready_split(path, detector="transnetv2", stitch={"enabled": False})
    return frames / timed(lambda: stage.process_batch(videos))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--long-seconds", type=float, default=3600.0, help="length of the peak-RSS video")
    parser.add_argument("--rounds", type=int, default=9, help="rounds of decode and both splits per resolution "
                        "(medians: on a 2-core VM one round's CPU ratio moves by up to 20%%)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vlcurate-bench-"))
    # whether swscale runs its gather-free routines (stages/media/simd.py), as every scan of this process does
    result: dict = {"config": BENCH_SPLIT, "swscale_gather_free": media.simd.prefer_gather_free(), "throughput": {}}
    for height in (720, 360):
        video = make_h264(height)
        info = media.probe(video)
        stage, videos = ready_split(video)
        two = ready_stage(decode_threads=2)
        steps = [functools.partial(ffmpeg_decode, video), functools.partial(stage.process_batch, videos),
                 functools.partial(two.process_batch, videos)]
        runs = [_round(steps, i) for i in range(args.rounds)]
        decodes = [r[0][0] for r in runs]
        result["throughput"][f"{height}p"] = {
            "video": video.name, "frames": info.num_frames, "seconds_of_video": round(info.duration_s, 2),
            "ffmpeg_threads1_decode_s": round(min(decodes), 3),
            "decode_fps": round(info.num_frames / min(decodes), 1), "rounds": args.rounds,
            **_against_decode(runs, 1, info.num_frames),
            # one video on two cores: segments between IDR frames on two decoder threads (split.decode_threads: 2)
            "decode_threads_2": _against_decode(runs, 2, info.num_frames),
            # where the CPU of decode_threads 1 goes, per frame by step (bench/split_steps.py says what each holds)
            "cpu_us_per_frame": cpu_by_step(video, stage, videos, rounds=args.rounds),
        }
    video720 = make_h264(720)
    frames720 = media.probe(video720).num_frames
    result["transnetv2_cpu_fps"] = round(transnet_fps(video720, frames720), 1)
    # Both tools' defaults (ours: clips copied where that is frame-exact, else libx264 veryfast CRF 23; theirs:
    # every clip re-encoded with libx264 veryfast CRF 22), then ours re-encoding every clip too, then both on the same
    # encoder settings, so the ratios show what copying and what the splitting itself gain.
    shard = ShardConfig()
    same_encoder = {"map": "0:v:0", "c:v": "libx264", "preset": shard.preset, "crf": shard.crf, "an": None}
    encoder = f"libx264 -preset {shard.preset} -crf {shard.crf}"  # as the shard stage names its encodes
    ours_e2e, ours_counts = our_end_to_end(video720, tmp / "ours")
    ours_encode_all, _ = our_end_to_end(video720, tmp / "ours-encode", stream_copy=False)
    theirs = scenedetect_cli(video720, tmp / "scenedetect")
    theirs_same = scenedetect_cli(video720, tmp / "scenedetect-same", same_encoder)
    result["end_to_end_720p"] = {"vlcurate_split_and_extract_s": round(ours_e2e, 3),
                                 "vlcurate_clips_by_encoding": ours_counts,
                                 "scenedetect_cli_split_video_s": round(theirs, 3),
                                 "speedup": round(theirs / ours_e2e, 3),
                                 "vlcurate_every_clip_encoded_s": round(ours_encode_all, 3),
                                 "encoder": encoder,
                                 "speedup_every_clip_encoded": round(theirs / ours_encode_all, 3),
                                 "scenedetect_cli_same_encoder_s": round(theirs_same, 3),
                                 "speedup_every_clip_encoded_same_encoder": round(theirs_same / ours_encode_all, 3)}
    # two different 720p videos of about two minutes each: long enough that process start-up does not dominate
    result["parallel_2_videos"] = parallel_speedup(make_long(120), make_long(125), tmp, rounds=3)
    if args.long_seconds > 0:
        long_video = make_long(args.long_seconds)
        began = time.perf_counter()
        rss, clips = peak_rss_child(long_video)
        result["long_video"] = {"seconds_of_video": args.long_seconds, "height": 720, "clips": clips,
                                "peak_rss_mb": round(rss, 1), "wall_s": round(time.perf_counter() - began, 1)}
    write_result("split", result)


if __name__ == "__main__":
    main()
