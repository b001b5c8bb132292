"""A manifest is a versioned Arrow schema: the contract between two stages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from vlcurate.pipeline import atomic

SCHEMA_KEY = b"vlcurate.schema"


@dataclass(frozen=True)
class Manifest:
    name: str
    version: int
    fields: tuple[pa.Field, ...]

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(list(self.fields), metadata={SCHEMA_KEY: f"{self.name}/{self.version}".encode()})

    def extend(self, name: str, version: int, *fields: pa.Field) -> "Manifest":
        """A later stage's manifest: every column of this one, plus its own."""
        return Manifest(name, version, self.fields + tuple(fields))

    def validate(self, table: pa.Table) -> None:
        """Raise with every missing or mistyped column named, so a broken contract is found at the seam."""
        problems = []
        for field in self.fields:
            if field.name not in table.column_names:
                problems.append(f"missing column {field.name!r}")
            elif not table.schema.field(field.name).type.equals(field.type):
                found = table.schema.field(field.name).type
                problems.append(f"column {field.name!r} is {found}, expected {field.type}")
        if problems:
            raise ValueError(f"not a valid {self.name}/{self.version} manifest: " + "; ".join(problems))

    def read(self, path: str | Path) -> pa.Table:
        table = atomic.read_parquet(path)
        found = (table.schema.metadata or {}).get(SCHEMA_KEY, b"").decode()
        if found and found.split("/")[0] == self.name and found != f"{self.name}/{self.version}":
            raise ValueError(f"{path}: schema {found}, this version of vlcurate reads {self.name}/{self.version}")
        self.validate(table)
        return table.select([f.name for f in self.fields]).cast(self.schema)

    def check_stage(self, folder: str | Path) -> None:
        """A finished stage folder written for this manifest's version (its index names the schema)."""
        from vlcurate.pipeline import parts

        found = parts.read_index(folder).get("schema", "")
        # another manifest's name: a stage's columns are then checked one by one (stages/run.py)
        if found and found.split("/")[0] == self.name and found != f"{self.name}/{self.version}":
            raise ValueError(f"{folder}: schema {found}, this version of vlcurate reads {self.name}/{self.version}")

    def write(self, path: str | Path, table: pa.Table) -> None:
        self.validate(table)
        atomic.write_parquet(path, table.cast(self.schema))
