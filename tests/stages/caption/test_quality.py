"""The caption-quality gate on crafted candidates: each flag raised where it should be and only there, its action
(reject, tag, off) as configured, near-duplicates across teachers, and the counts in the stage's stats."""

from __future__ import annotations

import pyarrow as pa
import pytest

from vlcurate.stages.caption.quality import QualityConfig, flags, mark_near_duplicates, verdict

GATE = QualityConfig()
PROMPT = "Write one short sentence that describes what happens in the clip, using the title {title}."


def raised(text: str, config: QualityConfig = GATE, **kwargs) -> list[str]:
    return [flag for flag, _ in flags(text, config, **kwargs)]


def test_a_good_caption_raises_nothing():
    assert raised("A man slices fresh tomatoes on a wooden board in a bright kitchen.", prompt=PROMPT,
                  shown={"subtitles": "so today we are making a salad", "title": "Salad"}) == []


@pytest.mark.parametrize("text, flag", [
    ("", "empty"),
    ("   ", "empty"),
    ("the the the the the the the", "repetitive"),  # one word is all of them
    ("a cat and a dog and a cat and a dog and a cat and a dog", "repetitive"),  # a trigram three times
    ("red blue red blue green red blue green red green", "repetitive"),  # 3 distinct of 10 words
    ("Kitchen.", "length"),
    (" ".join(f"word{i}" for i in range(90)), "length"),
])
def test_each_flag_on_its_own_text(text, flag):
    assert raised(text) == [flag]


def test_a_copy_of_what_the_teacher_was_shown_and_an_echo_of_its_prompt():
    subs = "so today we are going to slice these tomatoes for the salad"
    assert raised("We are going to slice these tomatoes for the salad.", shown={"subtitles": subs}) == \
        ["copies_subtitles"]
    assert raised("Bikes on a road", shown={"title": "Bikes on a road"}) == ["copies_title"]
    # six words of the prompt's own text written back (its placeholders are not its words)
    assert raised("Write one short sentence that describes a kitchen scene.", prompt=PROMPT) == ["prompt_echo"]
    assert raised("A short sentence about a kitchen.", prompt=PROMPT) == []


def test_a_caption_cut_at_the_token_limit():
    text = "A man slices fresh tomatoes on a wooden board while the"
    assert flags(text, GATE, truncated=True) == [("truncated", "stopped at the token limit")]
    assert verdict(flags(text, GATE, truncated=True), GATE) == ("ok", None, ["truncated"])  # tagged by default
    strict = QualityConfig(truncated="reject")
    assert verdict(flags(text, strict, truncated=True), strict)[:2] == ("rejected", "truncated: stopped at the token "
                                                                                    "limit")
    assert flags(text, GATE) == [] and flags(text, QualityConfig(truncated="off"), truncated=True) == []


def test_each_flag_rejects_tags_or_is_off_as_configured():
    text = "Kitchen."
    assert verdict(flags(text, GATE), GATE) == ("ok", None, ["length"])  # tagged: kept, flagged
    strict = QualityConfig(length="reject")
    status, reason, found = verdict(flags(text, strict), strict)
    assert status == "rejected" and reason.startswith("length: 1 words") and found == ["length"]
    assert flags(text, QualityConfig(length="off")) == []
    loose = QualityConfig(repetitive="tag")
    assert verdict(flags("the the the the the the the", loose), loose)[:2] == ("ok", None)
    assert verdict(flags("", GATE), GATE)[:2] == ("rejected", "empty: no words")


def candidate(teacher: str, text: str, status: str = "ok", found=None) -> dict:
    return {"teacher": teacher, "text": text, "status": status, "reason": None, "flags": list(found or [])}


def test_near_duplicates_of_an_earlier_teachers_caption():
    clip = [candidate("blip", "A man slices tomatoes in a kitchen."),
            candidate("llm", "A man slices tomatoes in a kitchen"),  # the same words: flagged, kept (tag)
            candidate("video_lm", "Someone cooks dinner at home."),
            candidate("bad", "", "rejected")]
    mark_near_duplicates(clip, QualityConfig(near_duplicate="tag"))
    assert [c["flags"] for c in clip] == [[], ["near_duplicate"], [], []]
    assert [c["status"] for c in clip] == ["ok", "ok", "ok", "rejected"]
    # a rerun that keeps the candidates decides the same
    again = [dict(c, flags=list(c["flags"])) for c in clip]
    mark_near_duplicates(again, QualityConfig(near_duplicate="tag"))
    assert again == clip
    strict = [candidate("blip", "A man slices tomatoes in a kitchen."),
              candidate("llm", "a man SLICES tomatoes in a kitchen!")]
    mark_near_duplicates(strict, QualityConfig(near_duplicate="reject"))
    assert strict[1]["status"] == "rejected" and strict[1]["reason"].startswith("near_duplicate: the words of blip")


def test_the_caption_stage_counts_flags_per_teacher(tmp_path):
    """Through the stage: a teacher whose output is degenerate is rejected with the flag as its reason, and
    stats.json counts each teacher's flags."""
    from vlcurate.manifests import CLIPS
    from vlcurate.pipeline.executor import run_table
    from vlcurate.stages.caption import CaptionStage
    from vlcurate.stages.caption.stage import CaptionConfig

    rows = [{f.name: None for f in CLIPS.schema} | {"clip_id": f"v_{i}", "video_id": "v", "start_s": 0.0,
                                                     "end_s": 2.0, "title": title}
            for i, title in enumerate(["go go go go go go go", "A dog runs on a beach at sunset", "Dog."])]
    config = CaptionConfig(teachers=[{"name": "title", "kind": "title"}, {"name": "again", "kind": "title"}],
                           quality={"near_duplicate": "tag"})
    out = run_table(CaptionStage(config), pa.Table.from_pylist(rows, schema=CLIPS.schema), tmp_path).to_pylist()
    first = {c["teacher"]: c for c in out[0]["candidates"]}
    assert first["title"]["status"] == "rejected" and first["title"]["reason"].startswith("repetitive")
    assert {c["teacher"]: c["flags"] for c in out[1]["candidates"]} == {"title": [], "again": ["near_duplicate"]}
    import json

    stats = json.loads((tmp_path / "caption" / "stats.json").read_text())
    assert stats["quality_flags"] == {"again": {"length": 1, "near_duplicate": 2, "repetitive": 1},
                                      "title": {"length": 1, "repetitive": 1}}
    assert stats["quality_actions"]["repetitive"] == "reject" and stats["quality_actions"]["length"] == "tag"
