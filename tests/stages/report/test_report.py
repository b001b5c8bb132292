"""The report and the dataset card on a small run with errors, a filter that drops and one that only tags: the HTML
parses, every image it names exists, every clip and candidate is shown, the funnel matches the stats, paging and
sampling hold their limits, nothing decodes video, the card loads in Hugging Face datasets, and where Chromium is
installed a headless screenshot is not blank and the page logs no errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlcurate.pipeline.executor import read_manifest
from vlcurate.pipeline.runners import LocalRunner
from vlcurate.cli import app
from vlcurate.config import run_config_class
from vlcurate.stages.report import ReportConfig, write_report
from vlcurate.run import run_stages

pytestmark = [pytest.mark.slow]

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Page(HTMLParser):
    """Parses a page strictly enough to catch a broken template: every opened element closed in order."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src") or "")
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if attrs.get("id"):
            self.ids.append(attrs["id"])
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'} at {self.getpos()}")
            return
        self.stack.pop()


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    assert not page.problems and not page.stack, (page.problems[:5], page.stack)
    return page


@pytest.fixture(scope="module")
def run(tmp_path_factory, video_folder) -> Path:
    root = tmp_path_factory.mktemp("report")
    out = root / "run"
    listing = root / "videos.csv"  # titles, so the title teacher captions every clip; the folder's bad files too
    listing.write_text("path,title\n" + "".join(f"{p},Video {p.stem}\n" for p in sorted(video_folder.glob("*.mp4"))))
    config = run_config_class().model_validate({
        "input": str(listing), "output": str(out),
        "stages": ["ingest", "split", "motion", "blank", "dedup", "caption", "score", "shard"],
        "ingest": {"allowed_roots": [str(video_folder)]},  # the list names the session's video folder
        "split": {"min_clip_s": 0.5, "stitch": {"enabled": False}, "frames_per_clip": 3},
        # drops the calmer clips of the generated videos, so the filter gallery has clips on both sides
        "motion": {"min_motion": 0.033, "mode": "drop"},
        "blank": {"mode": "tag"},
        "dedup": {"mode": "tag", "max_distance": 32},  # every clip a near copy of a longer one: tagged, kept
        "caption": {"teachers": [{"name": "title", "kind": "title"}, {"name": "subtitles", "kind": "subtitles"}]},
        "score": {"scorer": {"kind": "open_clip", "model": "tiny:open_clip"}},
        "shard": {"maxcount": 2},
    })
    run_stages(config, runner=LocalRunner())
    return out


def test_run_writes_the_report_and_every_clip_with_every_candidate(run):
    index = run / "report" / "index.html"
    page = parse(index)
    for src in page.images:
        assert not src.startswith(("http:", "https:", "//")) and (index.parent / src).is_file(), src
    html = index.read_text()
    scored = read_manifest(run / "score").to_pylist()
    good = [r for r in scored if not r["error"]]
    assert good and all(r["clip_id"] in page.ids for r in good)
    for row in good:
        assert (index.parent / "frames" / f"{row['clip_id']}.jpg").is_file()
        for cand in row["candidates"]:
            if cand["score"] is not None:
                assert f"{cand['score']:.4g}" in html, cand
    for name in ("durations", "scores", "win_rates", "shots_per_video", "filter-motion", "filter-blank",
                 "filter-dedup"):
        assert f"plots/{name}.png" in page.images, name
    for reason in ("ingest/corrupt", "ingest/empty"):  # every failed input is counted and listed
        assert reason in html, reason
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html  # no CDN, no network


def test_funnel_matches_the_stats_and_the_filter_gallery_is_nearest_the_threshold_first(run):
    from vlcurate.stages.report import collect, gallery
    from vlcurate.stages.report.runinfo import load_run

    info = load_run(run)
    steps = {s["label"]: s for s in collect.funnel(info)}
    motion = json.loads((run / "motion" / "stats.json").read_text())
    assert steps["motion"]["count"] == motion["funnel"]["clips_out"]
    assert sum(steps["motion"]["dropped"].values()) == motion["funnel"]["clips_in"] - motion["funnel"]["clips_out"] > 0
    assert steps["sharded"]["count"] == json.loads((run / "shard" / "stats.json").read_text())["samples"]
    chosen, total = gallery.flagged(info, "motion", 24)
    assert total == sum(steps["motion"]["dropped"].values()) == len(chosen)
    margins = [gallery.margin(c["scores"], {"motion": {"min": 0.033}}) for c in chosen]
    assert margins == sorted(margins)
    assert all(c["scores"]["motion"] < 0.033 for c in chosen)
    tagged, total = gallery.flagged(info, "dedup", 24)  # tag mode: read from the verdicts the clips carry
    assert total == sum(steps["dedup"]["tagged"].values()) == len(tagged) >= 1
    assert all(t["reason"].startswith("duplicate: of ") for t in tagged)
    assert gallery.flagged(info, "dedup", 0) == ([], total)  # counted, none shown


