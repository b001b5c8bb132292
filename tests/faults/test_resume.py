"""Resume loses nothing finished: kill -9 right after caption's second teacher finished, and the rerun runs
neither of the first two again; kill -9 inside a long task, and the rerun maps only the batches not yet saved.
Either way the result is byte-identical to an uninterrupted run. (The rerun is armed to fail if it redoes work.)"""

from __future__ import annotations

import json

import pytest

from tests.faults.common import CONFIG, make_inputs, same_bytes, vlcurate

THREE = {**CONFIG, "caption": {"part_rows": 2, "teachers": [
    {"name": "title", "kind": "title"}, {"name": "subtitles", "kind": "subtitles"},
    {"name": "title_again", "kind": "title"}]}}

pytestmark = [pytest.mark.slow]  # each runs the real command in its own process


@pytest.fixture(scope="module")
def three(tmp_path_factory, scene_video):
    root = tmp_path_factory.mktemp("resume")
    config, listing = make_inputs(root, scene_video[0], THREE)
    args = ["run", "-c", str(config), "-i", str(listing), "--stages", "ingest,split,caption"]
    assert vlcurate(*args, "-o", str(root / "lone")).returncode == 0
    return root, args


def test_kill_9_after_the_second_teacher_then_the_rerun_skips_the_first_two(three):
    root, args = three
    tasks = len(json.loads((root / "lone" / "caption" / "_index.json").read_text())["parts"])
    out = ["-o", str(root / "killed")]
    killed = vlcurate(*args, *out, faults=f"caption.pass1.done=kill@{tasks}")
    assert killed.returncode == -9, killed.stderr[-2000:]
    # a task of the first or second teacher that ran again would raise here
    rerun = vlcurate(*args, *out, faults="caption.pass0.start=raise,caption.pass1.start=raise")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert same_bytes(root / "killed", root / "lone") == []


def test_kill_9_inside_a_task_keeps_its_saved_batches(three, tmp_path):
    root, args = three
    one_task = ["--set", "caption.part_rows=512", "--set", "caption.resources.batch_size=1"]
    want = tmp_path / "whole"
    assert vlcurate(*args, *one_task, "-o", str(want)).returncode == 0
    clips = json.loads((want / "caption" / "stats.json").read_text())["rows_in"]
    assert clips >= 4
    saves = ["--set", "caption.save_every_batches=1"]
    out = ["-o", str(tmp_path / "killed")]
    killed = vlcurate(*args, *one_task, *saves, *out, faults="batches.saved=kill@3")
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert len(list((tmp_path / "killed" / "caption" / "_work" / "batches").rglob("*.parquet"))) == 3
    # three of the first teacher's batches are saved: mapping a fourth again would raise
    rerun = vlcurate(*args, *one_task, *saves, *out, faults=f"caption:title.batch=raise@{clips - 2}")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert same_bytes(tmp_path / "killed", want) == []
