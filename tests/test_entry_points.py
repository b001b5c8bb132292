"""A plug-in installed as a distribution (entry points, no `plugins:` line) is found by `vlcurate run`: a teacher
from outside the project writes candidates in a real run."""

from __future__ import annotations

import importlib
import sys

import pytest
import yaml
from typer.testing import CliRunner

from vlcurate.pipeline.executor import read_manifest
from vlcurate.cli import app

pytestmark = [pytest.mark.slow]
PLUGIN = '''
from vlcurate.stages.caption.teachers.base import TEACHERS, Teacher


@TEACHERS.register("shout")
class Shout(Teacher):
    """The title, louder: a teacher in one file."""

    default_inputs = ("title",)
    uses_accelerator = False
    rejects_copies = False

    def caption(self, clips):
        return [(c.title or "").upper() for c in clips]
'''


@pytest.fixture
def installed(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "shoutplug-0.1.dist-info").mkdir(parents=True)
    (site / "shoutplug.py").write_text(PLUGIN)
    (site / "shoutplug-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: shoutplug\n"
                                                                "Version: 0.1\n")
    (site / "shoutplug-0.1.dist-info" / "entry_points.txt").write_text("[vlcurate.teachers]\nshout = shoutplug\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))  # workers find it too
    importlib.invalidate_caches()
    yield site
    sys.modules.pop("shoutplug", None)


def test_an_installed_teacher_is_found_without_a_plugins_line(installed, tmp_path, video_folder):
    from vlcurate.stages.catalog import entry_point_modules

    assert "shoutplug" in entry_point_modules()
    config = {"stages": ["ingest", "split", "caption"],
              "ingest": {"list_paths": "anywhere"},
              "split": {"min_clip_s": 0.5, "stitch": {"enabled": False}},
              "caption": {"teachers": [{"name": "loud", "kind": "shout"}]}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    listing = tmp_path / "videos.csv"
    listing.write_text(f"path,title\n{video_folder / 'b_other.mp4'},a quiet room\n")
    result = CliRunner().invoke(app, ["run", "-c", str(tmp_path / "run.yaml"), "-i", str(listing),
                                      "-o", str(tmp_path / "out"), "--no-report"])
    assert result.exit_code == 0, result.output
    rows = read_manifest(tmp_path / "out" / "caption").to_pylist()
    assert rows and all(r["candidates"][0]["text"] == "A QUIET ROOM" for r in rows)
