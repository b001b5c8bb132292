"""See a finished run: an offline HTML report (`<output>/report/index.html`) and the dataset card
(`<output>/shard/README.md`). Both read only the manifests, the stats and split's frame store, a few columns and one
part at a time, so a run of a million clips gives the same few pages as a run of ten."""

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


def write_report(output, config: ReportConfig | None = None, to=None):
    """`<output>/report/index.html` (or `to`/index.html) and its pages and images; returns the index's path."""
    from vlcurate.stages.report.render import write_report as write

    return write(output, config or ReportConfig(), to)


def write_card(output):
    """`<output>/shard/README.md`, the dataset card of a finished shard stage; returns its path."""
    from vlcurate.stages.report.card import write_card as write

    return write(output)


def card_applies(output) -> bool:
    """Whether the run in `output` has finished shards for a dataset card to describe."""
    from vlcurate.stages.report.card import card_applies as applies

    return applies(output)


__all__ = ["ReportConfig", "card_applies", "write_card", "write_report"]
