from __future__ import annotations

import pyarrow as pa

from pipeline.stage import Stage


def split_batches(table: pa.Table, batch_size: int) -> list[pa.Table]:
    """Fixed batch boundaries shared by all runners: models see the same batches local or on Ray, so they
    compute the same numbers."""
    return [table.slice(i, batch_size) for i in range(0, table.num_rows, batch_size)]


def concat(tables: list[pa.Table], stage: Stage) -> pa.Table:
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return stage.output_schema.empty_table()
    return pa.concat_tables([t.cast(stage.output_schema) for t in tables])


class Runner:
    name: str = "base"

    def map(self, stage: Stage, table: pa.Table) -> pa.Table:
        """The stage's parts in order, each mapping the previous one's output."""
        for part in stage.parts():
            table = self.map_part(part, table)
        return table

    def map_part(self, stage: Stage, table: pa.Table) -> pa.Table:
        raise NotImplementedError

    def close(self) -> None:
        pass
