"""pipeline/lock.py: the run token a task checks before it writes (the orphan guard)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from vlcurate.pipeline import lock, parts
from vlcurate.pipeline.executor import run_stage
from vlcurate.pipeline.runners.local import LocalRunner
from vlcurate.pipeline.stage import Stage


class _Copy(Stage):
    name = "copy"
    output_schema = pa.schema([("x", pa.int64())])

    def process_batch(self, batch: pa.Table, ctx=None) -> pa.Table:
        return batch


def test_a_task_writes_only_while_its_run_holds_the_folder(tmp_path):
    with lock.output_lock(tmp_path):
        token = lock.run_token(tmp_path)
        assert token and lock.owns(tmp_path, token)
        assert not lock.owns(tmp_path, "another-run")  # a later run holds it: not ours
        assert lock.owns(tmp_path, None)  # no token: a task run without a lock (library use) is not checked
    assert not lock.owns(tmp_path, token)  # nobody holds it: the run that planned the task has ended
    assert lock.owns(tmp_path / "elsewhere", token)  # no lock file at all (a node that does not see it)


def test_a_task_of_a_run_that_ended_writes_nothing(tmp_path):
    source = tmp_path / "in.parquet"
    parts.write_table(source, pa.table({"x": [1, 2, 3]}))
    with lock.output_lock(tmp_path):
        run_stage(_Copy(), [(str(source), 3)], tmp_path, LocalRunner())  # the run's own tasks write
        assert (tmp_path / "copy" / "_SUCCESS").exists()
        task = {"name": "part-000000", "root": str(tmp_path), "run": lock.run_token(tmp_path)}
    with pytest.raises(lock.Superseded, match="no longer holds"):
        lock.check_task(task)
