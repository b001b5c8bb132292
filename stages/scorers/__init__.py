"""Scorer kinds (retrieval models that embed clips and texts), one file each; importing this package registers the
built-in ones. Shared, not a stage: the score stage ranks captions with them, split's stitching and the dedup and
aesthetics filters embed frames with them."""

from vlcurate.stages.scorers import hf_clip as _hf_clip  # noqa: F401
from vlcurate.stages.scorers import open_clip as _open_clip  # noqa: F401
from vlcurate.stages.scorers import xclip as _xclip  # noqa: F401
from vlcurate.stages.scorers.base import SCORERS, Scorer, ScorerConfig
from vlcurate.stages.scorers.open_clip import open_clip_tower

__all__ = ["SCORERS", "Scorer", "ScorerConfig", "open_clip_tower"]
