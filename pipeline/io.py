"""Atomic writes and completion markers: a reader never sees half a file, and `_SUCCESS` means all is there."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

SUCCESS = "_SUCCESS"
STATS = "stats.json"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def write_parquet(path: str | Path, table: pa.Table, row_group_size: int | None = None, **options: Any) -> None:
    """Parquet written to a temp name and renamed; no wall-clock metadata, so equal tables give equal bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp, **{"compression": "zstd", **options}, row_group_size=row_group_size)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_parquet(path: str | Path) -> pa.Table:
    return pq.read_table(path)


def is_done(stage_dir: str | Path) -> bool:
    return (Path(stage_dir) / SUCCESS).exists()


def mark_done(stage_dir: str | Path) -> None:
    atomic_write_bytes(Path(stage_dir) / SUCCESS, b"")


def clear_stage_dir(stage_dir: str | Path) -> None:
    """Remove the marker first, so an interrupted clear never leaves a dir that looks finished."""
    stage_dir = Path(stage_dir)
    (stage_dir / SUCCESS).unlink(missing_ok=True)
    if stage_dir.exists():
        shutil.rmtree(stage_dir)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())
