"""The one base class every stage implements, and the row-wise helper most stages use.

A stage is configured cheaply in ``__init__``, loads heavy things in ``setup()`` once per worker, and maps one
batch at a time in ``process_batch(batch, ctx)``, which returns what it made: its table, or an ``Output`` with
side tables and counts too. The batch loop, saving batches as it goes, and writing the part belong to the
framework (pipeline/tasks.py); runners decide where that happens; stages never import Ray.
"""

from __future__ import annotations

import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from vlcurate.pipeline import failures
from vlcurate.pipeline.batches import add_counts


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


@dataclass(frozen=True)
class Stored:
    """A column a stage writes once, to a side table `<stage>/<column>/part-N.parquet` keyed by `key`; its manifest
    keeps `<column>_file` (relative to the run's output folder) and `<column>_row`, and a later stage that `loads`
    the column gets it back one batch at a time (split: the sampled frames, by clip id)."""

    column: str
    key: str
    type: pa.DataType


@dataclass(frozen=True)
class Traits:
    """What the framework needs to know to run a stage: a typed, frozen value, per class or chosen per instance
    (`dataclasses.replace`, e.g. a caption pass loads frames only if its teacher reads them)."""

    local_parallel: bool = False  # the local runner may fan tasks out over processes
    keeps_loaded: bool = True  # workers keep the stage set up between tasks (models): an actor pool under Ray
    keeps_last_run: bool = False  # tasks get the last run's manifest parts of this stage, to carry finished work
    loads: tuple[str, ...] = ()  # stored columns each batch gets back by reference, released with the batch
    stores: tuple[Stored, ...] = ()  # columns written once to a side table (see Stored)
    carries_columns: bool = True  # its output keeps the input's columns it does not declare (an open chain)


@dataclass(frozen=True)
class Context:
    """Where a batch is being mapped: what a stage may know of its task, and nothing else of it."""

    root: str | None = None  # the run's output folder, where `run:` references resolve
    stage_dir: str | None = None  # this stage's folder (a stage may write files of its own there)
    part: str = ""  # the task's name (its part)
    first_row: int = 0  # the batch's first row within the part
    check_owner: Callable[[], None] = lambda: None  # raises unless this run still holds the output folder


@dataclass
class Output:
    """What a batch (or a row, or a carried part) made: its rows, its side tables by name, its counts (summed over
    the run into stats.json)."""

    table: Any  # pa.Table; a list of row dicts where a RowStage's row makes it
    side: dict[str, Any] = field(default_factory=dict)  # name -> pa.Table (or row dicts, from a row)
    counts: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def of(result: "pa.Table | Output") -> "Output":
        return result if isinstance(result, Output) else Output(result)


def widen(declared: pa.Schema, input_schema: pa.Schema) -> pa.Schema:
    """A stage's output schema: its input's columns as they came (typed as the stage declares those it declares),
    then the declared columns the input lacks. What a plug-in stage adds upstream so travels on to the shards; a
    plug-in declares only the columns it adds, and its output keeps its input's manifest name."""
    own = {f.name: f for f in declared}
    names = set(input_schema.names)
    return pa.schema([own.get(f.name, f) for f in input_schema] + [f for f in declared if f.name not in names],
                     metadata=declared.metadata or input_schema.metadata)


def passed_through(input_schema: pa.Schema, traits: Traits) -> pa.Schema:
    """The schema of a stage that passes its input's rows on as they came (filters, asr): the input's columns, less
    those it loads by reference only for the batch."""
    loaded = {s.column for s in traits.loads}
    return pa.schema([f for f in input_schema if f.name not in loaded], metadata=input_schema.metadata)


