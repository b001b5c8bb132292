from vlcurate.stages.score.stage import ScoreConfig, ScoreStage

__all__ = ["ScoreConfig", "ScoreStage"]
