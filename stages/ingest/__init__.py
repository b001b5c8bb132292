from vlcurate.stages.ingest.discover import discover
from vlcurate.stages.ingest.stage import IngestConfig, IngestStage

__all__ = ["IngestConfig", "IngestStage", "discover"]
