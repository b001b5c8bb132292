from __future__ import annotations

import json

import pyarrow as pa
import pytest

from tests.fixtures import solid_jpeg
from vlcurate.manifests import CLIPS, with_frames
from vlcurate.stages.caption import CaptionConfig, CaptionStage
from vlcurate.stages.caption.subtitles import Cue, dedupe_rolling, read_subtitles, slice_cues
from vlcurate.stages.caption.teachers import TEACHERS, ClipInput, Teacher, TeacherConfig
from vlcurate.stages.caption.teachers.base import clean_caption, rejection_reason


def test_vtt_srt_and_json_transcripts(tmp_path):
    (tmp_path / "a.vtt").write_text("WEBVTT\n\nNOTE x\n\n1\n00:00:01.000 --> 00:00:02.500 align:start\n"
                                    "<c>Hello</c> there\nfriend\n\n00:01:00.000 --> 00:01:01.000\nlater\n")
    (tmp_path / "a.srt").write_text("1\r\n00:00:01,000 --> 00:00:02,500\r\nHello there\r\n\r\n")
    (tmp_path / "a.json").write_text('{"segments": [{"start": 1.0, "end": 2.5, "text": " Hello  there "}]}')
    assert read_subtitles(tmp_path / "a.vtt") == [Cue(1.0, 2.5, "Hello there friend"), Cue(60.0, 61.0, "later")]
    assert read_subtitles(tmp_path / "a.srt") == [Cue(1.0, 2.5, "Hello there")]
    assert read_subtitles(tmp_path / "a.json") == [Cue(1.0, 2.5, "Hello there")]


def test_youtube_rolling_duplicates_are_removed():
    cues = [Cue(0, 2, "so today we"), Cue(2, 4, "so today we are going to"), Cue(4, 6, "are going to cook eggs"),
            Cue(6, 7, "are going to cook eggs")]
    assert [c.text for c in dedupe_rolling(cues)] == ["so today we", "are going to", "cook eggs"]


def test_slicing_by_overlap():
    cues = [Cue(0, 2, "a"), Cue(2, 4, "b"), Cue(4, 6, "c")]
    assert [c.text for c in slice_cues(cues, 1.5, 4.0)] == ["a", "b"]


def test_cleaning_and_rejection():
    assert clean_caption("<|im_start|> a video of  a dog [SEP]", "a video of") == "a dog"
    assert clean_caption('Caption: "A cat sleeps."') == "A cat sleeps."
    assert rejection_reason("") == "empty"
    assert rejection_reason("the the the the the the the") == "repetitive"
    assert rejection_reason("a dog runs on the beach at sunset") is None


@TEACHERS.register("test_flaky")
class FlakyTeacher(Teacher):
    """Fails on any batch holding a clip whose id ends in 'bad'."""

    kind = "test_flaky"
    default_inputs = ("frames",)

    def caption(self, clips):
        if any(c.clip_id.endswith("bad") for c in clips):
            raise RuntimeError("model exploded")
        return [f"clip {c.clip_id}" for c in clips]


def jpeg(color):
    return solid_jpeg(color, (48, 32))


def clip_rows(ids, subtitles_path=None):
    rows = []
    for n, clip_id in enumerate(ids):
        rows.append({"video_id": "v", "path": "/v.mp4", "title": "A title", "subtitles_path": subtitles_path,
                     "fps": 25.0, "clip_id": clip_id, "start_frame": n * 50, "end_frame": n * 50 + 50,
                     "start_s": n * 2.0, "end_s": n * 2.0 + 2.0, "frames": [jpeg((n * 60, 0, 0))],
                     "frames_digest": f"digest{n}", "frame_indices": [n * 50 + 25], "error": None})
    return pa.Table.from_pylist(rows, schema=CLIPS_WITH_FRAMES)


CLIPS_WITH_FRAMES = with_frames(CLIPS)


def test_one_failing_clip_costs_only_its_own_candidate(tmp_path):
    (tmp_path / "s.vtt").write_text("WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nfirst words\n\n"
                                    "00:00:02.000 --> 00:00:04.000\nsecond words\n")
    config = CaptionConfig(teachers=[
        TeacherConfig(name="flaky", kind="test_flaky", batch_size=8),
        TeacherConfig(name="subs", kind="subtitles"),
        TeacherConfig(name="title", kind="title"),
    ])
    stage = CaptionStage(config)
    rows = stage.process_batch(clip_rows(["a", "bad", "c"], str(tmp_path / "s.vtt"))).to_pylist()
    flaky = [r["candidates"][0] for r in rows]
    assert [c["status"] for c in flaky] == ["ok", "error", "ok"]
    assert flaky[0]["text"] == "clip a" and "model exploded" in flaky[1]["reason"]
    assert [r["candidates"][1]["text"] for r in rows] == ["first words", "second words", None]
    third = rows[2]["candidates"][1]
    assert third["status"] == "rejected" and third["reason"].startswith("no_input")
    assert all(r["error"] is None for r in rows)  # other teachers still captioned every clip
    assert {c["teacher"] for c in rows[0]["candidates"]} == {"flaky", "subs", "title"}