def test_gallery_pages_and_sample_hold_their_limits(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    index = write_report(copy, ReportConfig(gallery_clips=3, page_clips=2, seed=1))
    pages = sorted(p.name for p in index.parent.glob("*.html"))
    assert pages == ["gallery-2.html", "index.html"]
    shown = [i for p in pages for i in parse(index.parent / p).ids
             if i.count("_") == 2 and not i.startswith("filter-")]
    assert len(shown) == len(set(shown)) == 3
    again = write_report(copy, ReportConfig(gallery_clips=3, page_clips=2, seed=1))
    assert (again.parent / "index.html").read_text() == index.read_text()  # the same sample every time


def test_report_reads_no_video(run, tmp_path, monkeypatch):
    import av

    def refuse(*args, **kwargs):
        raise AssertionError("the report decoded a video")

    monkeypatch.setattr(av, "open", refuse)
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("*.tar"))  # nothing in it needs the tars
    assert write_report(copy, ReportConfig()).is_file()


def test_report_command(run, tmp_path):
    result = CliRunner().invoke(app, ["report", "-o", str(run), "--gallery-clips", "2"])
    assert result.exit_code == 0, result.output
    assert "report: " in result.output and "dataset card: " in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, ["report", "-o", str(empty)])
    assert result.exit_code == 2 and "holds no finished stage" in result.output


def test_dataset_card_loads_in_hugging_face_datasets(run):
    datasets = pytest.importorskip("datasets")
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(run / "shard" / "README.md")
    data = card.data.to_dict()
    assert data["task_categories"] and data["size_categories"] == ["n<1K"]
    assert "license" not in data  # left for the user, who knows the sources' licenses
    samples = json.loads((run / "shard" / "stats.json").read_text())["samples"]
    loaded = datasets.load_dataset(str(run / "shard"), split="train")  # the card's `configs` name the tars
    assert loaded.num_rows == samples
    keys = set(loaded.cast_column("mp4", datasets.Video(decode=False))["__key__"])
    assert keys == {r["key"] for r in read_manifest(run / "shard").to_pylist()}


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(index: Path, tmp_path: Path):
    """A headless Chromium screenshot of the page (grey levels) and the console errors it logged."""
    import numpy as np
    from PIL import Image

    shot = tmp_path / "page.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2400", "--enable-logging=stderr",
             "--v=0", f"--screenshot={shot}"]
    result = subprocess.run([chromium(), *flags, index.as_uri()], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HOME": str(tmp_path)})
    assert shot.is_file(), result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line
               or "ERR_FILE_NOT_FOUND" in line]
    return np.asarray(Image.open(shot).convert("L"), np.float32), console


needs_chromium = pytest.mark.skipif(chromium() is None, reason="no Chromium here (Debian package `chromium`)")


def assert_drawn(pixels) -> None:
    assert pixels.std() > 20  # text, tables, frames and plots, not a blank page
    assert (pixels < 80).mean() > 0.02  # the dark header and the frames are drawn


@needs_chromium
def test_headless_chromium_shows_the_page_without_errors(run, tmp_path):
    pixels, console = screenshot(run / "report" / "index.html", tmp_path)
    assert not console, console
    assert_drawn(pixels)


def test_no_report_when_told_not_to(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("report", "README.md"))
    config = json.loads((copy / "run_config.json").read_text())
    config.update(output=str(copy))
    (tmp_path / "run.yaml").write_text(json.dumps(config))  # JSON is YAML
    result = CliRunner().invoke(app, ["run", "-c", str(tmp_path / "run.yaml"), "--no-report"])
    assert result.exit_code == 0, result.output
    assert not (copy / "report").exists() and (copy / "shard" / "README.md").is_file()  # the card is the data's


def test_report_survives_duplicates_symlinks_errors_and_videos_without_clips(tmp_path, scene_video):
    """A folder with a copy of a video, a link to it, a corrupt file and a video too short for a clip: `run` exits
    0 with a report, and `vlcurate report` redoes it (a sort used to meet the duplicates' missing start times)."""
    from tests.fixtures import make_video

    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(scene_video[0], folder / "a.mp4")
    shutil.copy(scene_video[0], folder / "a_copy.mp4")
    (folder / "a_link.mp4").symlink_to(folder / "a.mp4")
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 and then nothing a decoder can use")
    make_video(folder / "short.mp4", [6])  # a quarter second: no clip
    out = tmp_path / "run"
    config = tmp_path / "run.yaml"
    config.write_text("stages: [ingest, split, motion]\nsplit: {min_clip_s: 0.5, stitch: {enabled: false}}\n")
    args = ["run", "-c", str(config), "-i", str(folder), "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "report" / "index.html").is_file()
    errors = read_manifest(out / "split").column("error").to_pylist()
    assert any(e and e.startswith("ingest/duplicate") for e in errors), errors
    result = CliRunner().invoke(app, ["report", "-o", str(out)])
    assert result.exit_code == 0, result.output


def test_a_report_that_fails_fails_the_run_with_one_line(run, tmp_path, monkeypatch):
    import vlcurate.stages.report

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    monkeypatch.setattr(vlcurate.stages.report, "write_report",
                        lambda *a, **k: (_ for _ in ()).throw(TypeError("boom")))
    result = CliRunner().invoke(app, ["run", "-o", str(copy), "--stages", "shard", "--set", "report.enabled=true"])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("error: the report could not be written (TypeError: boom)"), result.output
