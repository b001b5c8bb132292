from __future__ import annotations

import io
import math

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from tests.fixtures import solid_jpeg
from vlcurate.manifests import CAPTIONS, with_frames
from tests.fixtures import TableView
from vlcurate.stages.score import ScoreConfig, ScoreStage
from vlcurate.stages.scorers import SCORERS, ScorerConfig
from vlcurate.stages.media import sample_frames


jpeg = solid_jpeg


def decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


EIGHT = [jpeg((30 * i, 255 - 30 * i, 10 * i)) for i in range(8)]
FOUR = [jpeg((255, 0, 0)), jpeg((0, 0, 255)), jpeg((0, 255, 0)), jpeg((200, 200, 0))]
LONG = "a person " * 100


@pytest.fixture(scope="module")
def scorer():
    s = SCORERS.get("xclip")(ScorerConfig(kind="xclip", model="tiny:xclip", batch_size=16))
    s.setup()
    return s


def test_sample_frames_repeats_or_thins_evenly_in_time_order():
    assert sample_frames(4, 8) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert sample_frames(8, 8) == list(range(8))
    assert sample_frames(16, 8) == [1, 3, 5, 7, 9, 11, 13, 15]
    assert sample_frames(1, 8) == [0] * 8
    assert sample_frames(3, 8) == [0, 0, 0, 1, 1, 2, 2, 2]
    with pytest.raises(ValueError, match="no stored frames"):
        sample_frames(0, 8)


def test_score_is_xclip_logits_per_video_over_logit_scale(scorer):
    import torch

    texts = [["a red square", "a blue circle"], ["green grass", LONG, "x"]]
    scores = scorer.score_pairs([EIGHT, FOUR], texts)
    assert [len(s) for s in scores] == [2, 3] and all(np.isfinite(s).all() for s in scores)

    # the reference: the model's own forward on hand-built videos (FOUR repeated to 8 frames) and all texts
    videos = [[decode(f) for f in EIGHT], [decode(FOUR[i]) for i in (0, 0, 1, 1, 2, 2, 3, 3)]]
    flat = texts[0] + texts[1]
    inputs = scorer.processor(text=flat, videos=videos, return_tensors="pt", padding=True, truncation=True,
                              max_length=77)
    with torch.inference_mode():
        out = scorer.model(**inputs)
        reference = (out.logits_per_video / scorer.model.logit_scale.exp()).numpy()
    np.testing.assert_allclose(scores[0], reference[0, :2], atol=1e-5)
    np.testing.assert_allclose(scores[1], reference[1, 2:], atol=1e-5)

    # the video embedding is the forward's; the text side is video-conditioned, so not a plain cosine
    video = scorer.embed_clips([EIGHT, FOUR])
    np.testing.assert_allclose(video, out.video_embeds.numpy(), atol=1e-5)
    with torch.inference_mode():
        tokens = scorer.tokenizer(texts[0], padding=True, return_tensors="pt")
        plain = torch.nn.functional.normalize(scorer.model.get_text_features(**tokens).pooler_output, dim=-1)
    assert not np.allclose(video[0] @ plain.numpy().T, scores[0], atol=1e-4)
    with pytest.raises(NotImplementedError, match="score_pairs"):
        scorer.embed_texts(["a"])


def test_scores_do_not_depend_on_the_batch_and_long_texts_are_cut_and_recorded(scorer):
    together = scorer.score_pairs([EIGHT, FOUR, [jpeg((1, 2, 3))]], [["a red square"], [LONG, "x"], []])
    alone = scorer.score_pairs([FOUR], [[LONG, "x"]])
    np.testing.assert_allclose(together[1], alone[0], atol=1e-6)
    assert together[2].shape == (0,)
    assert scorer.truncated(LONG) and not scorer.truncated("a red square")
    assert scorer.num_frames == 8 and scorer.label == "xclip:tiny:xclip@untrained"


def captions_table(texts: list[str], frames: list[list[bytes]]) -> pa.Table:
    rows = []
    for i, clip_frames in enumerate(frames):
        candidates = [{"teacher": f"t{j}", "kind": "k", "model": "m", "weights": "w", "inputs": [],
                       "prompt_hash": "h", "text": t, "status": "ok", "reason": None, "seconds": 0.0, "score": None,
                       "text_truncated": None} for j, t in enumerate(texts)]
        candidates[-1]["status"] = "rejected"
        rows.append({"clip_id": f"c{i}", "path": "/v", "start_frame": i, "start_s": 0.0, "end_s": 1.0,
                     "frames": clip_frames, "candidates": candidates, "error": None})
    return pa.Table.from_pylist(rows, schema=with_frames(CAPTIONS))


def test_score_stage_runs_xclip_end_to_end_deterministically():
    texts = ["a red square", LONG, "a blue circle", "rejected"]
    table = captions_table(texts, [EIGHT, FOUR, FOUR[:1]])
    config = ScoreConfig(scorer={"kind": "xclip", "model": "tiny:xclip", "batch_size": 16})
    stage = ScoreStage(config)
    first = stage.process_batch(table).to_pylist()
    second = ScoreStage(config).process_batch(table).to_pylist()
    assert first == second
    for row in first:
        scores = [c["score"] for c in row["candidates"]]
        assert scores[3] is None and all(math.isfinite(s) and -1 <= s <= 1 for s in scores[:3])
        assert row["error"] is None and row["caption_score"] == max(scores[:3])
        assert [c["text_truncated"] for c in row["candidates"][:3]] == [False, True, False]
        assert row["scorer"] == "xclip:tiny:xclip@untrained"
    assert first[1]["candidates"][0]["score"] != first[0]["candidates"][0]["score"]  # the video matters
    stats = stage.stats(TableView(pa.Table.from_pylist(first, schema=stage.schema)))
    assert stats["clips_scored"] == 3 and stats["texts_truncated"] == {"t1": 3}
