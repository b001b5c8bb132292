"""Writes the report: collects the run's numbers, draws the plots, makes the contact sheets, and renders the jinja2
templates into `<output>/report/` (built in a temporary folder, then swapped in whole)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from vlcurate.pipeline import storage
from vlcurate.stages.report import collect, gallery, plots, provenance, views
from vlcurate.stages.report.config import ReportConfig
from vlcurate.stages.report.runinfo import RunInfo, load_run

log = logging.getLogger(__name__)
REPORT_DIR = "report"


def environment(html: bool = True):
    """The templates' environment: HTML escaped (the report), or not (the dataset card's Markdown)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("vlcurate.stages.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]) if html else False,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = views.fmt
    env.filters["pct"] = lambda v: "-" if v is None else f"{100 * v:.1f}%"
    env.filters["secs"] = lambda v: "-" if v is None else f"{v:.2f}"
    env.filters["mb"] = lambda v: "-" if v is None else f"{v:.0f}"
    return env


def write_report(output: str | Path, config: ReportConfig, to: str | Path | None = None) -> Path:
    """`<output>/report/index.html` (overview and the gallery's first page), `gallery-N.html`, `plots/`,
    `frames/`; returns the index's path."""
    began = time.perf_counter()
    run = load_run(output)
    final = storage.path(to) if to is not None else run.output / REPORT_DIR
    remote = storage.is_remote(final)  # built in a local folder, then uploaded file by file, index.html last
    tmp = Path(tempfile.mkdtemp(prefix="vlcurate-report-")) if remote else \
        final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        context = build_context(run, config, tmp)
        env = environment()
        pages = paginate(context.pop("cards"), config.page_clips)
        for number, cards in enumerate(pages, 1):
            page = {"number": number, "count": len(pages), "cards": cards}
            name = "index.html" if number == 1 else page_name(number)
            template = "index.html.j2" if number == 1 else "gallery.html.j2"
            (tmp / name).write_text(env.get_template(template).render(**context, page=page), encoding="utf-8")
        _upload(tmp, final) if remote else _swap(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("report: %s (%d of %d clips shown, %.1fs)", final / "index.html", context["shown"],
             context["total_clips"], time.perf_counter() - began)
    return final / "index.html"


def page_name(number: int) -> str:
    return "index.html" if number == 1 else f"gallery-{number}.html"


def paginate(cards: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [cards[i:i + size] for i in range(0, len(cards), size)] or [[]]


def build_context(run: RunInfo, config: ReportConfig, folder: Path) -> dict[str, Any]:
    stage = run.clip_stage
    rows, total = gallery.sample(run, stage, config.gallery_clips, config.seed) if stage else ([], 0)
    ids = {r["clip_id"] for r in rows}
    sharded = {r["key"] for r in run.select("shard", ["key"], "key", ids)} if run.has("shard") else None
    cards = [views.clip_card(r, sharded) for r in rows]
    filters = [_filter_section(run, name, config, folder) for name in run.filters]
    _write_sheets(run, {c["clip_id"] for c in cards} | {c["clip_id"] for f in filters for c in f["clips"]},
                  folder, config.frame_height)
    for card in [*cards, *(c for f in filters for c in f["clips"])]:
        card["has_sheet"] = (folder / card["sheet"]).exists()
    split = run.section("split")
    figures = [plots.durations_plot(folder, collect.durations(run, stage),
                                    {"min": split.get("min_clip_s"), "max": split.get("max_clip_s")}),
               plots.scores_plot(folder, run.stats.get("score", {}).get("score_histograms") or {},
                                 run.section("score").get("min_score")),
               plots.win_rate_plot(folder, run.stats.get("score", {}).get("win_rate") or {}),
               plots.shots_plot(folder, collect.shots_per_video(run))]
    return {"output": str(run.output), "stages": run.stages, "config": run.config,
            "config_yaml": yaml.safe_dump(run.config, sort_keys=False, width=110),
            "executor": run.config.get("executor", ""), "clip_stage": stage, "limits": config.model_dump(),
            "funnel": collect.funnel(run), "teachers": collect.teacher_table(run),
            "thresholds": collect.thresholds(run), "models": provenance.models(run),
            "packages": provenance.package_versions(), "ffmpeg": provenance.ffmpeg_version(),
            "plots": [p for p in figures if p], "filters": filters, "cards": cards, "shown": len(cards),
            "total_clips": total, "sampled": total > len(cards),
            "timelines": views.timelines(run, config.timeline_videos),
            "error_counts": collect.errors_by_stage(run), "error_rows": collect.error_rows(run, config.errors_shown),
            "pages": page_name}


def _filter_section(run: RunInfo, name: str, config: ReportConfig, folder: Path) -> dict[str, Any]:
    spec = run.stats[name]["filter"]
    chosen, total = gallery.flagged(run, name, config.filter_clips)
    info = {r["clip_id"]: r for r in run.select("split", ["clip_id", "path", "start_s", "end_s"], "clip_id",
                                                {c["clip_id"] for c in chosen})}
    clips = []
    for entry in chosen:
        where = info.get(entry["clip_id"], {})
        clips.append({**entry, **where, "sheet": gallery.sheet_name(entry["clip_id"]),
                      "margin_text": _margin_text(gallery.margin(entry["scores"], spec.get("limits") or {})),
                      "score_text": ", ".join(f"{k} {views.fmt(v)}" for k, v in entry["scores"].items())})
    return {"name": name, "mode": spec.get("mode"), "rule": spec.get("rule"), "limits": spec.get("limits") or {},
            "funnel": run.stats[name].get("funnel") or {}, "plot": plots.filter_plot(folder, name, spec),
            "clips": clips, "flagged": total}


def _margin_text(value: float) -> str:
    return "no numeric limit" if value == float("inf") else f"{100 * value:.1f}% of the limit from it"


def _write_sheets(run: RunInfo, clip_ids: set[str], folder: Path, height: int) -> None:
    """One contact sheet per shown clip, from the frames split stored (read by reference, a part file at a time)."""
    from tqdm import tqdm

    disable = True if os.environ.get("VLCURATE_PROGRESS", "1") == "0" else None
    (folder / "frames").mkdir(parents=True, exist_ok=True)
    clips = tqdm(gallery.frames_of(run, clip_ids), total=len(clip_ids), desc="report: contact sheets", unit="clip",
                 disable=disable, leave=False)
    for clip_id, frames in clips:  # one clip's frames at a time
        if frames:
            (folder / gallery.sheet_name(clip_id)).write_bytes(gallery.contact_sheet(frames, height))


def _upload(tmp: Path, final: Path) -> None:
    """The report onto a store: every file whole, index.html last; files of an older report that this one lacks
    go after."""
    files = sorted((p for p in tmp.rglob("*") if p.is_file()), key=lambda p: (p.name == "index.html", str(p)))
    for path in files:
        storage.write_bytes(final / path.relative_to(tmp).as_posix(), path.read_bytes())
    ours = {path.relative_to(tmp).as_posix() for path in files}
    fs, key = final.fs, final.path  # type: ignore[attr-defined]
    for old in fs.find(key):
        if old[len(key.rstrip("/")) + 1:] not in ours:
            storage.remove(storage.path(f"{storage.protocol(final)}://{old}"))


def _swap(tmp: Path, final: Path) -> None:
    """Replace the old report folder with the new one: never a half-written report under the final name."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