class Stage:
    """Base of all stages, and of the passes a stage runs (caption: one per teacher).

    Subclasses set ``name``, ``config_class``, ``output_schema`` (the columns they declare: their manifest) and
    what they read (``reads``: the manifest whose columns they need; or ``discover_input``: the first stage, which
    reads the run's input), and implement ``process_batch``. A stage does not name the stage before it: that is
    whichever stands before it in the run's `stages` list. Output rows keep their input's order, so part order is
    the manifest's order, local or Ray.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[StageConfig]] = StageConfig
    reads: ClassVar[Any] = None  # the Manifest the stage reads (its columns must all be in the input)
    summary: ClassVar[str] = ""  # one line for `vlcurate --help`
    output_schema: ClassVar[pa.Schema]  # the columns it declares; `schema` adds what the input carries
    # side tables each final part writes beside its manifest part (`<stage>/<name>/part-N.parquet`), by name; a
    # batch's Output fills them (a part with no rows for one writes it empty)
    side_schemas: ClassVar[dict[str, pa.Schema]] = {}
    traits: Traits = Traits()

    def __init__(self, config: StageConfig | None = None):
        self.config = config if config is not None else self.config_class()
        # the output schema once the input's columns are known (`set_input_schema`)
        self.schema: pa.Schema = getattr(type(self), "output_schema", pa.schema([]))
        self._ready = False

    @classmethod
    def reads_run_input(cls) -> bool:
        """Whether it is a first stage: one that discovers the run's input itself."""
        return cls.discover_input is not Stage.discover_input

    def discover_input(self, source: str) -> pa.Table:
        """The first stage's input rows, from what the user gave as input (a folder, a glob, a list file)."""
        raise failures.UserError(f"{self.name} cannot be a run's first stage: it reads another stage's output")

    def set_input_schema(self, input_schema: pa.Schema) -> None:
        """Called with the input's schema before any task: the output schema becomes the declared columns plus the
        input's others (unless the stage does not carry columns)."""
        if self.traits.carries_columns:
            self.schema = widen(self.output_schema, input_schema)

    def end_run(self, output: str) -> None:
        """On the driver, once the run's last stage is done: tidy what only this stage knows of (ingest: the
        fetched videos it was told not to keep)."""

    def rows_for_next_stage(self, stats: dict[str, Any]) -> int:
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

    def process_batch(self, batch: pa.Table, ctx: Context = Context()) -> "pa.Table | Output":
        """One batch's rows mapped: the table (in the input's order), or an Output with side tables and counts."""
        raise NotImplementedError

    def carry_last_run(self, table: pa.Table, last_run: list[str]) -> "pa.Table | Output":
        """For stages that keep their last run's manifest (`traits.keeps_last_run`): `table` with the finished work of
        those manifest parts (`last_run`) put into it (caption: candidates whose inputs are unchanged)."""
        return table

    @property
    def label(self) -> str:
        """Name in progress bars and logs; a pass of a stage says which pass it is."""
        return self.name

    def passes(self) -> list["Stage"]:
        """What runners map, in order, each pass over the previous pass's output parts: the stage itself, or
        sub-stages with their own resources (under Ray, an actor pool each), e.g. one per caption teacher."""
        return [self]

    # A pass may first compute run-wide values on the driver, from the small columns it needs of the previous pass's
    # output (`prepare`), or plan its own tasks (`plan_tasks`, run by `run_planned`, e.g. one per output shard);
    # either makes it start a new group of passes (runners stream a group's passes together).
    def prepare(self, pass_input: list[str], stage_input: list[tuple[str, int]]) -> None:
        """Driver-side, before this pass's tasks: `pass_input` are the previous pass's output files (the stage's input
        files for the first pass). Values set on `self` travel to the workers with the pass."""

    def plan_tasks(self, pass_input: list[str]) -> list[dict[str, Any]] | None:
        """Tasks of this pass, each a JSON-able dict with at least `name`; None: one per previous part (default)."""
        return None

    def run_planned(self, spec: dict[str, Any], ctx: Context) -> tuple[list[dict[str, Any]], int, int]:
        """One task of `plan_tasks` (`spec`: what it planned): the file records it wrote, rows in, rows out."""
        raise NotImplementedError

    @property
    def is_barrier(self) -> bool:
        cls = type(self)
        return cls.prepare is not Stage.prepare or cls.plan_tasks is not Stage.plan_tasks

    def stats(self, view: Any) -> dict[str, Any]:
        """Stage-specific numbers for stats.json from the finished output: `view.parts(columns)` yields it one part
        at a time (`kind=` a side table's name instead), as often as needed, so no run-wide table is ever held; keys
        here override the executor's defaults."""
        return {}

    def to_table(self, rows: list[dict[str, Any]]) -> pa.Table:
        columns = {f.name: [r.get(f.name) for r in rows] for f in self.schema}
        return pa.Table.from_pydict(columns, schema=self.schema)


class RowStage(Stage):
    """A stage whose work is per input row: rows in, zero or more rows out, each failure becomes an error row.

    Rows that already carry an error pass through untouched so every manifest explains every input.
    """

    def process_row(self, row: dict[str, Any], ctx: Context) -> "list[dict[str, Any]] | Output":
        """The rows one input row makes (or an Output: those rows, with side rows and counts of its own)."""
        raise NotImplementedError

    def error_row(self, row: dict[str, Any], error: str) -> dict[str, Any]:
        return {**row, "error": error}

    def process_batch(self, batch: pa.Table, ctx: Context = Context()) -> Output:
        self.ensure_setup()
        return self.gather([self.map_row(row, ctx) for row in batch.to_pylist()])

    def gather(self, outputs: list[Output]) -> Output:
        """The rows' outputs as one batch's: rows in order, side rows by name, counts summed."""
        rows: list[dict[str, Any]] = []
        side: dict[str, list[Any]] = {}
        counts: dict[str, Any] = {}
        for out in outputs:
            rows.extend(out.table)
            for name, value in out.side.items():
                side.setdefault(name, []).append(value)
            add_counts(counts, out.counts)
        tables = {name: pa.concat_tables(values) for name, values in side.items()}
        return Output(self.to_table(rows), tables, counts)

    def map_row(self, row: dict[str, Any], ctx: Context = Context()) -> Output:
        """`process_row`, with what goes wrong with the input as an error row (a stage that maps a batch's rows
        concurrently calls this from its threads)."""
        if row.get("error"):
            return Output([row])
        try:
            result = self.process_row(row, ctx)
            return result if isinstance(result, Output) else Output(result)
        except StageError as exc:
            return Output([self.error_row(row, error_text(self.name, exc.reason, exc.detail))])
        except Exception as exc:  # one bad input never stops a run; a failing machine does (pipeline/failures.py)
            if failures.is_machine_failure(exc):
                raise failures.as_machine_error(exc, f"{self.label}: {row.get('path') or ''}") from exc
            detail = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            return Output([self.error_row(row, error_text(self.name, "exception", detail))])


class StageError(Exception):
    """An expected, explained failure of one row: ``reason`` is a short code counted in stats.json."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
