"""HowToCaption: blocks of transcript, timestamped answers parsed and clamped, captions landing on their clips."""

from __future__ import annotations

import shutil


from vlcurate.stages.caption import CaptionConfig, CaptionStage
from vlcurate.stages.caption.subtitles import Cue
from vlcurate.stages.caption.teachers import TEACHERS, TeacherConfig
from vlcurate.stages.caption.teachers.howtocaption import (Block, HowToCaptionTeacher, assign, pack_blocks,
                                                           parse_timed_sentences)


def test_blocks_hold_at_most_the_word_budget():
    cues = [Cue(i, i + 1, "one two three") for i in range(5)]
    blocks = pack_blocks(cues, max_words=7)
    assert [len(b.cues) for b in blocks] == [2, 2, 1]
    assert (blocks[1].start_s, blocks[1].end_s) == (2, 4)
    assert blocks[0].text() == "0s: one two three\n1s: one two three"


def test_answers_are_parsed_and_clamped_to_their_block():
    block = Block(10.0, 20.0, ())
    answer = "Sure! Here you go:\n12s: A man cracks an egg.\n- 3s: He whisks.\n25 s - The pan heats up.\nno time"
    assert parse_timed_sentences(answer, block) == [(12.0, "A man cracks an egg."), (10.0, "He whisks."),
                                                   (20.0, "The pan heats up.")]
    assert assign([(12.0, "b"), (10.0, "a"), (19.0, "c")], 9.5, 12.5) == "a b"


@TEACHERS.register("test_howtocaption_echo")
class EchoHowToCaption(HowToCaptionTeacher):
    """The real teacher with the model swapped for one that answers each transcript line with a visual sentence,
    at the line's own time: what an ideal model would do."""

    kind = "test_howtocaption_echo"

    def setup(self) -> None:
        self._blocks, self._sentences, self.calls = {}, {}, 0

    def generate_block(self, block):
        self.calls += 1
        return "\n".join(f"{int(c.start_s)}s: The screen shows {c.text.lower().rstrip('.')}." for c in block.cues)


def test_captions_land_on_the_clips_whose_time_they_describe(tmp_path, scene_video):
    # 25 fps, shots [0, 60) [60, 105) [105, 180) [180, 230): 0-2.4 s, 2.4-4.2, 4.2-7.2, 7.2-9.2
    path, cuts = scene_video
    (tmp_path / "s.vtt").write_text(
        "WEBVTT\n\n00:00:00.500 --> 00:00:02.000\nA red room.\n\n"
        "00:00:03.000 --> 00:00:04.000\nA green field.\n\n"
        "00:00:05.000 --> 00:00:07.000\nA blue sea.\n\n"
        "00:00:08.000 --> 00:00:09.000\nA yellow wall.\n")
    shutil.copy(path, tmp_path / "scenes.mp4")  # beside the list: a list's paths stay in its folder
    (tmp_path / "list.csv").write_text("path,subtitles\nscenes.mp4,s.vtt\n")
    from vlcurate.pipeline import parts
    from vlcurate.pipeline.executor import read_manifest, run_stage
    from vlcurate.pipeline.runners import LocalRunner
    from tests.fixtures import split_rows

    split_rows(tmp_path / "list.csv", tmp_path, min_clip_s=0.5, stitch={"enabled": False})
    stage = CaptionStage(CaptionConfig(teachers=[TeacherConfig(name="htc", kind="test_howtocaption_echo",
                                                               options={"block_words": 7})]))
    run_stage(stage, parts.input_files(tmp_path / "split"), tmp_path, LocalRunner())
    out = read_manifest(tmp_path / "caption").to_pylist()
    texts = [row["candidates"][0]["text"] for row in out]
    assert texts == ["The screen shows a red room.", "The screen shows a green field.",
                     "The screen shows a blue sea.", "The screen shows a yellow wall."]
    assert stage.teachers[0].calls == 2  # two blocks of at most 7 words, each generated once for all clips
