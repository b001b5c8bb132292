"""Format edge cases through ingest -> split -> shard: variable frame rate, rotation metadata, non-square pixels,
AV1, VP9/WebM and MPEG-TS (a container that starts at 1.4 s). Every input is generated here with ffmpeg: 160x120,
120 frames, four shots, each frame's index drawn in a code band (tests/fixtures.py), so frame exactness is checked
by reading the indices back from stored JPEGs and written clips."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlcurate.pipeline import parts
from vlcurate.stages import media
from vlcurate.stages.split import SplitConfig, SplitStage
from tests.fixtures import frame_image, ingest, read_index, run, shard

W, H = 160, 120
SCENES = [30, 25, 35, 30]  # cuts at 30, 55, 90; 120 frames
CUTS = [30, 55, 90]
N = sum(SCENES)
MARKER = (255, 0, 255)  # a magenta corner, bottom-left of the coded frame: shows which way a frame was turned
X264 = {"c:v": "libx264", "preset": "veryfast", "crf": 16, "g": 12, "threads": 1}  # with B-frames
# Variable frame rate: frame n shown at 0.04 n + 0.03 (n mod 2) s, so steps alternate 70 ms and 10 ms (25 fps on
# average). Half an average step (20 ms) before an even frame lands before the previous frame, 10 ms earlier.
VFR = (("settb", "1/1000"), ("setpts", "40*N+30*mod(N,2)"))  # in milliseconds
VFR_OUT = {"fps_mode": "passthrough", "enc_time_base": "1/1000"}

FORMATS = {
    "vfr.mp4": dict(vf=VFR, out={**VFR_OUT, **X264}),
    "vfr.mkv": dict(vf=VFR, out={**VFR_OUT, **X264}),
    "rot90.mp4": dict(out=X264, rotation=90),
    "rot270.mp4": dict(out=X264, rotation=270),
    "sar2.mp4": dict(vf=(("setsar", 2),), out=X264),
    "av1.mp4": dict(out={"c:v": "libaom-av1", "cpu-used": 8, "crf": 20, "g": 24, "threads": 1}),
    "vp9.webm": dict(out={"c:v": "libvpx-vp9", "deadline": "realtime", "cpu-used": 8, "crf": 20, "b:v": 0, "g": 24,
                          "threads": 1}),
    "mpegts.ts": dict(out=X264),
}


def source_frames() -> np.ndarray:
    frames, index = [], 0
    for scene, length in enumerate(SCENES):
        for _ in range(length):
            img = frame_image(index, scene, W, H)
            img[H - 20:, :20] = MARKER
            frames.append(img)
            index += 1
    return np.stack(frames)


def make(path: Path, vf: tuple = (), out: dict | None = None, rotation: int = 0) -> Path:
    """`vf`: (filter, argument) pairs applied in order; `out`: output options."""
    import ffmpeg

    coded = path.with_name("coded_" + path.name) if rotation else path
    video = ffmpeg.input("pipe:", f="rawvideo", pix_fmt="rgb24", s=f"{W}x{H}", r=25)
    for name, argument in vf:
        video = video.filter(name, argument)
    media.commands.run(video.output(str(coded), **(out or {})), input=source_frames().tobytes())
    if rotation:  # a display matrix on the same coded frames (-display_rotation: counter-clockwise degrees)
        media.commands.run(ffmpeg.input(str(coded), display_rotation=rotation).output(str(path), c="copy"))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each format made, ingested and split once per module: name -> (path, video row, clips, shots)."""
    root = tmp_path_factory.mktemp("formats")
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            path = make(root / name, **FORMATS[name])
            out = root / f"split-{name}"
            videos = ingest(path, out)
            (video,) = videos.to_pylist()
            clips = run(SplitStage(SplitConfig(min_clip_s=0.5, stitch={"enabled": False})), videos, out)
            shots = parts.read_stage(out / "split", side="shots").to_pylist()
            cache[name] = (path, video, clips, shots)
        return cache[name]

    return get


def true_times(path) -> list[float]:
    """Presentation times as PyAV decodes them, from the container's start."""
    return [d.time_s for d in media.decode_frames(path)]


