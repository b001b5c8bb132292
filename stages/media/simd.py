"""Which SIMD routines FFmpeg's scaler picks in this process.

swscale's AVX2 horizontal scaler reads its input with gather instructions, and skips that routine on CPUs
FFmpeg marks as slow at gathers (AV_CPU_FLAG_SLOW_GATHER). FFmpeg does not mark the AMD EPYC (family 0x1A, Zen 5)
of the VM this project is measured on, where the routine was the slower one: split's detector downscale (area,
1280x720 to 256x144 BGR) took 255 us a frame with it and 173 without, 640x360 took 95 and 86 (median of 90 calls
on 18 hot frames each). The routines compute the same integers, so the frames are the same bits either way (all 15
bench and development videos; tests/stages/media/test_media_simd.py).

The flag is process-wide and read when a scaler or codec is set up, so `prefer_gather_free` runs before a scan
makes its first scaler. Only routines that consult the flag change: swscale's, and some AVX2 FFT codelets of
libavutil that audio codecs use; no video decoder. Audio is decoded by an ffmpeg process here (audio.py), which
this flag does not reach.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

AV_CPU_FLAG_AVX2 = 0x8000  # libavutil/cpu.h
AV_CPU_FLAG_SLOW_GATHER = 0x2000000


def _candidates() -> list[str]:
    """Paths of libavutil that may be PyAV's: the copies its wheels bundle first, then what this process mapped
    (a PyAV built against the system's FFmpeg)."""
    import av

    package = Path(av.__file__).parent
    found = [str(p) for folder in (package.parent / "av.libs", package / ".dylibs")
             for p in sorted(folder.glob("*avutil*")) if folder.is_dir()]
    maps = Path("/proc/self/maps")
    if maps.exists():
        found += sorted({line.split()[-1] for line in maps.read_text().splitlines()
                         if "libavutil" in line.rsplit("/", 1)[-1]})
    return found


@functools.lru_cache(maxsize=1)
def pyav_libavutil() -> ctypes.CDLL | None:
    """The libavutil PyAV runs on (its version is the one PyAV reports), or None where it cannot be found. Other
    packages may load an FFmpeg of their own into the process (decord, torchvision): the version tells them apart."""
    import av

    major, minor, micro = av.library_versions["libavutil"]
    wanted = major << 16 | minor << 8 | micro  # AV_VERSION_INT, what avutil_version() returns
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            lib.avutil_version.restype = ctypes.c_uint
            if lib.avutil_version() == wanted:
                return lib
        except (OSError, AttributeError):
            continue
    return None


def prefer_gather_free() -> bool:
    """Mark this process's CPU as slow at gathers for PyAV's FFmpeg, so scalers set up from now on use the
    gather-free routines; True if the flag is set (now or before). A no-op off x86 and without AVX2."""
    lib = pyav_libavutil()
    if lib is None:
        return False
    flags = lib.av_get_cpu_flags()
    if flags & AV_CPU_FLAG_SLOW_GATHER:
        return True
    if not flags & AV_CPU_FLAG_AVX2:
        return False
    lib.av_force_cpu_flags(flags | AV_CPU_FLAG_SLOW_GATHER)
    return True
