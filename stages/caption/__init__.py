from vlcurate.stages.caption.stage import CaptionConfig, CaptionStage

__all__ = ["CaptionConfig", "CaptionStage"]
