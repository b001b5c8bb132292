"""Plug-ins from outside the project, each one file plus one registration, run by the real `vlcurate run`: a
teacher and a scorer installed as a distribution (entry points), a stage and a filter named by the run config's
`plugins:`. The stage's new column travels the open schema chain to every sample's JSON in the shards, and
`vlcurate status` lists the plug-in stages in run order."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile

import pytest
import yaml

from tests.faults.common import CONFIG, make_inputs

pytestmark = [pytest.mark.slow]

TEACHER = '''"""loud: the title, louder."""
from vlcurate.stages.caption.teachers.base import TEACHERS, Teacher


@TEACHERS.register("loud")
class Loud(Teacher):
    default_inputs = ("title",)
    uses_accelerator = False
    rejects_copies = False

    def caption(self, clips):
        return [(c.title or "").upper() + "!" for c in clips]
'''

SCORER = '''"""hue: clips by their mean colour, texts by their letters (a scorer in one file)."""
import numpy as np

from vlcurate.stages.scorers.base import SCORERS, Scorer


def unit(rows):
    rows = np.asarray(rows, np.float32)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


@SCORERS.register("hue")
class Hue(Scorer):
    def encode_images(self, images):
        return unit([np.asarray(image, np.float32).reshape(-1, 3).mean(axis=0) + 1 for image in images])

    def encode_texts(self, texts):
        return unit([[t.count("!") + 1, sum(c.isupper() for c in t) + 1, len(t) + 1] for t in texts])
'''

STAGE = '''"""tempo: each clip's frames per second of its span (a stage in one file: it adds one column)."""
import pyarrow as pa

from vlcurate.manifests import CLIPS
from vlcurate.pipeline.stage import RowStage
from vlcurate.stages.catalog import STAGES


@STAGES.register("tempo")
class Tempo(RowStage):
    reads = CLIPS
    summary = "Clip tempo: stored frames per second of the span."
    output_schema = pa.schema([pa.field("tempo", pa.float64())])  # the column it adds

    def process_row(self, row, ctx):
        span = row["end_s"] - row["start_s"]
        return [{**row, "tempo": round(len(row["frame_indices"] or []) / span, 6) if span > 0 else None}]
'''

FILTER = '''"""brightness: drops clips darker than a threshold."""
from vlcurate.stages.catalog import STAGES
from vlcurate.stages.filters.base import FilterConfig, FilterStage, gray_frames


class BrightnessConfig(FilterConfig):
    min_luma: float = 0.0


@STAGES.register("brightness")
class BrightnessFilter(FilterStage):
    config_class = BrightnessConfig
    method = "mean_luma"
    summary = "Filter: mean brightness"

    def measure(self, rows):
        return [{"luma": float(sum(f.mean() for f in gray_frames(r["frames"])) / len(r["frames"]))} for r in rows]

    def verdict(self, scores, row):
        return f"dark: {scores['luma']:.1f}" if scores["luma"] < self.config.min_luma else None

    def rule(self):
        return f"drop if mean luma < {self.config.min_luma}"
'''


def _installed(site) -> None:
    """The teacher and the scorer as one installed distribution: its modules and a dist-info naming them."""
    (site / "vlc_loud.py").write_text(TEACHER)
    (site / "vlc_hue.py").write_text(SCORER)
    info = site / "vlcplugs-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vlcplugs\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[vlcurate.teachers]\nloud = vlc_loud\n\n"
                                           "[vlcurate.scorers]\nhue = vlc_hue\n")


def test_a_teacher_a_scorer_a_stage_and_a_filter_from_outside_run_and_the_new_column_reaches_the_shards(
        tmp_path, scene_video):
    site = tmp_path / "site"
    site.mkdir()
    _installed(site)
    (site / "vlc_tempo.py").write_text(STAGE)
    (site / "vlc_brightness.py").write_text(FILTER)
    config = {**CONFIG, "plugins": ["vlc_tempo", "vlc_brightness"],
              "stages": ["ingest", "split", "tempo", "brightness", "caption", "score", "shard"],
              "brightness": {"min_luma": 1.0},
              "caption": {**CONFIG["caption"], "teachers": [{"name": "title", "kind": "title"},
                                                            {"name": "loud", "kind": "loud"}]},
              "score": {"part_rows": 2, "scorer": {"kind": "hue", "model": "mean-colour", "pretrained": None}}}
    config_path, listing = make_inputs(tmp_path, scene_video[0], config)
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = tmp_path / "out"
    cli = [sys.executable, "-m", "vlcurate.cli"]
    result = subprocess.run([*cli, "run", "-c", str(config_path), "-i", str(listing), "-o", str(out), "--no-report"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    samples = []
    for tar in sorted((out / "shard").glob("*.tar")):
        with tarfile.open(tar) as archive:
            samples += [json.load(io.BytesIO(archive.extractfile(m).read()))
                        for m in archive.getmembers() if m.name.endswith(".json")]
    assert samples
    for sample in samples:
        frames = sample["end_frame"] - sample["start_frame"]
        assert sample["extras"]["tempo"] > 0 and frames > 0  # the plug-in stage's column, in every sample's JSON
        assert [c["teacher"] for c in sample["candidates"]] == ["title", "loud"]
        loud = sample["candidates"][1]
        assert loud["text"] == sample["title"].upper() + "!" and loud["score"] is not None
        assert sample["scorer"] == "hue:mean-colour@none"
    # the filter measured every clip and dropped none (nothing is that dark)
    stats = json.loads((out / "brightness" / "stats.json").read_text())
    assert stats["funnel"]["clips_in"] == stats["funnel"]["clips_out"] == len(samples)
    status = subprocess.run([*cli, "status", "-o", str(out)], capture_output=True, text=True, env=env)
    assert [line.split()[0] for line in status.stdout.splitlines()] == config["stages"]
    assert yaml.safe_load((out / "run_config.json").read_text())["plugins"] == ["vlc_tempo", "vlc_brightness"]
