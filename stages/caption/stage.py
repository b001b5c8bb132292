"""caption: every configured teacher writes a candidate caption for every clip, side by side.

The stage runs as one part per teacher (`TeacherPass`), each adding its candidate to the rows, so runners give each
teacher its own workers: one after the other locally, an actor pool each under Ray, sized by the teacher's
`resources`. Teachers read the frames and subtitles the rows carry; no video is decoded here.
"""

from __future__ import annotations

import functools
import logging
import time
import traceback
from collections import Counter
from typing import Any

import pyarrow as pa
from pydantic import Field, model_validator

from vlcurate.manifests import CANDIDATE, CAPTIONS, CLIPS, STORED_FRAMES
from vlcurate.pipeline import failures, storage
from vlcurate.pipeline.stage import Context, Output, Resources, Stage, StageConfig, Traits, error_text
from vlcurate.stages import paths, torch_setup
from vlcurate.stages.caption.subtitles import SubtitleError, cues_text, read_subtitles, slice_cues
from vlcurate.stages.caption.teachers import TEACHERS, ClipInput, Teacher, TeacherConfig
from vlcurate.stages.caption.quality import FLAGS, QualityConfig, flags, mark_near_duplicates, verdict
from vlcurate.stages.caption.serving import Generation
from vlcurate.stages.caption.teachers.base import clean_caption
from vlcurate.stages.catalog import STAGES

log = logging.getLogger(__name__)

CANDIDATES = pa.list_(CANDIDATE)
# What a clip's candidates depend on besides the teacher: a rerun keeps a candidate only if these are unchanged.
CLIP_INPUT_COLUMNS = ("frames_digest", "title", "description", "subtitles_path", "start_s", "end_s", "given_caption")
COPY_SOURCES = ("subtitles", "title")  # texts a model teacher must not merely repeat (their baselines do that)


class CaptionConfig(StageConfig):
    teachers: list[TeacherConfig] = Field(default_factory=list, description="teachers to run, each a candidate")
    quality: QualityConfig = Field(default_factory=QualityConfig, description="the caption-quality gate: what "
                                   "each flag does (reject, tag, off) and its thresholds")

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


def subtitles_file(path: str, root: str | None) -> str:
    """Where a clip's subtitles lie: a given file (`pkg:` or a path), or the asr stage's transcript, whose path is
    relative to the run's output folder (`run:asr/transcripts/...`), so manifests do not name the folder."""
    if path.startswith("run:"):
        return str(storage.in_run(path, root))
    return paths.local_path(path)


def clip_input(row: dict[str, Any], subtitles_too: bool = True, root: str | None = None) -> ClipInput:
    """What a teacher sees of a clip; the subtitle file is read only for teachers that read subtitles, so one that
    cannot be parsed costs only their candidates (SubtitleError)."""
    subtitles, transcript = None, []
    if row.get("subtitles_path") and subtitles_too:
        transcript = _cues(subtitles_file(row["subtitles_path"], root))
        subtitles = cues_text(slice_cues(transcript, row["start_s"], row["end_s"])) or None
    return ClipInput(clip_id=row["clip_id"], frames=list(row.get("frames") or []), title=row.get("title"),
                     description=row.get("description"), subtitles=subtitles, start_s=row["start_s"],
                     end_s=row["end_s"], transcript=transcript, transcript_key=row.get("subtitles_path"),
                     transcript_note=row.get("transcript_note"), given=row.get("given_caption"))


def candidate_identity(candidate: dict[str, Any]) -> tuple[str, str, str]:
    return (candidate["teacher"], candidate["model"] or "", candidate["prompt_hash"])


def _set_column(table: pa.Table, name: str, values: list[Any], type_: pa.DataType) -> pa.Table:
    column = pa.array(values, type=type_)
    index = table.schema.get_field_index(name)
    return table.set_column(index, name, column) if index >= 0 else table.append_column(name, column)


