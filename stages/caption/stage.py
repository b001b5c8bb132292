"""caption: every configured teacher writes a candidate caption for every clip, side by side."""

from __future__ import annotations

import functools
import time
import traceback
from collections import Counter
from typing import Any

import pyarrow as pa
from pydantic import Field, model_validator

from manifests import CAPTIONS
from pipeline.stage import Stage, StageConfig, error_text
from stages import models
from stages.caption.subtitles import cues_text, read_subtitles, slice_cues
from stages.caption.teachers import TEACHERS, ClipInput, Teacher, TeacherConfig
from stages.caption.teachers.base import clean_caption, rejection_reason


class CaptionConfig(StageConfig):
    teachers: list[TeacherConfig] = Field(default_factory=list, description="teachers to run, each a candidate")

    @model_validator(mode="after")
    def _check(self) -> "CaptionConfig":
        names = [t.name for t in self.teachers]
        dupes = sorted(n for n, c in Counter(names).items() if c > 1)
        if dupes:
            raise ValueError(f"teacher names must be unique: {dupes}")
        for t in self.teachers:
            TEACHERS.get(t.kind)
        return self


@functools.lru_cache(maxsize=64)
def _cues(path: str):
    return read_subtitles(path)


def clip_input(row: dict[str, Any]) -> ClipInput:
    subtitles, transcript = None, []
    if row.get("subtitles_path"):
        transcript = _cues(row["subtitles_path"])
        subtitles = cues_text(slice_cues(transcript, row["start_s"], row["end_s"])) or None
    return ClipInput(clip_id=row["clip_id"], frames=list(row.get("frames") or []), title=row.get("title"),
                     description=row.get("description"), subtitles=subtitles, start_s=row["start_s"],
                     end_s=row["end_s"], transcript=transcript, transcript_key=row.get("subtitles_path"))


class CaptionStage(Stage):
    name = "caption"
    config_class = CaptionConfig
    input_stage = "split"
    output_schema = CAPTIONS.schema
    sort_keys = ("path", "start_frame")

    config: CaptionConfig

    def setup(self) -> None:
        if not self.config.teachers:
            raise ValueError("caption: no teachers configured")
        models.set_torch_threads(self.resources.threads)
        self.teachers: list[Teacher] = []
        for cfg in self.config.teachers:
            teacher = TEACHERS.get(cfg.kind)(cfg)
            teacher.setup()
            self.teachers.append(teacher)

    def _candidate(self, teacher: Teacher, text: str | None, status: str, reason: str | None,
                   seconds: float) -> dict[str, Any]:
        return {"teacher": teacher.config.name, "kind": teacher.kind, "model": teacher.model_name,
                "weights": teacher.weights, "inputs": teacher.inputs, "prompt_hash": teacher.prompt_hash,
                "text": text, "status": status, "reason": reason, "seconds": round(seconds, 4), "score": None,
                "text_truncated": None}

    def _run_teacher(self, teacher: Teacher, clips: list[ClipInput]) -> list[dict[str, Any]]:
        """Batched; a batch that fails is retried clip by clip so one bad clip costs only its own candidate."""
        out: list[dict[str, Any] | None] = [None] * len(clips)
        todo = []
        for i, clip in enumerate(clips):
            if teacher.usable(clip):
                todo.append(i)
            else:
                out[i] = self._candidate(teacher, None, "rejected", "no_input: " + ",".join(
                    teacher.missing_inputs(clip)), 0.0)
        size = teacher.config.batch_size
        for start in range(0, len(todo), size):
            chunk = todo[start:start + size]
            try:
                began = time.perf_counter()
                texts = teacher.caption([clips[i] for i in chunk])
                per_clip = (time.perf_counter() - began) / len(chunk)
                results = [(t, per_clip, None) for t in texts]
            except Exception:
                results = []
                for i in chunk:
                    began = time.perf_counter()
                    try:
                        results.append((teacher.caption([clips[i]])[0], time.perf_counter() - began, None))
                    except Exception as exc:
                        traceback.print_exc()
                        results.append((None, time.perf_counter() - began, f"{type(exc).__name__}: {exc}"))
            for i, (raw, seconds, failure) in zip(chunk, results):
                if failure:
                    out[i] = self._candidate(teacher, None, "error", failure[:300], seconds)
                    continue
                text = clean_caption(raw, teacher.config.prompt)
                reason = rejection_reason(text)
                out[i] = self._candidate(teacher, text, "rejected" if reason else "ok", reason, seconds)
        return out  # type: ignore[return-value]

    def process_batch(self, batch: pa.Table) -> pa.Table:
        self.ensure_setup()
        rows = batch.to_pylist()
        live = [i for i, r in enumerate(rows) if not r.get("error")]
        clips = []
        for i in live:
            try:
                clips.append(clip_input(rows[i]))
            except Exception as exc:
                rows[i]["error"] = error_text(self.name, "bad_input", f"{type(exc).__name__}: {exc}")
        live = [i for i in live if not rows[i].get("error")]
        per_teacher = [self._run_teacher(t, clips) for t in self.teachers]
        for j, i in enumerate(live):
            rows[i]["candidates"] = [results[j] for results in per_teacher]
            if not any(c["status"] == "ok" for c in rows[i]["candidates"]):
                rows[i]["error"] = error_text(self.name, "no_caption", "every teacher failed or was rejected")
        return self.to_table(rows)

    def stats(self, table: pa.Table) -> dict[str, Any]:
        per_teacher: dict[str, Counter] = {}
        seconds: dict[str, float] = {}
        for candidates in table.column("candidates").to_pylist():
            for c in candidates or []:
                per_teacher.setdefault(c["teacher"], Counter())[c["status"]] += 1
                seconds[c["teacher"]] = seconds.get(c["teacher"], 0.0) + (c["seconds"] or 0.0)
        return {"teachers": {name: {**dict(counts), "seconds": round(seconds[name], 3)}
                             for name, counts in sorted(per_teacher.items())}}