def test_duplicate_teacher_names_and_unknown_kinds_are_config_errors():
    with pytest.raises(ValueError, match="unique"):
        CaptionConfig(teachers=[TeacherConfig(name="a", kind="title"), TeacherConfig(name="a", kind="title")])
    with pytest.raises(Exception, match="unknown teacher"):
        CaptionConfig(teachers=[TeacherConfig(name="a", kind="nope")])


def test_tiny_blip_loads_through_from_pretrained_and_records_untrained_weights():
    stage = CaptionStage(CaptionConfig(teachers=[
        TeacherConfig(name="blip", kind="hf_image_captioner", model="tiny:blip", generation={"max_new_tokens": 8})]))
    rows = stage.process_batch(clip_rows(["a", "b"])).to_pylist()
    for row in rows:
        (cand,) = row["candidates"]
        assert cand["weights"] == "untrained" and cand["model"] == "tiny:blip" and cand["inputs"] == ["frames"]
        assert cand["status"] in ("ok", "rejected") and cand["prompt_hash"]


def test_llm_prompt_uses_only_declared_inputs():
    from vlcurate.stages.caption.teachers.llm import LLMTeacher

    teacher = LLMTeacher(TeacherConfig(name="l", kind="llm", model="x", inputs=["title", "subtitles"]))
    prompt = teacher.prompt_for(ClipInput("c", title="Pancakes", description="secret", subtitles="crack two eggs"))
    assert "Pancakes" in prompt and "crack two eggs" in prompt and "secret" not in prompt


def test_copies_of_the_subtitles_are_rejected_for_model_teachers():
    subs = "Bicycles are locked against a wall as people walk past."
    assert rejection_reason("Bicycles are locked against a wall as people walk past", {"subtitles": subs}) == \
        "copies_subtitles"
    assert rejection_reason("The video shows: bicycles are locked against a wall as people walk past.",
                            {"subtitles": subs}) == "copies_subtitles"
    assert rejection_reason("Bikes lean on a brick wall while pedestrians pass.", {"subtitles": subs}) is None
    assert rejection_reason("A title", {"title": "A title"}) == "copies_title"


def test_frames_are_spread_evenly_and_repeat_when_fewer_are_stored():
    colours = [(250, 0, 0), (0, 250, 0), (0, 0, 250)]
    clip = ClipInput("c", frames=[jpeg(c) for c in colours])

    def picked(count):
        return [max(range(3), key=lambda k: img.getpixel((5, 5))[k]) for img in clip.images(count)]

    assert picked(1) == [1] and picked(2) == [0, 2] and picked(3) == [0, 1, 2] and picked(4) == [0, 1, 1, 2]


def test_video_lm_asks_pandas_question_with_only_the_inputs_it_sees():
    from vlcurate.stages.caption.teachers.video_lm import VideoLMTeacher

    clip = ClipInput("c", title="Pancakes", description="Sunday breakfast", subtitles="crack two eggs")
    seeing = VideoLMTeacher(TeacherConfig(name="v", kind="video_lm", model="x",
                                          inputs=["frames", "subtitles", "title", "description"]))
    assert seeing.question(clip) == ("The subtitles of the video: crack two eggs.\n"
                                     "Some descriptions of the video: Pancakes. Sunday breakfast.\n"
                                     "Please faithfully summarize the video in one sentence.")
    frames_only = VideoLMTeacher(TeacherConfig(name="v", kind="video_lm", model="x"))
    assert frames_only.question(clip) == "Please faithfully summarize the video in one sentence."
    assert frames_only.num_frames == 8  # the kind's default when num_frames is not set
    with pytest.raises(ValueError, match="frames"):
        VideoLMTeacher(TeacherConfig(name="v", kind="video_lm", model="x", inputs=["title"]))


