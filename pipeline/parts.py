"""Partitioned stage outputs: a stage's manifest is a folder of Parquet part files written by the workers.

Layout of `<output>/<stage>/`:
  manifest/part-000000.parquet ...  the manifest, one file per task, in input order: the folder reads as one table
                           (`pyarrow.dataset.dataset(path)`, `pandas.read_parquet(path)`, duckdb's
                           `read_parquet('<stage>/manifest/*.parquet')`)
  <side>/part-000000.parquet side tables a stage stores once (split: `frames/`, `shots/`)
  _index.json              parts, row counts and sha256 of every file, written after the parts
  stats.json, _SUCCESS     written last
  _work/                   a running stage's tasks: their plan, each pass's outputs, one completion record a task

A task is a small JSON-able descriptor (which slices of which input files, where to write); workers read their own
input, write their own files and hand the driver back only a record of names, row counts and checksums.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from vlcurate.pipeline import atomic, storage

MANIFEST = "manifest"  # <stage>/manifest/part-NNNNN.parquet: only part files, so the folder reads as one table
INDEX = "_index.json"
WORK = "_work"
DONE = "done"
ROW_GROUP = 256  # rows per Parquet row group: readers of a few rows read only their group
# a stored side table's row groups hold at most this many bytes (fewer rows when rows are large): a batch that reads
# its frames by reference reads about its own rows, never a quarter of a part's frames
STORED_GROUP_BYTES = 4 << 20


def part_name(index: int) -> str:
    """Six digits, so that name order is part order for up to a million parts (512M rows at 512 a part)."""
    return f"part-{index:06d}"


def file_record(path: Path, root: Path) -> dict[str, Any]:
    """What the index keeps of a written file: its name relative to the stage folder, rows, bytes, sha256."""
    path, digest, size = storage.path(path), hashlib.sha256(), 0
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    rows = None
    if path.suffix == ".parquet":
        with storage.parquet_file(path) as parquet:
            rows = parquet.metadata.num_rows
    return {"file": storage.relative(path, root), "rows": rows, "bytes": size, "sha256": digest.hexdigest()}


def write_table(path: Path, table: pa.Table, stored: bool = False) -> dict[str, Any]:
    """A part file; `stored`: a side table of stored columns (JPEG frames), neither compressed nor dictionary-encoded,
    since JPEG does not compress and readers take a few rows at a time. Returns its rows, bytes and sha256."""
    if not stored:
        facts = atomic.write_parquet(path, table, row_group_size=ROW_GROUP)
    else:
        facts = atomic.write_parquet(path, table, row_group_size=stored_group_rows(table), compression="none",
                                 use_dictionary=False)
    return {"rows": table.num_rows, **facts}


def written(path: Path, root: Path, facts: dict[str, Any]) -> dict[str, Any]:
    """The index entry of a file just written (`facts` from its writer): as `file_record` would read it back."""
    return {"file": storage.relative(path, root), "rows": facts.get("rows"), "bytes": facts["bytes"],
            "sha256": facts["sha256"]}


def stored_group_rows(table: pa.Table) -> int:
    """Rows per row group of a stored side table: as many of its largest rows as fit in `STORED_GROUP_BYTES` (at
    least one, at most `ROW_GROUP`), so what a reader of a few rows reads is bounded by bytes, not by the part."""
    largest = max((row_bytes(table.column(c)) for c in table.column_names), default=0)
    return max(1, min(ROW_GROUP, STORED_GROUP_BYTES // max(1, largest)))


def row_bytes(column: pa.ChunkedArray) -> int:
    """The largest row of a column of binary lists (stored frames), in bytes of values; 0 for other types."""
    import numpy as np
    import pyarrow.compute as pc

    if not pa.types.is_list(column.type) or not pa.types.is_binary(column.type.value_type) or not len(column):
        return 0
    array = column.combine_chunks()
    lengths = pc.binary_length(pc.list_flatten(array)).to_numpy(zero_copy_only=False)
    owners = pc.list_parent_indices(array).to_numpy(zero_copy_only=False)
    return int(np.bincount(owners, weights=lengths, minlength=1).max()) if len(lengths) else 0


def chunks(inputs: list[tuple[str, int]], part_rows: int) -> list[list[tuple[str, int, int]]]:
    """Fixed ranges of `part_rows` rows over the concatenated inputs `[(file, rows)]`, each as the slices
    `(file, offset, length)` that hold it: the same input and part size always give the same parts."""
    out: list[list[tuple[str, int, int]]] = []
    current: list[tuple[str, int, int]] = []
    room = part_rows
    for file, rows in inputs:
        offset = 0
        while offset < rows:
            take = min(room, rows - offset)
            current.append((file, offset, take))
            offset += take
            room -= take
            if room == 0:
                out.append(current)
                current, room = [], part_rows
    if current:
        out.append(current)
    return out


def read_slices(slices: list[tuple[str, int, int | None]], schema: pa.Schema | None = None) -> pa.Table:
    """The rows of a task's input slices, in order (only the row groups that hold them are read; a length of None
    is the whole file)."""
    tables = [_read_range(storage.path(f), offset, length) for f, offset, length in slices]
    tables = [t.cast(schema) if schema is not None else t for t in tables]
    if not tables:
        return schema.empty_table() if schema is not None else pa.table({})
    return pa.concat_tables(tables)


def _read_range(path: Path, offset: int, length: int | None) -> pa.Table:
    with storage.parquet_file(path) as parquet:
        return _rows_of(parquet, offset, length)


def _rows_of(parquet: pq.ParquetFile, offset: int, length: int | None) -> pa.Table:
    if length is None:
        return parquet.read()
    groups, first, start = [], None, 0
    for g in range(parquet.metadata.num_row_groups):
        rows = parquet.metadata.row_group(g).num_rows
        if start + rows > offset and start < offset + length:
            groups.append(g)
            first = start if first is None else first
        start += rows
    if not groups:
        return parquet.schema_arrow.empty_table()
    return parquet.read_row_groups(groups).slice(offset - first, length)


def group_starts(parquet: pq.ParquetFile) -> list[int]:
    """The first row of each row group, and the row count last: where a row's group is, by bisection."""
    starts = [0]
    for g in range(parquet.metadata.num_row_groups):
        starts.append(starts[-1] + parquet.metadata.row_group(g).num_rows)
    return starts


