"""`make bench-filters` -> bench/filters.json: every filter's clips per second, and its time as a share of the split
stage's on the same videos (the weight-free filters should cost under 5% of it). Each stage runs as in a
pipeline (run_table: tasks, part files), best of `--rounds`; split's frames are what the filters read."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.common import make_long, timed, write_result

WEIGHT_FREE = ("motion", "motion_flow", "blank", "dedup")


def stages():
    from vlcurate.stages.filters.blank import BlankFilter
    from vlcurate.stages.filters.dedup import DedupFilter
    from vlcurate.stages.filters.motion import MotionConfig, MotionFilter
    from vlcurate.stages.filters.nsfw import NsfwFilter
    from vlcurate.stages.filters.text import TextFilter

    return {"motion": lambda: MotionFilter(), "motion_flow": lambda: MotionFilter(MotionConfig(method="flow")),
            "blank": lambda: BlankFilter(), "dedup": lambda: DedupFilter(), "text": lambda: TextFilter(),
            "nsfw": lambda: NsfwFilter()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--heights", default="720,360", help="the source footage at these heights ...")
    parser.add_argument("--seconds", type=float, default=120.0, help="... looped to this long each")
    args = parser.parse_args()

    from vlcurate.pipeline.executor import read_manifest, run_table
    from vlcurate.config import load_run_config
    from vlcurate.stages.ingest import IngestStage, discover
    from vlcurate.stages.split import SplitStage

    split_config = load_run_config("demo").split  # histogram stitching: no hub weights
    videos = [make_long(args.seconds, int(h)) for h in args.heights.split(",")]
    listing = Path(tempfile.mkdtemp(prefix="bench-filters-")) / "videos.csv"
    listing.write_text("path\n" + "".join(f"{v}\n" for v in videos))
    scratch = Path(tempfile.mkdtemp(prefix="bench-filters-"))
    ingested = run_table(IngestStage(), discover(listing), scratch / "ingest")
    split_s = timed(lambda: run_table(SplitStage(split_config), ingested, scratch / "split", overwrite=True),
                    args.rounds)
    clips = read_manifest(scratch / "split" / "split", scratch / "split")
    results = {}
    for name, make in stages().items():
        warm = make()
        run_table(warm, clips, scratch / f"warm-{name}", overwrite=True)  # loads models, builds caches
        seconds = timed(lambda: run_table(make(), clips, scratch / name, overwrite=True), args.rounds)
        results[name] = {"seconds": round(seconds, 4), "clips_per_s": round(clips.num_rows / seconds, 1),
                         "share_of_split": round(seconds / split_s, 4), "weight_free": name in WEIGHT_FREE}
    write_result("filters", {
        "videos": [f"{v.name}" for v in videos], "clips": clips.num_rows, "split_seconds": round(split_s, 3),
        "filters": results,
        "weight_free_under_5pct_of_split": all(r["share_of_split"] < 0.05 for n, r in results.items()
                                               if n in WEIGHT_FREE),
    })


if __name__ == "__main__":
    main()
