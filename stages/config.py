"""The whole run's typed config: where from, where to, how to execute, and each stage's own config."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.config import load_config_data
from stages.caption import CaptionConfig
from stages.ingest import IngestConfig
from stages.score import ScoreConfig
from stages.shard import ShardConfig
from stages.split import SplitConfig

STAGE_ORDER = ("ingest", "split", "caption", "score", "shard")


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str | None = Field(None, description="folder, glob, or CSV/JSONL/Parquet list of videos")
    output: str = Field("out/run", description="each stage writes <output>/<stage>/")
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = Field(None, description="None starts local Ray; 'auto' or 'ray://host:port' joins")
    overwrite: bool = False
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    caption: CaptionConfig = Field(default_factory=CaptionConfig)
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    shard: ShardConfig = Field(default_factory=ShardConfig)

    def resolved_input(self, base: Path | None = None) -> str | None:
        """A relative input in a shipped profile means relative to the project (e.g. the demo manifest)."""
        if self.input is None:
            return None
        path = Path(self.input).expanduser()
        if path.is_absolute() or path.exists() or base is None:
            return str(path) if not any(c in self.input for c in "*?[") else self.input
        candidate = base / path
        return str(candidate) if candidate.exists() else self.input


def load_run_config(profile: str | None = None, config: str | Path | None = None,
                    overrides: list[str] | None = None, **explicit: Any) -> RunConfig:
    data = load_config_data(profile, config, overrides)
    data.update({k: v for k, v in explicit.items() if v is not None})
    return RunConfig.model_validate(data)
