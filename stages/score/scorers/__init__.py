"""Scorer kinds, one file each. Importing this package registers the built-in ones."""

from stages.score.scorers import hf_clip as _hf_clip  # noqa: F401
from stages.score.scorers import open_clip as _open_clip  # noqa: F401
from stages.score.scorers import xclip as _xclip  # noqa: F401
from stages.score.scorers.base import SCORERS, Scorer, ScorerConfig

__all__ = ["SCORERS", "Scorer", "ScorerConfig"]
