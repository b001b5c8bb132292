"""The one base class every stage implements, and the row-wise helper most stages use.

A stage is configured cheaply in ``__init__``, loads heavy things in ``setup()`` once per worker, and maps
Arrow tables to Arrow tables in ``process_batch``. Runners decide where that happens; stages never import Ray.
"""

from __future__ import annotations

import traceback
from collections import Counter
from typing import Any, ClassVar, Iterable

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field


class Resources(BaseModel):
    """What one worker of a stage asks for; runners size pools from these and the cluster's resources."""

    model_config = ConfigDict(extra="forbid")

    cpus: float = Field(1.0, gt=0, description="CPUs per worker (fractions allowed under Ray)")
    gpus: float = Field(0.0, ge=0, description="GPUs per worker (fractions allowed)")
    batch_size: int = Field(8, ge=1, description="rows per process_batch call")
    pool_size: int | None = Field(None, ge=1, description="workers; default: as many as the CPUs allow")
    threads: int | None = Field(
        None, ge=1, description="torch threads per worker; default: this machine's cores (same value local and Ray)"
    )


class StageConfig(BaseModel):
    """Base of every stage's typed config: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")

    resources: Resources = Field(default_factory=Resources)


def error_text(stage: str, reason: str, detail: str = "") -> str:
    """Errors are data: ``"<stage>/<reason>: <detail>"``, so stats can count by the part before the colon."""
    detail = " ".join(str(detail).split())[:500]
    return f"{stage}/{reason}: {detail}" if detail else f"{stage}/{reason}"


def error_reason(error: str) -> str:
    return error.split(":", 1)[0]


def count_errors(errors: Iterable[str | None]) -> dict[str, int]:
    counts = Counter(error_reason(e) for e in errors if e)
    return dict(sorted(counts.items()))


class Stage:
    """Base of all stages.

    Subclasses set ``name``, ``config_class``, ``input_stage`` (the stage whose manifest they read, None for
    ingest), ``output_schema`` and ``sort_keys`` (output order, so local and Ray runs write the same bytes).
    """

    name: ClassVar[str]
    config_class: ClassVar[type[StageConfig]] = StageConfig
    input_stage: ClassVar[str | None] = None
    output_schema: ClassVar[pa.Schema]
    sort_keys: ClassVar[tuple[str, ...]] = ()
    local_parallel: ClassVar[bool] = False  # the local runner may fan batches out over processes
    keeps_previous: ClassVar[bool] = False  # prepare_input gets the stage's previous manifest, if there is one
    # Columns that identify an input row and that every output row made from it keeps (error rows included): with
    # them, an interrupted run of the stage resumes where it stopped (pipeline/checkpoint.py); empty: it starts over.
    input_key: ClassVar[tuple[str, ...]] = ()
    # As a stage's part before its last: the columns holding this part's own work, saved batch by batch so that an
    # interrupted run's `prepare_input` can carry them (caption's teachers: "candidates"); empty: not saved.
    checkpoint_columns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: StageConfig | None = None):
        self.config = config if config is not None else self.config_class()
        self.out_dir: str | None = None  # set by the executor before mapping, for stages that write side files
        self._ready = False

    @property
    def resources(self) -> Resources:
        return self.config.resources

    def setup(self) -> None:
        """Heavy loading (models, imports of torch and friends); called once per worker before any batch."""

    def ensure_setup(self) -> None:
        if not self._ready:
            self.setup()
            self._ready = True

    def process_batch(self, batch: pa.Table) -> pa.Table:
        raise NotImplementedError

    @property
    def label(self) -> str:
        """Name in progress bars and logs; a part of a stage says which part it is."""
        return self.name

    def parts(self) -> list["Stage"]:
        """What runners map, in order, each part over the previous part's output: the stage itself, or sub-stages
        with their own resources (under Ray, an actor pool each), e.g. one per caption teacher."""
        return [self]

    def prepare_input(self, table: pa.Table, previous: pa.Table | None) -> pa.Table:
        """On the driver, before mapping, for stages with `keeps_previous`. `previous` is this stage's manifest from
        an earlier run into the same folder (None if there is none): a stage may carry finished work from it into its
        input, so that a rerun redoes only what changed."""
        return table

    def finalize(self, table: pa.Table, out_dir: str) -> pa.Table:
        """Global work after every batch is done (sorting, run-wide thresholds, writing shards). Runs on the driver.

        Returns the table written as the stage's manifest."""
        if self.sort_keys and table.num_rows:
            table = table.sort_by([(k, "ascending") for k in self.sort_keys])
        return table

    def stats(self, table: pa.Table) -> dict[str, Any]:
        """Stage-specific numbers for stats.json, computed from the final table so they are runner-independent;
        keys here override the executor's defaults."""
        return {}

    def to_table(self, rows: list[dict[str, Any]]) -> pa.Table:
        schema = self.output_schema
        columns = {f.name: [r.get(f.name) for r in rows] for f in schema}
        return pa.Table.from_pydict(columns, schema=schema)


class RowStage(Stage):
    """A stage whose work is per input row: rows in, zero or more rows out, each failure becomes an error row.

    Rows that already carry an error pass through untouched so every manifest explains every input.
    """

    def process_row(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def error_row(self, row: dict[str, Any], error: str) -> dict[str, Any]:
        return {**row, "error": error}

    def process_batch(self, batch: pa.Table) -> pa.Table:
        self.ensure_setup()
        out: list[dict[str, Any]] = []
        for row in batch.to_pylist():
            if row.get("error"):
                out.append(row)
                continue
            try:
                out.extend(self.process_row(row))
            except StageError as exc:
                out.append(self.error_row(row, error_text(self.name, exc.reason, exc.detail)))
            except Exception as exc:  # one bad input never stops a run
                detail = f"{type(exc).__name__}: {exc}"
                out.append(self.error_row(row, error_text(self.name, "exception", detail)))
                traceback.print_exc()
        return self.to_table(out)


class StageError(Exception):
    """An expected, explained failure of one row: ``reason`` is a short code counted in stats.json."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
