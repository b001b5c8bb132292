from __future__ import annotations

import pyarrow as pa
import pytest

from vlcurate.pipeline import parts
from vlcurate.pipeline.executor import run_table
from vlcurate.pipeline.stage import RowStage, StageConfig, StageError, count_errors, error_text

SCHEMA = pa.schema([("x", pa.int64()), ("y", pa.int64()), ("error", pa.string())])


class Doubler(RowStage):
    name = "double"
    output_schema = SCHEMA
    sort_keys = ("x",)

    def __init__(self, config=None):
        super().__init__(config)
        self.setups = 0

    def setup(self):
        self.setups += 1

    def process_row(self, row, ctx):
        if row["x"] == 3:
            raise StageError("three", "threes are not allowed")
        if row["x"] == 4:
            raise RuntimeError("boom")
        return [{**row, "y": row["x"] * 2}, {**row, "x": row["x"] + 100, "y": 0}] if row["x"] == 5 else \
            [{**row, "y": row["x"] * 2}]


def table(xs, errors=None):
    errors = errors or [None] * len(xs)
    return pa.table({"x": xs, "y": [None] * len(xs), "error": errors}, schema=SCHEMA)


def test_row_errors_become_data_and_the_rest_goes_on(tmp_path):
    stage = Doubler(StageConfig(resources={"batch_size": 2}))
    out = run_table(stage, table([1, 2, 3, 4, 5], [None, "ingest/bad: x", None, None, None]), tmp_path)
    rows = out.to_pylist()
    assert [r["x"] for r in rows] == [1, 2, 3, 4, 5, 105]
    assert rows[0]["y"] == 2 and rows[0]["error"] is None
    assert rows[1]["error"] == "ingest/bad: x" and rows[1]["y"] is None  # passed through untouched
    assert rows[2]["error"] == "double/three: threes are not allowed"
    assert rows[3]["error"].startswith("double/exception: RuntimeError: boom")
    assert stage.setups == 1  # once per worker, not per batch


def test_count_errors_groups_by_stage_and_reason():
    errors = [None, "split/no_clips: a", "split/no_clips: b", "ingest/empty_file", None]
    assert count_errors(errors) == {"ingest/empty_file": 1, "split/no_clips": 2}
    assert error_text("s", "r", "  many\n spaces ") == "s/r: many spaces"


def test_parts_are_fixed_ranges_over_the_input_files():
    assert parts.chunks([("a", 5), ("b", 0), ("c", 4)], 3) == [
        [("a", 0, 3)], [("a", 3, 2), ("c", 0, 1)], [("c", 1, 3)]]


def test_unknown_config_keys_are_errors():
    with pytest.raises(Exception, match="extra"):
        StageConfig.model_validate({"resources": {"cpu": 1}})
