from __future__ import annotations


import numpy as np
import pyarrow as pa
import pytest

from tests.fixtures import solid_jpeg
from vlcurate.manifests import CAPTIONS, SCORED, with_frames
from tests.fixtures import TableView
from vlcurate.stages.score import ScoreConfig, ScoreStage
from vlcurate.stages.score.stage import choose


def cand(teacher, score, status="ok", text="t"):
    return {"teacher": teacher, "status": status, "score": score, "text": text}


def test_choose_prefers_highest_and_breaks_ties_by_teacher_order():
    assert choose([cand("a", 0.1), cand("b", 0.3), cand("c", 0.2)])["teacher"] == "b"
    assert choose([cand("a", 0.3), cand("b", 0.3)])["teacher"] == "a"
    assert choose([cand("a", 0.9, status="rejected"), cand("b", 0.1)])["teacher"] == "b"
    assert choose([cand("a", None, status="error")]) is None


def jpeg(color):
    return solid_jpeg(color, (64, 48))


def test_every_candidate_is_scored_and_the_best_chosen():
    texts = ["a red square", "a blue circle", "x"]
    candidates = [{"teacher": f"t{i}", "kind": "k", "model": "m", "weights": "w", "inputs": [], "prompt_hash": "h",
                   "text": t, "status": "ok", "reason": None, "seconds": 0.0, "score": None}
                  for i, t in enumerate(texts)]
    candidates[2]["status"] = "rejected"
    rows = [{"clip_id": f"c{i}", "path": "/v", "start_frame": i, "start_s": 0.0, "end_s": 1.0,
             "frames": [jpeg((255, 0, 0)), jpeg((0, 0, 255))], "candidates": candidates, "error": None}
            for i in range(2)]
    stage = ScoreStage(ScoreConfig(scorer={"kind": "open_clip", "model": "tiny:open_clip"}))
    out = stage.process_batch(pa.Table.from_pylist(rows, schema=WITH_FRAMES)).to_pylist()
    for row in out:
        scores = [c["score"] for c in row["candidates"]]
        assert scores[2] is None and all(-1 <= s <= 1 for s in scores[:2])
        assert row["caption_score"] == max(scores[:2])
        assert row["caption"] == texts[int(np.argmax(scores[:2]))]
        assert row["scorer"] == "open_clip:tiny:open_clip@untrained"
    emb = stage.scorer.embed_texts(["a", "b"])
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # the default score_pairs is the per-pair cosine of the separate embeddings, exactly (dual encoders' scores
    # must not move when the stage goes through the hook)
    clips = [rows[0]["frames"], [jpeg((0, 255, 0))]]
    pairs = stage.scorer.score_pairs(clips, [["a", "b"], ["c"]])
    clip_emb = stage.scorer.embed_clips(clips)
    text_emb = stage.scorer.embed_texts(["a", "b", "c"])
    assert [p.tolist() for p in pairs] == [[float(clip_emb[0] @ text_emb[0]), float(clip_emb[0] @ text_emb[1])],
                                           [float(clip_emb[1] @ text_emb[2])]]
    assert [len(p) for p in stage.scorer.score_pairs(clips, [[], []])] == [0, 0]


WITH_FRAMES = with_frames(CAPTIONS)


def scored_rows(scores):
    rows = []
    for i, score in enumerate(scores):
        rows.append({"clip_id": f"c{i}", "path": "/v", "start_frame": i, "caption": "x", "caption_teacher": "t",
                     "caption_score": score, "candidates": [], "error": None})
    return pa.Table.from_pylist(rows, schema=SCORED.schema)


def filtered(table, config, folder):
    """The run-wide filter pass alone, over `table` as its input parts (parts of 2 rows)."""
    from vlcurate.pipeline.executor import run_table
    from vlcurate.stages.score.stage import RunWideFilter

    return run_table(RunWideFilter(config.model_copy(update={"part_rows": 2})), table, folder).to_pylist()


def test_run_wide_filters_threshold_and_top_fraction(tmp_path):
    table = scored_rows([0.1, 0.5, 0.3, 0.5, 0.9])
    out = filtered(table, ScoreConfig(min_score=0.3), tmp_path / "min")
    assert [r["error"] is None for r in out] == [False, True, True, True, True]
    assert out[0]["error"] == "score/below_min_score: score 0.1 < 0.3"
    out = filtered(table, ScoreConfig(keep_top_fraction=0.4), tmp_path / "top")
    # 5 clips, keep 2: 0.9 (c4) and the tie at 0.5 broken by clip id (c1 before c3), across parts
    assert [r["clip_id"] for r in out if r["error"] is None] == ["c1", "c4"]
    assert out[3]["error"].startswith("score/below_top_fraction")
    assert [p.label for p in ScoreStage(ScoreConfig()).passes()] == ["score"]  # no filter set: no second pass


def test_top_fraction_matches_a_full_sort_on_many_ties(tmp_path):
    rng = np.random.default_rng(0)
    scores = [float(s) for s in rng.integers(0, 20, 400) / 20]
    table = scored_rows(scores)
    out = filtered(table, ScoreConfig(keep_top_fraction=0.3), tmp_path)
    ranked = sorted(range(400), key=lambda i: (-scores[i], f"c{i}"))
    assert {r["clip_id"] for r in out if r["error"] is None} == {f"c{i}" for i in ranked[:120]}


