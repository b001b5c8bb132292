"""Damaged sources are flagged, not passed as good: a truncated faststart MP4 and one with 10% of its media bytes
corrupted keep their clips (or, with split.damaged=drop, become errors), each flagged with its frame counts."""

from __future__ import annotations

import random

import pytest

from vlcurate.stages import media
from tests.fixtures import ingest, make_video, split_rows


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """(folder, frames the container states): a sound faststart MP4, a truncated copy, a corrupted copy."""
    folder = tmp_path_factory.mktemp("damaged")
    plain = folder / "plain.mp4"
    make_video(plain, [60, 60, 60, 61], audio=True)  # 241 frames
    sound = folder / "a_sound.mp4"
    import ffmpeg

    media.commands.run(ffmpeg.input(str(plain)).output(str(sound), c="copy", movflags="+faststart"))
    plain.unlink()
    data = sound.read_bytes()
    (folder / "b_truncated.mp4").write_bytes(data[: len(data) // 2])
    mdat = data.index(b"mdat") + 4  # after the index: the container still states every frame
    corrupt = bytearray(data)
    rng = random.Random(0)
    start = mdat + (len(data) - mdat) // 3
    corrupt[start:start + len(data) // 10] = rng.randbytes(len(data) // 10)  # 10% of its bytes, one stretch
    (folder / "c_corrupted.mp4").write_bytes(bytes(corrupt))
    return folder, 241


def test_truncated_and_corrupted_sources_are_flagged_with_their_numbers(damaged, tmp_path):
    folder, stated = damaged
    rows = split_rows(folder, tmp_path, min_clip_s=0.2, stitch={"enabled": False})
    by_video = {}
    for row in rows:
        by_video.setdefault(row["path"].rsplit("/", 1)[1], []).append(row)
    sound = by_video["a_sound.mp4"]
    assert all(r["damaged"] is False and r["damage"] is None and r["error"] is None for r in sound)
    assert sound[0]["num_frames"] == sound[0]["frames_stated"] == stated
    for name in ("b_truncated.mp4", "c_corrupted.mp4"):
        clips = by_video[name]
        assert clips and all(r["error"] is None and r["damaged"] for r in clips), name
        decoded = clips[0]["num_frames"]
        assert clips[0]["frames_stated"] == stated
        if decoded < stated:
            assert f"decoded {decoded} of the {stated} frames" in clips[0]["damage"]
        else:
            assert "decoder errors" in clips[0]["damage"]
    assert by_video["b_truncated.mp4"][0]["num_frames"] < stated


def test_drop_makes_damaged_sources_errors_and_stats_count_them(damaged, tmp_path):
    from vlcurate.pipeline import atomic
    from vlcurate.pipeline.executor import run_table
    from vlcurate.stages.split import SplitConfig, SplitStage

    folder, _ = damaged
    videos = ingest(folder, tmp_path)
    rows = run_table(SplitStage(SplitConfig(min_clip_s=0.2, stitch={"enabled": False}, damaged="drop")), videos,
                     tmp_path).to_pylist()
    errors = {r["path"].rsplit("/", 1)[1]: r["error"] for r in rows if r["error"]}
    assert sorted(errors) == ["b_truncated.mp4", "c_corrupted.mp4"]
    assert all(e.startswith("split/damaged: ") for e in errors.values())
    stats = atomic.read_json(tmp_path / "split" / "stats.json")
    assert stats["damaged_videos"] == 2 and stats["damaged_clips"] == 0
    assert stats["errors_by_reason"]["split/damaged"] == 2
