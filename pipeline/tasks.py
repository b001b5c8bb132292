"""What a worker does with one task: read its own input, map it, write its own files, record that it is done.

A task is a small dict (see `pipeline/parts.py`); the record it leaves (`_work/done/pass<k>/<name>.json`, written
after its files) names the files with rows and sha256, and is all the driver ever receives. A task whose record is
already there is not run again: that is how an interrupted stage resumes, part by part.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from vlcurate.pipeline import atomic, faults, lock, parts, storage
from vlcurate.pipeline.batches import BatchSaver, add_counts, folder_of
from vlcurate.pipeline.stage import Context, Output, Stage, error_reason


def read_input(task: dict[str, Any]) -> pa.Table:
    """The task's input rows, stored columns by reference only: `map_batches` puts a batch's values back just for
    that batch (pipeline/parts.py `load_stored`), so a task never holds its whole part's frames."""
    return parts.read_slices([tuple(s) for s in task["inputs"]])


def context_of(task: dict[str, Any], first_row: int = 0) -> Context:
    """What a stage may know of its task."""
    return Context(root=task.get("root"), stage_dir=task.get("stage_dir"), part=task.get("name", ""),
                   first_row=first_row, check_owner=lambda: lock.check_task(task) if task.get("root") else None)


def map_batches(stage: Stage, table: pa.Table, task: dict[str, Any], carried: Output | None = None) -> Output:
    """One task's rows, in fixed batches; the output keeps their order. Batches are saved as they go
    (pipeline/batches.py), and a retried task maps only those not saved by an earlier try."""
    stage.ensure_setup()
    size, schema = stage.resources.batch_size, stage.schema
    saver = BatchSaver(task, stage.config.save_every_s, stage.config.save_every_batches) \
        if task.get("stage_dir") else None
    runs = saver.restore() if saver else {}
    outputs: list[Output] = [carried] if carried is not None else []
    first = 0
    while first < table.num_rows:
        if first in runs:
            first, saved, side, counts = runs[first]
            output = Output(saved, side, counts)
        else:
            end = min(first + size, table.num_rows)
            faults.hit(f"{stage.label}.batch")
            batch = table.slice(first, end - first)
            for stored in stage.traits.loads:  # this batch's values only, released with it
                batch = parts.load_stored(batch, stored, task.get("root"))
            output = Output.of(stage.process_batch(batch, context_of(task, first)))
            del batch
            output.table = output.table.select(schema.names).cast(schema)
            if saver:
                saver.add(first, end, output)
            first = end
        outputs.append(output)
    if saver and saver.touched:
        task["_saved"] = True  # the task's saved batches go once its part is written
    return _joined(outputs, schema)


def map_table(stage: Stage, table: pa.Table, root: str | None = None) -> Output:
    """A pass over a table in this process, batch by batch as a worker maps it, writing nothing (benches, tests)."""
    return map_batches(stage, table, {"root": root})


def _joined(outputs: list[Output], schema: pa.Schema) -> Output:
    side: dict[str, list[pa.Table]] = {}
    counts: dict[str, Any] = {}
    for out in outputs:
        for name, value in out.side.items():
            side.setdefault(name, []).append(value)
        add_counts(counts, out.counts)
    tables = [o.table for o in outputs if o.table is not None and o.table.num_rows]
    return Output(pa.concat_tables(tables) if tables else schema.empty_table(),
                  {name: pa.concat_tables(values) for name, values in side.items()}, counts)


def write_outputs(stage: Stage, task: dict[str, Any], out: Output) -> list[dict[str, Any]]:
    """The part's manifest file (stored columns split off into their side tables) and its side tables."""
    folder, target, name = storage.path(task["stage_dir"]), storage.path(task["out"]), task["name"]
    rel_stage = storage.relative(folder, task["root"])
    table = out.table
    written: list[tuple[str, Path, pa.Table]] = []
    for stored in stage.traits.stores if task["final"] else ():
        if stored.column in table.column_names:
            table, side = parts.store_column(table, stored.column, stored.key,
                                             f"{rel_stage}/{stored.column}/{name}.parquet")
            written.append((stored.column, folder / stored.column / f"{name}.parquet", side))
    if task["final"]:
        written += [(kind, folder / kind / f"{name}.parquet", out.side.get(kind, schema.empty_table()))
                    for kind, schema in stage.side_schemas.items()]
    written.append(("part", target / f"{name}.parquet", table))
    lock.check_task(task)  # a worker that outlived its run writes nothing into the next one
    kept = {s.column for s in stage.traits.stores}
    files = [{**parts.written(path, folder, parts.write_table(path, data, stored=kind in kept)), "kind": kind}
             for kind, path, data in written]
    if task["final"]:  # the part's errors, counted here: the driver's stats need not read the parts back
        files[-1]["_errors"] = error_counts(stage.name, table)
    return files