class TeacherPass(Stage):
    """One teacher over the clips: adds (or keeps, on a rerun) that teacher's candidate in each row's list."""

    name = "caption"
    config_class = CaptionConfig
    output_schema = CAPTIONS.schema

    config: CaptionConfig

    def __init__(self, teacher: TeacherConfig, resources: Resources, stage: "CaptionStage"):
        own = stage.config.model_copy(update={"teachers": [teacher], "resources": resources})
        super().__init__(own)
        self.teacher: Teacher = TEACHERS.get(teacher.kind)(teacher)
        # the first pass's tasks carry the candidates of the previous run's manifest; frames are loaded only for a
        # teacher that reads them; baselines load no model to keep
        self.traits = Traits(keeps_last_run=True, loads=(STORED_FRAMES,) if "frames" in self.teacher.inputs else (),
                             keeps_loaded=self.teacher.uses_accelerator)
        self.stage = stage
        self.finishes_rows = False  # the stage's last pass finishes the rows (candidate order, clips with none)
        self._loaded = False

    @property
    def label(self) -> str:
        return f"caption:{self.teacher.config.name}"

    def setup(self) -> None:
        """Cheap: the model loads with the first batch that has work for it (`load`), so a rerun that keeps every
        candidate of this teacher loads nothing; a teacher without a model never imports torch."""
        if self.teacher.uses_accelerator:
            torch_setup.set_torch_threads(self.resources.threads)

    def load(self) -> None:
        """The teacher's model, once per worker."""
        if not self._loaded:
            try:
                self.teacher.start(self.resources.gpus)
            except Exception as exc:  # the stage stops; no clip is blamed for a model that will not load
                raise failures.setup_failure(self.label, exc) from exc
            self._loaded = True

    def _candidate(self, text: str | None, status: str, reason: str | None,
                   generation: Generation | None = None) -> dict[str, Any]:
        """No timings in the manifest (they go to stats.json), so reruns and resumes write the same bytes."""
        t = self.teacher
        g = generation or Generation("")
        return {"teacher": t.config.name, "kind": t.kind, "model": t.model_name, "weights": t.weights,
                "inputs": t.inputs, "prompt_hash": t.prompt_hash, "text": text, "status": status, "reason": reason,
                "score": None, "text_truncated": None, "subtitles_from": None, "flags": [],
                "prompt_tokens": g.prompt_tokens, "completion_tokens": g.completion_tokens, "truncated": g.truncated}

    def _finish(self, clip: ClipInput, generation: Generation) -> dict[str, Any]:
        if generation.error:
            return self._candidate(None, "error", generation.error[:300], generation)
        text = clean_caption(generation.text, self.teacher.config.prompt)
        sources = ({name: getattr(clip, name) for name in COPY_SOURCES if name in self.teacher.inputs}
                   if self.teacher.rejects_copies else None)
        gate = self.config.quality
        found = flags(text, gate, sources, self.teacher.instructions, bool(generation.truncated))
        status, reason, raised = verdict(found, gate)
        return {**self._candidate(text, status, reason, generation), "flags": raised}

    def _generate(self, clips: list[ClipInput]) -> list[Generation]:
        """The batch at once; a batch that fails is retried clip by clip so one bad clip costs only its own
        candidate (a machine failure stops the task instead)."""
        teacher = self.teacher
        try:
            out = teacher.generate(clips)
            if len(out) != len(clips):
                raise RuntimeError(f"{teacher.kind} returned {len(out)} captions for {len(clips)} clips")
            return out
        except Exception as exc:
            if failures.is_machine_failure(exc) or isinstance(exc, failures.UserError):
                raise
            if len(clips) == 1:
                traceback.print_exc()
                return [Generation("", error=f"{type(exc).__name__}: {exc}")]
        return [self._generate([clip])[0] for clip in clips]

    def run_teacher(self, clips: list[ClipInput]) -> list[dict[str, Any]]:
        """In batches of the teacher's batch_size (a served backend takes the whole task's clips at once and keeps
        `server.in_flight` requests open, so no fixed chunk drains half idle)."""
        teacher = self.teacher
        out: list[dict[str, Any] | None] = [None] * len(clips)
        todo = []
        for i, clip in enumerate(clips):
            if teacher.can_caption(clip):
                todo.append(i)
            else:
                missing = teacher.missing_inputs(clip)
                why = f" ({clip.transcript_note})" if "subtitles" in missing and clip.transcript_note else ""
                out[i] = self._candidate(None, "rejected", "no_input: " + ",".join(missing) + why)
        size = len(todo) if teacher.engine is not None else teacher.config.batch_size
        for start in range(0, len(todo), max(size, 1)):
            chunk = todo[start:start + size]
            for i, generation in zip(chunk, self._generate([clips[i] for i in chunk])):
                out[i] = self._finish(clips[i], generation)
        return out  # type: ignore[return-value]

    def process_batch(self, batch: pa.Table, ctx: Context = Context()) -> Output:
        """Only the candidates and error columns change; the rest of the batch (frames included) passes through as
        Arrow, never converted to Python and back. Counts: the teacher's generation seconds and the tokens it
        wrote in them (for its tokens/s)."""
        self.ensure_setup()
        seconds, tokens = 0.0, 0
        errors = batch.column("error").to_pylist()
        has_candidates = "candidates" in batch.column_names
        candidates = batch.column("candidates").to_pylist() if has_candidates else [None] * batch.num_rows
        identity = self.teacher.identity
        name = identity[0]
        todo: list[int] = []
        for i, error in enumerate(errors):
            if error:
                continue
            mine = [c for c in candidates[i] or [] if c["teacher"] == name]
            candidates[i] = [c for c in candidates[i] or [] if c["teacher"] != name]
            if mine and candidate_identity(mine[0]) == identity and mine[0]["status"] != "error":
                candidates[i].append(mine[0])  # this (teacher, prompt) pair is already done: kept as it was
            else:
                todo.append(i)
        if todo:
            needed = ["clip_id", "start_s", "end_s", "title", "description", "subtitles_path", "subtitles_source",
                      "transcript_note", "given_caption"]
            if "frames" in self.teacher.inputs:
                needed.append("frames")
            rows = batch.select([c for c in needed if c in batch.column_names]).take(pa.array(todo)).to_pylist()
            clips, computed = [], []
            reads_subtitles = "subtitles" in self.teacher.inputs
            sources: dict[int, str | None] = {}
            for i, row in zip(todo, rows):
                if reads_subtitles and row.get("subtitles_path"):
                    sources[i] = row.get("subtitles_source") or "file"
                try:
                    clips.append(clip_input(row, reads_subtitles, ctx.root))
                    computed.append(i)
                except SubtitleError as exc:  # the sidecar's fault, for this teacher's candidate only
                    candidates[i].append({**self._candidate(None, "rejected", f"bad_subtitles: {exc}"),
                                          "subtitles_from": sources.get(i)})
                except Exception as exc:
                    if failures.is_machine_failure(exc):
                        raise
                    errors[i] = error_text(self.name, "bad_input", f"{type(exc).__name__}: {exc}")
            if clips:
                self.load()
            began = time.perf_counter()
            for i, candidate in zip(computed, self.run_teacher(clips)):
                candidates[i].append({**candidate, "subtitles_from": sources.get(i)})
                tokens += candidate["completion_tokens"] or 0
            seconds = time.perf_counter() - began
        batch = _set_column(_set_column(batch, "candidates", candidates, CANDIDATES), "error", errors, pa.string())
        # the stage's last pass completes the rows
        name = self.teacher.config.name
        return Output(self.stage.finish_rows(batch) if self.finishes_rows else batch,
                      counts={"teacher_seconds": {name: seconds}, "teacher_tokens": {name: tokens}})

    def carry_last_run(self, table: pa.Table, last_run: list[str]) -> Output:
        """The candidates of the last run's manifest (its parts, only the rows of this part's clips) whose clip
        inputs are unchanged: each pass keeps the ones whose (teacher, model, prompt) it would write again."""
        carried, kept = carry_candidates(table, last_run, {t.identity for t in self.stage.teachers})
        return Output(carried, counts={"candidates_kept_from_previous_run": kept})


