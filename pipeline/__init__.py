"""vlcurate's framework: stage API, runners, config, I/O, registries. No media or model code lives here."""

from vlcurate.pipeline.stage import Resources, RowStage, Stage, StageConfig, error_text

__all__ = ["Resources", "RowStage", "Stage", "StageConfig", "error_text"]
