"""stages/media/commands.py: every ffmpeg command is built with ffmpeg-python, as an argument list."""

from __future__ import annotations

import re
from pathlib import Path

from vlcurate.stages.media import commands

ROOT = Path(__file__).resolve().parents[3]


def test_scan_command_maps_both_branches_to_their_pipes():
    args = commands.scan_args("in.mp4", threads=1, detect_size=(256, 144), detect_scaler="area",
                              detect_format="bgr24", stats="/tmp/s.txt", sample_every=12, sample_size=(598, 336),
                              sample_fd=5)
    assert args[0] == commands.ffmpeg_exe() and "-nostdin" in args and args[args.index("-v") + 1] == "error"
    graph = args[args.index("-filter_complex") + 1]
    assert graph.startswith("[0:v:0]split=2") and "select=not(mod(n\\,12))" in graph
    assert "scale=256:144:flags=area" in graph and "scale=598:336:flags=area" in graph
    assert args.index("pipe:1") < args.index("pipe:5")
    assert args[args.index("-stats_enc_pre") + 1] == "/tmp/s.txt" and args.count("-stats_enc_pre") == 1
    assert args[args.index("-threads") + 1] == "1" and args.index("-noautorotate") < args.index("-i")
    plain = commands.scan_args("in.mp4", threads=2, detect_size=(48, 27), detect_scaler="bicubic",
                               detect_format="rgb24", stats="s")
    assert "split" not in plain[plain.index("-filter_complex") + 1] and "pipe:1" in plain


def test_the_scan_asks_for_gather_free_scalers_where_ffmpeg_takes_the_flag():
    """(That ffmpeg then starts with it is what every FfmpegScan test runs.)"""
    import platform

    args = commands.scan_args("in.mp4", threads=1, detect_size=(64, 48), detect_scaler="area",
                              detect_format="bgr24", stats="s")
    flags = commands.gather_free_args()
    assert args[args.index("-cpuflags") + 1] == "+slowgather" if flags else "-cpuflags" not in args
    if platform.machine().lower() in ("x86_64", "amd64") and "imageio_ffmpeg" in commands.ffmpeg_exe():
        assert flags  # the static FFmpeg 7+ build this project installs takes it


def test_clip_commands_trim_audio_only_when_asked():
    with_audio = commands.encode_clip_args("in.mp4", "out.mp4", seek=1.98, frame_count=50, crop=(2, 2, 0, 0),
                                           max_short_side=240, crf=23, preset="veryfast", threads=1, audio_s=2.0)
    graph = with_audio[with_audio.index("-filter_complex") + 1]
    assert "crop=iw-0:ih-4:0:2" in graph and "atrim=duration=2.000000" in graph
    assert with_audio[with_audio.index("-ss") + 1] == "1.980000" and with_audio.index("-ss") < with_audio.index("-i")
    assert with_audio[with_audio.index("-frames:v") + 1] == "50" and "-c:a" in with_audio and "-y" in with_audio
    silent = commands.encode_clip_args("in.mp4", "out.mp4", seek=0.0, frame_count=5, crop=None, max_short_side=None,
                                       crf=23, preset="veryfast", threads=1, audio_s=None)
    assert "atrim" not in " ".join(silent) and "-c:a" not in silent
    assert "+bitexact" in silent and silent[silent.index("-map_metadata") + 1] == "-1"


def test_no_ffmpeg_argument_list_is_written_by_hand_outside_the_media_package():
    # a list starting with the binary, or a string of ffmpeg options (another tool's `--args`, say)
    by_hand = re.compile(r"\[\s*(media\.)?ffmpeg_exe\(\)\s*,|[\"'f]-(map|c:v|vf|filter_complex|i|ss) ")
    offenders = [str(p.relative_to(ROOT)) for folder in ("stages", "pipeline", "bench", "tests", "manifests")
                 for p in (ROOT / folder).rglob("*.py")
                 if "media" not in p.relative_to(ROOT).parts[:2] and p.name != Path(__file__).name
                 and by_hand.search(p.read_text())]
    assert offenders == []


def test_output_options_compile_for_tools_that_take_them_as_one_argument():
    options = commands.output_options(**{"map": "0:v:0", "c:v": "libx264", "crf": 22, "an": None})
    assert options == ["-an", "-c:v", "libx264", "-crf", "22", "-map", "0:v:0"]


def test_file_names_that_are_not_utf8_reach_ffmpeg_unchanged():
    import os

    odd = os.fsdecode(b"/videos/caf\xe9.mp4")  # undecodable bytes, kept as surrogates
    args = commands.encode_clip_args(odd, odd + ".out.mp4", seek=0.0, frame_count=3, crop=None, max_short_side=None,
                                     crf=23, preset="veryfast", threads=1, audio_s=1.0)
    assert args[args.index("-i") + 1] == odd and odd + ".out.mp4" in args
    scan = commands.scan_args(odd, threads=1, detect_size=(48, 27), detect_scaler="area", detect_format="rgb24",
                              stats=odd + ".stats")
    assert scan[scan.index("-i") + 1] == odd and odd + ".stats" in scan
    assert commands.read_audio_args(odd, 16000)[commands.read_audio_args(odd, 16000).index("-i") + 1] == odd