def carry_candidates(table: pa.Table, previous: list[str], wanted: set) -> tuple[pa.Table, int]:
    """`table` with a `candidates` column from the previous manifest's rows of the same clips (read by clip id,
    only the columns compared), and how many candidates of the current teachers that keeps."""
    import pyarrow.compute as pc

    from vlcurate.pipeline.parts import iter_parts

    columns = ["clip_id", *CLIP_INPUT_COLUMNS, "candidates"]
    ids = pa.array([i for i in table.column("clip_id").to_pylist() if i], pa.string())
    try:  # part by part, through the storage layer: the previous manifest may be on a store
        old = pa.concat_tables([part.filter(pc.is_in(part.column("clip_id"), value_set=ids))
                                for part in iter_parts([storage.path(p) for p in previous], columns)])
    except Exception as exc:  # a damaged or foreign file only costs the reuse
        log.warning("caption: cannot read the previous manifest (%s); redoing everything", exc)
        return table, 0
    earlier = {row["clip_id"]: row for row in old.to_pylist()}
    kept = 0
    carried: list[list[dict[str, Any]] | None] = []
    for row in table.select(["clip_id", "error", *CLIP_INPUT_COLUMNS]).to_pylist():
        before = earlier.get(row["clip_id"])
        if row["error"] or before is None or any(before[k] != row[k] for k in CLIP_INPUT_COLUMNS):
            carried.append(None)
            continue
        keep = [c for c in before["candidates"] or [] if c["status"] != "error"]
        kept += sum(1 for c in keep if candidate_identity(c) in wanted)
        carried.append(keep or None)
    return _set_column(table, "candidates", carried, CANDIDATES), kept


