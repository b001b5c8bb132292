"""Chains the stages: each reads the manifest the previous one wrote, so any stage can also run alone."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pyarrow as pa

from pipeline import io
from pipeline.executor import run_stage, stage_dir
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


def build_stage(name: str, config: RunConfig) -> Stage:
    return STAGES[name](getattr(config, name))


def stage_input(name: str, config: RunConfig) -> pa.Table:
    import manifests

    if name == "ingest":
        source = config.resolved_input(PROJECT_ROOT)
        if not source:
            raise ValueError("no input: pass --input (a folder, a glob or a list file) or set `input` in the config")
        return discover(source, config.ingest)
    previous = STAGES[name].input_stage
    path = stage_dir(config.output, previous) / io.MANIFEST
    if not io.is_done(stage_dir(config.output, previous)):
        raise FileNotFoundError(f"{name} reads {path}, but the {previous} stage has not finished there; run it first")
    manifest = getattr(manifests, INPUT_MANIFESTS[name].upper())
    return manifest.read(path)


def run_stages(config: RunConfig, names: Iterable[str] = STAGE_ORDER, runner: Runner | None = None) -> dict[str, pa.Table]:
    runner = runner or make_runner(config.executor, config.ray_address)
    dump = config.model_dump(mode="json")
    Path(config.output).mkdir(parents=True, exist_ok=True)
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