@pytest.mark.parametrize("visual", ["video", "images"])
def test_video_lm_runs_tiny_qwen2_vl_through_the_chat_template(tmp_path, visual):
    (tmp_path / "s.vtt").write_text("WEBVTT\n\n00:00:00.000 --> 00:00:04.000\ntwo eggs go in the pan\n")
    config = TeacherConfig(name="vlm", kind="video_lm", model="tiny:video_lm", num_frames=4, batch_size=2,
                           inputs=["frames", "title", "subtitles"], options={"visual": visual},
                           generation={"max_new_tokens": 6})
    stage = CaptionStage(CaptionConfig(teachers=[config]))
    rows = stage.process_batch(clip_rows(["a", "b", "c"], str(tmp_path / "s.vtt"))).to_pylist()
    for row in rows:
        (cand,) = row["candidates"]
        assert (cand["weights"], cand["model"], cand["kind"]) == ("untrained", "tiny:video_lm", "video_lm")
        assert cand["inputs"] == ["frames", "title", "subtitles"] and cand["status"] in ("ok", "rejected")
        assert cand["text"] is not None and "seconds" not in cand  # timings live in stats.json, not the manifest
    teacher = stage.teachers[0]
    clip = ClipInput("a", frames=[jpeg((200, 0, 0))], title="A title", subtitles="two eggs go in the pan",
                     start_s=0.0, end_s=2.0)
    inputs = teacher.model_inputs([clip])
    prompt = teacher.processor.tokenizer.decode(inputs["input_ids"][0])
    assert "The subtitles of the video: two eggs go in the pan." in prompt
    assert prompt.rstrip().endswith(
        "Please faithfully summarize the video in one sentence.<|im_end|>\n<|im_start|>assistant")
    if visual == "video":  # one video of 4 frames: two temporal patches of 2 frames
        assert inputs["video_grid_thw"].tolist()[0][0] == 2 and "pixel_values" not in inputs
    else:  # four images
        assert len(inputs["image_grid_thw"]) == 4 and "pixel_values_videos" not in inputs


@TEACHERS.register("test_counting")
class CountingTeacher(Teacher):
    """Records every call, so a test sees which (teacher, prompt) pairs were computed."""

    kind = "test_counting"
    default_inputs = ("title",)
    calls: list[tuple[str, str | None, int]] = []

    def caption(self, clips):
        CountingTeacher.calls.append((self.config.name, self.config.prompt, len(clips)))
        return [f"words about {c.clip_id} ({self.config.prompt or 'plain'})" for c in clips]


def test_rerun_computes_only_the_new_teacher_prompt_pairs(tmp_path):
    from vlcurate.pipeline.executor import run_table

    clips = clip_rows(["a", "b", "c"])
    one, two = TeacherConfig(name="one", kind="test_counting"), TeacherConfig(name="two", kind="test_counting",
                                                                               prompt="old")
    CountingTeacher.calls.clear()
    first = run_table(CaptionStage(CaptionConfig(teachers=[one, two])), clips, tmp_path).to_pylist()
    assert sorted(c[0] for c in CountingTeacher.calls) == ["one", "two"]

    CountingTeacher.calls.clear()
    second_config = CaptionConfig(teachers=[TeacherConfig(name="three", kind="test_counting"), one,
                                            two.model_copy(update={"prompt": "new"})])
    second = run_table(CaptionStage(second_config), clips, tmp_path, overwrite=True).to_pylist()
    assert sorted(CountingTeacher.calls) == [("three", None, 3), ("two", "new", 3)]  # "one" is not asked again
    for before, after in zip(first, second):
        assert [c["teacher"] for c in after["candidates"]] == ["three", "one", "two"]  # the configured order
        assert after["candidates"][1] == before["candidates"][0]  # kept as it was
        assert after["candidates"][2]["text"].endswith("(new)")
    stats = json.loads((tmp_path / "caption" / "stats.json").read_text())
    assert stats["candidates_kept_from_previous_run"] == 3
    assert set(stats["teacher_seconds"]) == {"three", "one", "two"} and stats["teachers"]["one"] == {"ok": 3}

    # a clip whose inputs changed is captioned again by every teacher; the others keep everything
    CountingTeacher.calls.clear()
    changed = clips.set_column(clips.schema.get_field_index("title"), "title",
                               pa.array(["A title", "Another title", "A title"]))
    run_table(CaptionStage(second_config), changed, tmp_path, overwrite=True)
    assert sorted(CountingTeacher.calls) == [("one", None, 1), ("three", None, 1), ("two", "new", 1)]


