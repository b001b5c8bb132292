"""stages/media/simd.py: scalers set up after `prefer_gather_free` give the same bits as FFmpeg's own choice, and
a scan sets the flag before it scales."""

from __future__ import annotations

import numpy as np
import pytest

from vlcurate.stages import media
from vlcurate.stages.media import simd

# (input size, output size, pixel format, scaler): split's detector downscales (PySceneDetect's at 720p and 360p,
# TransNetV2's), its 336-line samples, and an odd size
CASES = [((1280, 720), (256, 144), "bgr24", "AREA"), ((640, 360), (256, 144), "bgr24", "AREA"),
         ((1280, 720), (48, 27), "rgb24", "BICUBIC"), ((1280, 720), (598, 336), "yuv420p", "AREA"),
         ((854, 480), (256, 144), "bgr24", "AREA")]


def use_detected_flags() -> None:
    """Back to FFmpeg's own detection of this CPU, for scalers set up from now on."""
    simd.pyav_libavutil().av_force_cpu_flags(-1)  # -1: detect again on the next query


@pytest.fixture
def detected_flags_after():
    yield
    if simd.pyav_libavutil() is not None:
        use_detected_flags()


def _scaled(frames, size, pixel_format, scaler) -> list[np.ndarray]:
    from av.video.reformatter import Interpolation, VideoReformatter

    reformatter = VideoReformatter()  # a scaler of its own, set up under the flags of the moment
    return [reformatter.reformat(f, *size, pixel_format, interpolation=Interpolation[scaler], threads=1).to_ndarray()
            for f in frames]


def _frames(size: tuple[int, int]) -> list:
    import av

    rng = np.random.default_rng(sum(size))
    w, h = size
    smooth = np.linspace(0, 255, w * h * 3).reshape(h, w, 3)
    return [av.VideoFrame.from_ndarray(np.clip(smooth + rng.normal(0, s, (h, w, 3)), 0, 255).astype(np.uint8),
                                       format="rgb24").reformat(format="yuv420p") for s in (0, 8, 80)]


@pytest.mark.parametrize("source, size, pixel_format, scaler", CASES)
def test_gather_free_scalers_give_the_same_bits(detected_flags_after, source, size, pixel_format, scaler):
    if simd.pyav_libavutil() is None:
        pytest.skip("PyAV's libavutil was not found in this process")
    frames = _frames(source)
    use_detected_flags()
    ffmpegs_choice = _scaled(frames, size, pixel_format, scaler)
    simd.prefer_gather_free()
    gather_free = _scaled(frames, size, pixel_format, scaler)
    assert all(np.array_equal(a, b) for a, b in zip(ffmpegs_choice, gather_free))


def test_a_scan_marks_gathers_slow_before_it_scales(detected_flags_after, tmp_path):
    from tests.stages.media.test_formats import FORMATS, make

    lib = simd.pyav_libavutil()
    if lib is None:
        pytest.skip("PyAV's libavutil was not found in this process")
    use_detected_flags()
    has_avx2 = bool(lib.av_get_cpu_flags() & simd.AV_CPU_FLAG_AVX2)
    for _ in media.PyAVScan(make(tmp_path / "vfr.mkv", **FORMATS["vfr.mkv"]), (64, 48)):
        pass
    assert bool(lib.av_get_cpu_flags() & simd.AV_CPU_FLAG_SLOW_GATHER) == has_avx2
