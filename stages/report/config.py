"""The report's config section (`report:` in a run config)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ReportConfig(BaseModel):
    """What `vlcurate run` writes at its end, and how much of the run the pages show: the limits keep the report's
    size (and the time its page takes to open) the same however large the run."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="write report/index.html (and the dataset card) when the run ends")
    gallery_clips: int = Field(480, ge=1, description="clips in the gallery: all of them up to this, else a sample "
                                                      "chosen by a seeded hash of the clip id")
    page_clips: int = Field(48, ge=1, description="clips per gallery page (index.html shows the first page)")
    filter_clips: int = Field(24, ge=0, description="clips shown per filter: those it dropped (or, in tag mode, "
                                                    "failed), nearest to its threshold first")
    timeline_videos: int = Field(20, ge=0, description="source videos with a timeline (the lowest video ids: a "
                                                       "uniform sample, since ids are content hashes)")
    errors_shown: int = Field(200, ge=0, description="error rows listed (all are counted by reason)")
    seed: int = Field(0, description="seed of the gallery's sample")
    frame_height: int = Field(120, ge=32, le=720, description="height in pixels of each frame in a contact sheet")
