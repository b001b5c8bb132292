"""Every ffmpeg command line vlcurate runs, built with ffmpeg-python: inputs, filter graphs and outputs as objects,
compiled to an argument list (never a shell string) with the quiet global options every run shares. Stages,
tools, tests and benchmarks build their commands here or through `run`, so flags and escaping live in one place."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import ffmpeg

from vlcurate.stages.media.probe import ffmpeg_exe

QUIET = ("-nostdin", "-hide_banner", "-v", "error")
# Output options of every clip written: no metadata or chapters carried over, bit-exact muxing, index first.
MP4_OUT = {"map_metadata": "-1", "map_chapters": "-1", "fflags": "+bitexact", "flags": "+bitexact",
           "movflags": "+faststart", "f": "mp4"}
AAC = {"c:a": "aac", "b:a": "128k"}
GATHER_FREE = ("-cpuflags", "+slowgather")  # see gather_free_args


class _Paths:
    """File names stand in as placeholders while ffmpeg-python builds the graph, then return in the argument list:
    ffmpeg-python hashes every argument as UTF-8, and a file name that is not (undecodable bytes, kept by Python
    as surrogates) would make it raise."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}

    def __call__(self, path: str | Path) -> str:
        token = f"vlcurate-path-{len(self._names)}"
        self._names[token] = str(path)
        return token

    def restore(self, args: list[str]) -> list[str]:
        return [self._names.get(a, a) for a in args]


def compile_args(stream: Any, *, overwrite: bool = False, extra_global: tuple[str, ...] = ()) -> list[str]:
    """The argument list of an ffmpeg-python output (or merged outputs), with our ffmpeg binary first."""
    return stream.global_args(*QUIET, *extra_global).compile(cmd=ffmpeg_exe(), overwrite_output=overwrite)


def run(stream: Any, *, overwrite: bool = True, **kwargs: Any) -> subprocess.CompletedProcess:
    """Run an ffmpeg-python graph to completion, for tools, benchmarks and test fixtures: a failure raises with
    ffmpeg's own last words."""
    proc = subprocess.run(compile_args(stream, overwrite=overwrite), capture_output=True, **kwargs)
    if proc.returncode != 0:
        text = proc.stderr.decode("utf-8", "replace") if isinstance(proc.stderr, bytes) else proc.stderr
        raise RuntimeError(f"ffmpeg exited {proc.returncode}: {text.strip()[-400:]}")
    return proc


def decode_null(path: str | Path, threads: int = 1) -> Any:
    """Decode the first video stream and throw the frames away: the physical limit benchmarks measure against."""
    return ffmpeg.input(str(path), threads=threads)["v:0"].output("-", f="null")


def output_options(**options: Any) -> list[str]:
    """Output options alone, compiled by ffmpeg-python, for tools that take them as their own argument (the
    PySceneDetect CLI's `split-video --args`); a value of None is a flag without one (`an=None`: -an)."""
    args = ffmpeg.input("vlcurate-in").output("vlcurate-out", **options).get_args()
    return args[args.index("vlcurate-in") + 1:-1]


def version_args(*global_options: str) -> list[str]:
    """`ffmpeg -version` after `global_options` (ffmpeg stops parsing at -version): it takes no input or output,
    so there is nothing for ffmpeg-python to build."""
    return [ffmpeg_exe(), *global_options, "-version"]


@functools.lru_cache(maxsize=1)
def gather_free_args() -> tuple[str, ...]:
    """`-cpuflags +slowgather` where our ffmpeg takes it (builds whose CPU-flag table names it: x86), else
    nothing: its scalers then run their gather-free routines, as the in-process scan's do (simd.py says why). The
    same frames and samples on all 15 bench and development videos; ffmpeg's 720p decode and detector downscale
    took 5-21% less CPU with it on this VM (5 runs each)."""
    probe = subprocess.run(version_args(*QUIET, *GATHER_FREE), capture_output=True)
    return GATHER_FREE if probe.returncode == 0 else ()


