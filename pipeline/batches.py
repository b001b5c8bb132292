"""Saved batches: a long task saves what it has mapped so far, so a kill costs at most `save_every_s` seconds or
`save_every_batches` batches of it, never the whole part.

Files go to `<stage>/_work/batches/pass<k>/<task>/<first>-<end>.parquet` (input rows [first, end), the outputs of
the batches that cover them) with the task's counts so far beside them (`.json`), both atomically, the counts
last. A rerun of the task takes the saved runs of batches as they are and maps only the rest; the part it writes
is the same table, so the same bytes, as one never interrupted. The folder goes once the task's record is written.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from vlcurate.pipeline import atomic, faults, lock, parts, storage


def folder_of(task: dict[str, Any]) -> Path:
    return storage.path(task["stage_dir"]) / parts.WORK / "batches" / f"pass{task['pass']}" / task["name"]


class BatchSaver:
    """Collects a task's batch outputs and saves them when due; `restore` gives back what an earlier try saved."""

    def __init__(self, task: dict[str, Any], every_s: float | None, every_batches: int | None):
        self.task, self.folder = task, folder_of(task)
        self.every_s, self.every_batches = every_s, every_batches
        self.pending: list[Any] = []  # Outputs (pipeline/stage.py) of the batches mapped since the last save
        self.first: int | None = None
        self.last_save = time.monotonic()
        self.touched = False  # whether this task's batch folder holds anything (to remove once the part is written)

    def restore(self) -> dict[int, tuple[int, pa.Table, dict[str, pa.Table], dict[str, Any]]]:
        """{first input row: (end row, table, side tables, counts)} of the runs saved before."""
        runs: dict[int, tuple[int, pa.Table, dict[str, pa.Table], dict[str, Any]]] = {}
        if self.task.get("fresh"):  # a stage that started over: no earlier run saved any (a task Ray retries within
            return runs            # the run maps its batches again, into the same bytes), and no listing is asked
        for meta in [p for p in storage.children(self.folder) if p.name.endswith(".json")]:
            data = parts.read_record(meta)
            table_path = meta.with_suffix(".parquet")
            if data is None or not table_path.exists():
                continue
            side = {kind: atomic.read_parquet(meta.with_suffix(f".{kind}.parquet")) for kind in data.get("side", [])}
            runs[data["first"]] = (data["end"], atomic.read_parquet(table_path), side, data.get("counts") or {})
            self.touched = True
        return runs

    def due(self) -> bool:
        if self.every_batches and len(self.pending) >= self.every_batches:
            return True
        return self.every_s is not None and time.monotonic() - self.last_save >= self.every_s

    def add(self, first: int, end: int, output: Any) -> None:
        """A mapped batch's Output (input rows [first, end)); saved with those before it when a save is due."""
        if self.first is None:
            self.first = first
        self.pending.append(output)
        if self.due():
            self.save(end)

    def save(self, end: int) -> None:
        """The pending batches as one run: its table, each side table, then its counts and side names (last)."""
        lock.check_task(self.task)
        self.touched = True
        name = f"{self.first:08d}-{end:08d}"
        atomic.write_parquet(self.folder / f"{name}.parquet", pa.concat_tables([o.table for o in self.pending]))
        kinds = sorted({kind for o in self.pending for kind in o.side})
        for kind in kinds:
            atomic.write_parquet(self.folder / f"{name}.{kind}.parquet",
                                 pa.concat_tables([o.side[kind] for o in self.pending if kind in o.side]))
        counts: dict[str, Any] = {}
        for o in self.pending:
            add_counts(counts, o.counts)
        atomic.atomic_write_json(self.folder / f"{name}.json", {"first": self.first, "end": end, "counts": counts,
                                                                "side": kinds})
        self.pending, self.first, self.last_save = [], None, time.monotonic()
        faults.hit("batches.saved")

    def clear(self) -> None:
        storage.rmtree(self.folder)


def add_counts(total: dict[str, Any], counts: dict[str, Any]) -> None:
    """Sum counts into `total` (nested dicts by key)."""
    for key, value in counts.items():
        if isinstance(value, dict):
            add_counts(total.setdefault(key, {}), value)
        else:
            total[key] = round(total.get(key, 0) + value, 3)

