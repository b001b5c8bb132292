"""asr: Whisper transcripts of the videos' speech, read by every teacher that reads subtitles (stage.py)."""

from vlcurate.stages.asr.stage import AsrConfig, AsrStage

__all__ = ["AsrConfig", "AsrStage"]
