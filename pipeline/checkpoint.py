"""Resuming an interrupted stage: finished batches are saved as they complete, and a rerun maps only the rest.

A stage that names its `input_key` (the columns that identify an input row, and that its output rows keep) gets its
output written to `<stage>/_partial/part-NNNNNN.parquet` batch by batch while it runs. If the run dies (a crash, a
preempted node, Ctrl-C), the next run of the stage without `--overwrite` reads those parts back and skips the inputs
they cover, provided the stage's config is the one they were made with. Inputs are skipped in whole resume units
(every part's batch size divides a unit) taken from the full input, so the batches mapped on resume are the ones an
uninterrupted run would have had: models see the same batches and the manifest comes out byte for byte the same.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline import io
from pipeline.stage import Stage

log = logging.getLogger(__name__)

PARTIAL = "_partial"
CONFIG = "stage_config.json"
# how workers are placed does not change what a stage computes, so changing it keeps finished work
_PLACEMENT = ("cpus", "gpus", "pool_size")


def resume_unit(stage: Stage) -> int:
    """Rows per resume unit: a multiple of every part's batch size, so later parts keep their batch boundaries."""
    return math.lcm(*(part.resources.batch_size for part in stage.parts()))


def fingerprint(stage: Stage) -> dict[str, Any]:
    """The stage's config (and its parts') as it bears on results: everything but worker placement."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()
                    if not (k in _PLACEMENT and isinstance(v, (int, float, type(None))))}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    parts = [part.config.model_dump(mode="json") for part in stage.parts() if part is not stage]
    return strip({"stage": stage.config.model_dump(mode="json"), "parts": parts})


class PartWriter:
    """The sink runners hand each finished batch of final output to. Batches are gathered and written as one atomic
    Parquet file at most every `every_s` seconds, so a million one-video batches do not become a million files; the
    executor flushes what is gathered when a run stops on an exception or Ctrl-C, so only a hard kill loses up to
    `every_s` seconds of work."""

    def __init__(self, out_dir: str | Path, every_s: float = 30.0):
        self.folder = Path(out_dir) / PARTIAL
        existing = sorted(self.folder.glob("part-*.parquet"))
        self.next = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
        self.every_s = every_s
        self._gathered: list[pa.Table] = []
        self._last_write = time.monotonic()

    def __call__(self, table: pa.Table) -> None:
        if table.num_rows:
            self._gathered.append(table)
        if time.monotonic() - self._last_write >= self.every_s:
            self.flush()

    def flush(self) -> None:
        if self._gathered:
            io.write_parquet(self.folder / f"part-{self.next:06d}.parquet", pa.concat_tables(self._gathered))
            self.next += 1
            self._gathered = []
        self._last_write = time.monotonic()


def begin(stage: Stage, out_dir: str | Path) -> None:
    """Record what the parts about to be written are made with."""
    if stage.input_key:
        io.atomic_write_json(Path(out_dir) / PARTIAL / CONFIG, fingerprint(stage))


def load(stage: Stage, out_dir: str | Path) -> pa.Table | None:
    """Rows an interrupted run of this stage finished, each input's rows from the last part that has them; None if
    there is nothing to resume from (no parts, no `input_key`, another config, unreadable parts)."""
    folder = Path(out_dir) / PARTIAL
    if not stage.input_key or not (folder / CONFIG).exists():
        return None
    try:
        saved = json.loads((folder / CONFIG).read_text())
        if saved != json.loads(json.dumps(fingerprint(stage))):
            log.warning("%s: the interrupted run in %s used another config; starting over", stage.name, out_dir)
            return None
        parts = [io.read_parquet(p) for p in sorted(folder.glob("part-*.parquet"))]
    except Exception as exc:  # a damaged part costs the reuse, never the run
        log.warning("%s: cannot read the interrupted run's parts (%s); starting over", stage.name, exc)
        return None
    if not parts:
        return None
    last_part: dict[tuple, int] = {}
    for index, part in enumerate(parts):
        for key in _keys(part, stage.input_key):
            last_part[key] = index
    kept = [part.filter(pa.array([last_part[k] == index for k in _keys(part, stage.input_key)], pa.bool_()))
            for index, part in enumerate(parts)]
    return pa.concat_tables([t.cast(stage.output_schema) for t in kept])


def remaining(stage: Stage, table: pa.Table, finished: pa.Table | None) -> tuple[pa.Table, pa.Table]:
    """(inputs still to map, finished rows kept): whole resume units whose every input is finished are skipped."""
    empty = stage.output_schema.empty_table()
    if finished is None or not finished.num_rows or not table.num_rows:
        return table, empty
    done = set(_keys(finished, stage.input_key))
    keys = _keys(table, stage.input_key)
    unit = resume_unit(stage)
    todo_rows: list[int] = []
    kept_keys: set[tuple] = set()
    for start in range(0, table.num_rows, unit):
        chunk = keys[start:start + unit]
        if all(k in done for k in chunk):
            kept_keys.update(chunk)
        else:
            todo_rows.extend(range(start, start + len(chunk)))
    kept = finished.filter(pa.array([k in kept_keys for k in _keys(finished, stage.input_key)], pa.bool_()))
    return table.take(pa.array(todo_rows, pa.int64())), kept


def clear(out_dir: str | Path) -> None:
    shutil.rmtree(Path(out_dir) / PARTIAL, ignore_errors=True)


def _keys(table: pa.Table, columns: tuple[str, ...]) -> list[tuple]:
    return list(zip(*(table.column(c).to_pylist() for c in columns)))