def read_rows(path: Path, rows: list[int], columns: list[str]) -> pa.Table:
    """Rows `rows` (positions) of a Parquet file, reading only the row groups that hold them."""
    # no coalesced read buffer beside the rows read; a store object stays open for the task's next batch
    with storage.parquet_file(path, keep=True, pre_buffer=False) as parquet:
        starts = group_starts(parquet)
        group_of = {r: bisect.bisect_right(starts, r) - 1 for r in rows}
        wanted = sorted(set(group_of.values()))
        # on the calling thread: Arrow's pool keeps pages per thread, so reads spread over its threads would each
        # keep about a batch's worth
        table = parquet.read_row_groups(wanted, columns=columns, use_threads=False)
    offset, at = {}, 0
    for g in wanted:
        offset[g] = at
        at += starts[g + 1] - starts[g]
    picks = [offset[group_of[r]] + r - starts[group_of[r]] for r in rows]
    return table.take(pa.array(picks, pa.int64()))


# -- a finished stage's folder ----------------------------------------------------------------------------------
def write_index(folder: Path, schema: str, files: list[dict[str, Any]], side: dict[str, list[dict[str, Any]]]) -> None:
    atomic.atomic_write_json(folder / INDEX, {"schema": schema, "rows": sum(f["rows"] or 0 for f in files),
                                          "parts": files, "side": side})


def read_index(folder: str | Path) -> dict[str, Any]:
    data = storage.read_bytes(storage.path(folder) / INDEX)
    if data is None:
        raise FileNotFoundError(f"{folder} has no {INDEX}: not a finished stage folder")
    return json.loads(data)


