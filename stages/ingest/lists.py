"""List files (CSV, JSONL, Parquet): read strictly, and what their paths may name.

Strict: a malformed list stops the run with one line naming the file and the row or line (an unterminated quote, a
row with more or fewer fields than the header, bytes that are not UTF-8, a line that is not JSON). Nothing is
altered silently: no row is merged into another, no byte replaced.

Confined: a list's paths resolve against the list's own folder and must stay inside it, or inside one of
`ingest.allowed_roots`; `ingest.list_paths: anywhere` lifts that. Special files (anything under /proc, /sys or
/dev, links included) are refused unless an allowed root names them. A refused path is an input row with its
reason (`ingest/outside_list_folder`, `ingest/special_file`), never opened. `pkg:` paths stay inside their package.
Python's `csv` module parses, not pyarrow's reader: it reports where a quote is left open (pyarrow's takes the
rest of the file as one value: the issue's repro) and accepts the newlines inside quoted titles that real lists have.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa

from vlcurate.pipeline import atomic
from vlcurate.pipeline import storage
from vlcurate.pipeline.failures import UserError
from vlcurate.pipeline.stage import error_text
from vlcurate.stages.ingest import columns
from vlcurate.stages.paths import climbs_out, package_dir

SPECIAL_ROOTS = ("/proc", "/sys", "/dev")


def read_text(path: Path) -> str:
    """The list's text, UTF-8 (a BOM allowed); other bytes stop the run with the line they are on."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise UserError(f"{path}, line {line}: not UTF-8 (byte 0x{data[exc.start]:02x}); save the list as "
                        "UTF-8") from None


def jsonl_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for line_no, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise UserError(f"{path}, line {line_no}: not JSON ({exc})") from None
        if not isinstance(value, dict):
            raise UserError(f"{path}, line {line_no}: expected an object with a 'path'")
        yield f"line {line_no}", value


def csv_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Rows as dicts (empty fields are None), each labelled by the line it starts on (the header is row 1)."""
    reader = csv.reader(io.StringIO(read_text(path), newline=""), strict=True)
    try:
        header = next(reader, None)
        if not header:
            raise UserError(f"{path}: empty, no header row (expected path[,title,description,subtitles])")
        start = reader.line_num + 1
        for record in reader:
            if record:  # a blank line is no row
                if len(record) != len(header):
                    raise UserError(f"{path}, row {start}: {len(record)} fields, but the header has "
                                    f"{len(header)} ({', '.join(header)}); quote fields that hold commas")
                yield f"row {start}", {k: (v if v != "" else None) for k, v in zip(header, record)}
            start = reader.line_num + 1
    except csv.Error as exc:
        where = f"a quote opened at row {start} is never closed" if "end of data" in str(exc) else str(exc)
        raise UserError(f"{path}, row {start}: malformed CSV ({where})") from None


def parquet_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        table = atomic.read_parquet(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"{path}: cannot be read as PARQUET ({exc})") from None
    for i, row in enumerate(table.to_pylist()):
        yield f"row {i + 1}", row


def read_list(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """The list's rows, `(where, row)`, checked: known columns (stages/ingest/columns.py), a video in each."""
    reader = {".jsonl": jsonl_rows, ".csv": csv_rows, ".parquet": parquet_rows}[path.suffix.lower()]
    rows = list(reader(path))
    for where, row in rows:
        unknown = set(row) - columns.KNOWN
        if unknown:
            raise UserError(f"{path}, {where}: unknown columns {sorted(unknown)}; a list names its video by "
                            f"{', '.join(columns.VIDEO)} and may give "
                            f"{', '.join(columns.SPANS + columns.CAPTIONS + columns.METADATA)}")
        if not columns.video_of(row):
            raise UserError(f"{path}, {where}: no 'path' (nor {', '.join(columns.VIDEO[1:])}) naming the video")
    return rows


class Confinement:
    """Where a list's paths may point: `resolve` gives a path's absolute form, or the reason it is refused."""

    def __init__(self, list_path: Path, anywhere: bool = False, allowed_roots: list[str] | None = None):
        self.store = str(list_path.parent) if storage.is_remote(list_path) else None  # a list on a store
        self.base = self.store or os.path.abspath(list_path.parent)
        self.anywhere = anywhere
        self.roots = [os.path.abspath(os.path.expanduser(r)) for r in allowed_roots or []]

    def resolve(self, given: Any) -> tuple[str | None, str | None]:
        """(the path to keep, None) or (the path as given, the error refusing it)."""
        if not given:
            return None, None
        text = str(given)
        if text.startswith("pkg:"):
            module, _, rel = text[4:].partition("/")
            if climbs_out(rel):
                return text, error_text("ingest", "outside_list_folder", f"{text} climbs out of package {module}")
            package_dir(module)  # a package that is not installed stops the run, with its name
            return text, None
        if storage.is_remote(text):  # a store object or a web URL: nothing on this machine is named
            return text, None
        if self.store is not None:
            return self._in_store(text)
        target = os.path.abspath(os.path.join(self.base, os.path.expanduser(text)))
        real = os.path.realpath(target)
        if any(_under(p, s) for s in SPECIAL_ROOTS for p in (target, real)) and \
                not any(_under(real, r) or _under(target, r) for r in self.roots):
            return target, error_text("ingest", "special_file", f"{text} is a system file ({real}), not a video; "
                                      "name its folder in ingest.allowed_roots to read it anyway")
        if self.anywhere or any(_under(target, r) for r in [self.base, *self.roots]):
            return target, None
        return target, error_text("ingest", "outside_list_folder",
                                  f"{text} lies outside the list's folder {self.base}; name its folder in "
                                  "ingest.allowed_roots (or set ingest.list_paths: anywhere) to allow it")


    def _in_store(self, text: str) -> tuple[str, str | None]:
        """A path in a list on a store: relative to the list's folder there, and inside it (a local path is not
        this list's to name unless `anywhere`)."""
        if os.path.isabs(text) or text.startswith("~"):
            if self.anywhere:
                return text, None
            return text, error_text("ingest", "outside_list_folder", f"{text} is a local path in a list on a store "
                                    f"({self.base}); set ingest.list_paths: anywhere to allow it")
        if climbs_out(text):
            return text, error_text("ingest", "outside_list_folder", f"{text} climbs out of the list's folder "
                                    f"{self.base}")
        return f"{self.base}/{os.path.normpath(text)}", None


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
