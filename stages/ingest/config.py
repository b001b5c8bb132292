"""ingest's config, and the file endings it knows: what discovery, the fetcher and the stage all read."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vlcurate.pipeline.stage import StageConfig
from vlcurate.stages.ingest.fetch import FetchConfig

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv",
                    ".3gp", ".ogv")
AUDIO_EXTENSIONS = (".mp3", ".m4a", ".aac", ".wav", ".flac", ".ogg", ".opus", ".wma")
SUBTITLE_EXTENSIONS = (".vtt", ".srt", ".json")
LIST_EXTENSIONS = (".csv", ".jsonl", ".parquet")


class IngestConfig(StageConfig):
    extensions: list[str] = Field(default_factory=lambda: list(VIDEO_EXTENSIONS),
                                  description="file endings picked up from folders and globs")
    sidecar_subtitles: bool = Field(True, description="use <video>.vtt/.srt next to a video as its subtitles")
    drop_duplicates: bool = Field(True, description="mark later copies of identical content as errors")
    list_paths: Literal["confined", "anywhere"] = Field(
        "confined", description="what a list file's paths may name: files under the list's own folder (and "
                                "allowed_roots), or any path; /proc, /sys and /dev only if allowed_roots names them")
    allowed_roots: list[str] = Field(default_factory=list, description="folders a list file's paths may name "
                                                                      "besides the list's own")
    fetch: FetchConfig = Field(default_factory=FetchConfig, description="videos named by http(s) URLs: retries, "
                               "timeouts, limits, pages (yt-dlp), what is kept (stages/ingest/fetch.py)")
