"""A new filter stage from one file (plus its registration), nothing else edited: `vlcurate run` runs it between
split and caption, its verdicts travel with the clips to the shards, and `vlcurate status` lists it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.faults.common import CONFIG, make_inputs

pytestmark = [pytest.mark.slow]

PLUGIN = '''
"""brightness: drops clips darker than a threshold (a test plugin: one file, registered here)."""
from vlcurate.stages.catalog import STAGES
from vlcurate.stages.filters.base import FilterConfig, FilterStage, gray_frames


class BrightnessConfig(FilterConfig):
    min_luma: float = 0.0


@STAGES.register("brightness")
class BrightnessFilter(FilterStage):
    name = "brightness"
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


def test_a_filter_from_one_file_runs_in_the_pipeline_and_status_lists_it(tmp_path, scene_video):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "brightness_filter.py").write_text(PLUGIN)
    config = {**CONFIG, "plugins": ["brightness_filter"], "brightness": {"min_luma": 10.0},
              "stages": ["ingest", "split", "brightness", "caption"]}
    config_path, listing = make_inputs(tmp_path, scene_video[0], config)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'plugins'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = tmp_path / "out"
    cli = [sys.executable, "-m", "vlcurate.cli"]
    result = subprocess.run([*cli, "run", "-c", str(config_path), "-i", str(listing), "-o", str(out)],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "brightness done:" in " ".join(result.stdout.split())
    stats = json.loads((out / "brightness" / "stats.json").read_text())
    assert stats["funnel"]["clips_in"] == stats["funnel"]["clips_out"] > 0
    status = subprocess.run([*cli, "status", "-o", str(out)], capture_output=True, text=True, env=env)
    assert [line.split()[0] for line in status.stdout.splitlines()] == config["stages"]
    from vlcurate.pipeline.executor import read_manifest

    rows = read_manifest(out / "caption").select(["filters"]).to_pylist()
    assert all([e["filter"] for e in r["filters"]] == ["brightness"] for r in rows)
