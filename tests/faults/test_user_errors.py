"""Each user mistake prints one line (no traceback unless --verbose) and exits 2."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from tests.faults.common import error_lines, vlcurate

pytestmark = [pytest.mark.slow]  # each runs the real command in its own process


def one_line(result, *needles: str) -> str:
    lines = error_lines(result.stderr)
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def listing(tmp_path_factory, scene_video):
    root = tmp_path_factory.mktemp("user-errors")
    (root / "v.mp4").write_bytes(scene_video[0].read_bytes())
    path = root / "list.csv"
    path.write_text(f"path,title\n{root / 'v.mp4'},A video\n")
    return path


def test_invalid_yaml(tmp_path, listing):
    bad = tmp_path / "bad.yaml"
    bad.write_text("split:\n  min_clip_s: [1, 2\ncaption: {}\n")
    one_line(vlcurate("run", "-c", str(bad), "-i", str(listing), "-o", str(tmp_path / "o")), "not valid YAML",
             "line 3")
    verbose = vlcurate("run", "-c", str(bad), "-i", str(listing), "-o", str(tmp_path / "o"), "--verbose")
    assert verbose.returncode == 2 and "Traceback" in verbose.stderr


def test_unknown_key_and_unknown_teacher_kind(tmp_path, listing):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"split": {"min_clip": 3}}))
    one_line(vlcurate("ingest", "-c", str(config), "-i", str(listing), "-o", str(tmp_path / "o")),
             "invalid config", "split.min_clip: unknown key")
    config.write_text(yaml.safe_dump({"caption": {"teachers": [{"name": "x", "kind": "blipp"}]}}))
    one_line(vlcurate("ingest", "-c", str(config), "-i", str(listing), "-o", str(tmp_path / "o")),
             "unknown teacher 'blipp'", "registered:")


def test_output_is_a_file_or_lies_under_one(tmp_path, listing):
    (tmp_path / "file").write_text("x")
    one_line(vlcurate("ingest", "-i", str(listing), "-o", str(tmp_path / "file")), "is a file, not a folder")
    one_line(vlcurate("ingest", "-i", str(listing), "-o", str(tmp_path / "file" / "sub" / "out")),
             f"lies under {tmp_path / 'file'}, which is a file")


def test_a_read_only_output_folder(tmp_path, listing):
    out = tmp_path / "ro"
    out.mkdir()
    if os.geteuid() != 0:
        out.chmod(0o555)
    elif subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(out)],
                        capture_output=True).returncode != 0:
        pytest.skip("root ignores permissions, and no read-only tmpfs can be mounted here")
    try:
        one_line(vlcurate("ingest", "-i", str(listing), "-o", str(out)), f"cannot write to output folder {out}")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", "-l", str(out)], capture_output=True)
        else:
            out.chmod(0o755)


def test_a_model_that_cannot_be_had_offline(tmp_path, listing):
    """The default config's stitching embedder is open_clip ViT-B-32 with LAION weights, from the hub."""
    out = str(tmp_path / "o")
    assert vlcurate("ingest", "-i", str(listing), "-o", out).returncode == 0
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # tests/conftest.py: no hub here, fail fast
    line = one_line(vlcurate("split", "-o", out), "split", "not on this machine", "--profile demo")
    assert "laion2b_s34b_b79k" in line
