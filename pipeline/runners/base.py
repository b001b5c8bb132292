from __future__ import annotations

from collections.abc import Callable

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


Sink = Callable[[pa.Table], None]
PartSinks = Callable[[int], Sink | None]  # a part's index -> where its finished batches go, if anywhere


class Runner:
    name: str = "base"

    def map(self, stage: Stage, table: pa.Table, sinks: PartSinks | None = None) -> pa.Table:
        """The stage's parts in order, each mapping the previous one's output. `sinks(k)`, if given, gets every
        batch of part k's output as soon as it is done (the executor saves them, so an interrupted stage can
        resume)."""
        for index, part in enumerate(stage.parts()):
            table = self.map_part(part, table, sinks(index) if sinks else None)
        return table

    def map_part(self, stage: Stage, table: pa.Table, sink: Sink | None = None) -> pa.Table:
        raise NotImplementedError

    def close(self) -> None:
        pass
