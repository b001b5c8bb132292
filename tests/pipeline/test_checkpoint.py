"""Resume: a finished task (one part) is never redone; a rerun after a crash writes the same bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from tests.fixtures import output_bytes
from vlcurate.pipeline import atomic, parts
from vlcurate.pipeline.executor import run_table
from vlcurate.pipeline.stage import Stage, StageConfig

SCHEMA = pa.schema([("x", pa.int64()), ("trace", pa.list_(pa.int64())), ("error", pa.string())])


class Interrupted(Exception):
    """Stands for a crash or a preempted node: not a row error, so it stops the run."""


class Step(Stage):
    """Appends the first x of the batch it saw, and logs every x it processed; stops the run at `stop_at`."""

    name = "step"
    output_schema = SCHEMA

    def __init__(self, config: StageConfig | None = None, log: list[int] | None = None,
                 stop_flag: Path | None = None, stop_at: int | None = None):
        super().__init__(config)
        self.log, self.stop_flag, self.stop_at = log, stop_flag, stop_at

    def process_batch(self, batch, ctx=None):
        xs = batch.column("x").to_pylist()
        if self.stop_at in xs and (self.stop_flag is None or self.stop_flag.exists()):
            raise Interrupted(f"stopped at {self.stop_at}")
        if self.log is not None:
            self.log.extend(xs)
        rows = [{**r, "trace": (r["trace"] or []) + [xs[0]]} for r in batch.to_pylist()]
        return self.to_table(rows)


class Steps(Stage):
    """Two passes with different batch sizes, as caption's teachers may have; parts of 6 rows."""

    name = "steps"
    output_schema = SCHEMA

    def __init__(self, sizes=(2, 3), stop_at=None, stop_flag=None, log=None, part_rows=6):
        super().__init__(StageConfig(resources={"batch_size": sizes[0]}, part_rows=part_rows))
        self._passes = [Step(StageConfig(resources={"batch_size": s, "cpus": 0.5, "pool_size": 1}), log=log)
                        for s in sizes]
        self._passes[-1].stop_at, self._passes[-1].stop_flag = stop_at, stop_flag

    def passes(self):
        return self._passes


def table(n: int) -> pa.Table:
    return pa.table({"x": list(range(n)), "trace": [None] * n, "error": [None] * n}, schema=SCHEMA)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return output_bytes(folder, (".parquet",))


def test_an_interrupted_stage_resumes_part_by_part_to_the_same_bytes(tmp_path):
    clean = run_table(Steps(), table(20), tmp_path / "clean")
    assert clean.column("trace").to_pylist()[:7] == [[0, 0]] * 2 + [[2, 0]] * 1 + [[2, 3]] + [[4, 3]] * 2 + [[6, 6]]

    log: list[int] = []
    with pytest.raises(Interrupted):
        run_table(Steps(log=log, stop_at=14), table(20), tmp_path / "out")
    stage_dir = tmp_path / "out" / "steps"
    assert not atomic.is_done(stage_dir)
    assert parts.done_count(stage_dir, 1) == 2  # parts 0 and 1 (rows 0-11) finished both passes

    log.clear()
    resumed = run_table(Steps(log=log), table(20), tmp_path / "out")
    # the first pass finished all 4 parts before the second started (local: pass after pass); the second pass redid
    # only the parts it had not finished
    assert sorted(set(log)) == list(range(12, 20))
    assert resumed.equals(clean)
    assert folder_bytes(stage_dir) == folder_bytes(tmp_path / "clean" / "steps")
    assert not (stage_dir / parts.WORK).exists()
    stats = json.loads((stage_dir / atomic.STATS).read_text())
    assert stats["resumed_inputs"] == 20 and stats["rows_out"] == 20 and stats["parts"] == 4


def test_overwrite_another_config_or_another_input_starts_over(tmp_path):
    for changed in ("overwrite", "config", "input"):
        out = tmp_path / changed
        with pytest.raises(Interrupted):
            run_table(Steps(stop_at=14), table(20), out)
        log: list[int] = []
        stage = Steps(sizes=(2, 3) if changed != "config" else (2, 4), log=log)
        data = table(20) if changed != "input" else table(20).set_column(2, "error", pa.array(["x/y"] + [None] * 19))
        run_table(stage, data, out, overwrite=changed == "overwrite")
        assert sorted(set(log)) == list(range(20))


def test_placement_changes_keep_finished_work(tmp_path):
    with pytest.raises(Interrupted):
        run_table(Steps(stop_at=14), table(20), tmp_path)
    log: list[int] = []
    stage = Steps(log=log)
    stage._passes[1].config.resources.cpus = 0.25  # how workers are placed does not change results
    run_table(stage, table(20), tmp_path)
    assert sorted(set(log)) == list(range(12, 20))


def test_a_finished_stage_is_skipped_and_its_folder_reads_as_one_table(tmp_path):
    import pandas as pd
    import pyarrow.dataset as ds

    run_table(Steps(part_rows=4), table(10), tmp_path)
    log: list[int] = []
    run_table(Steps(log=log, part_rows=4), table(10), tmp_path)
    assert log == []
    folder = tmp_path / "steps"
    index = json.loads((folder / parts.INDEX).read_text())
    assert [p["file"] for p in index["parts"]] == [f"manifest/part-00000{i}.parquet" for i in range(3)]
    assert [p["rows"] for p in index["parts"]] == [4, 4, 2] and all(len(p["sha256"]) == 64 for p in index["parts"])
    assert ds.dataset(folder / "manifest", format="parquet").to_table().column("x").to_pylist() == list(range(10))
    assert pd.read_parquet(folder / "manifest").x.tolist() == list(range(10))
    import duckdb

    sql = f"select sum(x), count(*) from read_parquet('{folder}/manifest/*.parquet')"
    assert duckdb.sql(sql).fetchall() == [(45, 10)]


@pytest.mark.ray
def test_ray_resumes_to_the_same_bytes_as_an_uninterrupted_local_run(tmp_path, ray_runner):
    clean = run_table(Steps(), table(20), tmp_path / "clean")
    flag = tmp_path / "stop"
    flag.touch()
    with pytest.raises(Exception, match="stopped at 14"):
        run_table(Steps(stop_at=14, stop_flag=flag), table(20), tmp_path / "out", ray_runner)
    assert parts.done_count(tmp_path / "out" / "steps", 1) >= 1  # what workers finished stays, whatever the driver
    flag.unlink()
    resumed = run_table(Steps(stop_at=14, stop_flag=flag), table(20), tmp_path / "out", ray_runner)
    assert resumed.equals(clean)
    assert folder_bytes(tmp_path / "out" / "steps") == folder_bytes(tmp_path / "clean" / "steps")
