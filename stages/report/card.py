"""The dataset card: `<output>/shard/README.md`, a Hugging Face dataset card (YAML front matter the Hub and
`datasets.load_dataset(<folder>)` read: task and size categories, `configs` naming the tars) and, below it, how the
dataset was made and how to load it. Nothing in it changes between reruns of the same run (no timings, no dates)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import yaml

from vlcurate.pipeline import atomic
from vlcurate.stages.report import collect, provenance
from vlcurate.stages.report.runinfo import RunInfo, load_run

CARD = "README.md"
SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
         (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))
LICENSE_NOTE = ("# license: fill this in: the licenses of the source videos decide it "
                "(https://huggingface.co/docs/hub/repositories-licenses)")


def size_category(samples: int) -> str:
    return next((label for bound, label in SIZES if samples < bound), "n>1T")


def front_matter(run: RunInfo, totals: dict[str, Any]) -> str:
    """The card's YAML. `dataset_info` gives the split's size in samples and bytes: `datasets` checks the count, and
    hashes it into its cache key, which is otherwise the same for every folder called `shard` with this card."""
    prefix = run.section("shard").get("prefix") or "shard"
    meta: dict[str, Any] = {
        "pretty_name": f"{totals['samples']} captioned video clips (vlcurate)",
        "task_categories": ["text-to-video", "video-text-to-text"],
        "size_categories": [size_category(totals["samples"])],
        "tags": ["video", "video-text", "webdataset", "vlcurate"],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": f"{prefix}-*.tar"}]}],
        "dataset_info": {"config_name": "default",
                         "splits": [{"name": "train", "num_bytes": totals["tar_bytes"],
                                     "num_examples": totals["samples"]}],
                         "download_size": totals["tar_bytes"], "dataset_size": totals["tar_bytes"]},
    }
    return "---\n" + LICENSE_NOTE + "\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def shard_totals(run: RunInfo) -> dict[str, Any]:
    """Samples, tars, bytes and hours of video, from the shard index's sidecars (a few columns per part)."""
    samples, seconds, tars = 0, 0.0, set()
    for _, table in run.parts("shard", ["shard", "start_s", "end_s"]):
        samples += table.num_rows
        tars.update(table.column("shard").to_pylist())
        if table.num_rows:
            seconds += float(pc.sum(pc.subtract(table.column("end_s"), table.column("start_s"))).as_py() or 0.0)
    stats = run.stats.get("shard", {})
    tar_bytes = sum((run.folder("shard") / name).stat().st_size for name in tars)
    return {"samples": samples, "tars": sorted(tars), "hours": round(seconds / 3600, 3), "tar_bytes": tar_bytes,
            "mp4_bytes": stats.get("mp4_bytes"), "encodings": stats.get("clips_by_encoding") or {}}


def card_applies(output: str | Path) -> bool:
    """Whether the run in `output` has finished shards for a card to describe."""
    return load_run(output).has("shard")


def write_card(output: str | Path) -> Path:
    from vlcurate.stages.report.render import environment

    run = load_run(output)
    if not run.has("shard"):
        raise FileNotFoundError(f"{output}/shard has not finished: the dataset card describes its shards")
    totals = shard_totals(run)
    env = environment(html=False)
    models = [{**m, "files": [{k: f[k] for k in ("path", "sha256")} for f in m["files"]]}
              for m in provenance.models(run)]
    body = env.get_template("card.md.j2").render(
        run=run, totals=totals, models=models, thresholds=collect.thresholds(run), funnel=collect.funnel(run),
        teachers=collect.teacher_table(run), packages=provenance.package_versions(),
        prefix=run.section("shard").get("prefix") or "shard")
    path = run.folder("shard") / CARD
    atomic.atomic_write_bytes(path, (front_matter(run, totals) + body).encode())
    return path
