"""make bench-report: the HTML report of runs of 1k and 50k clips, each written in a child process
so its wall time and peak RSS are its own. Writes bench/report.json.

The runs are real: generated videos are split once, split's manifest and frame store are replicated to N clips
(bench-scale's replication), then motion (drop mode: it drops the still test pattern's clips), caption
(model-free teachers) and score (tiny open_clip) run over them. The baseline, measured in the same run, is a bare
scan of the columns the report must read at least once (the clip ids and errors of the gallery's stage); the
issue's targets are under a minute and under 2 GB at 50k.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import WORK, write_result
from vlcurate.pipeline.tasks import peak_rss_mb
from bench.scale_bench import make_source, replicate

STAGES = ["ingest", "split", "motion", "caption", "score"]  # ingest and split are replicated, not run
CONFIG = {
    "stages": STAGES,
    "motion": {"mode": "drop"},  # the default rule (motion < 0.003) drops the still test pattern's clips
    "caption": {"teachers": [{"name": "title", "kind": "title"}, {"name": "subtitles", "kind": "subtitles"}],
                "resources": {"cpus": 1.0}},
    "score": {"scorer": {"kind": "open_clip", "model": "tiny:open_clip", "batch_size": 256},
              "resources": {"cpus": 1.0}},
}


def prepare(source: Path, clips: int, run: Path) -> dict[str, float]:
    """The run: replicated split, then motion, caption and score for real; returns each stage's seconds."""
    from vlcurate.pipeline.runners import LocalRunner
    from vlcurate.config import run_config_class
    from vlcurate.run import run_stages

    replicate(source, clips, run)
    config = run_config_class().model_validate({**CONFIG, "output": str(run), "report": {"enabled": False}})
    results = run_stages(config, STAGES[2:], runner=LocalRunner())
    return {name: results[name]["seconds"] for name in STAGES[2:]}


def child(run: Path) -> dict[str, Any]:
    """The report of `run` in this process: wall time, peak RSS, what it wrote."""
    from vlcurate.stages.report import ReportConfig, write_report

    began = time.perf_counter()
    index = write_report(run, ReportConfig())
    seconds = time.perf_counter() - began
    folder = index.parent
    return {"seconds": round(seconds, 3), "peak_rss_mb": peak_rss_mb(),
            "index_bytes": index.stat().st_size, "pages": len(list(folder.glob("*.html"))),
            "images": len(list(folder.rglob("*.jpg"))) + len(list(folder.rglob("*.png"))),
            "report_bytes": sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())}


def bare_scan(run: Path) -> float:
    """The floor: reading score's clip ids and errors, part by part, once."""
    from vlcurate.pipeline import parts

    began = time.perf_counter()
    for _ in parts.iter_parts(parts.part_files(run / "score"), ["clip_id", "error"]):
        pass
    return time.perf_counter() - began


def measure(run: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.report_bench", "--child", str(run)], capture_output=True,
                         text=True, env={**__import__("os").environ, "VLCURATE_PROGRESS": "0"})
    if out.returncode:
        raise RuntimeError(f"report failed: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,50000", help="clip counts, comma-separated")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    root = WORK / "report"
    source = make_source(root, 4, 224)
    sizes = [int(s) for s in args.sizes.split(",")]
    runs: dict[str, Any] = {}
    for n in sizes:
        run = root / f"run-{n}"
        stages = prepare(source, n, run)
        result = measure(run)
        result.update(clips=n, stage_seconds=stages, bare_scan_s=round(bare_scan(run), 4),
                      clips_after_filters=json.loads((run / "score" / "stats.json").read_text())["rows_out"])
        result["seconds_over_bare_scan"] = round(result["seconds"] / max(result["bare_scan_s"], 1e-6), 1)
        runs[str(n)] = result
        print(f"{n}: {json.dumps(result)}", file=sys.stderr)
        shutil.rmtree(run, ignore_errors=True)
    large = runs[str(max(sizes))]
    small = runs[str(min(sizes))]
    summary = {"largest": max(sizes), "seconds": large["seconds"], "peak_rss_mb": large["peak_rss_mb"],
               "under_a_minute": large["seconds"] < 60, "under_2_gb": large["peak_rss_mb"] < 2048,
               "seconds_largest_over_smallest": round(large["seconds"] / max(small["seconds"], 1e-6), 2),
               "clips_ratio": round(max(sizes) / min(sizes), 1)}
    write_result("report", {"sizes": sizes, "config": CONFIG, "runs": runs, "summary": summary})


if __name__ == "__main__":
    main()
