"""A full disk while shard writes its clips: the run stops with one line and records no clip as bad; once there is
space, the same command shards every clip, byte-identical to an uninterrupted run."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest

from tests.faults.common import error_lines, same_bytes, vlcurate

pytestmark = [pytest.mark.slow]  # each runs the real command in its own process


def check_failed_then_whole(result, out, lone) -> None:
    assert result.returncode == 1, result.stderr[-2000:]
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("machine failure") and "No space left on device" in lines[0]
    assert not (out / "shard" / "_SUCCESS").exists() and not (out / "shard" / "errors").exists()


def test_staging_disk_full_then_space_freed_gives_every_clip(lone_run):
    root, config, listing = lone_run
    out = root / "disk-full"
    shutil.copytree(root / "lone", out, ignore=lambda folder, names: ["shard"] if folder == str(root / "lone") else [])
    args = ["shard", "-c", str(config), "-o", str(out)]  # the lone run's stages before shard, then shard
    # the second clip ffmpeg writes goes to /dev/full: ffmpeg itself meets the full disk
    check_failed_then_whole(vlcurate(*args, faults="ffmpeg.output=full@2"), out, root / "lone")
    result = vlcurate(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert same_bytes(out, root / "lone") == []


@pytest.mark.faults
def test_a_full_disk_in_python_code_is_not_a_bad_input_either(lone_run):
    root, config, listing = lone_run
    out = root / "enospc-caption"
    args = ["run", "-c", str(config), "-i", str(listing), "-o", str(out)]
    result = vlcurate(*args, faults="caption:title.batch=enospc@2")
    check_failed_then_whole(result, out, root / "lone")
    assert not (out / "caption" / "_SUCCESS").exists()
    assert vlcurate(*args).returncode == 0
    assert same_bytes(out, root / "lone") == []


def _mount(target, size: str) -> bool:
    try:
        return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
                              capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


@pytest.mark.faults
def test_a_real_full_disk_during_shard(lone_run, tmp_path):
    """The output folder on a tmpfs sized so that shard's clips do not fit; then it is grown and the command run
    again (needs root to mount)."""
    root, config, listing = lone_run
    out = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    out.mkdir()
    if not _mount(out, "256m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        args = ["run", "-c", str(config), "-i", str(listing), "-o", str(out)]
        assert vlcurate(*args[:1], "--stages", "ingest,split,caption,score", *args[1:]).returncode == 0
        used = shutil.disk_usage(out).used
        subprocess.run(["mount", "-o", f"remount,size={used + 64 * 1024}", str(out)], check=True)
        check_failed_then_whole(vlcurate(*args), out, root / "lone")
        subprocess.run(["mount", "-o", "remount,size=256m", str(out)], check=True)
        result = vlcurate(*args)
        assert result.returncode == 0, result.stderr[-2000:]
        assert same_bytes(out, root / "lone") == []
    finally:
        subprocess.run(["umount", "-l", str(out)], capture_output=True)
