"""The list formats of the datasets people rebuild, read as they are published: which column names the video, the
clip spans and the captions a row gives.

- the video: `path` (a file, a store object or an http(s) URL), `url` (Panda-70M, HD-VILA), `contentUrl` (WebVid),
  or `youtube_id` (Kinetics, HowTo100M ids);
- clip spans: `timestamp` (Panda-70M: `[['0:00:00.000', '0:00:05.280'], ...]`), `clips` (video2dataset: `[[0.0,
  5.28], ...]`), or one span from `start`/`end` (or Kinetics' `time_start`/`time_end`); times are seconds or
  `[H:]MM:SS[.fff]`;
- captions: `caption` (Panda-70M: one per span; or one text for the whole video) or `name` (WebVid);
- `info_json`: a saved yt-dlp info JSON for the row's page (resolved offline);
- accepted and not used: the columns in IGNORED (ids and scores the published lists carry).
A malformed span or caption list stops the run with the file and row named, like any malformed list.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from vlcurate.pipeline.failures import UserError

VIDEO = ("path", "url", "contentUrl", "youtube_id")
SPANS = ("timestamp", "clips", "start", "end", "time_start", "time_end")
CAPTIONS = ("caption", "name")
METADATA = ("title", "description", "subtitles", "info_json")
IGNORED = ("videoID", "videoid", "matching_score", "page_idx", "page_dir", "duration", "label", "split", "is_cc")
KNOWN = frozenset(VIDEO + SPANS + CAPTIONS + METADATA + IGNORED)
TIME = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


def video_of(row: dict[str, Any]) -> str | None:
    """What names the row's video: the first of path, url, contentUrl; a YouTube id as its watch URL."""
    for column in VIDEO[:-1]:
        if row.get(column):
            return str(row[column])
    if row.get("youtube_id"):
        return f"https://www.youtube.com/watch?v={row['youtube_id']}"
    return None


def seconds(value: Any, where: str) -> float:
    """A time as seconds: a number, or `[H:]MM:SS[.fff]`."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    match = TIME.match(text)
    if not match:
        raise UserError(f"{where}: {value!r} is not a time (seconds, or [H:]MM:SS[.fff])")
    hours, minutes, secs = match.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + float(secs)


def _listed(value: Any, where: str, column: str) -> list[Any]:
    """A list column as a list: JSONL and Parquet give lists, CSV gives their Python/JSON text."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            raise UserError(f"{where}: column {column!r} is not a list ({value[:60]!r})") from None
    if not isinstance(value, (list, tuple)):
        raise UserError(f"{where}: column {column!r} is not a list")
    return list(value)


def spans_of(row: dict[str, Any], where: str) -> list[dict[str, float]] | None:
    """The clip spans the row gives, in its order, or None."""
    pairs: list[Any] = []
    for column in ("timestamp", "clips"):
        if row.get(column) is not None:
            pairs = _listed(row[column], where, column)
            break
    else:
        for a, b in (("start", "end"), ("time_start", "time_end")):
            if row.get(a) is not None or row.get(b) is not None:
                if row.get(a) is None or row.get(b) is None:
                    raise UserError(f"{where}: {a!r} and {b!r} come together")
                pairs = [(row[a], row[b])]
                break
        else:
            return None
    spans = []
    for pair in pairs:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise UserError(f"{where}: a span is [start, end], not {pair!r}")
        start, end = seconds(pair[0], where), seconds(pair[1], where)
        if start < 0 or end <= start:
            raise UserError(f"{where}: span [{pair[0]}, {pair[1]}] does not end after it starts")
        spans.append({"start_s": start, "end_s": end})
    return spans or None


def captions_of(row: dict[str, Any], spans: list[dict[str, float]] | None, where: str) -> list[str] | None:
    """The captions the row gives: one per span (Panda-70M), or one for the whole video."""
    value = next((row[c] for c in CAPTIONS if row.get(c) is not None), None)
    if value is None:
        return None
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and not text.startswith("["):
        return [text]
    captions = [str(c) for c in _listed(value, where, "caption")]
    if spans is not None and len(captions) != len(spans):
        raise UserError(f"{where}: {len(captions)} captions for {len(spans)} spans")
    return captions
