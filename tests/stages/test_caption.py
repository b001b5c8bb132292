from __future__ import annotations

import io

import pyarrow as pa
import pytest
from PIL import Image

from manifests import CLIPS
from stages.caption import CaptionConfig, CaptionStage
from stages.caption.subtitles import Cue, dedupe_rolling, read_subtitles, slice_cues
from stages.caption.teachers import TEACHERS, ClipInput, Teacher, TeacherConfig
from stages.caption.teachers.base import clean_caption, rejection_reason


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
    buf = io.BytesIO()
    Image.new("RGB", (48, 32), color).save(buf, format="JPEG")
    return buf.getvalue()


def clip_rows(ids, subtitles_path=None):
    rows = []
    for n, clip_id in enumerate(ids):
        rows.append({"video_id": "v", "path": "/v.mp4", "title": "A title", "subtitles_path": subtitles_path,
                     "fps": 25.0, "clip_id": clip_id, "start_frame": n * 50, "end_frame": n * 50 + 50,
                     "start_s": n * 2.0, "end_s": n * 2.0 + 2.0, "frames": [jpeg((n * 60, 0, 0))],
                     "frame_indices": [n * 50 + 25], "error": None})
    return pa.Table.from_pylist(rows, schema=CLIPS.schema)


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
    assert rows[2]["candidates"][1]["status"] == "rejected" and rows[2]["candidates"][1]["reason"].startswith("no_input")
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
    from stages.caption.teachers.llm import LLMTeacher

    teacher = LLMTeacher(TeacherConfig(name="l", kind="llm", model="x", inputs=["title", "subtitles"]))
    prompt = teacher.prompt_for(ClipInput("c", title="Pancakes", description="secret", subtitles="crack two eggs"))
    assert "Pancakes" in prompt and "crack two eggs" in prompt and "secret" not in prompt
