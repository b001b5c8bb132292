"""stages/media/images.py and both scans' sampled frames: JPEGs encoded from YCbCr planes keep the source's colours."""

from __future__ import annotations

import io

import ffmpeg
import numpy as np
import pytest
from PIL import Image

from vlcurate.stages import media

COLOUR = (192, 48, 32)  # a saturated orange-red: a wrong matrix or range moves it by far more than the tolerance


def _rgb(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


def test_planes_encode_to_the_colour_they_hold():
    r, g, b = COLOUR  # JFIF's YCbCr: BT.601, full range
    y = 0.299 * r + 0.587 * g + 0.114 * b
    planes = (np.full((36, 64), round(y), np.uint8), np.full((18, 32), round(128 + (b - y) / 1.772), np.uint8),
              np.full((18, 32), round(128 + (r - y) / 1.402), np.uint8))
    rgb = _rgb(media.encode_jpeg(planes, 0, 90))
    assert rgb.shape == (36, 64, 3) and np.abs(rgb.mean((0, 1)) - COLOUR).max() < 2


def test_rotation_turns_all_three_planes():
    planes = (np.zeros((36, 64), np.uint8), np.full((18, 32), 128, np.uint8), np.full((18, 32), 128, np.uint8))
    planes[0][:, :8] = 255  # a white band down the left edge
    rotated = _rgb(media.encode_jpeg(planes, 90, 90))
    assert rotated.shape == (64, 36, 3)
    assert rotated[-8:].mean() > 200 and rotated[:-8].mean() < 30  # counter-clockwise: the band is now at the bottom


@pytest.mark.parametrize("scan_class", [media.PyAVScan, media.FfmpegScan], ids=["pyav", "ffmpeg"])
@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
def test_sampled_frames_keep_the_sources_colours(tmp_path, matrix, scan_class):
    """A limited-range source tagged BT.601 or BT.709 gives the same full-range JPEG colours, from either scan."""
    path = tmp_path / f"{matrix}.mp4"
    hex_colour = "0x" + "".join(f"{c:02X}" for c in COLOUR)
    source = ffmpeg.input(f"color=c={hex_colour}:s=320x240:r=25:d=1", f="lavfi")
    video = source.filter("scale", out_color_matrix=matrix, out_range="tv").filter("format", "yuv420p")
    tag = "bt709" if matrix == "bt709" else "smpte170m"
    media.commands.run(video.output(str(path), **{"c:v": "libx264"}, crf=10, colorspace=tag, color_primaries=tag,
                                    color_trc=tag, color_range="tv"))
    got: dict[int, bytes] = {}
    scan = scan_class(path, (64, 48), sample_every=10, sample_size=(320, 240),
                      on_sample=lambda i, planes: got.__setitem__(i, media.encode_jpeg(planes, 0, 90)))
    for _ in scan:
        pass
    assert sorted(got) == [0, 10, 20]
    # within 5 levels: limited-range quantisation and swscale's BT.709 conversion (188, 45, 29 here; ffmpeg's own
    # BGR output of the same source is 189, 44, 30); a lost matrix or range moves a channel by 10 to 30
    assert np.abs(_rgb(got[10]).mean((0, 1)) - COLOUR).max() < 5, _rgb(got[10]).mean((0, 1))