def coded_view(display: np.ndarray, rotation: int) -> np.ndarray:
    """Undo the display rotation (counter-clockwise `rotation`), to read the code band of the coded frame."""
    return np.rot90(display, k=-(rotation // 90)) if rotation else display


def magenta_corner(rgb: np.ndarray) -> str:
    h, w = rgb.shape[:2]
    corners = {"top-left": rgb[1:6, 1:6], "top-right": rgb[1:6, w - 6:w - 1], "bottom-left": rgb[h - 6:h - 1, 1:6],
               "bottom-right": rgb[h - 6:h - 1, w - 6:w - 1]}
    found = [name for name, patch in corners.items()
             if patch[..., 0].mean() > 190 and patch[..., 1].mean() < 70 and patch[..., 2].mean() > 190]
    assert len(found) == 1, found
    return found[0]


def ffmpeg_display(path, size: tuple[int, int]) -> np.ndarray:
    """The first frame as ffmpeg itself shows it (autorotation on, scaled to square pixels)."""
    w, h = size
    import ffmpeg

    first = ffmpeg.input(str(path)).filter("scale", w, h).output("-", **{"frames:v": 1}, f="rawvideo", pix_fmt="rgb24")
    raw = media.commands.run(first, overwrite=False).stdout
    return np.frombuffer(raw, np.uint8).reshape(h, w, 3)


def jpeg(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def decode_rgb(path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    assert all(not (getattr(f, "rotation", 0) or 0) for f in frames)  # turned upright, not tagged to be turned
    return [f.to_ndarray(format="rgb24") for f in frames]


# -- every format: split finds the cuts, times are the real presentation times, frames are the ones claimed --------
@pytest.mark.parametrize("name", list(FORMATS))
def test_split_is_frame_exact_with_true_times(runs, name):
    path, video, clips, shots = runs(name)
    rotation = FORMATS[name].get("rotation", 0)
    assert video["error"] is None and video["rotation"] == rotation
    assert all(c["error"] is None for c in clips)
    assert [(c["start_frame"], c["end_frame"]) for c in clips] == list(zip([0, *CUTS], [*CUTS, N]))
    times = true_times(path)
    assert len(times) == N and clips[0]["num_frames"] == N
    for c in clips:
        assert c["start_s"] == pytest.approx(times[c["start_frame"]], abs=1e-6)
        if c["end_frame"] < N:
            assert c["end_s"] == pytest.approx(times[c["end_frame"]], abs=1e-6)
        else:  # the end of the last frame: one step after its start
            assert times[-1] < c["end_s"] <= times[-1] + max(np.diff(times)) + 1e-6
        for index, data in zip(c["frame_indices"], c["frames"]):
            assert read_index(coded_view(jpeg(data), rotation)) == index, (name, index)
    assert [(s["start_frame"], s["end_frame"]) for s in shots] == [(c["start_frame"], c["end_frame"]) for c in clips]
    assert [s["start_s"] for s in shots] == pytest.approx([times[a] for a, _ in zip([0, *CUTS], SCENES)], abs=1e-6)
    assert [s["end_s"] for s in shots[:-1]] == pytest.approx([times[b] for b in CUTS], abs=1e-6)


# x264 puts keyframes at these cuts, so H.264 in MP4 or Matroska is copied; rotated frames must be turned upright,
# MPEG-TS carries no out-of-band parameter sets, and AV1/VP9 are not in `copy_codecs`: those are re-encoded
COPIED = {"vfr.mp4", "vfr.mkv", "sar2.mp4"}


@pytest.mark.parametrize("stream_copy", [True, False], ids=["copy", "encode"])
@pytest.mark.parametrize("name", list(FORMATS))
def test_shard_clips_hold_exactly_their_frames(runs, name, stream_copy, tmp_path):
    path, video, clips, _ = runs(name)
    rotation = FORMATS[name].get("rotation", 0)
    rows = shard(clips, tmp_path, stream_copy=stream_copy)
    copied = stream_copy and name in COPIED
    assert {r["encoding"] for r in rows} == {"copy" if copied else "libx264 -preset veryfast -crf 23"}
    for row in rows:
        frames = decode_rgb(row["mp4_path"])
        indices = [read_index(coded_view(f, rotation)) for f in frames]
        assert indices == list(range(row["start_frame"], row["end_frame"])), (name, row["clip_id"])
        assert row["frame_count"] == len(frames)
        if copied:  # the very frames of the source, times from zero
            assert np.array_equal(np.stack(frames), np.stack(decode_rgb(path)[row["start_frame"]:row["end_frame"]]))
            assert [d.time_s for d in media.decode_frames(row["mp4_path"])] == pytest.approx(
                [t - row["start_s"] for t in true_times(path)[row["start_frame"]:row["end_frame"]]], abs=1e-3)


# -- variable frame rate -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["vfr.mp4", "vfr.mkv"])
def test_vfr_times_and_seek_point(runs, name):
    path, video, clips, _ = runs(name)
    times = true_times(path)
    steps = np.round(np.diff(times), 3)
    assert set(steps) == {0.07, 0.01}  # really variable
    assert video["fps"] == pytest.approx(N / (times[-1] + 0.04), rel=0.05)  # the average rate
    assert clips[1]["start_s"] == pytest.approx(1.2) and clips[2]["start_s"] == pytest.approx(2.2 + 0.03)
    for c in clips[1:]:
        a = c["start_frame"]
        seek = media.seek_point(path, c["start_s"], video["fps"])
        assert times[a - 1] < seek < times[a]  # keeps frame a, drops a - 1
    # half an average step before an even frame falls before its predecessor: the fixed rule would take it too
    assert clips[1]["start_s"] - 0.5 / video["fps"] < times[CUTS[0] - 1]


# -- rotation metadata -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["rot90.mp4", "rot270.mp4"])
def test_rotated_frames_and_clips_are_shown_as_players_show_them(runs, name, tmp_path):
    path, video, clips, _ = runs(name)
    assert media.probe(path).rotation == FORMATS[name]["rotation"]
    assert (video["width"], video["height"]) == (W, H)  # coded size; frames are stored display-oriented
    shown = magenta_corner(ffmpeg_display(path, (H, W)))
    assert shown in ("bottom-right", "top-left")  # the coded bottom-left corner, turned a quarter
    for c in clips:
        for data in c["frames"]:
            image = jpeg(data)
            assert image.shape[:2] == (W, H)  # portrait
            assert magenta_corner(image) == shown
    (row,) = shard(clips[:1], tmp_path)
    frames = decode_rgb(row["mp4_path"])
    assert frames[0].shape[:2] == (W, H) and magenta_corner(frames[0]) == shown


# -- non-square pixels -------------------------------------------------------------------------------------------
def test_non_square_pixels_are_stored_at_the_display_aspect(runs, tmp_path):
    import av

    path, video, clips, _ = runs("sar2.mp4")
    assert video["sample_aspect_ratio"] == 2.0 and (video["width"], video["height"]) == (W, H)
    for c in clips:
        for data in c["frames"]:
            assert Image.open(io.BytesIO(data)).size == (2 * W, H)
    for max_short_side, size in [(None, (W, H)), (60, (80, 60))]:
        (row,) = shard(clips[1:2], tmp_path / str(max_short_side), max_short_side=max_short_side)
        with av.open(row["mp4_path"]) as container:
            stream = container.streams.video[0]
            assert (stream.width, stream.height) == size
            assert stream.sample_aspect_ratio * Fraction(*size) == Fraction(2 * W, H)  # display aspect kept


# -- AV1 and a container that does not start at 0 ----------------------------------------------------------------
def test_av1_is_probed_and_decoded_by_both_ffmpeg_and_pyav(runs):
    path, video, clips, _ = runs("av1.mp4")
    assert video["codec"] == "av1" and video["num_frames"] == N and video["fps"] == 25.0
    assert len(clips) == 4  # split decoded it through the ffmpeg binary; PyAV decoded it in the other tests


def test_mpegts_times_count_from_the_container_start(runs):
    import av

    path, video, clips, _ = runs("mpegts.ts")
    with av.open(str(path)) as container:
        assert container.start_time / av.time_base > 1.0  # the muxer's default offset, 1.4 s and a bit
    assert [c["start_s"] for c in clips] == pytest.approx([0.0, 1.2, 2.2, 3.6], abs=1e-6)
    assert clips[-1]["end_s"] == pytest.approx(4.8, abs=1e-6)
