from stages.ingest.discover import discover
from stages.ingest.stage import IngestConfig, IngestStage

__all__ = ["IngestConfig", "IngestStage", "discover"]
