"""Subtitles and transcripts: VTT, SRT and JSON, cleaned of YouTube's rolling duplicates, sliced per clip."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from vlcurate.pipeline import storage

_TIME = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})")
_TAG = re.compile(r"<[^>]+>|\{\\[^}]*\}")


class SubtitleError(ValueError):
    """A subtitle file that cannot be read as one: a fault of that input, for the teachers that read it only."""


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str


def _seconds(stamp: str) -> float:
    m = _TIME.search(stamp)
    if not m:
        raise ValueError(f"not a timestamp: {stamp!r}")
    hours, minutes, seconds, millis = m.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis.ljust(3, "0")) / 1000


_HEADERS = ("WEBVTT", "NOTE", "STYLE", "REGION", "\ufeff")


def _parse_blocks(text: str) -> list[Cue]:
    """VTT and SRT share the shape: blocks separated by blank lines, one `a --> b` line, then text lines. Text
    without a single timing line is no subtitle file (random bytes, a wrong file), not an empty transcript."""
    cues = []
    other = 0
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = [ln for ln in block.strip().split("\n") if ln.strip()]
        timing = next((i for i, ln in enumerate(lines) if "-->" in ln), None)
        if timing is None:
            other += bool(lines) and not lines[0].lstrip("\ufeff").startswith(_HEADERS)
            continue
        start, _, end = lines[timing].partition("-->")
        body = " ".join(_TAG.sub("", ln).strip() for ln in lines[timing + 1:])
        body = " ".join(body.split())
        if body:
            cues.append(Cue(_seconds(start), _seconds((end.split() or [""])[0]), body))
    if not cues and other:
        raise ValueError("no cue found: not a VTT or SRT file")
    return cues


def _parse_json(text: str) -> list[Cue]:
    """A list of {start, end, text} (also Whisper's {"segments": [...]}), times in seconds."""
    data = json.loads(text)
    if isinstance(data, dict):
        data = data.get("segments") or data.get("cues") or []
    return [Cue(float(d["start"]), float(d["end"]), " ".join(str(d["text"]).split())) for d in data if d.get("text")]


def dedupe_rolling(cues: list[Cue]) -> list[Cue]:
    """YouTube auto-captions repeat the previous cue at the start of the next one; keep only what is new."""
    out: list[Cue] = []
    prev_raw = ""
    for cue in cues:
        text = cue.text
        if out and text == prev_raw:
            out[-1] = Cue(out[-1].start_s, max(out[-1].end_s, cue.end_s), out[-1].text)
            continue
        if prev_raw:
            # drop the longest run of words that ends the previous cue and starts this one
            words_prev, words = prev_raw.split(), text.split()
            for k in range(min(len(words_prev), len(words)), 0, -1):
                if words_prev[-k:] == words[:k]:
                    text = " ".join(words[k:])
                    break
        prev_raw = cue.text
        if text.strip():
            out.append(Cue(cue.start_s, cue.end_s, text.strip()))
    return out


def read_subtitles(path: str | Path) -> list[Cue]:
    """The file's cues, or SubtitleError saying what is wrong with it (the machine's failures pass through)."""
    from vlcurate.pipeline.failures import is_machine_failure

    path = storage.path(path)
    try:
        data = path.read_bytes()
        if b"\x00" in data[:4096]:
            raise ValueError("binary data, not a text file")
        text = data.decode("utf-8-sig", errors="replace")
        cues = _parse_json(text) if path.suffix.lower() == ".json" else _parse_blocks(text)
    except Exception as exc:
        if is_machine_failure(exc):
            raise
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SubtitleError(f"{path.name}: {type(exc).__name__}: {detail}"[:300]) from None
    return dedupe_rolling(sorted(cues, key=lambda c: (c.start_s, c.end_s)))


def slice_cues(cues: list[Cue], start_s: float, end_s: float) -> list[Cue]:
    """Cues that overlap [start_s, end_s)."""
    return [c for c in cues if c.end_s > start_s and c.start_s < end_s]


def cues_text(cues: list[Cue]) -> str:
    return " ".join(c.text for c in cues)
