"""Resuming an interrupted stage: every finished task left its files and a completion record under `_work/`, and a
rerun with the same config and the same input runs only the tasks that have none.

A task is one part of the input, computed whole or not at all, so a resumed run writes the same bytes as one that
was never interrupted. The stage's config (all of it but worker placement) and its input files' names, rows and
checksums are saved when it starts; if either differs on the rerun, the stage starts over, with a warning.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from vlcurate.pipeline import atomic, parts, storage
from vlcurate.pipeline.stage import Stage

log = logging.getLogger(__name__)

CONFIG = "stage_config.json"
# how workers are placed, and how often they save, does not change what a stage computes: changing it keeps
# finished work
_PLACEMENT = ("cpus", "gpus", "pool_size", "save_every_s", "save_every_batches")


def fingerprint(stage: Stage, source: list[tuple[str, int]]) -> dict[str, Any]:
    """The stage's config (and its passes') as it bears on results, and which input it reads."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()
                    if not (k in _PLACEMENT and isinstance(v, (int, float, type(None))))}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    passes = [p.config.model_dump(mode="json") for p in stage.passes() if p is not stage]
    indexes: dict[str, dict[str, str]] = {}
    inputs = [[storage.path(f).name, rows, _checksum(storage.path(f), indexes)] for f, rows in source]
    return json.loads(json.dumps(strip({"stage": stage.config.model_dump(mode="json"), "passes": passes,
                                        "input": inputs})))


def _checksum(path: Path, indexes: dict[str, dict[str, str]]) -> str | None:
    """The input file's sha256 from its stage's index (read once per folder), else computed (ingest's path list)."""
    stage = path.parent.parent if path.parent.name == parts.MANIFEST else path.parent  # <stage>/manifest/<part>
    folder = str(stage)
    if folder not in indexes:
        try:
            indexes[folder] = {e["file"]: e["sha256"] for e in parts.read_index(stage)["parts"]}
        except (FileNotFoundError, ValueError):
            indexes[folder] = {}
    name = storage.relative(path, stage)
    if name in indexes[folder]:
        return indexes[folder][name]
    return parts.file_record(path, path.parent)["sha256"]


def begin(folder: str | Path, fingerprint_: dict[str, Any]) -> None:
    atomic.atomic_write_json(storage.path(folder) / parts.WORK / CONFIG, fingerprint_)


def resumable(stage: Stage, folder: str | Path, fingerprint_: dict[str, Any]) -> bool:
    """Whether an interrupted run left finished tasks here that this stage, as configured now, may keep."""
    path = storage.path(folder) / parts.WORK / CONFIG
    if not path.exists():
        return False
    try:
        same = json.loads(path.read_text()) == fingerprint_
    except (OSError, ValueError):
        same = False
    if not same:
        log.warning("%s: the interrupted run in %s used another config or input; starting over", stage.name, folder)
    return same


def progress(folder: str | Path) -> dict[str, Any] | None:
    """How far an interrupted run got, from its plan and completion records (no model, no stage config): tasks of
    the pass running now, how many are done, and which pass it is. None if it never planned."""
    folder = storage.path(folder)
    plan_path = folder / parts.WORK / "plan.json"
    if not plan_path.exists():
        return None
    try:
        plan = json.loads(plan_path.read_text())
    except (OSError, ValueError):
        return None
    last = plan["last_pass"]
    return {"tasks": plan["tasks"], "tasks_done": parts.done_count(folder, last), "pass": last + 1,
            "passes": plan["passes"]}