def error_counts(stage_name: str, table: pa.Table) -> dict[str, Any]:
    """A part's errors by reason, and how many an earlier stage made (`inherited`)."""
    from collections import Counter

    errors = [e for e in table.column("error").to_pylist() if e] if "error" in table.column_names else []
    return {"by_reason": dict(Counter(error_reason(e) for e in errors)),
            "inherited": sum(1 for e in errors if not e.startswith(stage_name + "/"))}


def run_task(stage: Stage, task: dict[str, Any]) -> tuple[list[dict[str, Any]], int, int, dict[str, Any]]:
    """One task: a planned one as its pass runs it; else read the part, carry the previous run's work into it, map
    it, write it. Returns (file records, rows in, rows out, counts)."""
    if type(stage).plan_tasks is not Stage.plan_tasks:
        spec = {k: v for k, v in task.items() if k not in SET_BY_FRAMEWORK}
        files, rows_in, rows_out = stage.run_planned(spec, context_of(task))
        return files, rows_in, rows_out, {}
    table = read_input(task)
    carried = None
    if task.get("last_run"):
        carried = Output.of(stage.carry_last_run(table, task["last_run"]))
        table, carried = carried.table, Output(None, carried.side, carried.counts)
    out = map_batches(stage, table, task, carried)
    return write_outputs(stage, task, out), table.num_rows, out.table.num_rows, out.counts


# what the executor adds to a pass's planned task (pipeline/executor.py `_tasks`): the rest is the pass's own plan
SET_BY_FRAMEWORK = ("run", "fresh", "pass", "root", "stage_dir", "out", "final", "record", "last_run", "inputs")


def execute(stage: Stage, task: dict[str, Any]) -> dict[str, Any]:
    """Run one task of one pass (a no-op returning the old record if it already finished)."""
    record_path = storage.path(task["record"])
    # a stage that started over has no records yet: only a resumed one asks (on a store, a request a task)
    if not task.get("fresh") and (record := parts.read_record(record_path)) is not None:
        return {**record, "resumed": True}
    faults.hit(f"{stage.name}.pass{task['pass']}.start")
    steady_malloc()
    reset_peak_rss()  # the peak this task reaches, not the worker's earlier tasks' or stages'
    began = time.perf_counter()
    try:
        files, rows_in, rows_out, counts = run_task(stage, task)
    finally:
        storage.release()  # the frame stores it held open
    errors = [f.pop("_errors") for f in files if "_errors" in f]
    record = {"name": task["name"], "pass": task["pass"], "rows_in": rows_in, "rows_out": rows_out,
              "files": files, "counts": counts, "seconds": round(time.perf_counter() - began, 3),
              **({"errors": errors[0]} if errors else {})}
    lock.check_task(task)
    atomic.atomic_write_json(record_path, record)  # last: the task counts as done only once its files are all there
    faults.hit(f"{stage.name}.pass{task['pass']}.done")
    if task.pop("_saved", False):
        storage.rmtree(folder_of(task))  # its saved batches are in the part now
    # the worker process's peak over this task: what a part costs in memory, for stats.json
    return {**record, "resumed": False, "peak_rss_mb": peak_rss_mb(), "pid": os.getpid()}


_MALLOC_FIXED = False


def steady_malloc() -> None:
    """Fix glibc's mmap threshold at its default (128 KiB), once per process. Left alone, glibc raises it after the
    first large block is freed, and then serves JPEGs and model buffers of that size from the heap, where they
    fragment it: the text filter's task grew batch after batch that way, though it held nothing (make bench-scale);
    with a fixed threshold it stays flat. Large blocks then go back to the system when freed."""
    global _MALLOC_FIXED
    if _MALLOC_FIXED or not sys.platform.startswith("linux"):
        return
    _MALLOC_FIXED = True
    try:
        import ctypes

        M_MMAP_THRESHOLD = -3
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 128 * 1024)
    except (OSError, AttributeError):  # not glibc (musl): nothing to fix
        pass


def reset_peak_rss() -> None:
    """Start this process's peak RSS (VmHWM) over from its current RSS (Linux `clear_refs`; elsewhere a no-op, and
    peaks are the process's since it started)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    """This process's own peak RSS in MB: VmHWM, not getrusage, since Linux carries ru_maxrss across fork+exec (a
    worker spawned by a large driver would report the driver's peak)."""
    import re

    try:
        return round(int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) / 1024, 1)
    except (OSError, AttributeError):
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
