"""make bench-caption: each teacher kind through the caption stage against a bare loop of the same model's
generate on the same inputs, in the same run. Writes bench/caption.json."""

from __future__ import annotations

import argparse

import pyarrow as pa

from bench.common import ROOT, timed, write_result
from manifests import CLIPS
from pipeline.runners import LocalRunner
from stages.caption import CaptionConfig, CaptionStage
from stages.caption.stage import clip_input
from stages.caption.teachers.howtocaption import pack_blocks
from stages.config import load_run_config
from stages.ingest import IngestStage, discover
from stages.split import SplitStage


def demo_clips(repeat: int) -> pa.Table:
    """The demo's clips (frames and subtitles), repeated so each teacher sees enough of them."""
    config = load_run_config("demo")
    videos = LocalRunner().map(IngestStage(), discover(ROOT / "manifests" / "samples" / "demo.csv"))
    clips = LocalRunner().map(SplitStage(config.split), videos).to_pylist()
    rows = [dict(c, clip_id=f"{c['clip_id']}_{i}") for i in range(repeat) for c in clips]
    return pa.Table.from_pylist(rows, schema=CLIPS.schema)


def bare_loop(teacher, rows: list[dict]) -> None:
    """The model's own generate on the inputs the teacher would build, without the stage around it."""
    torch = teacher._torch
    clips = [clip_input(r) for r in rows]
    if teacher.kind == "hf_image_captioner":
        for i in range(0, len(clips), teacher.config.batch_size):
            images = [c.images(1)[0] for c in clips[i:i + teacher.config.batch_size]]
            inputs = teacher.processor(images=images, return_tensors="pt")
            with torch.inference_mode():
                out = teacher.model.generate(**inputs, **{"max_new_tokens": 30, "do_sample": False,
                                                          **teacher.config.generation})
            teacher.processor.batch_decode(out, skip_special_tokens=True)
    elif teacher.kind == "llm":
        for c in clips:
            text = teacher.tokenizer.apply_chat_template([{"role": "user", "content": teacher.prompt_for(c)}],
                                                         add_generation_prompt=True, tokenize=False)
            inputs = teacher.tokenizer([text], return_tensors="pt", add_special_tokens=False)
            with torch.inference_mode():
                out = teacher.model.generate(**inputs, do_sample=False, pad_token_id=teacher.tokenizer.pad_token_id,
                                             **{"max_new_tokens": 40, **teacher.config.generation})
            teacher.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    elif teacher.kind == "howtocaption":
        seen = set()
        for c in clips:
            if c.transcript_key in seen or not c.transcript:
                continue
            seen.add(c.transcript_key)
            for block in pack_blocks(c.transcript, teacher.block_words):
                teacher.generate_block(block)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2, help="copies of the demo's clips")
    args = parser.parse_args()
    table = demo_clips(args.repeat)
    rows = table.to_pylist()
    results = {}
    for teacher_cfg in load_run_config("demo").caption.teachers:
        if teacher_cfg.kind in ("subtitles", "title"):
            continue  # no model: nothing to compare against
        stage = CaptionStage(CaptionConfig(teachers=[teacher_cfg], resources={"batch_size": 8}))
        stage.ensure_setup()
        teacher = stage.teachers[0]
        if teacher.kind == "howtocaption":
            def run_stage(stage=stage, teacher=teacher):
                teacher._blocks, teacher._sentences = {}, {}  # a fresh worker each time: blocks generate again
                LocalRunner().map(stage, table)
        else:
            def run_stage(stage=stage):
                LocalRunner().map(stage, table)
        stage_s = timed(run_stage)
        bare_s = timed(lambda teacher=teacher: bare_loop(teacher, rows))
        results[teacher_cfg.name] = {"kind": teacher.kind, "model": teacher_cfg.model, "weights": teacher.weights,
                                     "clips": len(rows), "stage_s": round(stage_s, 3), "bare_s": round(bare_s, 3),
                                     "stage_clips_per_s": round(len(rows) / stage_s, 2),
                                     "stage_over_bare": round(bare_s / stage_s, 3)}
    write_result("caption", {"teachers": results})


if __name__ == "__main__":
    main()