def part_files(folder: str | Path, side: str | None = None) -> list[Path]:
    """A finished stage's part files in order (its manifest, or one of its side tables)."""
    index = read_index(folder)
    entries = index["parts"] if side is None else index["side"].get(side, [])
    return [storage.path(folder) / e["file"] for e in entries]


def input_files(folder: str | Path) -> list[tuple[str, int]]:
    """`(file, rows)` of a finished stage's manifest parts: what a reading stage plans its tasks from."""
    return [(str(storage.path(folder) / e["file"]), e["rows"]) for e in read_index(folder)["parts"]]


def iter_parts(files: list[Path], columns: list[str] | None = None) -> Iterator[pa.Table]:
    """One part at a time, only `columns`: run-wide steps and stats never hold the whole table."""
    for path in files:
        with storage.parquet_file(path) as parquet:
            names = parquet.schema_arrow.names
            table = parquet.read(columns=[c for c in columns if c in names] if columns is not None else None)
        yield table


def read_stage(folder: str | Path, columns: list[str] | None = None, side: str | None = None) -> pa.Table:
    """A finished stage's whole manifest (or side table) as one table: for tests, tools and small runs."""
    tables = list(iter_parts(part_files(folder, side), columns))
    if not tables:
        raise FileNotFoundError(f"{folder} has no parts")
    return pa.concat_tables(tables, promote_options="default")


# -- columns stored once and read by reference ------------------------------------------------------------------
def store_column(table: pa.Table, column: str, key: str, file: str) -> tuple[pa.Table, pa.Table]:
    """Take `column` out of `table` into a side table `(key, column)`; the rows keep `<column>_file` (path relative to
    the run's output folder) and `<column>_row` (position in that file); rows with no key or no value get nulls."""
    values = table.column(column)
    keys = table.column(key).to_pylist()
    present = [i for i, (k, v) in enumerate(zip(keys, values.to_pylist())) if k is not None and v]
    side = pa.table({key: table.column(key).take(pa.array(present, pa.int64())),
                     column: values.take(pa.array(present, pa.int64()))})
    position = dict(zip(present, range(len(present))))
    refs = pa.array([file if i in position else None for i in range(table.num_rows)], pa.string())
    rows = pa.array([position.get(i) for i in range(table.num_rows)], pa.int32())
    table = table.drop_columns([column])
    return set_column(set_column(table, f"{column}_file", refs), f"{column}_row", rows), side


def set_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    """Replace the column `name` (keeping its place), or append it."""
    index = table.schema.get_field_index(name)
    return table.set_column(index, name, values) if index >= 0 else table.append_column(name, values)


def load_column(table: pa.Table, column: str, key: str, root: str | Path, type_: pa.DataType) -> pa.Table:
    """Put a stored column back into the rows that reference it (read from the side files, by row group, in Arrow:
    the values are never copied into Python); rows without a reference get null. A reference that does not hold
    the row's key is an error: the store is stale."""
    files = table.column(f"{column}_file").to_pylist()
    rows = table.column(f"{column}_row").to_pylist()
    keys = table.column(key).to_pylist()
    wanted: dict[str, list[int]] = {}
    for i, f in enumerate(files):
        if f is not None:
            wanted.setdefault(f, []).append(i)
    found: list[pa.Table] = []
    where: list[int | None] = [None] * table.num_rows  # row i's place in the concatenated reads
    at = 0
    for f, positions in wanted.items():
        got = read_rows(storage.path(root) / f, [rows[i] for i in positions], [key, column])
        for n, (i, stored_key) in enumerate(zip(positions, got.column(key).to_pylist())):
            if stored_key != keys[i]:
                raise RuntimeError(f"{f} row {rows[i]} holds {stored_key}, not {keys[i]}: the store is stale")
            where[i] = at + n
        found.append(got.select([column]).cast(pa.schema([pa.field(column, type_)])))
        at += got.num_rows
    if not found:
        return set_column(table, column, pa.nulls(table.num_rows, type_))
    values = pa.concat_tables(found).column(column).take(pa.array(where, pa.int64()))
    return set_column(table, column, values)


