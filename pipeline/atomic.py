"""Atomic writes and completion markers: a reader never sees half a file, and `_SUCCESS` means all is there. Every
write goes through pipeline/storage.py, so the same holds on an object store (whole objects, markers last)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vlcurate.pipeline import storage

SUCCESS = "_SUCCESS"
STATS = "stats.json"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    storage.write_bytes(path, data)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def write_parquet(path: str | Path, table: pa.Table, row_group_size: int | None = None,
                  **options: Any) -> dict[str, Any]:
    """Parquet written whole (a temp name renamed, or one upload); no wall-clock metadata, so equal tables give
    equal bytes. Returns its `bytes` and `sha256`."""
    return storage.write_with(path, lambda tmp: pq.write_table(table, tmp, **{"compression": "zstd", **options},
                                                                 row_group_size=row_group_size))


def read_parquet(path: str | Path) -> pa.Table:
    return pq.read_table(storage.open_read(path))


def is_done(stage_dir: str | Path) -> bool:
    where = storage.path(stage_dir) / SUCCESS
    return storage.read_bytes(where) is not None if storage.is_remote(where) else where.exists()


def mark_done(stage_dir: str | Path) -> None:
    atomic_write_bytes(storage.path(stage_dir) / SUCCESS, b"")


def clear_stage_dir(stage_dir: str | Path) -> None:
    """Remove the marker first, so an interrupted clear never leaves a dir that looks finished."""
    stage_dir = storage.path(stage_dir)
    storage.remove(stage_dir / SUCCESS)
    storage.rmtree(stage_dir)


def read_json(path: str | Path) -> Any:
    data = storage.read_bytes(path)
    if data is None:
        raise FileNotFoundError(f"{path}: no such file")
    return json.loads(data)
