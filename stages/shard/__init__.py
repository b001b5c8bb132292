from vlcurate.stages.shard.stage import ShardConfig, ShardStage

__all__ = ["ShardConfig", "ShardStage"]
