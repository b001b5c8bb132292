from stages.ingest.stage import IngestConfig, IngestStage, discover

__all__ = ["IngestConfig", "IngestStage", "discover"]
