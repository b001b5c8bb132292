"""make bench-caption: each model teacher of the demo through the caption stage against a bare loop of the same
model's generate on the same inputs, in the same run. Writes bench/caption.json.

Both sides get one untimed warm-up (first calls of a model pay one-off costs), then run alternately: at least
`--rounds` times each, and more while a teacher has used less than `--budget` seconds; the best wall time of each
side is kept, the measure least disturbed by whatever else the machine runs. Both run with `--threads` torch threads
(default 1: on a small machine that others also use, two threads stall waiting for each other and swamp the
difference being measured). CPU time of this process is reported beside the wall times.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Callable

import pyarrow as pa

from bench.common import ROOT, clips_with_frames, map_in_process, write_result
from vlcurate.manifests import CLIPS, with_frames
from vlcurate.stages.caption import CaptionConfig, CaptionStage
from vlcurate.stages.caption.stage import clip_input
from vlcurate.stages.caption.teachers import Teacher
from vlcurate.stages.caption.teachers.howtocaption import pack_blocks
from vlcurate.config import load_run_config


def demo_clips(copies: int) -> pa.Table:
    """The demo's clips (frames and subtitles), repeated so each teacher sees enough of them."""
    config = load_run_config("demo")
    clips = clips_with_frames(ROOT / "manifests" / "samples" / "demo.csv", config.split)
    rows = [dict(c, clip_id=f"{c['clip_id']}_{i}") for i in range(copies) for c in clips]
    return pa.Table.from_pylist(rows, schema=with_frames(CLIPS))


def bare_loop(teacher: Teacher, rows: list[dict]) -> None:
    """The model's own preprocessing, generate and decode on the inputs the teacher would build, batch by batch as
    the teacher is configured, without the stage around it."""
    torch = teacher._torch  # type: ignore[attr-defined]
    clips = [clip_input(r) for r in rows]
    size = teacher.config.batch_size
    batches = [clips[i:i + size] for i in range(0, len(clips), size)]
    if teacher.kind == "hf_image_captioner":
        for batch in batches:
            inputs = teacher.processor(images=[c.images(1)[0] for c in batch], return_tensors="pt")
            with torch.inference_mode():
                out = teacher.model.generate(**inputs, **{"max_new_tokens": 30, "do_sample": False,
                                                          **teacher.config.generation})
            teacher.processor.batch_decode(out, skip_special_tokens=True)
    elif teacher.kind == "llm":
        tok = teacher.tokenizer
        for batch in batches:
            texts = [tok.apply_chat_template([{"role": "user", "content": teacher.prompt_for(c)}],
                                             add_generation_prompt=True, tokenize=False) for c in batch]
            inputs = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.inference_mode():
                out = teacher.model.generate(**inputs, **teacher.generation_kwargs())
            tok.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    elif teacher.kind == "howtocaption":
        seen = set()
        for c in clips:
            if c.transcript_key in seen or not c.transcript:
                continue
            seen.add(c.transcript_key)
            for block in pack_blocks(c.transcript, teacher.block_words):
                teacher.generate_block(block)
    elif teacher.kind == "video_lm":
        processor = teacher.processor
        for batch in batches:
            n = teacher.num_frames
            meta = [{"total_num_frames": n, "fps": n / max(c.end_s - c.start_s, 1e-3),
                     "duration": max(c.end_s - c.start_s, 1e-3), "frames_indices": list(range(n))} for c in batch]
            inputs = processor.apply_chat_template(
                [teacher.conversation(c) for c in batch], add_generation_prompt=True, tokenize=True,
                return_dict=True, return_tensors="pt",
                processor_kwargs={"padding": True, "do_sample_frames": False, "video_metadata": meta})
            with torch.inference_mode():
                out = teacher.model.generate(**inputs, **teacher.generation_kwargs())
            processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    else:
        raise ValueError(f"no bare loop for teacher kind {teacher.kind!r}")


def measure(fn: Callable[[], None]) -> tuple[float, float]:
    """Wall and CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--copies", type=int, default=4, help="copies of the demo's clips")
    parser.add_argument("--rounds", type=int, default=3, help="least timed runs of each side, alternating")
    parser.add_argument("--budget", type=float, default=40.0, help="more rounds (at most 12) while under this")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both sides")
    parser.add_argument("--teachers", default="", help="comma-separated demo teacher names (default: all models)")
    args = parser.parse_args()
    os.environ.setdefault("VLCURATE_PROGRESS", "0")
    table = demo_clips(args.copies)
    rows = table.to_pylist()
    wanted = {t for t in args.teachers.split(",") if t}
    results = {}
    for teacher_cfg in load_run_config("demo").caption.teachers:
        if teacher_cfg.kind in ("subtitles", "title") or (wanted and teacher_cfg.name not in wanted):
            continue  # no model: nothing to compare against
        stage = CaptionStage(CaptionConfig(teachers=[teacher_cfg],
                                           resources={"batch_size": 8, "threads": args.threads}))
        stage.ensure_setup()
        teacher = stage.teachers[0]

        def run_stage(data: pa.Table = table, stage: CaptionStage = stage, teacher: Teacher = teacher) -> None:
            if teacher.kind == "howtocaption":
                teacher._blocks, teacher._sentences = {}, {}  # type: ignore[attr-defined]  # a fresh worker
            map_in_process(stage, data)

        warm = min(table.num_rows, teacher_cfg.batch_size)
        run_stage(table.slice(0, warm))
        bare_loop(teacher, rows[:warm])
        stage_runs, bare_runs = [], []
        began = time.perf_counter()
        while len(stage_runs) < args.rounds or (time.perf_counter() - began < args.budget and len(stage_runs) < 12):
            stage_runs.append(measure(run_stage))
            bare_runs.append(measure(lambda teacher=teacher: bare_loop(teacher, rows)))
        stage_s, bare_s = min(w for w, _ in stage_runs), min(w for w, _ in bare_runs)
        stage_cpu, bare_cpu = min(c for _, c in stage_runs), min(c for _, c in bare_runs)
        results[teacher_cfg.name] = {
            "kind": teacher.kind, "model": teacher_cfg.model, "weights": teacher.weights, "clips": len(rows),
            "batch_size": teacher_cfg.batch_size, "rounds": len(stage_runs), "threads": args.threads,
            "stage_s": round(stage_s, 3), "bare_s": round(bare_s, 3),
            "stage_clips_per_s": round(len(rows) / stage_s, 2), "bare_clips_per_s": round(len(rows) / bare_s, 2),
            "stage_over_bare": round(bare_s / stage_s, 3),
            "stage_cpu_s": round(stage_cpu, 3), "bare_cpu_s": round(bare_cpu, 3),
            "stage_over_bare_cpu": round(bare_cpu / stage_cpu, 3),
        }
        print(teacher_cfg.name, results[teacher_cfg.name], flush=True)
    write_result("caption", {"teachers": results, "load_average": [round(x, 2) for x in os.getloadavg()]})


if __name__ == "__main__":
    main()
