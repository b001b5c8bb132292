"""kill -9 during each stage, then the same command: every manifest, side table, sidecar and tar is byte-identical
to an uninterrupted run's. The kill comes from inside the run (a real SIGKILL of the process, at a chosen file
write, after leaving a half-written temp file beside it), so each stage is hit mid-way, every time."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from tests.fixtures import output_bytes as outputs
from vlcurate.cli import app

pytestmark = [pytest.mark.slow]

CONFIG = {
    "stages": ["ingest", "split", "caption", "score", "shard"],
    "ingest": {"part_rows": 1, "list_paths": "anywhere"},  # the list names the session's video folder
    "split": {"min_clip_s": 0.5, "stitch": {"enabled": False}, "part_rows": 1, "resources": {"pool_size": 1}},
    "caption": {"part_rows": 2, "teachers": [{"name": "title", "kind": "title"},
                                             {"name": "subtitles", "kind": "subtitles"}]},
    "score": {"part_rows": 2, "scorer": {"kind": "open_clip", "model": "tiny:open_clip"}, "min_score": -1.0},
    "shard": {"maxcount": 2, "part_rows": 2},
}

# Runs `vlcurate ARGS...` and SIGKILLs itself at the AFTER-th part file the TARGET stage writes.
KILLER = """
import os, signal, sys
from pathlib import Path
import vlcurate.run
from vlcurate.pipeline import parts
target, after, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
state = {"stage": None, "writes": 0}
run_stage = vlcurate.run.run_stage
def tracking(stage, *a, **k):
    state["stage"] = stage.name
    return run_stage(stage, *a, **k)
vlcurate.run.run_stage = tracking
write_table = parts.write_table
def killing(path, table, **options):
    if state["stage"] == target:
        state["writes"] += 1
        if state["writes"] == after:
            if "://" not in str(path):  # on local disk, a half-written temp file beside it (a store has none)
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).with_name("." + Path(path).name + ".x.tmp").write_bytes(b"PAR1 half a file")
            os.kill(os.getpid(), signal.SIGKILL)
    return write_table(path, table, **options)
parts.write_table = killing
from vlcurate.cli import app
app(args)
"""


@pytest.fixture(scope="module")
def clean(tmp_path_factory, video_folder):
    root = tmp_path_factory.mktemp("kill")
    config = root / "run.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    listing = root / "videos.csv"  # titles, so the title teacher captions every clip
    listing.write_text("path,title\n" + "".join(f"{p},Video {p.stem}\n" for p in sorted(video_folder.glob("*.mp4"))))
    result = CliRunner().invoke(app, ["run", "-c", str(config), "-i", str(listing), "-o", str(root / "clean")])
    assert result.exit_code == 0, result.output
    return root, config, listing


# the AFTER-th write: ingest's second pass (duplicates), split's second video, caption's first teacher, score's
# second part, shard's second bucket (after its 5 assigned parts)
STAGES = {"ingest": 7, "split": 4, "caption": 3, "score": 2, "shard": 7}


@pytest.mark.parametrize("stage,after", list(STAGES.items()))
def test_kill_9_during_a_stage_then_the_same_command_gives_the_same_bytes(clean, stage, after):
    root, config, listing = clean
    out = root / f"killed-{stage}"
    args = ["run", "-c", str(config), "-i", str(listing), "-o", str(out)]
    killed = subprocess.run([sys.executable, "-c", KILLER, stage, str(after), *args], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (out / stage / "_SUCCESS").exists() and (out / stage / "_work").exists()
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "inputs from an interrupted run" in next(line for line in result.output.splitlines()
                                                    if line.startswith(stage + " "))
    want, got = outputs(root / "clean"), outputs(out)
    assert sorted(got) == sorted(want) and sum(n.endswith(".tar") for n in want) >= 2
    assert [name for name in want if got[name] != want[name]] == []
