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
from vlcurate.pipeline.batches import add_counts, folder_of
from vlcurate.pipeline.parts import FRAMES_TYPE  # noqa: F401  (where readers of stored frames have found it)
from vlcurate.pipeline.stage import Stage


def read_input(stage: Stage, task: dict[str, Any]) -> pa.Table:
    """The task's input rows, frames by reference only: `Stage.process_part` puts a batch's frames back just for
    that batch (pipeline/parts.py `load_frames`), so a task never holds its whole part's frames."""
    return parts.read_slices([tuple(s) for s in task["inputs"]])


def write_outputs(stage: Stage, task: dict[str, Any], table: pa.Table) -> list[dict[str, Any]]:
    """The part's manifest file (stored columns split off into their side tables) and its side tables."""
    folder, out, name = storage.path(task["stage_dir"]), storage.path(task["out"]), task["name"]
    rel_stage = storage.relative(folder, task["root"])
    written: list[tuple[str, Path, pa.Table]] = []
    for column in stage.stores if task["final"] else ():
        if column in table.column_names:
            table, side = parts.store_column(table, column, "clip_id", f"{rel_stage}/{column}/{name}.parquet")
            written.append((column, folder / column / f"{name}.parquet", side))
    if task["final"]:
        written += [(kind, folder / kind / f"{name}.parquet", side) for kind, side in stage.side_tables(table).items()]
    written.append(("part", out / f"{name}.parquet", table))
    lock.check_task(task)  # a worker that outlived its run writes nothing into the next one
    files = [{**parts.written(path, folder, parts.write_table(path, data, stored=kind in stage.stores)), "kind": kind}
             for kind, path, data in written]
    if task["final"]:  # the part's errors, counted here: the driver's stats need not read the parts back
        files[-1]["_errors"] = error_counts(stage.name, table)
    return files


def error_counts(stage_name: str, table: pa.Table) -> dict[str, Any]:
    """A part's errors by reason, and how many an earlier stage made (`inherited`)."""
    from collections import Counter

    from vlcurate.pipeline.stage import error_reason

    errors = [e for e in table.column("error").to_pylist() if e] if "error" in table.column_names else []
    return {"by_reason": dict(Counter(error_reason(e) for e in errors)),
            "inherited": sum(1 for e in errors if not e.startswith(stage_name + "/"))}


def map_part(stage: Stage, task: dict[str, Any]) -> tuple[list[dict[str, Any]], int, int]:
    """What `Stage.run_task` does unless a pass runs its tasks its own way: read the part, carry the previous run's
    work into it, map it, write it; returns (file records, rows in, rows out)."""
    table = read_input(stage, task)
    if task.get("previous"):
        table = stage.carry_previous(table, task["previous"])
    output = stage.process_part(table, task)
    return write_outputs(stage, task, output), table.num_rows, output.num_rows


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
    stage.saved_counts, stage.batches_saved = {}, False
    try:
        files, rows_in, rows_out = stage.run_task(task)
    finally:
        storage.release()  # the frame stores it held open
    counts = stage.saved_counts  # what the saved batches counted, then the rest
    add_counts(counts, stage.part_counts())
    errors = [f.pop("_errors") for f in files if "_errors" in f]
    record = {"name": task["name"], "pass": task["pass"], "rows_in": rows_in, "rows_out": rows_out,
              "files": files, "counts": counts, "seconds": round(time.perf_counter() - began, 3),
              **({"errors": errors[0]} if errors else {})}
    lock.check_task(task)
    atomic.atomic_write_json(record_path, record)  # last: the task counts as done only once its files are all there
    faults.hit(f"{stage.name}.pass{task['pass']}.done")
    if stage.batches_saved:
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
