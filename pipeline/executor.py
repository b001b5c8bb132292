"""Runs one stage end to end: skip if done, resume if interrupted, map batches through a runner (saving each
finished batch), finalize, then write manifest, stats.json and `_SUCCESS` (in that order, each atomically)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline import checkpoint, io
from pipeline.runners.base import Runner
from pipeline.stage import Stage, count_errors

log = logging.getLogger(__name__)


def stage_dir(output: str | Path, stage_name: str) -> Path:
    return Path(output) / stage_name


def _previous_manifest(path: Path, stage_name: str) -> pa.Table | None:
    """The manifest an earlier run left here, for stages that keep finished work; unreadable means none."""
    if not path.exists():
        return None
    try:
        return io.read_parquet(path)
    except Exception as exc:  # a damaged or foreign file only costs the reuse
        log.warning("%s: cannot read the previous %s (%s); redoing everything", stage_name, path, exc)
        return None


def run_stage(stage: Stage, input_table: pa.Table, output: str | Path, runner: Runner, *,
              overwrite: bool = False, run_config: dict[str, Any] | None = None) -> pa.Table:
    out_dir = stage_dir(output, stage.name)
    if io.is_done(out_dir) and not overwrite:
        log.warning("%s: %s is complete, skipping (use --overwrite to redo it)", stage.name, out_dir)
        return io.read_parquet(out_dir / io.MANIFEST)
    resuming = not overwrite and checkpoint.usable(stage, out_dir)
    if stage.keeps_previous:
        carried = checkpoint.carried(stage, out_dir, input_table) if resuming else None
        previous = carried if carried is not None else _previous_manifest(out_dir / io.MANIFEST, stage.name)
        input_table = stage.prepare_input(input_table, previous)
    finished = checkpoint.load(stage, out_dir) if resuming else None
    if not resuming:
        io.clear_stage_dir(out_dir)  # an interrupted run's side files (staged clips, shots) stay when resuming
    out_dir.mkdir(parents=True, exist_ok=True)
    if run_config is not None:
        io.atomic_write_json(out_dir / "config.json", run_config)
    todo, kept = checkpoint.remaining(stage, input_table, finished)
    resumed = input_table.num_rows - todo.num_rows
    if resumed:
        log.warning("%s: resuming an interrupted run: %d of %d inputs were done (--overwrite starts over)",
                    stage.name, resumed, input_table.num_rows)
    checkpoint.begin(stage, out_dir)

    stage.out_dir = str(out_dir)
    started = time.perf_counter()
    sinks = checkpoint.Sinks(stage, out_dir) if stage.input_key else None
    try:
        table = runner.map(stage, todo, sinks)
    except BaseException:  # a crash or Ctrl-C: keep every batch that did finish
        if sinks is not None:
            sinks.flush()
        raise
    if kept.num_rows:
        table = pa.concat_tables([kept, table.cast(kept.schema)])
    table = stage.finalize(table, str(out_dir))
    elapsed = time.perf_counter() - started

    errors = table.column("error").to_pylist() if "error" in table.column_names else []
    inherited = sum(1 for e in errors if e and not e.startswith(stage.name + "/"))
    stats = {
        "stage": stage.name,
        "executor": runner.name,
        "rows_in": input_table.num_rows,
        "rows_out": table.num_rows,
        "resumed_inputs": resumed,
        "errors_total": sum(1 for e in errors if e),
        "errors_new": sum(1 for e in errors if e) - inherited,
        "errors_by_reason": count_errors(errors),
        "seconds": round(elapsed, 3),
        **stage.stats(table),
    }
    io.write_parquet(out_dir / io.MANIFEST, table)
    io.atomic_write_json(out_dir / io.STATS, stats)
    io.mark_done(out_dir)
    checkpoint.clear(out_dir)
    log.info("%s: %d rows in, %d out, %d errors, %.1fs", stage.name, stats["rows_in"], stats["rows_out"],
             stats["errors_total"], elapsed)
    return table
