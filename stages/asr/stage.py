"""asr: a timestamped transcript of each video's speech, for videos that came without a subtitle file.

Each video's audio is demuxed and decoded alone (its video stream is never decoded again), transcribed once per
worker, and written as `asr/transcripts/<video_id>-<digest>.json` in Whisper's `{"segments": [...]}` shape, which
the subtitle reader already reads; the video's clips then point to it (`subtitles_path: run:asr/...`,
`subtitles_source: asr`), so every teacher that reads subtitles uses it unchanged. No audio, silence or unreadable
audio give an empty transcript and a reason (`transcript_note`), never an error: the clip is still a clip.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import Field, field_validator

from vlcurate.manifests import CLIPS
from vlcurate.pipeline import atomic, failures, storage
from vlcurate.pipeline.batches import add_counts
from vlcurate.pipeline.stage import Context, Output, Resources, Stage, StageConfig, passed_through
from vlcurate.stages import media
from vlcurate.stages.asr.backends import BACKENDS, Backend, Transcript
from vlcurate.stages.catalog import STAGES
from vlcurate.stages.models import WHISPER_BASE
from vlcurate.stages.paths import source_path

FOLDER = "transcripts"


class AsrConfig(StageConfig):
    backend: str = Field("faster_whisper", description="faster_whisper (CTranslate2) or transformers")
    model: str = Field(WHISPER_BASE, description="faster_whisper: a size name (base, large-v3), a CTranslate2 folder "
                                                 "or pkg: path; transformers: a hub id or folder, or tiny:whisper")
    language: str | None = Field(None, description="e.g. en; null detects it per video")
    vad: bool = Field(True, description="skip non-speech with Silero VAD (faster_whisper): silence gives no words")
    beam_size: int = Field(5, ge=1)
    word_timestamps: bool = False
    compute_type: str = Field("int8", description="faster_whisper: int8, float16, float32...; transformers: "
                                                  "float32 or float16 (GPU)")
    device: str = "auto"
    chunk_length_s: float = Field(30.0, gt=0, description="transformers: audio chunk length")
    batch_size: int = Field(4, ge=1, description="transformers: chunks per forward pass")
    force: bool = Field(False, description="transcribe videos that came with a subtitle file too (replacing it)")
    resources: Resources = Field(default_factory=lambda: Resources(batch_size=64))

    @field_validator("backend")
    @classmethod
    def _known(cls, value: str) -> str:
        BACKENDS.get(value)
        return value


@STAGES.register("asr")
class AsrStage(Stage):
    config_class = AsrConfig
    reads = CLIPS
    summary = "Speech to timestamped transcripts (Whisper) for videos without a subtitle file; teachers read them."
    output_schema = CLIPS.schema

    config: AsrConfig

    def __init__(self, config: AsrConfig | None = None):
        super().__init__(config)
        self.backend: Backend = BACKENDS.get(self.config.backend)(self.config)
        # a cache, not an output: video -> (path, note) of the transcripts this worker wrote
        self._done: OrderedDict[str, tuple[str | None, str | None]] = OrderedDict()

    def set_input_schema(self, input_schema: pa.Schema) -> None:
        """Its output is its input as it came, with transcripts where there were no subtitles."""
        self.schema = passed_through(input_schema, self.traits)

    def setup(self) -> None:
        self.backend.setup(self.resources.threads)

    def process_batch(self, batch: pa.Table, ctx: Context = Context()) -> Output:
        """Rows of the same video share one transcript (a video cut across two batches is transcribed once per
        worker; across two tasks, twice, into the same bytes)."""
        self.ensure_setup()
        rows = batch.to_pylist()
        counts: dict[str, Any] = {}
        for row in rows:
            if row.get("error") or not row.get("video_id"):
                continue
            if row.get("subtitles_source") == "file" and not self.config.force:
                continue
            path, note = self._transcript(row, ctx, counts)
            if row.get("subtitles_source") == "file" and note is not None:
                row["transcript_note"] = note  # forced, but ASR found no words: the given file stays
                continue
            row.update(subtitles_path=path, subtitles_source="asr", transcript_note=note)
        return Output(pa.Table.from_pylist(rows, schema=self.schema), counts={"asr": counts} if counts else {})

    def _transcript(self, row: dict[str, Any], ctx: Context, counts: dict[str, Any]) -> tuple[str | None, str | None]:
        video = row["video_id"]
        if video not in self._done:
            self._done[video] = self._transcribe(row, ctx, counts)
            while len(self._done) > 256:
                self._done.popitem(last=False)
        return self._done[video]

    def _transcribe(self, row: dict[str, Any], ctx: Context, counts: dict[str, Any]) -> tuple[str | None, str | None]:
        """(run:-relative transcript path, note); the note says why there are no words."""
        video = row["video_id"]
        transcript, note, seconds = Transcript(), None, 0.0
        if not row.get("has_audio"):
            note = "asr/no_audio: the video has no audio stream"
        else:
            try:
                with storage.media_input(source_path(row, ctx.root)) as source:
                    audio = media.read_audio(source)
            except media.AudioError as exc:
                audio, note = None, f"asr/audio_unreadable: {exc}"
            if audio is not None:
                seconds = len(audio) / media.SAMPLE_RATE
                began = time.perf_counter()
                transcript = self._run_backend(audio, row) if len(audio) else transcript
                add_counts(counts, {"asr_seconds": time.perf_counter() - began, "audio_seconds": seconds})
                if not transcript.segments:
                    note = f"asr/silence: no speech found in {seconds:.1f} s of audio"
        return self._write(storage.path(ctx.stage_dir or ".") / FOLDER, video, transcript, note, seconds), note

    def _run_backend(self, audio, row: dict[str, Any]) -> Transcript:
        try:
            return self.backend.transcribe(audio)
        except Exception as exc:
            if failures.is_machine_failure(exc):
                raise failures.as_machine_error(exc, f"{self.label}: {row.get('path')}") from exc
            raise

    def _write(self, folder: Path, video: str, transcript: Transcript, note: str | None, seconds: float) -> str:
        """The transcript file, named by its content (a new model or option gives a new name, so caption reruns
        see a changed input); written atomically, the same bytes whichever worker writes it."""
        payload = {"segments": transcript.segments, "language": transcript.language,
                   "language_probability": transcript.language_probability, "backend": self.backend.name,
                   "model": self.backend.model_name, "weights": self.backend.weights, "audio": media.audio.HOW,
                   "audio_seconds": round(seconds, 3), "note": note,
                   "options": self.config.model_dump(include={"language", "vad", "beam_size", "word_timestamps",
                                                              "compute_type"})}
        data = (json.dumps(payload, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()
        name = f"{video}-{hashlib.sha256(data).hexdigest()[:12]}.json"
        target = folder / name
        if not target.exists():
            atomic.atomic_write_bytes(target, data)
        return f"run:{self.name}/{FOLDER}/{name}"

    def stats(self, view: Any) -> dict[str, Any]:
        """Videos by what ASR made of them (each counted once, from the manifest), how audio was read, and the
        real-time factor (transcription seconds per second of audio)."""
        videos: dict[str, str] = {}
        for part in view.parts(["video_id", "subtitles_source", "transcript_note", "error"]):
            for row in part.to_pylist():
                if row["error"] or not row["video_id"]:
                    continue
                state = ("subtitle_file" if row["subtitles_source"] == "file" else
                         row["transcript_note"].split(":")[0].split("/")[-1] if row["transcript_note"] else
                         "transcribed")
                videos[row["video_id"]] = state
        timing: dict[str, Any] = {}
        for record in view.records:
            add_counts(timing, (record.get("counts") or {}).get("asr") or {})
        audio_s = timing.get("audio_seconds") or 0.0
        return {"videos": {k: sum(1 for v in videos.values() if v == k) for k in sorted(set(videos.values()))},
                "audio_read": media.audio.HOW, "backend": self.backend.name, "model": self.config.model,
                "audio_seconds": round(audio_s, 3),
                "real_time_factor": round(timing.get("asr_seconds", 0.0) / audio_s, 4) if audio_s else None}
