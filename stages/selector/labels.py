"""Human choices between candidates, joined with the captions manifest: the selector's training examples, and the
held-out split fixed by a hash of the clip id."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa


@dataclass(frozen=True)
class Example:
    """One labelled clip: its frames, its usable candidates in manifest order, and which one people chose."""

    clip_id: str
    frames: list[bytes]
    texts: list[str]
    label: int


LABEL_TEACHER_COLUMNS = ("teacher", "chosen_teacher")
LABEL_TEXT_COLUMNS = ("text", "chosen_text")


def read_labels(path: str | Path) -> dict[str, dict[str, str | None]]:
    """clip id -> {"teacher": ..., "text": ...} from CSV or Parquet with `clip_id` and a `teacher` and/or `text`
    column (`chosen_teacher` / `chosen_text` also accepted): either names the chosen candidate."""
    import csv

    import pyarrow.parquet as pq

    path = Path(path)
    if path.suffix == ".parquet":
        table = pq.read_table(path)
    else:  # csv, not pyarrow's reader: clip ids like 0001 and captions like "3" must stay text
        with path.open(newline="", encoding="utf-8") as f:
            table = pa.Table.from_pylist(list(csv.DictReader(f)))
    columns = set(table.column_names)
    teacher_col = next((c for c in LABEL_TEACHER_COLUMNS if c in columns), None)
    text_col = next((c for c in LABEL_TEXT_COLUMNS if c in columns), None)
    if "clip_id" not in columns or (teacher_col is None and text_col is None):
        raise ValueError(f"{path}: a label table needs a clip_id column and a teacher or text column naming the "
                         f"chosen candidate (found columns: {', '.join(table.column_names) or 'none'})")
    labels: dict[str, dict[str, str | None]] = {}
    for n, row in enumerate(table.to_pylist(), start=1):
        clip = row["clip_id"]
        teacher = _clean(row.get(teacher_col)) if teacher_col else None
        text = _clean(row.get(text_col)) if text_col else None
        if clip is None or str(clip).strip() == "":
            raise ValueError(f"{path}: row {n} has no clip_id")
        clip = str(clip).strip()
        if teacher is None and text is None:
            raise ValueError(f"{path}: row {n} (clip {clip}) names no chosen candidate: both "
                             f"{teacher_col or 'teacher'} and {text_col or 'text'} are empty")
        label = {"teacher": teacher, "text": text}
        if clip in labels and labels[clip] != label:
            raise ValueError(f"{path}: clip {clip} is labelled twice with different choices: {labels[clip]} and "
                             f"{label}")
        labels[clip] = label
    if not labels:
        raise ValueError(f"{path}: no labels")
    return labels


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def join_labels(captions: pa.Table, labels: dict[str, dict[str, str | None]]) -> tuple[list[Example], dict[str, int]]:
    """The labelled clips as training examples, in manifest order, and counts of labelled clips left out because
    they cannot teach a choice (an upstream error, no frames, fewer than two usable candidates).

    Labels that do not match the manifest are errors, listed together: a typo in a label file must not silently
    shrink the training set."""
    rows = {r["clip_id"]: r for r in captions.select(["clip_id", "frames", "candidates", "error"]).to_pylist()}
    unknown = sorted(set(labels) - set(rows))
    if unknown:
        raise ValueError(f"{len(unknown)} labelled clip id(s) are not in the captions manifest, e.g. "
                         f"{', '.join(unknown[:5])}")
    examples: list[Example] = []
    skipped = {"upstream_error": 0, "no_frames": 0, "fewer_than_two_candidates": 0}
    problems: list[str] = []
    for clip_id, row in rows.items():
        if clip_id not in labels:
            continue
        if row["error"]:
            skipped["upstream_error"] += 1
            continue
        if not row["frames"]:
            skipped["no_frames"] += 1
            continue
        usable = [c for c in row["candidates"] or [] if c["status"] == "ok" and c["text"]]
        every = {c["teacher"]: c for c in row["candidates"] or []}
        chosen = _find_choice(clip_id, labels[clip_id], usable, every, problems)
        if chosen is None:
            continue
        if len(usable) < 2:
            skipped["fewer_than_two_candidates"] += 1
            continue
        examples.append(Example(clip_id, list(row["frames"]), [c["text"] for c in usable], chosen))
    if problems:
        raise ValueError(f"{len(problems)} label(s) do not match a usable candidate of their clip:\n  "
                         + "\n  ".join(problems[:10]) + ("\n  ..." if len(problems) > 10 else ""))
    return examples, {k: v for k, v in skipped.items() if v}


def _find_choice(clip_id: str, label: dict[str, str | None], usable: list[dict], every: dict[str, dict],
                 problems: list[str]) -> int | None:
    """Index of the labelled candidate among the usable ones; a problem is recorded when there is none."""
    teacher, text = label["teacher"], label["text"]
    if teacher is not None:
        index = next((i for i, c in enumerate(usable) if c["teacher"] == teacher), None)
        if index is None:
            if teacher in every:
                problems.append(f"{clip_id}: teacher {teacher!r} has status {every[teacher]['status']!r}, "
                                "not a usable candidate")
            else:
                problems.append(f"{clip_id}: no candidate from teacher {teacher!r} (teachers: "
                                f"{', '.join(sorted(every)) or 'none'})")
            return None
        if text is not None and usable[index]["text"].strip() != text:
            problems.append(f"{clip_id}: teacher {teacher!r} wrote {usable[index]['text']!r}, the label says "
                            f"{text!r}")
            return None
        return index
    index = next((i for i, c in enumerate(usable) if c["text"].strip() == text), None)
    if index is None:
        problems.append(f"{clip_id}: no usable candidate has the text {text!r}")
    return index


def is_holdout(clip_id: str, fraction: float) -> bool:
    """A stable split: the same clip is held out whatever the seed, the label file's order or the other clips."""
    digest = hashlib.sha256(clip_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64 < fraction


def split_examples(examples: Sequence[Example], holdout: float) -> tuple[list[Example], list[Example]]:
    train = [e for e in examples if not is_holdout(e.clip_id, holdout)]
    held = [e for e in examples if is_holdout(e.clip_id, holdout)]
    return train, held
