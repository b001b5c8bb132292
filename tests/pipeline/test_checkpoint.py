from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline import checkpoint, io
from pipeline.executor import run_stage
from pipeline.runners import LocalRunner
from pipeline.stage import Stage, StageConfig

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

    def process_batch(self, batch):
        xs = batch.column("x").to_pylist()
        if self.stop_at in xs and (self.stop_flag is None or self.stop_flag.exists()):
            if self.stop_flag is not None:
                time.sleep(1.0)  # under Ray: the driver takes in the batches that finished before this one
            raise Interrupted(f"stopped at {self.stop_at}")
        if self.log is not None:
            self.log.extend(xs)
        rows = [{**r, "trace": (r["trace"] or []) + [xs[0]]} for r in batch.to_pylist()]
        return self.to_table(rows)


class Steps(Stage):
    """Two parts with different batch sizes, as caption's teachers may have."""

    name = "steps"
    output_schema = SCHEMA
    sort_keys = ("x",)
    input_key = ("x",)

    def __init__(self, sizes=(2, 3), stop_at=None, stop_flag=None, log=None):
        super().__init__(StageConfig(resources={"batch_size": sizes[0]}))
        self._parts = [Step(StageConfig(resources={"batch_size": s, "cpus": 0.5, "pool_size": 1}), log=log)
                       for s in sizes]
        self._parts[-1].stop_at, self._parts[-1].stop_flag = stop_at, stop_flag  # the last part's output is saved

    def parts(self):
        return self._parts


def table(n: int) -> pa.Table:
    return pa.table({"x": list(range(n)), "trace": [None] * n, "error": [None] * n}, schema=SCHEMA)


def test_an_interrupted_stage_resumes_with_the_same_batches_and_bytes(tmp_path):
    clean = run_stage(Steps(), table(20), tmp_path / "clean", LocalRunner())

    log: list[int] = []
    with pytest.raises(Interrupted):
        run_stage(Steps(log=log, stop_at=14), table(20), tmp_path / "out", LocalRunner())
    stage_dir = tmp_path / "out" / "steps"
    assert not io.is_done(stage_dir)
    assert sorted(stage_dir.joinpath(checkpoint.PARTIAL).glob("part-*.parquet"))  # batches were saved as they ended

    log.clear()
    resumed = run_stage(Steps(log=log), table(20), tmp_path / "out", LocalRunner())
    # units of lcm(2, 3) = 6 rows: the first two units (0-11) are skipped, the unit holding 14 is redone whole
    assert min(log) == 12 and sorted(set(log)) == list(range(12, 20))
    assert resumed.equals(clean)  # same batches seen by every part, so the same traces
    assert (stage_dir / io.MANIFEST).read_bytes() == (tmp_path / "clean" / "steps" / io.MANIFEST).read_bytes()
    assert io.read_parquet(stage_dir / io.MANIFEST).num_rows == 20
    assert not (stage_dir / checkpoint.PARTIAL).exists()
    assert '"resumed_inputs": 12' in (stage_dir / io.STATS).read_text()


def test_overwrite_or_another_config_starts_over(tmp_path):
    for changed in ("overwrite", "config"):
        out = tmp_path / changed
        with pytest.raises(Interrupted):
            run_stage(Steps(stop_at=14), table(20), out, LocalRunner())
        log: list[int] = []
        stage = Steps(sizes=(2, 3) if changed == "overwrite" else (2, 4), log=log)
        run_stage(stage, table(20), out, LocalRunner(), overwrite=changed == "overwrite")
        assert sorted(set(log)) == list(range(20))


def test_placement_changes_keep_finished_work(tmp_path):
    with pytest.raises(Interrupted):
        run_stage(Steps(stop_at=14), table(20), tmp_path, LocalRunner())
    log: list[int] = []
    stage = Steps(log=log)
    stage._parts[0].config.resources.pool_size = 3  # how workers are placed does not change results
    run_stage(stage, table(20), tmp_path, LocalRunner())
    assert min(log) == 12


def test_rows_of_an_input_come_from_the_last_part_that_has_them(tmp_path):
    stage = Steps()
    checkpoint.begin(stage, tmp_path)
    writer = checkpoint.PartWriter(tmp_path / checkpoint.PARTIAL, every_s=0.0)
    older = table(4).set_column(1, "trace", pa.array([[1]] * 4, pa.list_(pa.int64())))
    writer(older)
    writer(table(2).set_column(1, "trace", pa.array([[2]] * 2, pa.list_(pa.int64()))))
    loaded = checkpoint.load(stage, tmp_path)
    assert sorted(zip(loaded.column("x").to_pylist(), loaded.column("trace").to_pylist())) == [
        (0, [2]), (1, [2]), (2, [1]), (3, [1])]
    assert checkpoint.PartWriter(tmp_path / checkpoint.PARTIAL).next == 2  # numbering goes on after what is there


def test_finished_batches_are_gathered_into_few_files(tmp_path):
    writer = checkpoint.PartWriter(tmp_path / checkpoint.PARTIAL, every_s=3600.0)
    for start in range(0, 6, 2):
        writer(table(6).slice(start, 2))
    assert not list((tmp_path / checkpoint.PARTIAL).glob("part-*"))  # nothing written before the interval
    writer.flush()
    (only,) = (tmp_path / checkpoint.PARTIAL).glob("part-*.parquet")
    assert io.read_parquet(only).column("x").to_pylist() == list(range(6))


def test_stages_without_an_input_key_start_over(tmp_path):
    class NoKey(Steps):
        input_key = ()

    with pytest.raises(Interrupted):
        run_stage(NoKey(stop_at=14), table(20), tmp_path, LocalRunner())
    assert not (tmp_path / "steps" / checkpoint.PARTIAL).exists()
    log: list[int] = []
    run_stage(NoKey(log=log), table(20), tmp_path, LocalRunner())
    assert sorted(set(log)) == list(range(20))


@pytest.mark.ray
def test_ray_saves_finished_batches_and_resumes_to_the_same_bytes(tmp_path, ray_runner):
    clean = run_stage(Steps(), table(20), tmp_path / "clean", LocalRunner())
    flag = tmp_path / "stop"
    flag.touch()
    with pytest.raises(Exception, match="stopped at 14"):
        run_stage(Steps(stop_at=14, stop_flag=flag), table(20), tmp_path / "out", ray_runner)
    flag.unlink()
    saved = checkpoint.load(Steps(), tmp_path / "out" / "steps")
    # batches the driver had taken in before the failure (Ray drops some that were still in flight)
    assert saved is not None and 3 <= saved.num_rows <= 12 and saved.num_rows % 3 == 0
    resumed = run_stage(Steps(stop_at=14, stop_flag=flag), table(20), tmp_path / "out", ray_runner)
    assert resumed.equals(clean)
    assert (tmp_path / "out" / "steps" / io.MANIFEST).read_bytes() == \
        (tmp_path / "clean" / "steps" / io.MANIFEST).read_bytes()