@STAGES.register("caption")
class CaptionStage(Stage):
    config_class = CaptionConfig
    reads = CLIPS
    summary = "Run every configured teacher on every clip; each writes one candidate caption."
    output_schema = CAPTIONS.schema
    traits = Traits(keeps_last_run=True)

    config: CaptionConfig

    def __init__(self, config: CaptionConfig | None = None):
        super().__init__(config)
        self._passes: list[TeacherPass] | None = None

    def passes(self) -> list[TeacherPass]:  # type: ignore[override]
        """One pass per teacher, each with the stage's resources overridden by the teacher's own (and the stage's
        output schema: every pass writes the same columns)."""
        if not self.config.teachers:
            raise ValueError("caption: no teachers configured (set caption.teachers)")
        if self._passes is None:
            self._passes = [TeacherPass(t, t.merged_resources(self.resources), self)
                            for t in self.config.teachers]
            self._passes[-1].finishes_rows = True
        for p in self._passes:
            p.schema = self.schema
        return self._passes

    @property
    def teachers(self) -> list[Teacher]:
        return [p.teacher for p in self.passes()]

    def setup(self) -> None:
        for p in self.passes():
            p.ensure_setup()
            p.load()

    def process_batch(self, batch: pa.Table, ctx: Context = Context()) -> pa.Table:
        """Every teacher on one batch in this process (runners map the passes instead, each with its own workers)."""
        self.ensure_setup()
        for p in self.passes():
            batch = Output.of(p.process_batch(batch, ctx)).table
        return self.finish_rows(batch)

    def finish_rows(self, table: pa.Table) -> pa.Table:
        """Candidates in the configured teacher order (any left from teachers no longer configured, or from an older
        prompt, dropped), near-duplicates of an earlier teacher's flagged; a clip without a single good candidate
        becomes an error row."""
        order = {t.identity: k for k, t in enumerate(self.teachers)}
        errors = table.column("error").to_pylist()
        candidates = table.column("candidates").to_pylist()
        for i, error in enumerate(errors):
            if error:
                continue
            ranked = sorted((c for c in candidates[i] or [] if candidate_identity(c) in order),
                            key=lambda c: order[candidate_identity(c)])
            mark_near_duplicates(ranked, self.config.quality)  # across teachers: only here, once all have written
            candidates[i] = ranked
            if not any(c["status"] == "ok" for c in ranked):
                errors[i] = error_text(self.name, "no_caption", "every teacher failed or was rejected")
        table = _set_column(table, "candidates", candidates, CANDIDATES)
        return _set_column(table, "error", errors, pa.string())

    def stats(self, view: Any) -> dict[str, Any]:
        """Candidates by teacher and status (each teacher's generation time is in `teacher_seconds`)."""
        per_teacher: dict[str, Counter] = {}
        reasons: Counter = Counter()
        flagged: dict[str, Counter] = {}
        for part in view.parts(["candidates"]):
            for candidates in part.column("candidates").to_pylist():
                for c in candidates or []:
                    per_teacher.setdefault(c["teacher"], Counter())[c["status"]] += 1
                    if c["status"] != "ok" and c["reason"]:
                        reasons[f"{c['teacher']}/{c['reason'].split(':')[0]}"] += 1
                    flagged.setdefault(c["teacher"], Counter()).update(c.get("flags") or [])
        gate = self.config.quality
        return {"teachers": {name: dict(counts) for name, counts in sorted(per_teacher.items())},
                "candidates_not_ok_by_reason": dict(sorted(reasons.items())),
                # the caption-quality gate: per teacher, candidates that raised each flag (rejected or tagged)
                "quality_flags": {name: dict(sorted(c.items())) for name, c in sorted(flagged.items())},
                "quality_actions": {flag: gate.action(flag) for flag in FLAGS}}
