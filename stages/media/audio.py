"""A video's audio for speech recognition, without decoding its video: ffmpeg demuxes the first audio stream
(`-vn`: the video stream is never decoded, so `decoder_passes` still counts one) and resamples it to 16 kHz mono
float32, what Whisper models take."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from vlcurate.pipeline.failures import MachineError, check_tool_output
from vlcurate.stages.media import commands

SAMPLE_RATE = 16000
HOW = "audio-only demux and decode (ffmpeg -vn), 16 kHz mono"


class AudioError(ValueError):
    """The file's audio cannot be read: a fault of that input."""


def read_audio(path: str | Path, rate: int = SAMPLE_RATE) -> np.ndarray:
    """The first audio stream as float32 samples in [-1, 1] at `rate` Hz, mono (about 230 MB an hour)."""
    proc = subprocess.run(commands.read_audio_args(str(path), rate), capture_output=True)
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode < 0:
        raise MachineError(f"ffmpeg was killed (signal {-proc.returncode}) reading the audio of {path}")
    check_tool_output("ffmpeg", stderr)
    if proc.returncode != 0:
        last = (stderr.strip().splitlines() or ["no output"])[-1]
        raise AudioError(f"ffmpeg cannot read the audio: {last[:200]}")
    return np.frombuffer(proc.stdout, np.float32).copy()
