from __future__ import annotations

import pyarrow as pa
import pytest

from vlcurate.manifests import CAPTIONS, CLIPS, SCORED, VIDEOS
from vlcurate.manifests.base import Manifest


def test_each_manifest_keeps_the_previous_columns():
    for earlier, later in [(VIDEOS, CLIPS), (CLIPS, CAPTIONS), (CAPTIONS, SCORED)]:
        assert set(earlier.schema.names) <= set(later.schema.names)
    assert CLIPS.schema.metadata[b"vlcurate.schema"] == b"clips/6"
    assert "frames" not in CLIPS.schema.names and {"frames_file", "frames_row"} <= set(CLIPS.schema.names)


def test_validate_names_every_problem(tmp_path):
    bad = pa.table({"video_id": [1], "path": ["x"]})
    with pytest.raises(ValueError) as info:
        VIDEOS.validate(bad)
    assert "column 'video_id' is int64" in str(info.value) and "missing column 'fps'" in str(info.value)


def test_roundtrip_and_version_check(tmp_path):
    table = VIDEOS.schema.empty_table()
    VIDEOS.write(tmp_path / "v.parquet", table)
    assert VIDEOS.read(tmp_path / "v.parquet").schema.equals(VIDEOS.schema)
    newer = Manifest("videos", VIDEOS.version + 1, VIDEOS.fields)
    newer.write(tmp_path / "v_next.parquet", newer.schema.empty_table())
    with pytest.raises(ValueError, match=f"videos/{VIDEOS.version + 1}"):
        VIDEOS.read(tmp_path / "v_next.parquet")


def test_a_stage_folder_of_another_schema_version_is_refused(tmp_path):
    from vlcurate.pipeline.executor import write_stage

    write_stage(tmp_path / "split", tmp_path, Manifest("clips", 1, CLIPS.fields).schema.empty_table(), {})
    with pytest.raises(ValueError, match="clips/1, this version of vlcurate reads clips/6"):
        CLIPS.check_stage(tmp_path / "split")
    CLIPS.check_stage(write_stage(tmp_path / "ok", tmp_path, CLIPS.schema.empty_table(), {}) or tmp_path / "ok")
