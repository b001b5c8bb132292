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

from vlcurate.pipeline import failures, faults, parts


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
    part_rows: int = Field(512, ge=1, description="input rows per task: each task reads its rows and writes one part "
                                                  "file of the stage's output (the unit of work and of resume)")
    save_every_s: float | None = Field(30.0, gt=0, description="a task saves the batches it has mapped at least this "
                                       "often, so a kill loses at most this much of it (null: only whole parts)")
    save_every_batches: int | None = Field(None, ge=1, description="... and at least every this many batches")


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
    """Base of all stages, and of the passes a stage runs (caption: one per teacher).

    Subclasses set ``name``, ``config_class``, ``output_schema`` and what they read: ``reads`` (the manifest whose
    columns they need, checked against the input's columns and schema version) or ``reads_input`` (the run's input
    videos: the first stage), and implement ``process_batch``. A stage does not name the stage before it: that is
    whichever stands before it in the run's `stages` list. Runners hand each worker whole tasks: the rows of
    one part of the input, which ``process_part`` maps in batches of ``resources.batch_size``; the worker writes the
    part's output files itself (pipeline/tasks.py). Output rows keep their input's order, so part order is the
    manifest's order, local or Ray.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[StageConfig]] = StageConfig
    reads: ClassVar[Any] = None  # the Manifest the stage reads (its columns must all be in the input)
    reads_input: ClassVar[bool] = False  # reads the run's input videos rather than a stage's output
    summary: ClassVar[str] = ""  # one line for `vlcurate --help`
    output_schema: ClassVar[pa.Schema]
    local_parallel: ClassVar[bool] = False  # the local runner may fan tasks out over processes
    keeps_previous: ClassVar[bool] = False  # tasks get the stage's previous manifest parts, to carry finished work
    reads_frames: ClassVar[bool] = False  # each batch's rows get their `frames` back from split's frame store
    # columns written once to a side table `<stage>/<column>/part-N.parquet` keyed by `clip_id`; the manifest keeps
    # `<column>_file` and `<column>_row` (split: the sampled frames)
    stores: ClassVar[tuple[str, ...]] = ()
    # whether workers must keep the stage set up between tasks (models): under Ray an actor pool; False (cheap
    # setup, no model) runs as plain Ray tasks, with no actor start-up
    stateful: ClassVar[bool] = True
    # whether a task's mapped batches are saved as it goes (resume within a part); False where a task keeps more
    # than its output rows between batches (split's shots side table)
    saves_batches: ClassVar[bool] = True

    def __init__(self, config: StageConfig | None = None):
        self.config = config if config is not None else self.config_class()
        self.root: str | None = None  # the run's output folder, set per task: where `run:` references resolve
        self._ready = False
        self.saved_counts: dict[str, Any] = {}  # counts of the batches saved over the task (pipeline/batches.py)

    def bind(self, input_schema: pa.Schema) -> None:
        """Called with the input's schema before any task: a stage whose output keeps whatever columns come in (a
        filter, which may stand after split or after score) takes its output schema from it."""

    def usable_rows(self, stats: dict[str, Any]) -> int:
        """Rows of the finished output that later stages can use (the CLI fails a run that made none)."""
        return stats["rows_out"] - stats["errors_total"]

    @property
    def resources(self) -> Resources:
        return self.config.resources

    def setup(self) -> None:
        """Heavy loading (models, imports of torch and friends); called once per worker before any batch."""

    def ensure_setup(self) -> None:
        if not self._ready:
            try:
                self.setup()
            except Exception as exc:
                raise failures.setup_failure(self.label, exc) from exc
            self._ready = True

    def process_batch(self, batch: pa.Table) -> pa.Table:
        raise NotImplementedError

    def process_part(self, table: pa.Table, task: dict[str, Any]) -> pa.Table:
        """One task's rows, in fixed batches; the output keeps their order. Batches are saved as they go
        (pipeline/batches.py), and a retried task maps only those not saved by an earlier try."""
        from vlcurate.pipeline.batches import BatchSaver

        self.ensure_setup()
        self.root = task.get("root")
        size, schema = self.resources.batch_size, self.output_schema
        saver = None
        if self.saves_batches and task.get("stage_dir"):
            saver = BatchSaver(task, self.config.save_every_s, self.config.save_every_batches)
        runs = saver.restore() if saver else {}
        outputs, first = [], 0
        while first < table.num_rows:
            if first in runs:
                first, output = runs[first]
            else:
                end = min(first + size, table.num_rows)
                faults.hit(f"{self.label}.batch")
                batch = table.slice(first, end - first)
                if self.reads_frames:  # this batch's frames only, released with it
                    batch = parts.load_frames(batch, task.get("root"))
                output = self.process_batch(batch)
                del batch
                output = output.select(schema.names).cast(schema)
                if saver:
                    saver.add(first, end, output, self.part_counts)
                first = end
            outputs.append(output)
        self.saved_counts = saver.counts if saver else {}
        self.batches_saved = bool(saver and saver.touched)
        outputs = [o for o in outputs if o.num_rows]
        return pa.concat_tables(outputs) if outputs else schema.empty_table()

    def part_counts(self) -> dict[str, int]:
        """Counts this worker gathered over the task it just ran (then reset): summed over all tasks into stats."""
        return {}

    def run_task(self, task: dict[str, Any]) -> tuple[list[dict[str, Any]], int, int]:
        """One task on a worker: (file records, rows in, rows out). Default: read the part, map it, write it
        (pipeline/tasks.py); a pass with its own tasks (shard: one tar bucket) overrides it."""
        from vlcurate.pipeline.tasks import map_part

        return map_part(self, task)

    def carry_previous(self, table: pa.Table, previous: list[str]) -> pa.Table:
        """For stages with `keeps_previous`: `table` with the finished work of the previous run's manifest parts
        `previous` (caption: candidates whose clip inputs are unchanged) put into it."""
        return table

    def side_tables(self, table: pa.Table) -> dict[str, pa.Table]:
        """Extra tables this part writes beside its manifest part, by name (split: `shots`); default none."""
        return {}

    @property
    def label(self) -> str:
        """Name in progress bars and logs; a pass of a stage says which pass it is."""
        return self.name

    def passes(self) -> list["Stage"]:
        """What runners map, in order, each pass over the previous pass's output parts: the stage itself, or
        sub-stages with their own resources (under Ray, an actor pool each), e.g. one per caption teacher."""
        return [self]

    # A pass may first compute run-wide values on the driver, from the small columns it needs of the previous pass's
    # output (`before`), or plan its own tasks (`plan_tasks`, e.g. one per output shard); either makes it start a new
    # group of passes (runners stream a group's passes together).
    def before(self, previous: list[str], stage_input: list[tuple[str, int]]) -> None:
        """Driver-side, before this pass's tasks: `previous` are the previous pass's output files (the stage's input
        files for the first pass). Values set on `self` travel to the workers with the pass."""

    def plan_tasks(self, previous: list[str]) -> list[dict[str, Any]] | None:
        """Tasks of this pass, each a JSON-able dict with at least `name`; None: one per previous part (default)."""
        return None

    @property
    def is_barrier(self) -> bool:
        cls = type(self)
        return cls.before is not Stage.before or cls.plan_tasks is not Stage.plan_tasks

    def stats(self, view: Any) -> dict[str, Any]:
        """Stage-specific numbers for stats.json from the finished output: `view.parts(columns)` yields it one part
        at a time (`kind=` a side table's name instead), as often as needed, so no run-wide table is ever held; keys
        here override the executor's defaults."""
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
            out.extend(self.map_row(row))
        return self.to_table(out)

    def map_row(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        """`process_row`, with what goes wrong with the input as an error row (a stage that maps a batch's rows
        concurrently calls this from its threads)."""
        if row.get("error"):
            return [row]
        try:
            return self.process_row(row)
        except StageError as exc:
            return [self.error_row(row, error_text(self.name, exc.reason, exc.detail))]
        except Exception as exc:  # one bad input never stops a run; a failing machine does (pipeline/failures.py)
            if failures.is_machine_failure(exc):
                raise failures.as_machine_error(exc, f"{self.label}: {row.get('path') or ''}") from exc
            detail = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            return [self.error_row(row, error_text(self.name, "exception", detail))]


class StageError(Exception):
    """An expected, explained failure of one row: ``reason`` is a short code counted in stats.json."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
