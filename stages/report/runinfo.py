"""A finished run as the report sees it: its config, which stages finished, their stats and manifest schemas, and
readers that stream a few columns of a stage's parts (never its whole table)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from vlcurate.pipeline import atomic, parts, storage
from vlcurate.pipeline.failures import UserError

CLIP_SCHEMAS = ("scored", "captions", "clips")  # manifests whose rows are clips, richest first


@dataclass
class RunInfo:
    output: Path
    config: dict[str, Any]
    stages: list[str]                              # the stages that finished, in pipeline order
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    schemas: dict[str, str] = field(default_factory=dict)  # stage -> "clips/5"

    def folder(self, stage: str) -> Path:
        return self.output / stage

    def schema_name(self, stage: str) -> str:
        return self.schemas.get(stage, "").split("/")[0]

    def section(self, stage: str) -> dict[str, Any]:
        return self.config.get(stage) or {}

    @property
    def clip_stage(self) -> str | None:
        """The last finished stage whose rows are clips: what the gallery shows (score's, with every score)."""
        clip_stages = [s for s in self.stages if self.schema_name(s) in CLIP_SCHEMAS]
        return clip_stages[-1] if clip_stages else None

    @property
    def filters(self) -> list[str]:
        return [s for s in self.stages if "filter" in self.stats.get(s, {})]

    def has(self, stage: str) -> bool:
        return stage in self.stages

    def files(self, stage: str, side: str | None = None) -> list[Path]:
        return parts.part_files(self.folder(stage), side) if self.has(stage) else []

    def parts(self, stage: str, columns: list[str], side: str | None = None) -> Iterator[tuple[Path, pa.Table]]:
        """`(file, table of columns)` one part at a time."""
        for path in self.files(stage, side):
            for table in parts.iter_parts([path], columns):
                yield path, table

    def select(self, stage: str, columns: list[str], key: str, values: set[str],
               side: str | None = None) -> list[dict[str, Any]]:
        """The rows whose `key` is one of `values` (a small set), scanning only what the filter needs."""
        if not values:
            return []
        wanted = sorted(values)
        return [row for _, table in self.parts(stage, [*dict.fromkeys([*columns, key])], side)
                for row in table.filter(pc.field(key).isin(wanted)).select(
                    [c for c in columns if c in table.column_names]).to_pylist()]


def load_run(output: str | Path) -> RunInfo:
    """The run in `output`; a folder with no finished stage is a user error."""
    output = storage.path(output)
    if not (output.exists() if storage.is_remote(output) else output.is_dir()):
        raise UserError(f"{output} is not a folder: pass the output folder of a run (-o)")
    config_path = output / "run_config.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    names = config.get("stages") or sorted(p.name for p in output.iterdir() if atomic.is_done(p))
    stages = [n for n in names if atomic.is_done(output / n)]
    if not stages:
        raise UserError(f"{output} holds no finished stage: run the pipeline first (vlcurate run -o {output})")
    run = RunInfo(output, config, stages)
    for name in stages:
        stats_path = output / name / "stats.json"
        run.stats[name] = json.loads(stats_path.read_text()) if stats_path.exists() else {}
        run.schemas[name] = parts.read_index(output / name).get("schema", "")
    return run


def side_rows(run: RunInfo, stage: str, side: str) -> int:
    """Rows of a side table, from the stage's index alone."""
    if not run.has(stage):
        return 0
    return sum(e.get("rows") or 0 for e in parts.read_index(run.folder(stage))["side"].get(side, []))


def good_rows(stats: dict[str, Any]) -> int:
    """Rows a stage wrote that carry no error (errors ride along as rows, so later stages can count them)."""
    return int(stats.get("rows_out", 0)) - int(stats.get("errors_total", 0))


def new_errors(stage: str, stats: dict[str, Any]) -> dict[str, int]:
    """The errors this stage found itself, by reason (`errors_by_reason` also holds those carried from before)."""
    return {k: v for k, v in (stats.get("errors_by_reason") or {}).items() if k.split("/")[0] == stage}
