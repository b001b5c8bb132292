"""See a finished run: an offline HTML report (`<output>/report/index.html`) and the dataset card
(`<output>/shard/README.md`). Both read only the manifests, the stats and split's frame store, a few columns and one
part at a time, so a run of a million clips gives the same few pages as a run of ten."""

from __future__ import annotations

from vlcurate.stages.report.config import ReportConfig


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
