"""Every input accounted for, end to end: a folder of odd entries beside good videos runs to the end (exit 0), each
entry a row with a reason, and the good videos (the one with a non-UTF-8 name too) are sharded. A subtitle file
that cannot be parsed costs only the candidates of the teachers that read subtitles."""

from __future__ import annotations

import pytest
import json
import tarfile

import yaml

from tests.faults.common import CONFIG, vlcurate
from tests.stages.ingest.test_ingest import odd_folder

pytestmark = [pytest.mark.slow]  # each runs the real command in its own process


FRAMES_TEACHER = [{"name": "frames", "kind": "hf_image_captioner", "model": "tiny:blip", "inputs": ["frames"],
                   "generation": {"max_new_tokens": 6}}]


def manifest(folder, columns):
    from vlcurate.pipeline.executor import read_manifest

    return read_manifest(folder).select(columns).to_pylist()


def test_a_folder_of_odd_entries_runs_through_and_explains_each(tmp_path, scene_video):
    folder = tmp_path / "in"
    folder.mkdir()
    raw, sock = odd_folder(folder, scene_video)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "caption": {"teachers": FRAMES_TEACHER}}))
    out = tmp_path / "out"
    try:
        result = vlcurate("run", "-c", str(config), "-i", str(folder), "-o", str(out),
                          "--set", "ingest.drop_duplicates=false")
    finally:
        sock.close()
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {r["path"].rsplit("/", 1)[1]: r for r in manifest(out / "ingest", ["path", "path_bytes", "error"])}
    assert len(rows) == 8 and {n for n, r in rows.items() if not r["error"]} == {"a_good.mp4", "b_caf\\xe9.mp4"}
    assert all(r["error"].split(":")[0].startswith("ingest/") for r in rows.values() if r["error"])
    index = manifest(out / "shard", ["path", "key", "shard"])
    assert {r["path"].rsplit("/", 1)[1] for r in index} == {"a_good.mp4", "b_caf\\xe9.mp4"}
    for stage in ("ingest", "split", "caption", "score"):  # errors_new: only the errors the stage itself found
        stats = json.loads((out / stage / "stats.json").read_text())
        errors = [r["error"] for r in manifest(out / stage, ["error"]) if r["error"]]
        assert stats["errors_total"] == len(errors)
        assert stats["errors_new"] == sum(e.startswith(stage + "/") for e in errors), stage
    assert json.loads((out / "ingest" / "stats.json").read_text())["errors_new"] == 6
    assert json.loads((out / "shard" / "stats.json").read_text())["errors_new"] == 0
    # the sample's .json shows the escaped name (JSON has no bytes)
    sample = index[0]
    with tarfile.open(out / "shard" / sample["shard"]) as tar:
        meta = json.loads(tar.extractfile(f"{sample['key']}.json").read())
    assert meta["path"] == sample["path"]


def test_a_malformed_vtt_costs_only_the_subtitle_teachers(tmp_path, scene_video):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(scene_video[0].read_bytes())
    (folder / "a.vtt").write_text("WEBVTT\n\n00:00:00.000 --> soon\nHello there.\n")
    (folder / "b.mp4").write_bytes(scene_video[0].read_bytes()[:-5] + b"12345")
    (folder / "b.srt").write_bytes(bytes(range(256)) * 4)  # random bytes named .srt
    teachers = [*FRAMES_TEACHER, {"name": "subs", "kind": "subtitles"}]
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "caption": {"teachers": teachers}}))
    out = tmp_path / "out"
    result = vlcurate("run", "-c", str(config), "-i", str(folder), "-o", str(out), "--stages",
                      "ingest,split,caption")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = manifest(out / "caption", ["path", "error", "candidates"])
    assert rows and all(r["error"] is None for r in rows)
    for row in rows:
        by_teacher = {c["teacher"]: c for c in row["candidates"]}
        assert by_teacher["frames"]["status"] == "ok"
        subs = by_teacher["subs"]
        assert subs["status"] == "rejected" and subs["reason"].startswith("bad_subtitles: ")
        name = row["path"].rsplit("/", 1)[1]
        assert ("not a timestamp" if name == "a.mp4" else "b.srt") in subs["reason"]
    stats = json.loads((out / "caption" / "stats.json").read_text())
    assert stats["candidates_not_ok_by_reason"]["subs/bad_subtitles"] == len(rows)