def load_stored(batch: pa.Table, stored: Any, root: str | Path | None) -> pa.Table:
    """A batch's rows with a stored column (`stored`: its column, key and type) put back, read by reference from the
    run's output folder `root`; unchanged when its rows carry no references. Workers call it per batch, so a task
    holds one batch's values."""
    if root is None or f"{stored.column}_file" not in batch.column_names:
        return batch
    return load_column(batch, stored.column, stored.key, root, stored.type)


def load_referenced(table: pa.Table, root: str | Path) -> pa.Table:
    """Every stored column a table's rows reference (`<column>_file` beside `<column>_row`) put back, each side
    file naming its own key and type (for tools reading a finished manifest whole)."""
    for name in [n for n in table.column_names if n.endswith("_file")]:
        column = name[:-len("_file")]
        files = [f for f in table.column(name).to_pylist() if f]
        if f"{column}_row" not in table.column_names or not files:
            continue
        with storage.parquet_file(storage.path(root) / files[0]) as parquet:
            side = parquet.schema_arrow
        if column in side.names and len(side.names) == 2:
            key = next(n for n in side.names if n != column)
            table = load_column(table, column, key, root, side.field(column).type)
    return table


def iter_column(refs: pa.Table, column: str, key: str, root: str | Path) -> Iterator[tuple[Any, Any]]:
    """`(key, value)` of each referenced row of a stored column, reading one row group of one side file at a time
    (rows in file and row order): a reader of many rows (the report's contact sheets) holds one group's values."""
    files = refs.column(f"{column}_file").to_pylist()
    rows = refs.column(f"{column}_row").to_pylist()
    keys = refs.column(key).to_pylist()
    wanted: dict[str, list[tuple[int, Any]]] = {}
    for f, row, k in zip(files, rows, keys):
        if f is not None and row is not None:
            wanted.setdefault(f, []).append((row, k))
    for f, items in sorted(wanted.items()):
        with storage.parquet_file(storage.path(root) / f, pre_buffer=False) as parquet:
            yield from _stored_values(parquet, f, key, column, items)


def _stored_values(parquet: pq.ParquetFile, f: str, key: str, column: str,
                   items: list[tuple[int, Any]]) -> Iterator[tuple[Any, Any]]:
    starts = group_starts(parquet)
    by_group: dict[int, list[tuple[int, Any]]] = {}
    for row, k in sorted(items, key=lambda item: item[0]):
        by_group.setdefault(bisect.bisect_right(starts, row) - 1, []).append((row, k))
    for g, members in sorted(by_group.items()):
        group = parquet.read_row_group(g, columns=[key, column])
        stored_keys, values = group.column(key), group.column(column)
        for row, k in members:
            if stored_keys[row - starts[g]].as_py() != k:
                raise RuntimeError(f"{f} row {row} holds {stored_keys[row - starts[g]]}, not {k}: the store is "
                                   "stale")
            yield k, values[row - starts[g]].as_py()
        del group, stored_keys, values


def clear_work(folder: Path) -> None:
    storage.rmtree(storage.path(folder) / WORK)


def record_path(folder: Path, pass_index: int, name: str) -> Path:
    return storage.path(folder) / WORK / DONE / f"pass{pass_index}" / f"{name}.json"


def read_record(path: Path) -> dict[str, Any] | None:
    """A task's completion record, if it finished (and every file it names is still there)."""
    path = storage.path(path)
    try:
        record = json.loads(storage.read_bytes(path) or b"")
    except ValueError:
        return None
    stage_folder = path.parent.parent.parent.parent
    if all((stage_folder / f["file"]).exists() for f in record.get("files", [])):
        return record
    return None


def done_count(folder: Path, pass_index: int) -> int:
    found = storage.path(folder) / WORK / DONE / f"pass{pass_index}"
    return sum(1 for _ in found.glob("*.json")) if found.exists() else 0
