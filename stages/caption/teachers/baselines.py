"""Model-free teachers: what the video already says. Cheap, and a floor the learned teachers must beat."""

from __future__ import annotations

from typing import Sequence

from vlcurate.stages.caption.teachers.base import TEACHERS, ClipInput, Teacher


@TEACHERS.register("subtitles")
class SubtitlesTeacher(Teacher):
    """The clip's own slice of the transcript."""

    default_inputs = ("subtitles",)
    rejects_copies = False  # repeating it is the point
    uses_accelerator = False

    def caption(self, clips: Sequence[ClipInput]) -> list[str]:
        return [c.subtitles or "" for c in clips]


@TEACHERS.register("title")
class TitleTeacher(Teacher):
    """The video's title, the same for every clip of it."""

    default_inputs = ("title",)
    rejects_copies = False  # repeating it is the point
    uses_accelerator = False

    def caption(self, clips: Sequence[ClipInput]) -> list[str]:
        return [c.title or "" for c in clips]


@TEACHERS.register("given")
class GivenTeacher(Teacher):
    """The caption the input list gives the clip's span (Panda-70M's `caption`), scored beside the others."""

    default_inputs = ("given",)
    rejects_copies = False
    uses_accelerator = False

    def caption(self, clips: Sequence[ClipInput]) -> list[str]:
        return [c.given or "" for c in clips]
