"""Teacher kinds, one file each. Importing this package registers the built-in ones."""

from vlcurate.stages.caption.teachers import baselines as _baselines  # noqa: F401
from vlcurate.stages.caption.teachers import hf_image as _hf_image  # noqa: F401
from vlcurate.stages.caption.teachers import howtocaption as _howtocaption  # noqa: F401
from vlcurate.stages.caption.teachers import llm as _llm  # noqa: F401
from vlcurate.stages.caption.teachers import video_lm as _video_lm  # noqa: F401
from vlcurate.stages.caption.teachers.base import TEACHERS, ClipInput, Teacher, TeacherConfig

__all__ = ["TEACHERS", "ClipInput", "Teacher", "TeacherConfig"]
