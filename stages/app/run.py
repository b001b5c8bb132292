"""Chains the stages of a run config's `stages` list: each reads the part files the stage before it wrote, so any
stage can also run alone."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Iterable

import logging

from vlcurate.pipeline import atomic, parts, storage
from vlcurate.pipeline.executor import run_stage, stage_dir
from vlcurate.pipeline.failures import UserError
from vlcurate.pipeline.lock import output_lock
from vlcurate.pipeline.runners import Runner, make_runner
from vlcurate.pipeline.stage import Stage
from vlcurate.stages.catalog import STAGES
from vlcurate.config import RunConfig

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout (stages/app/ is the package `vlcurate`)
INPUT_LIST = "_input/videos.parquet"  # the first stage's input: the discovered paths, under the run's output folder


def build_stage(name: str, config: RunConfig) -> Stage:
    return STAGES.get(name)(config.stage_config(name))


def previous_stage(name: str, config: RunConfig) -> str | None:
    """The stage whose output `name` reads: the one before it in the run's list."""
    if name not in config.stages:
        raise UserError(f"stage {name!r} is not in this run's stages ({', '.join(config.stages)}); add it to "
                        "`stages` in the config")
    index = config.stages.index(name)
    return config.stages[index - 1] if index else None


def stage_input(stage: Stage, config: RunConfig) -> list[tuple[str, int]]:
    """The stage's input files with their row counts (only metadata is read), checked against what it reads."""
    previous = previous_stage(stage.name, config)
    if previous is None:
        source = config.resolved_input(PROJECT_ROOT)
        if not source:
            raise ValueError("no input: pass --input (a folder, a glob or a list file) or set `input` in the config")
        table = stage.discover_input(source)
        path = storage.path(config.output) / INPUT_LIST
        atomic.write_parquet(path, table, row_group_size=parts.ROW_GROUP)
        stage.set_input_schema(table.schema)
        return [(str(path), table.num_rows)]
    folder = stage_dir(config.output, previous)
    if not atomic.is_done(folder):
        raise FileNotFoundError(f"{stage.name} reads {folder}, but the {previous} stage has not finished there; "
                                "run it first")
    files = parts.input_files(folder)
    schema = _schema_of(files[0][0]) if files else None
    if stage.reads is not None:
        stage.reads.check_stage(folder)
        missing = [c for c in stage.reads.schema.names if schema is not None and c not in schema.names]
        if missing:
            raise UserError(f"{stage.name} needs the columns {missing}, which {previous}'s output lacks; put "
                            f"{stage.name} after a stage that writes {stage.reads.name} rows")
    if schema is not None:
        stage.set_input_schema(schema)
    return files


def _schema_of(file: str) -> Any:
    with storage.parquet_file(file) as parquet:
        return parquet.schema_arrow


def run_stages(config: RunConfig, names: Iterable[str] | None = None, runner: Runner | None = None, *,
               wait: bool = False) -> dict[str, dict[str, Any]]:
    """Runs the stages (all of the config's, or `names` of them, in the config's order), holding the output
    folder's lock throughout (`wait`: for another run to end first, instead of refusing); returns their stats."""
    wanted = list(config.stages) if names is None else list(names)
    for name in wanted:
        previous_stage(name, config)
    storage.configure(config.storage_options)
    made = not storage.is_remote(config.output) and not Path(config.output).exists()
    try:
        with output_lock(config.output, wait=wait):
            return _run_locked(config, [n for n in config.stages if n in wanted], runner)
    except (UserError, FileNotFoundError, ValueError):
        if made:
            _remove_if_untouched(Path(config.output))
        raise


def _remove_if_untouched(output: Path) -> None:
    """A refused command (no input, a bad list) leaves no output folder behind that it made and wrote nothing
    into but its lock and saved config."""
    ours = {".vlcurate.lock", "run_config.json", "_input"}
    try:
        if {p.name for p in output.iterdir()} <= ours and not any((output / "_input").glob("*.parquet")):
            shutil.rmtree(output)
    except OSError:
        pass


def _run_locked(config: RunConfig, names: list[str], runner: Runner | None) -> dict[str, dict[str, Any]]:
    runner = runner or make_runner(config.executor, config.ray_address)
    dump = config.model_dump(mode="json")
    atomic.atomic_write_json(storage.path(config.output) / "run_config.json", dump)
    results = {}
    upstream_rerun = False
    try:
        for name in names:
            stage = build_stage(name, config)
            # once a stage is redone, everything after it is stale and is redone too
            redo = config.overwrite or upstream_rerun
            will_run = redo or not atomic.is_done(stage_dir(config.output, name))
            upstream_rerun = upstream_rerun or will_run
            results[name] = run_stage(stage, stage_input(stage, config), config.output, runner,
                                      overwrite=redo, run_config=dump)
    finally:
        runner.close()
    if names and names[-1] == config.stages[-1]:
        write_summaries(config)
        for name in config.stages:  # e.g. ingest removes the videos it fetched, unless told to keep them
            build_stage(name, config).end_run(str(config.output))
    return results


def write_summaries(config: RunConfig) -> None:
    """After the run's last stage: the dataset card beside the shards, and the HTML report (`report.enabled`).
    The dataset is whole by then; a report that cannot be written still fails the run (`ReportFailed`, one line):
    a run that exits 0 has every output it was asked for."""
    from vlcurate.stages.report import card_applies, write_card, write_report

    output = storage.path(config.output)
    try:
        if card_applies(output):  # the run made shards
            write_card(output)
        if config.report.enabled:
            write_report(output, config.report)
    except Exception as exc:
        raise ReportFailed(f"the report could not be written ({type(exc).__name__}: {exc}); the dataset in {output} "
                           f"is complete: `vlcurate report -o {output}` retries the report") from exc


class ReportFailed(RuntimeError):
    """The run's data is done, its report or card is not."""
