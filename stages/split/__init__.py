from stages.split.stage import SplitConfig, SplitStage, plan_clips

__all__ = ["SplitConfig", "SplitStage", "plan_clips"]
