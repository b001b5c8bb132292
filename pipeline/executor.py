"""Runs one stage end to end: skip if done, resume if interrupted, plan its tasks, let a runner's workers run them,
then write the index, stats.json and `_SUCCESS` (in that order, each atomically).

The driver handles task descriptors and the records workers return (file names, row counts, checksums); run-wide
steps and stats read only the columns they need, one part at a time (pipeline/parts.py).
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator

import pyarrow as pa

from vlcurate.pipeline import atomic, checkpoint, lock, parts, storage
from vlcurate.pipeline.batches import add_counts
from vlcurate.pipeline.runners.base import Runner, groups
from vlcurate.pipeline.stage import Stage, Stored, error_reason
from vlcurate.pipeline.tasks import peak_rss_mb, reset_peak_rss

log = logging.getLogger(__name__)
PREVIOUS = "_previous"


def stage_dir(output: str | Path, stage_name: str) -> Path:
    return storage.path(output) / stage_name


class StageView:
    """A finished pass's output as the stats see it: part by part (task order), chosen columns only."""

    def __init__(self, folder: Path, records: list[dict[str, Any]]):
        self.folder, self.records = folder, records

    def files(self, kind: str = "part") -> list[Path]:
        return [self.folder / f["file"] for r in self.records for f in r["files"] if f["kind"] == kind]

    def parts(self, columns: list[str] | None = None, kind: str = "part") -> Iterator[pa.Table]:
        return parts.iter_parts(self.files(kind), columns)


def _reset(stage: Stage, folder: Path) -> None:
    """Start over: the old outputs go (a stage that carries finished work keeps its last finished manifest aside)."""
    previous = folder / PREVIOUS
    if stage.traits.keeps_last_run and atomic.is_done(folder):
        storage.rmtree(previous)
        entries = parts.read_index(folder)["parts"]
        for entry in entries:
            storage.move(folder / entry["file"], previous / Path(entry["file"]).name)
        # readers of `_previous` take its parts from this index, never from a listing
        parts.write_index(previous, "", [{**e, "file": Path(e["file"]).name} for e in entries], {})
    storage.remove(folder / atomic.SUCCESS)
    if folder.exists():
        for child in folder.iterdir():
            if child.name != PREVIOUS:
                storage.rmtree(child) if child.is_dir() else storage.remove(child)


def _tasks(stage: Stage, k: int, pass_: Stage, previous: list[str], source: list[tuple[str, int]], folder: Path,
           root: Path, final: bool, names: list[str] | None, fresh: bool) -> list[dict[str, Any]]:
    """The descriptors of pass `k`'s tasks: its own plan, else fixed chunks of the stage input (first pass) or one
    task per part of the previous pass (`names`: those parts, when the previous pass has not run yet)."""
    out = folder / parts.MANIFEST if final else folder / parts.WORK / f"pass{k}"
    planned = pass_.plan_tasks(previous)
    if planned is None and k == 0:
        planned = [{"name": parts.part_name(j), "inputs": chunk}
                   for j, chunk in enumerate(parts.chunks(source, stage.config.part_rows))]
    elif planned is None:
        prev_out = folder / parts.WORK / f"pass{k - 1}"
        names = names if names is not None else [storage.path(p).stem for p in previous]
        planned = [{"name": n, "inputs": [(str(prev_out / f"{n}.parquet"), 0, None)]} for n in names]
    last_run = _last_run_parts(folder) if stage.traits.keeps_last_run else []
    token = {"run": lock.run_token(root)} if lock.run_token(root) else {}  # checked before every write
    return [{**t, **token, **({"fresh": True} if fresh else {}), "pass": k, "root": str(root),
             "stage_dir": str(folder), "out": str(out), "final": final,
             "record": str(parts.record_path(folder, k, t["name"])),
             **({"last_run": last_run} if k == 0 and last_run else {})} for t in planned]


def _last_run_parts(folder: Path) -> list[str]:
    """The last finished manifest a stage kept aside, from its index (a listing for folders kept before it had one)."""
    try:
        return [str(folder / PREVIOUS / e["file"]) for e in parts.read_index(folder / PREVIOUS)["parts"]]
    except FileNotFoundError:
        return sorted(str(p) for p in (folder / PREVIOUS).glob("*.parquet"))


