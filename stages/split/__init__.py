from vlcurate.stages.split.stage import SplitConfig, SplitStage, StitchConfig

__all__ = ["SplitConfig", "SplitStage", "StitchConfig"]
