from __future__ import annotations

import pyarrow as pa
import pytest

from vlcurate.pipeline.executor import run_table
from vlcurate.pipeline.runners import groups
from vlcurate.pipeline.runners.ray import plan_pool, share
from vlcurate.pipeline.stage import RowStage, Stage, StageConfig, Traits

SCHEMA = pa.schema([("x", pa.int64()), ("batch", pa.int64()), ("error", pa.string())])


class BatchTagger(RowStage):
    """Tags each row with the first x of its batch: proves both runners use the same batch boundaries."""

    name = "tag"
    output_schema = SCHEMA
    traits = Traits(local_parallel=True)

    def process_batch(self, batch, ctx=None):
        first = batch.column("x")[0].as_py()
        rows = [{**r, "batch": first} for r in batch.to_pylist()]
        return self.to_table(rows)


def test_plan_pool_uses_fractions_on_small_machines():
    pool, cpus, gpus = plan_pool(1.0, 0.0, None, 10, {"CPU": 2.0})
    assert pool == 1 and cpus <= 1.0 and gpus == 0.0
    pool, cpus, _ = plan_pool(0.5, 0.0, None, 10, {"CPU": 2.0})
    assert pool == 3 and pool * cpus <= 2.0 * 0.9 + 1e-9
    pool, cpus, _ = plan_pool(1.0, 0.0, 4, 10, {"CPU": 2.0})
    assert pool == 4 and pool * cpus <= 1.8 + 1e-9  # asked-for pool fits by shrinking each actor
    pool, _, _ = plan_pool(1.0, 0.0, 8, 2, {"CPU": 16.0})
    assert pool == 2  # never more actors than tasks
    pool, _, gpus = plan_pool(1.0, 0.5, None, 10, {"CPU": 16.0, "GPU": 2.0})
    assert pool == 4 and gpus == 0.5
    with pytest.raises(RuntimeError, match="has none"):
        plan_pool(1.0, 1.0, None, 10, {"CPU": 4.0})


def make_table(n):
    return pa.table({"x": list(range(n)), "batch": [None] * n, "error": [None] * n}, schema=SCHEMA)


def tagger(**resources):
    return BatchTagger(StageConfig(resources={"batch_size": 3, **resources}, part_rows=4))


@pytest.mark.ray
def test_ray_runner_matches_local(ray_runner, tmp_path):
    local = run_table(tagger(cpus=0.5), make_table(10), tmp_path / "local")
    remote = run_table(tagger(cpus=0.5), make_table(10), tmp_path / "ray", ray_runner)
    assert remote.equals(local)
    # batches of 3 inside parts of 4 rows
    assert local.column("batch").to_pylist() == [0, 0, 0, 3, 4, 4, 4, 7, 8, 8]
    for name in ("manifest/part-000000.parquet", "manifest/part-000001.parquet", "manifest/part-000002.parquet"):
        assert (tmp_path / "local" / "tag" / name).read_bytes() == (tmp_path / "ray" / "tag" / name).read_bytes()


def test_local_process_pool_gives_the_same_parts_and_bytes(tmp_path):
    pooled = run_table(tagger(pool_size=2), make_table(7), tmp_path / "pool")
    single = run_table(tagger(pool_size=1), make_table(7), tmp_path / "one")
    assert pooled.equals(single)
    assert (tmp_path / "pool" / "tag" / "manifest" / "part-000001.parquet").read_bytes() == \
        (tmp_path / "one" / "tag" / "manifest" / "part-000001.parquet").read_bytes()


TRACE = pa.schema([("x", pa.int64()), ("trace", pa.list_(pa.int64())), ("error", pa.string())])


class TracePass(Stage):
    """Appends the first x of the batch it saw: shows which batches each pass of a stage got."""

    name = "trace"
    output_schema = TRACE

    def process_batch(self, batch, ctx=None):
        first = batch.column("x")[0].as_py()
        rows = [{**r, "trace": (r["trace"] or []) + [first]} for r in batch.to_pylist()]
        return self.to_table(rows)


class Traced(Stage):
    name = "trace"
    output_schema = TRACE

    def passes(self):
        return [TracePass(StageConfig(resources={"batch_size": size, "cpus": 0.5})) for size in (3, 3, 2)]


def trace_table():
    return pa.table({"x": list(range(7)), "trace": [None] * 7, "error": [None] * 7}, schema=TRACE)


def test_passes_run_in_order_each_with_its_own_batches(tmp_path):
    out = run_table(Traced(StageConfig(part_rows=6)), trace_table(), tmp_path).column("trace").to_pylist()
    assert out == [[0, 0, 0], [0, 0, 0], [0, 0, 2], [3, 3, 2], [3, 3, 4], [3, 3, 4], [6, 6, 6]]


@pytest.mark.ray
def test_ray_streams_passes_through_one_pool_each_with_local_batches(ray_runner, tmp_path):
    stage = Traced(StageConfig(part_rows=6))
    assert run_table(stage, trace_table(), tmp_path / "ray", ray_runner).equals(
        run_table(stage, trace_table(), tmp_path / "local"))


class Barrier(TracePass):
    def prepare(self, previous, stage_input):
        self.seen = len(previous)


def test_passes_stream_together_unless_a_barrier_or_gpus_stop_them():
    def part(gpus=0.0, cls=TracePass):
        return cls(StageConfig(resources={"gpus": gpus}))

    a, b, c, d, e = part(1.0), part(1.0), part(), part(cls=Barrier), part()
    assert groups([a, b, c, d, e], {"CPU": 8.0, "GPU": 1.0}) == [[0], [1, 2], [3, 4]]
    assert groups([a, b, c], {"CPU": 8.0, "GPU": 2.0}) == [[0, 1, 2]]
    cpus = [TracePass(StageConfig(resources={"cpus": n})) for n in (1.0, 3.0)]
    assert share(cpus[0], cpus, {"CPU": 8.0}) == {"CPU": 2.0, "GPU": 0.0}  # CPUs in proportion to what each asks
    assert share(cpus[1], cpus, {"CPU": 8.0}) == {"CPU": 6.0, "GPU": 0.0}
    assert share(a, [a, b, c], {"CPU": 3.0, "GPU": 2.0})["GPU"] == 1.0


class BadSetup(BatchTagger):
    def setup(self):
        raise ValueError("this config cannot work")


def test_a_setup_error_in_pool_workers_is_raised_as_itself(tmp_path):
    """Not as a broken pool: the user must see what is wrong with the config."""
    stage = BadSetup(StageConfig(resources={"batch_size": 1, "pool_size": 2}, part_rows=1))
    with pytest.raises(ValueError, match="cannot work"):
        run_table(stage, make_table(3), tmp_path)
