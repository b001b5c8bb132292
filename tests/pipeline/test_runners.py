from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline.runners import LocalRunner
from pipeline.runners.ray import plan_pool, share, stream_groups
from pipeline.stage import RowStage, Stage, StageConfig

SCHEMA = pa.schema([("x", pa.int64()), ("batch", pa.int64()), ("error", pa.string())])


class BatchTagger(RowStage):
    """Tags each row with the first x of its batch: proves both runners use the same batch boundaries."""

    name = "tag"
    output_schema = SCHEMA
    sort_keys = ("x",)

    def process_batch(self, batch):
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
    assert pool == 2  # never more actors than batches
    pool, _, gpus = plan_pool(1.0, 0.5, None, 10, {"CPU": 16.0, "GPU": 2.0})
    assert pool == 4 and gpus == 0.5
    with pytest.raises(RuntimeError, match="has none"):
        plan_pool(1.0, 1.0, None, 10, {"CPU": 4.0})


def make_table(n):
    return pa.table({"x": list(range(n)), "batch": [None] * n, "error": [None] * n}, schema=SCHEMA)


@pytest.mark.ray
def test_ray_runner_matches_local(ray_runner):
    stage = BatchTagger(StageConfig(resources={"batch_size": 3, "cpus": 0.5}))
    local = stage.finalize(LocalRunner().map(stage, make_table(10)), "")
    remote = stage.finalize(ray_runner.map(BatchTagger(stage.config), make_table(10)), "")
    assert remote.equals(local)
    assert local.column("batch").to_pylist() == [0, 0, 0, 3, 3, 3, 6, 6, 6, 9]


def test_local_process_pool_gives_the_same_batches_and_order():
    stage = BatchTagger(StageConfig(resources={"batch_size": 2, "pool_size": 2}))
    pooled = LocalRunner().map(stage, make_table(7))
    single = LocalRunner().map(BatchTagger(StageConfig(resources={"batch_size": 2})), make_table(7))
    assert pooled.equals(single)
    assert pooled.column("batch").to_pylist() == [0, 0, 2, 2, 4, 4, 6]


TRACE = pa.schema([("x", pa.int64()), ("trace", pa.list_(pa.int64())), ("error", pa.string())])


class TracePart(Stage):
    """Appends the first x of the batch it saw: shows which batches each part of a stage got."""

    name = "trace"
    output_schema = TRACE

    def process_batch(self, batch):
        first = batch.column("x")[0].as_py()
        rows = [{**r, "trace": (r["trace"] or []) + [first]} for r in batch.to_pylist()]
        return self.to_table(rows)


class Traced(Stage):
    name = "trace"
    output_schema = TRACE

    def parts(self):
        return [TracePart(StageConfig(resources={"batch_size": size, "cpus": 0.5})) for size in (3, 3, 2)]


def test_parts_run_in_order_each_with_its_own_batches():
    table = pa.table({"x": list(range(7)), "trace": [None] * 7, "error": [None] * 7}, schema=TRACE)
    out = LocalRunner().map(Traced(), table).column("trace").to_pylist()
    assert out == [[0, 0, 0], [0, 0, 0], [0, 0, 2], [3, 3, 2], [3, 3, 4], [3, 3, 4], [6, 6, 6]]


@pytest.mark.ray
def test_ray_streams_parts_through_one_pool_each_with_local_batches(ray_runner):
    table = pa.table({"x": list(range(7)), "trace": [None] * 7, "error": [None] * 7}, schema=TRACE)
    assert ray_runner.map(Traced(), table).equals(LocalRunner().map(Traced(), table))


def test_parts_stream_together_while_batches_match_and_gpus_suffice():
    def part(batch_size, gpus=0.0, cpus=1.0):
        return TracePart(StageConfig(resources={"batch_size": batch_size, "gpus": gpus, "cpus": cpus}))

    a, b, c, d, e = part(4, 1.0), part(4, 1.0), part(4), part(2), part(2, cpus=3.0)
    assert stream_groups([a, b, c, d, e], {"CPU": 8.0, "GPU": 1.0}) == [[a], [b, c], [d, e]]
    assert stream_groups([a, b, c], {"CPU": 8.0, "GPU": 2.0}) == [[a, b, c]]
    assert share(d, [d, e], {"CPU": 8.0}) == {"CPU": 2.0, "GPU": 0.0}  # CPUs in proportion to what each asks
    assert share(e, [d, e], {"CPU": 8.0}) == {"CPU": 6.0, "GPU": 0.0}
    assert share(a, [a, b, c], {"CPU": 3.0, "GPU": 2.0})["GPU"] == 1.0


class BadSetup(BatchTagger):
    def setup(self):
        raise ValueError("this config cannot work")


def test_a_setup_error_in_pool_workers_is_raised_as_itself():
    """Not as a broken pool: the user must see what is wrong with the config."""
    stage = BadSetup(StageConfig(resources={"batch_size": 1, "pool_size": 2}))
    with pytest.raises(ValueError, match="cannot work"):
        LocalRunner().map(stage, make_table(3))
