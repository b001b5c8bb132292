"""Video I/O shared by the stages: finding ffmpeg, hashing, probing (probe.py), every ffmpeg command line, built
with ffmpeg-python (commands.py), split's one decoding pass (pyavscan.py in this process, scan.py in an ffmpeg
process), stored frames (images.py), which SIMD routines swscale runs (simd.py), frame-exact clips (clips.py),
audio for speech recognition (audio.py). Stages use it as `from vlcurate.stages import media`."""

from vlcurate.stages.media import commands, simd
from vlcurate.stages.media.audio import SAMPLE_RATE, AudioError, read_audio
from vlcurate.stages.media.clips import SAME_TIME_S, copy_clip, copyable_packets, encode_clip, seek_point
from vlcurate.stages.media.images import decode_jpeg, display_size, encode_jpeg, frame_images, sample_frames
from vlcurate.stages.media.probe import (DECODE_PASSES, DecodedFrame, Probe, content_hash, count_video_packets,
                                         decode_frames, ffmpeg_exe, fraction, keyframe_times, probe)
from vlcurate.stages.media.pyavscan import PyAVScan
from vlcurate.stages.media.scan import FfmpegScan

__all__ = ["commands", "simd", "PyAVScan", "AudioError", "SAMPLE_RATE", "read_audio", "DECODE_PASSES", "SAME_TIME_S",
           "DecodedFrame", "FfmpegScan", "Probe", "content_hash", "copy_clip", "copyable_packets",
           "count_video_packets", "decode_frames", "decode_jpeg", "display_size", "encode_clip", "encode_jpeg",
           "ffmpeg_exe", "fraction", "frame_images", "keyframe_times", "probe", "sample_frames", "seek_point"]