def scan_args(path: str, *, threads: int, detect_size: tuple[int, int], detect_scaler: str, detect_format: str,
              stats: str, sample_every: int = 0, sample_size: tuple[int, int] | None = None,
              sample_fd: int | None = None) -> list[str]:
    """Split's one decoding pass: every frame scaled for the detector to stdout, with its input timestamp in
    `stats`; every `sample_every`-th frame scaled to `sample_size`, as JPEG-ready YUV 4:2:0, to pipe `sample_fd`.
    Rotation is left to the caller (`-noautorotate`)."""
    paths = _Paths()
    video = ffmpeg.input(paths(path), threads=threads, noautorotate=None)["v:0"]
    raw = {"f": "rawvideo", "fps_mode": "passthrough"}
    if sample_fd is not None:
        branches = video.filter_multi_output("split", 2)
        video, sampled = branches[0], branches[1]
    dw, dh = detect_size
    detect = video.filter("scale", dw, dh, flags=detect_scaler).filter("format", detect_format)
    outputs = [detect.output("pipe:1", stats_enc_pre=paths(stats), stats_enc_pre_fmt="{ptsi} {tbi}", **raw)]
    if sample_fd is not None:
        sw, sh = sample_size
        # JPEG's own YCbCr (BT.601, full range) in 4:2:0 planes: encoded as they are, no RGB between
        sample = (sampled.filter("select", f"not(mod(n,{sample_every}))")
                  .filter("scale", sw, sh, flags="area", out_color_matrix="bt601", out_range="full")
                  .filter("format", "yuv420p"))
        outputs.append(sample.output(f"pipe:{sample_fd}", **raw))
    return paths.restore(compile_args(ffmpeg.merge_outputs(*outputs),
                                      extra_global=("-filter_complex_threads", "1", *gather_free_args())))


def encode_clip_args(src: str, dst: str, *, seek: float, frame_count: int, crop: tuple[int, int, int, int] | None,
                     max_short_side: int | None, crf: int, preset: str, threads: int,
                     audio_s: float | None) -> list[str]:
    """Re-encode `frame_count` frames from the seek point as H.264 (and AAC audio for `audio_s` seconds when
    given) into MP4, single-threaded in x264 so equal inputs give equal bytes."""
    paths = _Paths()
    source = ffmpeg.input(paths(src), ss=f"{seek:.6f}")
    video = source["v:0"]
    if crop and any(crop):  # (top, bottom, left, right) coded pixels off the edges: letterbox bars
        top, bottom, left, right = crop
        video = video.filter("crop", f"iw-{left + right}", f"ih-{top + bottom}", left, top)
    if max_short_side:
        n = max_short_side
        video = video.filter("scale", f"if(lt(iw,ih),min({n},iw),-2)", f"if(lt(iw,ih),-2,min({n},ih))")
    streams = [video.filter("format", "yuv420p")]
    options: dict[str, Any] = {"frames:v": frame_count, "fps_mode": "passthrough", "c:v": "libx264",
                               "preset": preset, "crf": crf, "threads": threads, "x264-params": "threads=1"}
    if audio_s is not None:  # trimmed by a filter: an output -t would also cut the last video frame
        streams.append(source["a:0"].filter("atrim", duration=f"{audio_s:.6f}"))
        options.update(AAC)
    return paths.restore(compile_args(ffmpeg.output(*streams, paths(dst), **options, **MP4_OUT), overwrite=True))


def mux_audio_args(video_only: str, src: str, dst: str, *, start_s: float, duration_s: float | None) -> list[str]:
    """A copied video-only clip joined with the source's audio from `start_s`, re-encoded and trimmed to the
    clip's length (`duration_s`; None: a source without audio, remuxed alone)."""
    paths = _Paths()
    streams = [ffmpeg.input(paths(video_only))["v:0"]]
    options = {"c:v": "copy", **MP4_OUT}
    if duration_s is not None:
        audio = ffmpeg.input(paths(src), ss=f"{start_s:.6f}")["a:0"]
        streams.append(audio.filter("atrim", duration=f"{duration_s:.6f}"))
        options.update(AAC)
    return paths.restore(compile_args(ffmpeg.output(*streams, paths(dst), **options), overwrite=True))


def merge_streams_args(video: str, audio: str, dst: str) -> list[str]:
    """A page's video and audio, fetched apart, into one Matroska file with their packets untouched."""
    paths = _Paths()
    streams = [ffmpeg.input(paths(video))["v:0"], ffmpeg.input(paths(audio))["a:0"]]
    options = {"c": "copy", "fflags": "+bitexact", "f": "matroska"}
    return paths.restore(compile_args(ffmpeg.output(*streams, paths(dst), **options), overwrite=True))


def read_audio_args(path: str, rate: int) -> list[str]:
    """The first audio stream, decoded alone (no video demuxed into decoding), as mono float32 at `rate` Hz."""
    paths = _Paths()
    audio = ffmpeg.input(paths(path))["a:0"]
    return paths.restore(compile_args(audio.output("-", vn=None, sn=None, dn=None, ac=1, ar=rate, f="f32le")))
