"""Resuming an interrupted stage: finished batches are saved as they complete, and a rerun maps only the rest.

A stage that names its `input_key` (the columns that identify an input row, and that its output rows keep) gets its
output written to `<stage>/_partial/part-NNNNNN.parquet` batch by batch while it runs. If the run dies (a crash, a
preempted node, Ctrl-C), the next run of the stage without `--overwrite` reads those files back and skips the inputs
they cover, provided the stage's config is the one they were made with. A stage of several parts (caption: one per
teacher) also saves each earlier part's own work (its `checkpoint_columns`), which the stage's `prepare_input`
carries into the rerun, so a teacher that had finished a batch does not redo it.

Inputs are skipped in whole resume units (every part's batch size divides a unit) counted from the start of the full
input, so the batches mapped on resume are the ones an uninterrupted run would have had: models see the same
batches, and a stage whose output does not record timings (split, score, shard) writes the same manifest bytes.
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
import pyarrow.parquet as pq

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
    """Where a runner hands each finished batch of one part's output. Batches are gathered and written as one atomic
    Parquet file at most every `every_s` seconds, so a million one-video batches do not become a million files; the
    executor flushes what is gathered when a run stops on an exception or Ctrl-C, so only a hard kill loses up to
    `every_s` seconds of work. `columns`: save only these (an intermediate part's own work), else whole rows."""

    def __init__(self, folder: str | Path, columns: tuple[str, ...] | None = None, every_s: float = 30.0):
        self.folder = Path(folder)
        existing = sorted(self.folder.glob("part-*.parquet"))
        self.next = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
        self.columns, self.every_s = columns, every_s
        self._gathered: list[pa.Table] = []
        self._last_write = time.monotonic()

    def __call__(self, table: pa.Table) -> None:
        if table.num_rows:
            self._gathered.append(table.select(list(self.columns)) if self.columns else table)
        if time.monotonic() - self._last_write >= self.every_s:
            self.flush()

    def flush(self) -> None:
        if self._gathered:
            io.write_parquet(self.folder / f"part-{self.next:06d}.parquet", pa.concat_tables(self._gathered))
            self.next += 1
            self._gathered = []
        self._last_write = time.monotonic()


class Sinks:
    """Per part of a stage, where its finished batches go: the last part's whole rows under `_partial/` (they are
    the stage's output), an intermediate part's `checkpoint_columns` under `_partial/part<k>/` (its own work, for the
    stage's `prepare_input` to carry), other parts nowhere."""

    def __init__(self, stage: Stage, out_dir: str | Path, every_s: float = 30.0):
        self.writers: dict[int, PartWriter] = {}
        parts = stage.parts()
        for index, part in enumerate(parts):
            if index == len(parts) - 1:
                self.writers[index] = PartWriter(Path(out_dir) / PARTIAL, every_s=every_s)
            elif part.checkpoint_columns:
                self.writers[index] = PartWriter(_part_folder(out_dir, index),
                                                 (*stage.input_key, *part.checkpoint_columns), every_s)

    def __call__(self, part_index: int) -> PartWriter | None:
        return self.writers.get(part_index)

    def flush(self) -> None:
        for writer in self.writers.values():
            writer.flush()


def begin(stage: Stage, out_dir: str | Path) -> None:
    """Record what the parts about to be written are made with."""
    if stage.input_key:
        io.atomic_write_json(Path(out_dir) / PARTIAL / CONFIG, fingerprint(stage))


def usable(stage: Stage, out_dir: str | Path) -> bool:
    """Whether an interrupted run left saved batches here that this stage, as configured now, may use."""
    folder = Path(out_dir) / PARTIAL
    if not stage.input_key or not (folder / CONFIG).exists():
        return False
    try:
        same = json.loads((folder / CONFIG).read_text()) == json.loads(json.dumps(fingerprint(stage)))
    except (OSError, ValueError):
        same = False
    if not same:
        log.warning("%s: the interrupted run in %s used another config; starting over", stage.name, out_dir)
    return same


def load(stage: Stage, out_dir: str | Path) -> pa.Table | None:
    """Rows an interrupted run of this stage finished (once `usable` said so), each input's rows from the last file
    that has them; None if there are none or they cannot be read."""
    table = _latest(stage, Path(out_dir) / PARTIAL)
    return table.cast(stage.output_schema) if table is not None else None


def carried(stage: Stage, out_dir: str | Path, table: pa.Table) -> pa.Table | None:
    """`table` with the work intermediate parts saved (their `checkpoint_columns`, the latest part's per input)
    put into the rows of every whole resume unit they cover: what `prepare_input` carries as a previous run's (once
    `usable` said so). None if there is nothing."""
    if not table.num_rows:
        return None
    keys = _keys(table, stage.input_key)
    unit = resume_unit(stage)
    saved: dict[tuple, dict[str, Any]] = {}
    fields: dict[str, pa.Field] = {}
    for index, part in enumerate(stage.parts()[:-1]):  # a later part's rows hold the earlier parts' work too
        rows = _latest(stage, _part_folder(out_dir, index)) if part.checkpoint_columns else None
        if rows is None:
            continue
        fields.update((f.name, f) for f in rows.schema if f.name not in stage.input_key)
        by_key = {tuple(r[k] for k in stage.input_key): r for r in rows.to_pylist()}
        for key in _whole_units(keys, set(by_key), unit):  # whole units only, so every batch is redone whole
            saved[key] = by_key[key]
    if not saved:
        return None
    out = table
    for column, field in sorted(fields.items()):
        present = column in out.column_names
        before = out.column(column).to_pylist() if present else [None] * out.num_rows
        values = pa.array([saved[k].get(column) if k in saved else v for k, v in zip(keys, before)], field.type)
        out = out.set_column(out.schema.get_field_index(column), field, values) if present else \
            out.append_column(field, values)
    return out


def remaining(stage: Stage, table: pa.Table, finished: pa.Table | None) -> tuple[pa.Table, pa.Table]:
    """(inputs still to map, finished rows kept): whole resume units whose every input is finished are skipped."""
    empty = stage.output_schema.empty_table()
    if finished is None or not finished.num_rows or not table.num_rows:
        return table, empty
    keys = _keys(table, stage.input_key)
    kept_keys = _whole_units(keys, set(_keys(finished, stage.input_key)), resume_unit(stage))
    todo_rows = [i for i, k in enumerate(keys) if k not in kept_keys]
    kept = finished.filter(pa.array([k in kept_keys for k in _keys(finished, stage.input_key)], pa.bool_()))
    return table.take(pa.array(todo_rows, pa.int64())), kept


def progress(out_dir: str | Path, input_key: tuple[str, ...]) -> tuple[int, list[int]] | None:
    """How far an interrupted run got, read from its saved batches (key columns only, no model, no stage config):
    (inputs the last part finished, [inputs each earlier part saved, in part order]); None if nothing was saved."""
    folder = Path(out_dir) / PARTIAL
    if not (folder / CONFIG).exists():
        return None
    earlier = sorted((p for p in folder.glob("part*") if p.is_dir()), key=lambda p: int(p.name[len("part"):]))
    return _count_inputs(folder, input_key), [_count_inputs(p, input_key) for p in earlier]


def _count_inputs(folder: Path, input_key: tuple[str, ...]) -> int:
    done: set[tuple] = set()
    for file in folder.glob("part-*.parquet"):
        done.update(_keys(pq.read_table(file, columns=list(input_key)), input_key))
    return len(done)


def _part_folder(out_dir: str | Path, index: int) -> Path:
    return Path(out_dir) / PARTIAL / f"part{index}"


def clear(out_dir: str | Path) -> None:
    shutil.rmtree(Path(out_dir) / PARTIAL, ignore_errors=True)


def _whole_units(keys: list[tuple], done: set[tuple], unit: int) -> set[tuple]:
    """The keys of every unit (`unit` consecutive inputs from the first) whose inputs are all in `done`."""
    covered: set[tuple] = set()
    for start in range(0, len(keys), unit):
        chunk = keys[start:start + unit]
        if all(k in done for k in chunk):
            covered.update(chunk)
    return covered


def _latest(stage: Stage, folder: Path) -> pa.Table | None:
    """The saved files in `folder`, each input's rows from the last file that has them."""
    try:
        files = [io.read_parquet(p) for p in sorted(folder.glob("part-*.parquet"))]
    except Exception as exc:  # a damaged file costs the reuse, never the run
        log.warning("%s: cannot read the interrupted run's batches in %s (%s); redoing them", stage.name, folder, exc)
        return None
    if not files:
        return None
    last_file: dict[tuple, int] = {}
    for index, part in enumerate(files):
        for key in _keys(part, stage.input_key):
            last_file[key] = index
    kept = [part.filter(pa.array([last_file[k] == index for k in _keys(part, stage.input_key)], pa.bool_()))
            for index, part in enumerate(files)]
    return pa.concat_tables(kept)


def _keys(table: pa.Table, columns: tuple[str, ...]) -> list[tuple]:
    return list(zip(*(table.column(c).to_pylist() for c in columns)))