def test_hf_clip_scorer_loads_through_automodel_and_records_truncation():
    texts = ["a red square", "word " * 200]
    candidates = [{"teacher": f"t{i}", "kind": "k", "model": "m", "weights": "w", "inputs": [], "prompt_hash": "h",
                   "text": t, "status": "ok", "reason": None, "seconds": 0.0, "score": None, "text_truncated": None}
                  for i, t in enumerate(texts)]
    rows = [{"clip_id": "c0", "path": "/v", "start_frame": 0, "start_s": 0.0, "end_s": 1.0,
             "frames": [jpeg((255, 0, 0)), jpeg((0, 0, 255))], "candidates": candidates, "error": None}]
    stage = ScoreStage(ScoreConfig(scorer={"kind": "hf_clip", "model": "tiny:hf_clip"}))
    out = stage.process_batch(pa.Table.from_pylist(rows, schema=WITH_FRAMES)).to_pylist()[0]
    assert [c["text_truncated"] for c in out["candidates"]] == [False, True]
    assert all(-1 <= c["score"] <= 1 for c in out["candidates"])
    assert out["scorer"] == "hf_clip:tiny:hf_clip@untrained"
    assert stage.stats(TableView(pa.Table.from_pylist([out], schema=SCORED.schema)))["texts_truncated"] == {"t1": 1}
    emb = stage.scorer.embed_clips([[jpeg((1, 2, 3))]])
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_an_interrupted_score_run_resumes_to_the_same_bytes(tmp_path, monkeypatch):
    from vlcurate.pipeline.executor import run_table

    candidates = [{"teacher": f"t{i}", "kind": "k", "model": "m", "weights": "w", "inputs": [], "prompt_hash": "h",
                   "text": t, "status": "ok", "reason": None, "seconds": 0.0, "score": None}
                  for i, t in enumerate(["a red square", "a blue circle"])]
    rows = [{"clip_id": f"c{i}", "path": "/v", "start_frame": i, "start_s": 0.0, "end_s": 1.0,
             "frames": [jpeg((40 * i, 0, 255 - 40 * i))], "candidates": candidates, "error": None} for i in range(6)]
    table = pa.Table.from_pylist(rows, schema=WITH_FRAMES)
    config = ScoreConfig(scorer={"kind": "open_clip", "model": "tiny:open_clip"}, resources={"batch_size": 2},
                         part_rows=2)
    run_table(ScoreStage(config), table, tmp_path / "clean")

    original, seen, crash = ScoreStage.process_batch, [], {"at": "c4"}

    def crash_on_c4(self, batch, ctx):
        ids = batch.column("clip_id").to_pylist()
        if crash["at"] in ids:
            raise KeyboardInterrupt()
        seen.extend(ids)
        return original(self, batch, ctx)

    monkeypatch.setattr(ScoreStage, "process_batch", crash_on_c4)
    with pytest.raises(KeyboardInterrupt):
        run_table(ScoreStage(config), table, tmp_path / "out")
    seen.clear()
    crash["at"] = None
    run_table(ScoreStage(config), table, tmp_path / "out")
    assert seen == ["c4", "c5"]  # the two parts finished before the crash are not scored again
    for n in range(3):
        name = f"score/manifest/part-00000{n}.parquet"
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes()


def test_stats_read_part_by_part_match_one_pass_over_everything():
    """Histograms and win rates from parts, as the executor hands them, equal numpy's over all scores at once."""
    rng = np.random.default_rng(1)
    rows = []
    for i in range(300):
        scores = [float(s) for s in rng.normal(0.2, 0.1, 2).round(6)]
        candidates = [{"teacher": f"t{j}", "kind": "k", "model": "m", "weights": "w", "inputs": [], "prompt_hash": "h",
                       "text": "x", "status": "ok", "reason": None, "score": s, "text_truncated": False}
                      for j, s in enumerate(scores)]
        best = int(np.argmax(scores))
        rows.append({"clip_id": f"c{i}", "candidates": candidates, "caption_teacher": f"t{best}",
                     "caption_score": scores[best], "error": None if i % 7 else "caption/no_caption"})
    table = pa.Table.from_pylist(rows, schema=SCORED.schema)

    class Parts:
        def parts(self, columns):
            return (table.slice(i, 64).select(columns) for i in range(0, 300, 64))

    stats = ScoreStage(ScoreConfig()).stats(Parts())
    live = [r for r in rows if not r["error"]]
    for teacher in ("t0", "t1"):
        values = [c["score"] for r in live for c in r["candidates"] if c["teacher"] == teacher]
        counts, edges = np.histogram(values, bins=10)
        assert stats["score_histograms"][teacher]["counts"] == counts.tolist()
        assert stats["score_histograms"][teacher]["edges"] == [round(float(e), 6) for e in edges]
        assert stats["win_rate"][teacher] == round(sum(r["caption_teacher"] == teacher for r in live) / len(live), 4)
    assert stats["clips_scored"] == len(live)
