"""Chains the stages: each reads the part files the previous one wrote, so any stage can also run alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from pipeline import io, parts
from pipeline.executor import run_stage, stage_dir
from pipeline.lock import output_lock
from pipeline.runners import Runner, make_runner
from pipeline.stage import Stage
from stages.caption import CaptionStage
from stages.config import STAGE_ORDER, RunConfig
from stages.ingest import IngestStage, discover
from stages.score import ScoreStage
from stages.shard import ShardStage
from stages.split import SplitStage

STAGES: dict[str, type[Stage]] = {
    "ingest": IngestStage, "split": SplitStage, "caption": CaptionStage, "score": ScoreStage, "shard": ShardStage,
}
PROJECT_ROOT = Path(__file__).resolve().parent.parent
INPUT_MANIFESTS = {"split": "videos", "caption": "clips", "score": "captions", "shard": "scored"}
INPUT_LIST = "_input/videos.parquet"  # ingest's input: the discovered paths, under the run's output folder


def build_stage(name: str, config: RunConfig) -> Stage:
    return STAGES[name](getattr(config, name))


def stage_input(name: str, config: RunConfig) -> list[tuple[str, int]]:
    """The stage's input files with their row counts; nothing but metadata is read here."""
    import manifests

    if name == "ingest":
        source = config.resolved_input(PROJECT_ROOT)
        if not source:
            raise ValueError("no input: pass --input (a folder, a glob or a list file) or set `input` in the config")
        table = discover(source, config.ingest)
        path = Path(config.output) / INPUT_LIST
        io.write_parquet(path, table, row_group_size=parts.ROW_GROUP)
        return [(str(path), table.num_rows)]
    previous = STAGES[name].input_stage
    folder = stage_dir(config.output, previous)
    if not io.is_done(folder):
        raise FileNotFoundError(f"{name} reads {folder}, but the {previous} stage has not finished there; run it first")
    getattr(manifests, INPUT_MANIFESTS[name].upper()).check_stage(folder)
    return parts.input_files(folder)


def run_stages(config: RunConfig, names: Iterable[str] = STAGE_ORDER, runner: Runner | None = None, *,
               wait: bool = False) -> dict[str, dict[str, Any]]:
    """Runs the stages in order, holding the output folder's lock throughout (`wait`: for another run to end
    first, instead of refusing); returns each one's stats."""
    with output_lock(config.output, wait=wait):
        return _run_locked(config, tuple(names), runner)


def _run_locked(config: RunConfig, names: tuple[str, ...], runner: Runner | None) -> dict[str, dict[str, Any]]:
    runner = runner or make_runner(config.executor, config.ray_address)
    dump = config.model_dump(mode="json")
    io.atomic_write_json(Path(config.output) / "run_config.json", dump)
    results = {}
    upstream_rerun = False
    try:
        for name in names:
            stage = build_stage(name, config)
            # once a stage is redone, everything after it is stale and is redone too
            redo = config.overwrite or upstream_rerun
            will_run = redo or not io.is_done(stage_dir(config.output, name))
            upstream_rerun = upstream_rerun or will_run
            results[name] = run_stage(stage, stage_input(name, config), config.output, runner,
                                      overwrite=redo, run_config=dump)
    finally:
        runner.close()
    return results
