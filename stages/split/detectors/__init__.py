"""Shot detectors, chosen by name in config. Importing this package registers the built-in ones."""

from vlcurate.stages.split.detectors import scenedetect as _scenedetect  # noqa: F401  (registers)
from vlcurate.stages.split.detectors import transnetv2 as _transnetv2  # noqa: F401  (registers)
from vlcurate.stages.split.detectors.base import DETECTORS, Detector

__all__ = ["DETECTORS", "Detector"]