def test_each_teacher_is_a_part_with_its_own_resources():
    config = CaptionConfig(resources={"batch_size": 4, "gpus": 1.0, "threads": 2}, teachers=[
        TeacherConfig(name="a", kind="test_counting", resources={"gpus": 0.5, "pool_size": 2}),
        TeacherConfig(name="b", kind="test_counting"),
        TeacherConfig(name="t", kind="title"),
    ])
    passes = CaptionStage(config).passes()
    assert [p.label for p in passes] == ["caption:a", "caption:b", "caption:t"]
    assert [(p.resources.batch_size, p.resources.gpus, p.resources.pool_size, p.resources.threads)
            for p in passes] == [(4, 0.5, 2, 2), (4, 1.0, None, 2), (4, 0.0, None, 2)]  # a baseline needs no GPU
    with pytest.raises(ValueError, match="no teachers"):
        CaptionStage(CaptionConfig()).passes()


def test_caption_never_opens_the_video(tmp_path, scene_video, monkeypatch):
    """Split decodes each video once; caption works from the stored frames even with the video gone."""
    import shutil

    import av

    from vlcurate.pipeline import parts
    from vlcurate.pipeline.executor import read_manifest, run_stage
    from vlcurate.pipeline.runners import LocalRunner
    from vlcurate.stages import media
    from tests.fixtures import split_rows

    video = tmp_path / "videos" / "v.mp4"
    video.parent.mkdir()
    shutil.copy(scene_video[0], video)
    (tmp_path / "videos" / "v.vtt").write_text("WEBVTT\n\n00:00:00.000 --> 00:00:09.000\nfour coloured rooms\n")
    clips = split_rows(video.parent, tmp_path, min_clip_s=0.5, stitch={"enabled": False})
    assert {c["decoder_passes"] for c in clips} == {1}
    passes = dict(media.DECODE_PASSES)
    video.unlink()

    def no_decoding(*args, **kwargs):
        raise AssertionError("the caption stage opened a video")

    monkeypatch.setattr(av, "open", no_decoding)
    monkeypatch.setattr(media, "probe", no_decoding)
    stage = CaptionStage(CaptionConfig(teachers=[
        TeacherConfig(name="vlm", kind="video_lm", model="tiny:video_lm", num_frames=2,
                      generation={"max_new_tokens": 4}),
        TeacherConfig(name="blip", kind="hf_image_captioner", model="tiny:blip", generation={"max_new_tokens": 4}),
        TeacherConfig(name="subs", kind="subtitles"),
    ]))
    # the real path: split's part files as the input, frames read by reference from split/frames/
    run_stage(stage, parts.input_files(tmp_path / "split"), tmp_path, LocalRunner())
    out = read_manifest(tmp_path / "caption").to_pylist()
    assert "frames" not in out[0] and out[0]["frames_file"] == "split/frames/part-000000.parquet"
    assert len(out) == 4 and all(r["error"] is None for r in out)
    assert {c["status"] for r in out for c in r["candidates"]} <= {"ok", "rejected"}
    assert dict(media.DECODE_PASSES) == passes


def test_an_interrupted_caption_run_keeps_every_finished_teacher_part(tmp_path):
    from vlcurate.pipeline.executor import run_table

    clips = clip_rows(["a", "b", "c"])
    one, two = TeacherConfig(name="one", kind="test_counting"), TeacherConfig(name="two", kind="test_counting")
    config = CaptionConfig(teachers=[one, two], resources={"batch_size": 1}, part_rows=1)
    clean = run_table(CaptionStage(config), clips, tmp_path / "clean").to_pylist()

    original = CountingTeacher.caption

    def crash_on_c(self, batch):
        if self.config.name == "two" and batch[0].clip_id == "c":
            raise KeyboardInterrupt()
        return original(self, batch)

    CountingTeacher.caption = crash_on_c
    try:
        with pytest.raises(KeyboardInterrupt):
            run_table(CaptionStage(config), clips, tmp_path / "out")
    finally:
        CountingTeacher.caption = original
    from vlcurate.status import stage_states

    (caption,) = [s for s in stage_states(tmp_path / "out") if s["stage"] == "caption"]
    assert caption["state"] == "interrupted" and (caption["tasks_done"], caption["tasks"]) == (2, 3)
    assert (caption["pass"], caption["passes"]) == (2, 2)
    CountingTeacher.calls.clear()
    resumed = run_table(CaptionStage(config), clips, tmp_path / "out").to_pylist()
    # "one" had captioned every clip and "two" clips a and b: only two's part with c is left
    assert CountingTeacher.calls == [("two", None, 1)]
    texts = [[(c["teacher"], c["text"], c["status"]) for c in r["candidates"]] for r in resumed]
    assert texts == [[(c["teacher"], c["text"], c["status"]) for c in r["candidates"]] for r in clean]
    assert not (tmp_path / "out" / "caption" / "_work").exists()