def _run_passes(stage: Stage, source: list[tuple[str, int]], folder: Path, root: Path,
                runner: Runner, fresh: bool = False) -> list[list[dict[str, Any]]]:
    passes = stage.passes()
    previous = [f for f, _ in source]
    all_records: list[list[dict[str, Any]]] = []
    for group in groups(passes, runner.cluster()):
        chain = []
        names: list[str] | None = None
        for k in group:
            if k == group[0]:
                passes[k].prepare(previous, source)
            tasks = _tasks(stage, k, passes[k], previous, source, folder, root, k == len(passes) - 1, names, fresh)
            names = [t["name"] for t in tasks]
            chain.append(tasks)
        atomic.atomic_write_json(folder / parts.WORK / "plan.json", {"passes": len(passes), "tasks": len(chain[-1]),
                                                                 "last_pass": group[-1]})
        records = runner.run([passes[k] for k in group], chain)
        all_records.extend(records)
        previous = [str(folder / f["file"]) for r in records[-1] for f in r["files"] if f["kind"] == "part"]
    return all_records


def run_stage(stage: Stage, source: list[tuple[str, int]], output: str | Path, runner: Runner, *,
              overwrite: bool = False, run_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """`source`: the stage's input, `(parquet file, rows)` in order. Returns the stage's stats."""
    folder = stage_dir(output, stage.name)
    if atomic.is_done(folder) and not overwrite:
        log.warning("%s: %s is complete, skipping (use --overwrite to redo it)", stage.name, folder)
        return atomic.read_json(folder / atomic.STATS)
    fingerprint = checkpoint.fingerprint(stage, source)
    resuming = not overwrite and checkpoint.resumable(stage, folder, fingerprint)
    if not resuming:
        _reset(stage, folder)
    folder.mkdir(parents=True, exist_ok=True)
    if run_config is not None:
        atomic.atomic_write_json(folder / "config.json", run_config)
    checkpoint.begin(folder, fingerprint)
    reset_peak_rss()  # the driver's peak over this stage
    started = time.perf_counter()
    records = _run_passes(stage, source, folder, storage.path(output), runner, fresh=not resuming)
    resumed = sum(r["rows_in"] for r in records[0] if r["resumed"])
    if resumed:
        log.warning("%s: resumed an interrupted run: %d of %d inputs were done (--overwrite starts over)",
                    stage.name, resumed, sum(rows for _, rows in source))
    counts: dict[str, Any] = {}
    nodes = set()
    for record in (r for pass_records in records for r in pass_records):
        add_counts(counts, record.get("counts") or {})
        if record.get("node") and not record["resumed"]:
            nodes.add(record["node"])
    if nodes:  # under Ray: how many nodes ran this stage's tasks
        counts["nodes"] = len(nodes)
    counts.update(peak_rss(r for pass_records in records for r in pass_records if not r["resumed"]))
    stats = _finish(stage, folder, records[-1], source, resumed, time.perf_counter() - started, runner.name,
                    counts)
    log.info("%s: %d rows in, %d out, %d errors, %.1fs", stage.name, stats["rows_in"], stats["rows_out"],
             stats["errors_total"], stats["seconds"])
    return stats


def peak_rss(records: Iterable[dict[str, Any]]) -> dict[str, float]:
    """The stage's memory for stats.json: the highest peak of a worker over one task, and the driver's peak over
    the stage (tasks run in the driver's own process count there, not as a worker's)."""
    here = os.getpid()
    driver, workers = peak_rss_mb(), []
    for r in records:
        if r.get("pid") == here and not r.get("node"):
            driver = max(driver, r["peak_rss_mb"])
        else:
            workers.append(r["peak_rss_mb"])
    return {"driver_peak_rss_mb": driver, **({"worker_peak_rss_mb": max(workers)} if workers else {})}


def _errors(stage: Stage, view: StageView, records: list[dict[str, Any]]) -> tuple[Counter, int]:
    """Errors by reason over the stage's parts, and how many came from earlier stages: from the tasks' records
    (each counted its part), or read from the parts when a record has no count (tasks that write their own parts)."""
    errors: Counter = Counter()
    inherited = 0
    if records and all("errors" in r for r in records):
        for r in records:
            errors.update(r["errors"]["by_reason"])
            inherited += r["errors"]["inherited"]
        return errors, inherited
    for table in view.parts(["error"]):
        if "error" in table.column_names:
            for e in table.column("error").to_pylist():
                if e:
                    errors[error_reason(e)] += 1
                    inherited += not e.startswith(stage.name + "/")
    return errors, inherited


def _finish(stage: Stage, folder: Path, records: list[dict[str, Any]], source: list[tuple[str, int]],
            resumed: int, elapsed: float, executor: str, counts: dict[str, int]) -> dict[str, Any]:
    view = StageView(folder, records)
    files = [f for r in records for f in r["files"]]  # runners return records in task order: part order
    side: dict[str, list[dict[str, Any]]] = {}
    for f in files:
        if f["kind"] != "part":
            side.setdefault(f["kind"], []).append(f)
    errors, inherited = _errors(stage, view, records)
    total = sum(errors.values())
    stats = {
        "stage": stage.name,
        "executor": executor,
        "rows_in": sum(rows for _, rows in source),
        "rows_out": sum(f["rows"] or 0 for f in files if f["kind"] == "part"),
        "parts": sum(1 for f in files if f["kind"] == "part"),
        "resumed_inputs": resumed,
        "errors_total": total,
        "errors_new": total - inherited,
        "errors_by_reason": dict(sorted(errors.items())),
        "seconds": round(elapsed, 3),
        **counts,
        **stage.stats(view),
    }
    schema = (stage.schema.metadata or {}).get(b"vlcurate.schema", b"").decode()
    parts.write_index(folder, schema, [f for f in files if f["kind"] == "part"], side)
    atomic.atomic_write_json(folder / atomic.STATS, stats)
    atomic.mark_done(folder)
    parts.clear_work(folder)
    storage.rmtree(folder / PREVIOUS)
    return stats


def run_table(stage: Stage, table: pa.Table, output: str | Path, runner: Runner | None = None,
              **options: Any) -> pa.Table:
    """A stage over an in-memory input table (library use, tests): the table is written as its input under
    `<output>/_input/` (inline values of the columns the stage loads by reference into a store beside it), the
    stage runs as in a pipeline, and its finished manifest comes back whole, with its stored columns put back."""
    from vlcurate.pipeline.runners.local import LocalRunner

    output = storage.path(output)
    path = output / "_input" / f"{stage.name}.parquet"
    for stored in (*stage.traits.loads, *(s for p in stage.passes() for s in p.traits.loads)):
        if stored.column in table.column_names and stored.key in table.column_names:
            file = f"_input/{stage.name}-{stored.column}.parquet"
            table, side = parts.store_column(table, stored.column, stored.key, file)
            parts.write_table(output / file, side, stored=True)
    parts.write_table(path, table)
    stage.set_input_schema(table.schema)
    run_stage(stage, [(str(path), table.num_rows)], output, runner or LocalRunner(), **options)
    return read_manifest(stage_dir(output, stage.name), output)


def read_manifest(folder: str | Path, root: str | Path | None = None) -> pa.Table:
    """A finished stage's manifest as one table; with `root` (the run's output folder) every column it stores by
    reference (split's frames) put back."""
    table = parts.read_stage(folder)
    return parts.load_referenced(table, root) if root is not None else table


def write_stage(folder: str | Path, root: str | Path, tables: pa.Table | Iterable[pa.Table],
                stats: dict[str, Any], stores: tuple[Stored, ...] = ()) -> None:
    """Write tables as a finished stage folder, one part each (`stores`: columns into `<stage>/<column>/`, as the
    stage that stores them would), for tools that make a stage's output without running it (`vlcurate selector
    synth`, `make bench-scale`)."""
    folder, root = storage.path(folder), storage.path(root)
    if folder.exists():
        _reset(Stage(), folder)
    main: list[dict[str, Any]] = []
    side: dict[str, list[dict[str, Any]]] = {}
    schema = ""
    for j, table in enumerate([tables] if isinstance(tables, pa.Table) else tables):
        name = f"{parts.part_name(j)}.parquet"
        for stored in (s for s in stores if s.column in table.column_names):
            file = folder / stored.column / name
            table, values = parts.store_column(table, stored.column, stored.key, storage.relative(file, root))
            facts = parts.write_table(file, values, stored=True)
            side.setdefault(stored.column, []).append({**parts.written(file, folder, facts), "kind": stored.column})
        path = folder / parts.MANIFEST / name
        main.append({**parts.written(path, folder, parts.write_table(path, table)), "kind": "part"})
        schema = (table.schema.metadata or {}).get(b"vlcurate.schema", b"").decode()
    parts.write_index(folder, schema, main, side)
    atomic.atomic_write_json(folder / atomic.STATS, stats)
    atomic.mark_done(folder)
